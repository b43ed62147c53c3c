/**
 * The VM tier's own test: proves that the guest booted by tools/vm/run is what
 * the cgroup tests need. Run it inside the VM:
 *
 *   tools/vm/run deno test -A tests/vm_smoke_test.ts
 *
 * On a hybrid host (v1 controllers, a controller-less cgroup2 elsewhere) it
 * fails, and it should: the cgroup checks are the point of the tier.
 * Deliberately independent of sbox's library, so that it tests the VM only.
 */

import assert from "node:assert/strict";

const CGROUP2 = "/sys/fs/cgroup";
const LIMIT_CONTROLLERS = ["cpu", "memory", "pids"];
const repo = decodeURIComponent(new URL("../", import.meta.url).pathname).replace(/\/$/, "");

/** Mounts from /proc/self/mountinfo: mount point and file system type. */
function mounts(): { point: string; fstype: string }[] {
  return Deno.readTextFileSync("/proc/self/mountinfo").split("\n").filter(Boolean).map((line) => {
    const [left, right] = line.split(" - ");
    return { point: left.split(" ")[4], fstype: right.split(" ")[0] };
  });
}

function words(path: string): string[] {
  return Deno.readTextFileSync(path).split(/\s+/).filter(Boolean);
}

/** The cgroup of this process (its cgroup v2 entry), as a directory. */
function ownCgroup(): string {
  // Never create anything below /sys/fs/cgroup unless it is the cgroup2 mount
  // (on a hybrid host it holds the v1 hierarchies).
  assert.ok(mounts().some((m) => m.point === CGROUP2 && m.fstype === "cgroup2"), `cgroup2 at ${CGROUP2}`);
  const line = Deno.readTextFileSync("/proc/self/cgroup").split("\n").find((l) => l.startsWith("0::"));
  assert.ok(line, "/proc/self/cgroup has a cgroup v2 entry");
  return `${CGROUP2}${line.slice(3)}`.replace(/\/$/, "");
}

Deno.test("cgroup2 is mounted at /sys/fs/cgroup, with no v1 hierarchy", () => {
  const all = mounts();
  assert.deepEqual(all.filter((m) => m.point === CGROUP2).map((m) => m.fstype), ["cgroup2"]);
  assert.deepEqual(all.filter((m) => m.fstype === "cgroup").map((m) => m.point), [], "cgroup v1 mounts");
});

Deno.test("memory, pids and cpu are available and enabled for the tests' parent cgroup", () => {
  const root = words(`${CGROUP2}/cgroup.controllers`);
  for (const c of LIMIT_CONTROLLERS) assert.ok(root.includes(c), `${c} in the root's controllers: ${root}`);
  // The tests create their cgroups below their own one (Cgroup.current()).
  const parent = ownCgroup();
  const enabled = words(`${parent}/cgroup.subtree_control`);
  for (const c of [...LIMIT_CONTROLLERS, "io"]) {
    assert.ok(enabled.includes(c), `${c} in ${parent}/cgroup.subtree_control: ${enabled}`);
  }
});

Deno.test("a child cgroup gets the controllers, their limits and counters work", async () => {
  const child = `${ownCgroup()}/vm-smoke-${Deno.pid}`;
  Deno.mkdirSync(child);
  try {
    const controllers = words(`${child}/cgroup.controllers`);
    for (const c of LIMIT_CONTROLLERS) assert.ok(controllers.includes(c), `${c} in ${child}: ${controllers}`);
    const limits = {
      "memory.max": "67108864",
      "memory.swap.max": "0",
      "pids.max": "32",
      "cpu.max": "50000 100000",
    };
    for (const [file, value] of Object.entries(limits)) {
      Deno.writeTextFileSync(`${child}/${file}`, value);
      assert.equal(Deno.readTextFileSync(`${child}/${file}`).trim(), value, file);
    }
    // A shell that moves itself in is counted: memory.peak, cpu.stat; and it
    // meets pids.max (only itself fits, so its fork fails).
    Deno.writeTextFileSync(`${child}/pids.max`, "1");
    const script = `echo $$ > ${child}/cgroup.procs; x=$(seq 1000 | wc -l) && echo "forked $x"`;
    const run = await new Deno.Command("/bin/sh", { args: ["-c", script], stdout: "piped", stderr: "piped" })
      .output();
    assert.doesNotMatch(new TextDecoder().decode(run.stdout), /forked/, "pids.max 1 stops the fork");
    assert.match(new TextDecoder().decode(run.stderr), /fork/);
    assert.match(Deno.readTextFileSync(`${child}/pids.events`), /^max [1-9]/m);
    assert.ok(Number(Deno.readTextFileSync(`${child}/memory.peak`)) > 0, "memory.peak counts");
    assert.match(Deno.readTextFileSync(`${child}/cpu.stat`), /^usage_usec [1-9]/m);
    assert.match(Deno.readTextFileSync(`${child}/memory.events`), /^oom_kill 0$/m);
    assert.equal(Deno.readTextFileSync(`${child}/cgroup.procs`), "", "the shell has left");
  } finally {
    Deno.removeSync(child);
  }
});

Deno.test("the guest has what the tests use: overlayfs, loopback, sboxtest, newuidmap", () => {
  assert.match(Deno.readTextFileSync("/proc/filesystems"), /\toverlay$/m);
  // IFF_UP (0x1) on lo.
  assert.equal(Number(Deno.readTextFileSync("/sys/class/net/lo/flags")) & 1, 1, "lo is up");
  assert.match(Deno.readTextFileSync("/etc/passwd"), /^sboxtest:x:1000:1000:/m);
  assert.match(Deno.readTextFileSync("/etc/subuid"), /^sboxtest:\d+:\d+$/m);
  assert.match(Deno.readTextFileSync("/etc/subgid"), /^sboxtest:\d+:\d+$/m);
  for (const tool of ["/usr/bin/newuidmap", "/usr/bin/newgidmap"]) {
    const info = Deno.statSync(tool);
    assert.equal(info.uid, 0, `${tool} is owned by root`);
    assert.ok((info.mode! & 0o4000) !== 0, `${tool} is setuid`);
  }
});

Deno.test("the checkout is here at the host's path, with the pinned Deno and the helper", () => {
  const pinned = JSON.parse(Deno.readTextFileSync(`${repo}/tools/deno/package.json`)).dependencies.deno;
  assert.equal(Deno.version.deno, pinned);
  assert.ok(Deno.statSync(`${repo}/zig-out/lib/libsbox.so`).isFile, "the built helper is present");
  // Tests write scratch files under tests/.work.
  Deno.mkdirSync(`${repo}/tests/.work`, { recursive: true });
  const scratch = Deno.makeTempDirSync({ dir: `${repo}/tests/.work`, prefix: "vm-smoke-" });
  Deno.writeTextFileSync(`${scratch}/file`, "written");
  assert.equal(Deno.readTextFileSync(`${scratch}/file`), "written");
  Deno.removeSync(scratch, { recursive: true });
});
