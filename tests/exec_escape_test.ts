/**
 * Paths the container plants for a process it does not own yet: until its
 * execve, a process that sbox starts in the container (the init, or one
 * exec'd into it) is a copy of this Deno process, with its fds and with
 * Deno's program as /proc/self/exe. Its working directory and its command
 * are paths the container may have turned into links to those, the way
 * runc's CVE-2024-21626 and CVE-2019-5736 went. Also: a process the
 * container stops before its execve does not hold up destroy().
 */

import assert from "node:assert/strict";
import { BaseMounts, Container, OverlayMount, type Process, type ProcessOptions, SboxError } from "../mod.ts";
import { busyboxContainer, busyboxImage, identityMapper, scratchDir, text } from "./fixtures.ts";

const ENV = { PATH: "/bin:/usr/bin:/sbin:/usr/sbin" };
/** fds a copy of this process may hold: Deno's own, pipes, the container's cgroup directory... */
const FDS = Array.from({ length: 62 }, (_, i) => i + 3);
/** Deep enough to climb from any host directory to the host's /. */
const UP = Array(24).fill("..").join("/");

/** `ls -a` of the container's own root, to compare the listings of the attacks with. */
async function containerRootListing(): Promise<string> {
  await using setup = await busyboxContainer();
  const p = await setup.container.start({ command: ["/bin/ls", "-a", "/"], env: ENV, stdout: "piped" });
  return text((await p.output()).stdout);
}

/** Links /wN -> /proc/self/fd/N in the container's root (its kept upper layer), for every N of FDS. */
function plantFdLinks(upper: string): void {
  for (const n of FDS) Deno.symlinkSync(`/proc/self/fd/${n}`, `${upper}/w${n}`);
}

/** `ls -a UP` from /wN, started by `start` (exec or start); "refused" when sbox refused that cwd. */
async function listing(start: (options: ProcessOptions) => Promise<Process>, n: number): Promise<string> {
  try {
    const p = await start({
      command: ["/bin/ls", "-a", UP],
      cwd: `/w${n}`,
      env: ENV,
      stdout: "piped",
      stdin: "null",
    });
    return text((await p.output()).stdout);
  } catch (err) {
    if (!(err instanceof SboxError) || err.step !== "chdir") throw err;
    return "refused";
  }
}

/** What a listing of `UP` from each cwd gave: "refused" when sbox refused the cwd. */
function checkListings(results: Map<number, string>, expected: string): void {
  const escaped = [...results].filter(([, listing]) => listing !== "refused" && listing !== expected);
  assert.deepEqual(
    escaped.map(([n, listing]) => `/w${n}: ${listing.trim().split("\n").join(" ")}`),
    [],
    "a cwd through /proc/self/fd/N led out of the container's root",
  );
}

Deno.test("exec(): a cwd the container linked to /proc/self/fd/N leads nowhere outside its root", async () => {
  const expected = await containerRootListing();
  await using setup = await busyboxContainer();
  plantFdLinks(setup.upper);
  const init = await setup.container.start({ command: ["/bin/sleep", "1000"], env: ENV, stdin: "null" });
  const results = new Map<number, string>();
  for (const n of FDS) {
    results.set(n, await listing((options) => setup.container.exec(init, options), n));
  }
  checkListings(results, expected);
  // The plain paths still work, through an ordinary link too.
  Deno.symlinkSync("/etc", `${setup.upper}/etc-link`);
  const p = await setup.container.exec(init, {
    command: ["/bin/pwd", "-P"],
    cwd: "/etc-link",
    env: ENV,
    stdout: "piped",
  });
  assert.equal(text((await p.output()).stdout), "/etc\n");
  init.kill("SIGKILL");
  await init.status;
});

Deno.test("start(): a cwd linked to /proc/self/fd/N in a kept upper layer leads nowhere outside the root", async () => {
  const expected = await containerRootListing();
  const results = new Map<number, string>();
  for (const n of FDS) {
    await using setup = await busyboxContainer();
    plantFdLinks(setup.upper);
    results.set(n, await listing((options) => setup.container.start(options), n));
  }
  checkListings(results, expected);
});

Deno.test("exec(): the host's Deno cannot be run through a link to /proc/self/exe or a script's #! line", async () => {
  await using setup = await busyboxContainer();
  // What a container's root can leave for the caller's next exec().
  Deno.symlinkSync("/proc/self/exe", `${setup.upper}/deno-link`);
  Deno.writeTextFileSync(
    `${setup.upper}/deno-script`,
    '#!/proc/self/exe\nconsole.log("ran in the container");\n',
    {
      mode: 0o755,
    },
  );
  const init = await setup.container.start({ command: ["/bin/sleep", "1000"], env: ENV, stdin: "null" });
  for (const command of [["/deno-link", "--version"], ["/deno-script"]]) {
    await assert.rejects(
      async () => {
        const p = await setup.container.exec(init, {
          command,
          env: ENV,
          stdout: "piped",
          stderr: "piped",
          stdin: "null",
        });
        const output = await p.output();
        throw new Error(`${command[0]} ran: ${text(output.stdout)}${text(output.stderr)}`);
      },
      (err: unknown) => err instanceof SboxError && err.step === "exec" && err.errno === "EACCES",
    );
  }
  // Programs of the container, scripts included, run as before.
  Deno.writeTextFileSync(`${setup.upper}/script`, "#!/bin/sh\necho script ran\n", { mode: 0o755 });
  const p = await setup.container.exec(init, { command: ["/script"], env: ENV, stdout: "piped" });
  assert.equal(text((await p.output()).stdout), "script ran\n");
  init.kill("SIGKILL");
  await init.status;
});

Deno.test("destroy() ends even while a process exec'd into the container is stopped before its execve", async () => {
  await using setup = await busyboxContainer();
  const init = await setup.container.start({ command: ["/bin/sleep", "1000"], env: ENV, stdin: "null" });
  // A frozen child cgroup stops the exec'd process as soon as it is cloned
  // into it, before its execve: as a SIGSTOP from the container would,
  // without a race.
  const frozen = `${setup.cgroup.path}/frozen`;
  Deno.mkdirSync(frozen);
  Deno.writeTextFileSync(`${frozen}/cgroup.freeze`, "1");
  try {
    const exec = setup.container.exec(init, { command: ["/bin/true"], env: ENV, cgroup: "frozen" });
    exec.catch(() => {});
    let timer: ReturnType<typeof setTimeout> | undefined;
    const ended = await Promise.race([
      setup.container.destroy().then(() => "destroyed"),
      new Promise((resolve) => timer = setTimeout(() => resolve("still waiting after 30 s"), 30_000)),
    ]);
    clearTimeout(timer);
    if (ended !== "destroyed") {
      // Let the old code's process go, so that the test ends.
      Deno.writeTextFileSync(`${frozen}/cgroup.freeze`, "0");
    }
    assert.equal(ended, "destroyed");
    await assert.rejects(exec, SboxError);
  } finally {
    Deno.writeTextFileSync(`${frozen}/cgroup.freeze`, "0");
    await setup.container.destroy();
    Deno.removeSync(frozen);
  }
});

Deno.test("a rootfs the caller names through /proc/self/root still works: only the command's cwd is kept from magic links", async () => {
  const dir = scratchDir("magic-rootfs-");
  try {
    Deno.mkdirSync(`${dir}/root`);
    const container = await Container.create({
      rootfs: `/proc/self/root${dir}/root`,
      userMapper: identityMapper(),
      mounts: [new OverlayMount([busyboxImage()]), new BaseMounts()],
    });
    try {
      const p = await container.start({ command: ["/bin/echo", "started"], env: ENV, stdout: "piped" });
      assert.equal(text((await p.output()).stdout), "started\n");
    } finally {
      await container.destroy();
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
