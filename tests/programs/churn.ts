/**
 * 100 container starts, a fifth of them failing at different steps (every
 * other one under the reaper), with a snapshot of what this process holds
 * before and after. Prints {steps, before, after} as JSON for
 * tests/leak_test.ts, which runs it in a process of its own.
 */

import assert from "node:assert/strict";
import { BindMount, Container, SboxError, TmpfsMount, type UserMapper } from "../../mod.ts";
import { busyboxContainer, identityMapper, scratchDir, snapshot } from "../fixtures.ts";
import { PROGRAM_LIMITS } from "../../src/program.ts";

const ENV = { PATH: "/bin:/usr/bin" };

/** A mapper that fails while the child waits for its maps. */
function failingMapper(): UserMapper {
  const real = identityMapper();
  return {
    uidMap: real.uidMap,
    gidMap: real.gidMap,
    setgroupsAllowed: real.setgroupsAllowed,
    map: () => {
      throw new SboxError("mapper refused on purpose", { step: "user" });
    },
  };
}

/** Each kind fails at a different place; "ok" succeeds. */
const KINDS = [
  "exec-enoent",
  "exec-eacces",
  "chdir",
  "mount",
  "mapper",
  "exec-path",
  "program",
  "destroyed",
] as const;

async function runOnce(kind: (typeof KINDS)[number] | "ok", reaper = false): Promise<string> {
  await using setup = await busyboxContainer({ userMapper: kind === "mapper" ? failingMapper() : undefined });
  let container: Container = setup.container;
  let extraDir: string | undefined;
  if (kind === "mount") {
    // Binding a file below /etc/passwd (a file): creating the target fails.
    extraDir = scratchDir("leak-");
    Deno.writeTextFileSync(`${extraDir}/file`, "x");
    container = await Container.create({
      rootfs: `${setup.dir}/root`,
      cgroup: setup.cgroup,
      userMapper: identityMapper(),
      mounts: [...setup.container.mounts, new BindMount(`${extraDir}/file`, "/etc/passwd/file")],
    });
  }
  if (kind === "program") {
    // More mounts than one setup program holds: refused after the stdio
    // pipes and the child cgroup exist, before clone3.
    container = await Container.create({
      rootfs: `${setup.dir}/root`,
      cgroup: setup.cgroup,
      userMapper: identityMapper(),
      mounts: [
        ...setup.container.mounts,
        // Two steps each (mkdir, mount): past the limit whatever it is.
        ...Array.from({ length: PROGRAM_LIMITS.ops / 2 + 50 }, (_, i) => new TmpfsMount(`/m${i}`)),
      ],
    });
  }
  if (kind === "destroyed") {
    // destroy() while start() is under way: it waits for the start, then
    // kills what it made. Without a cgroup, whose cgroup.kill would catch
    // the init anyway.
    container = await Container.create({
      rootfs: `${setup.dir}/root`,
      userMapper: identityMapper(),
      mounts: [...setup.container.mounts],
    });
    const starting = container.start({ command: ["/bin/sleep", "10"], env: ENV, reaper });
    await container.destroy();
    const status = await starting.then((init) => init.status, () => ({ signal: "SIGKILL" }));
    assert.equal(status.signal, "SIGKILL");
    return "destroyed";
  }
  try {
    const command = kind === "exec-enoent"
      ? ["/bin/nope"]
      : kind === "exec-eacces"
      ? ["/etc/passwd"]
      : ["/bin/true"];
    const init = await container.start({
      command: kind === "exec-path" ? ["/bin/sleep", "10"] : command,
      env: ENV,
      cwd: kind === "chdir" ? "/missing" : "/",
      cgroup: "init",
      stdout: "piped",
      stderr: "piped",
      stdin: "piped",
      reaper,
    });
    if (kind === "exec-path") {
      await container.exec(init, { command: ["/bin/nope"], cgroup: "user", stdout: "piped" });
    }
    const output = await init.output();
    assert.equal(output.code, 0);
    return "ok";
  } catch (err) {
    if (!(err instanceof SboxError)) throw err;
    return err.step;
  } finally {
    await container.destroy();
    if (extraDir) Deno.removeSync(extraDir, { recursive: true });
  }
}

/** Each init's mount namespace is let go just after its exit is reported (InitProcess). */
const settle = () => new Promise((resolve) => setTimeout(resolve, 100));

await runOnce("ok"); // open the library, the reactor's epoll and eventfd
await settle();
const before = snapshot();
const steps: Record<string, number> = {};
for (let i = 0; i < 100; i++) {
  const kind = i % 5 === 4 ? KINDS[(i / 5) % KINDS.length | 0] : "ok";
  // Every other start runs under the reaper, which keeps the result pipe open.
  const step = await runOnce(kind, i % 2 === 0);
  steps[step] = (steps[step] ?? 0) + 1;
}
await settle();
const after = snapshot();
console.log(JSON.stringify({ steps: Object.fromEntries(Object.entries(steps).sort()), before, after }));
