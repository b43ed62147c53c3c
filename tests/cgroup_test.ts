/**
 * sbox's test_cgroup, on this host's controller-less cgroup2: create, child,
 * remove, processes, kill; the clear error for a missing controller; which
 * mount shows a group (mountinfo, /proc/self/cgroup); frozen groups.
 * Real limits are proven in the VM tier (tests/vm/).
 */

import assert from "node:assert/strict";
import {
  Cgroup,
  Container,
  findCgroup2Mount,
  type InitProcess,
  OverlayMount,
  SboxError,
  type UserMapper,
} from "../mod.ts";
import { locateCgroup } from "../src/cgroup.ts";
import { type ControllerFacts, missingControllerMessage } from "../src/cgroup_diagnostics.ts";
import { cgroup2Mounts, cgroupPathOfDirectory, ownCgroupPath, placeCgroup } from "../src/cgroup_mount.ts";
import { parseCommandLine } from "../src/cli/args.ts";
import { runContainer } from "../src/cli/run.ts";
import { SCRATCH_PARENTS } from "../src/cli/scratch.ts";
import { reactor } from "../src/reactor.ts";
import {
  busyboxContainer,
  busyboxImage,
  commandInOwnMountNamespace,
  identityMapper,
  sboxArgv,
  scratchDir,
  shellQuote,
  skipUnlessRoot,
  snapshot,
  testCgroup,
} from "./fixtures.ts";

Deno.test("cgroup2 is found in /proc/self/mountinfo, not assumed", () => {
  const mount = findCgroup2Mount();
  const line = Deno.readTextFileSync("/proc/self/mountinfo").split("\n").find((l) =>
    l.includes(" - cgroup2 ")
  );
  assert.ok(line, "the host has a cgroup2 mount");
  assert.equal(mount, line!.split(" ")[4]);
  const current = Cgroup.current();
  assert.equal(current.mountPath, mount);
  assert.ok(current.exists());
});

Deno.test("create, child, parent, remove", async () => {
  const parent = Cgroup.current();
  const cgroup = parent.child(`sbox-test-${Deno.pid}-tree`);
  assert.equal(cgroup.path, `${parent.path}/${cgroup.name.split("/").pop()}`);
  assert.equal(cgroup.parent().path, parent.path);
  assert.equal(cgroup.exists(), false);
  cgroup.create();
  cgroup.create(); // an existing group is fine
  assert.ok(Deno.statSync(cgroup.path).isDirectory);
  const grandchild = cgroup.child("a").child("b");
  grandchild.create();
  assert.ok(Deno.statSync(grandchild.path).isDirectory);
  assert.deepEqual(grandchild.procs(), []);
  await cgroup.remove(); // removes the children first
  assert.throws(() => Deno.statSync(cgroup.path));
  await cgroup.remove(); // and a missing group is fine
});

Deno.test("create({ exclusive: true }) makes missing parents but refuses a group that exists", async () => {
  const parent = Cgroup.current().child(`sbox-test-${Deno.pid}-exclusive`);
  const cgroup = parent.child("a");
  try {
    cgroup.create({ exclusive: true }); // the parent is made too
    assert.ok(cgroup.exists());
    assert.throws(
      () => cgroup.create({ exclusive: true }),
      (err) => err instanceof SboxError && err.errno === "EEXIST",
    );
    parent.child("b").create({ exclusive: true }); // an existing parent is fine
  } finally {
    await parent.remove();
  }
});

Deno.test("create({ mode }) makes the group with that mode (parents 0755); a bad mode is refused before anything is made", async () => {
  const parent = Cgroup.current().child(`sbox-test-${Deno.pid}-mode`);
  const cgroup = parent.child("a");
  const modeOf = (path: string) => Deno.statSync(path).mode! & 0o7777;
  try {
    for (const mode of [-1, 0o1700, 1.5, "700"]) {
      assert.throws(
        () => cgroup.create({ mode: mode as number }),
        new RegExp(
          `^SboxError: invalid option Cgroup\\.create: mode must be permission bits from 0 to 0o777, got ${
            JSON.stringify(mode)
          }$`,
        ),
      );
    }
    assert.equal(parent.exists(), false);
    // cgroupfs makes it so at once (no other user can open it): what sbox run's lock needs.
    cgroup.create({ exclusive: true, mode: 0o700 });
    assert.equal(modeOf(cgroup.path), 0o700);
    assert.equal(modeOf(parent.path), 0o755 & ~Deno.umask());
  } finally {
    await parent.remove();
  }
});

Deno.test("a flag that is not a boolean is refused, naming it, before the group is touched", async () => {
  const cgroup = testCgroup();
  const made = cgroup.child("made");
  const loose = (value: unknown) => value as boolean;
  try {
    assert.throws(
      () => made.create({ exclusive: loose("yes") }),
      /^SboxError: invalid option Cgroup\.create: exclusive must be a boolean, got "yes"$/,
    );
    assert.equal(made.exists(), false);
    // "false" would write 1 to memory.oom.group; checked before the controller.
    for (const [value, shown] of [["false", '"false"'], [undefined, "undefined"], [1, "1"]]) {
      assert.throws(
        () => cgroup.setMemoryOomGroup(loose(value)),
        new RegExp(
          `^SboxError: invalid option Cgroup\\.setMemoryOomGroup: enabled must be a boolean, got ${shown}$`,
        ),
      );
    }
  } finally {
    await cgroup.remove();
  }
});

Deno.test("subtree controller names are checked before the write: a name cannot carry another", async () => {
  const cgroup = testCgroup();
  const loose = (value: unknown) => value as string[];
  try {
    for (const method of ["addSubtreeControllers", "removeSubtreeControllers"] as const) {
      // "-cpu +memory" would enable memory in a remove.
      for (
        const [names, shown] of [[["cpu +memory"], '"cpu +memory"'], [["pids", ""], '""'], [
          [5],
          "5",
        ]] as const
      ) {
        assert.throws(
          () => cgroup[method](loose(names)),
          new RegExp(
            `^SboxError: invalid option Cgroup\\.${method}: not a controller name: ${
              shown.replace("+", "\\+")
            } `,
          ),
        );
      }
      assert.throws(
        () => cgroup[method](loose("memory")),
        new RegExp(`^SboxError: invalid option Cgroup\\.${method}: names must be an array .*, got "memory"$`),
      );
    }
    assert.deepEqual(cgroup.subtreeControllers(), []);
  } finally {
    await cgroup.remove();
  }
});

Deno.test("bad cgroup names are rejected", () => {
  assert.throws(() => new Cgroup("relative", "x"), SboxError);
  assert.throws(() => Cgroup.current().child("../escape"), /bad child name/);
  assert.throws(() => Cgroup.current().child(""), /bad child name/);
  assert.throws(() => Cgroup.current().child("a\nb"), /bad child name/);
  // Quoted, on one line: the name was printed raw, its newline breaking the message.
  const mount = Cgroup.current().mountPath;
  assert.throws(() => new Cgroup(mount, "a\nb"), /^SboxError: invalid option cgroup name: bad name "a\\nb"$/);
  // SboxErrors naming what was wrong, where TypeErrors were.
  const loose = <T>(value: unknown) => value as T;
  assert.throws(
    () => new Cgroup(loose(5), "x"),
    /^SboxError: invalid option cgroup mountPath: not absolute: 5$/,
  );
  assert.throws(
    () => new Cgroup(mount, loose(undefined)),
    /^SboxError: invalid option cgroup name: bad name undefined$/,
  );
  assert.throws(
    () => Cgroup.current().child(loose(undefined)),
    /^SboxError: invalid option cgroup: bad child name undefined$/,
  );
  assert.throws(
    () => Cgroup.current().contains(loose(null)),
    /^SboxError: invalid option Cgroup\.contains: must be given a Cgroup, got null$/,
  );
});

Deno.test("the name of a cgroup interface file is never taken for a group", async () => {
  const cgroup = testCgroup();
  try {
    for (const name of ["cgroup.procs", "memory.max", "a/pids.max"]) {
      assert.throws(
        () => cgroup.child(name),
        /^SboxError: invalid option cgroup: "(cgroup\.procs|memory\.max|pids\.max)" is the name of a cgroup interface file/,
        name,
      );
    }
    // A handle made otherwise: create() makes no such group, nor says it did.
    for (const name of ["cgroup.procs", "memory.max"]) {
      const handle = new Cgroup(cgroup.mountPath, `${cgroup.name}/${name}`);
      assert.throws(() => handle.create(), /is the name of a cgroup interface file, not a group/, name);
      assert.equal(handle.exists(), false);
    }
    assert.deepEqual([...Deno.readDirSync(cgroup.path)].filter((e) => e.isDirectory), []);
  } finally {
    await cgroup.remove();
  }
});

Deno.test("a Cgroup whose mountPath is not a cgroup2 mount is refused by create() and Container.create", async () => {
  const dir = scratchDir("not-cgroup-");
  try {
    Deno.mkdirSync(`${dir}/root`);
    Deno.mkdirSync(`${dir}/made`);
    const notCgroup =
      /^SboxError: invalid option cgroup: .+ is not on a cgroup2 file system \(it is on \w+; the cgroup2 mount is /;
    const fresh = new Cgroup(dir, "fresh");
    assert.throws(() => fresh.create(), notCgroup);
    assert.equal(fresh.exists(), false, "create() made a directory");
    const err = await Container.create({
      rootfs: `${dir}/root`,
      cgroup: new Cgroup(dir, "made"),
      userMapper: identityMapper(),
    }).then(() => undefined, (e) => e);
    assert.ok(err instanceof SboxError && err.step === "options", String(err));
    assert.match(String(err), notCgroup);
    // The cgroup2 mount itself, by another spelling, is one; and through a
    // symbolic link, which the kernel follows.
    const own = Cgroup.current();
    new Cgroup(`/${own.mountPath}/.`, own.name).create();
    Deno.symlinkSync(own.mountPath, `${dir}/link`);
    const linked = new Cgroup(`${dir}/link`, `${own.name === "" ? "" : `${own.name}/`}sbox-link-${Deno.pid}`);
    try {
      linked.create();
      assert.ok(linked.exists());
    } finally {
      await linked.remove();
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("remove() refuses a group that holds this process; the CPU period must be a number of microseconds", async () => {
  const own = Cgroup.current();
  for (const holding of [own, new Cgroup(own.mountPath, ""), ...(own.name ? [own.parent()!] : [])]) {
    const err = await holding.remove().then(() => undefined, (e) => e);
    assert.ok(err instanceof SboxError && /holds this process/.test(err.message), `${holding.path}: ${err}`);
  }
  assert.ok(own.contains(own.child("a/b")) && !own.child("a").contains(own));
  const cgroup = testCgroup();
  try {
    for (const period of [Infinity, 0, 1.5]) {
      assert.throws(() => cgroup.setCpuLimit(50_000, period), /bad CPU period/);
    }
    // The kernel's bounds, before the controller is asked for (a bare EINVAL from cpu.max and pids.max before).
    for (const period of [999, 1_000_001]) {
      assert.throws(
        () => cgroup.setCpuLimit(50_000, period),
        new RegExp(
          `^SboxError: invalid option Cgroup\\.setCpuLimit: bad CPU period ${period}: the kernel takes 1000 to 1000000 µs$`,
        ),
      );
    }
    for (const quota of [0, 999, 2 ** 44]) {
      assert.throws(
        () => cgroup.setCpuLimit(quota),
        new RegExp(
          `^SboxError: invalid option Cgroup\\.setCpuLimit: bad CPU quota ${quota}: the kernel takes 1000 to 17592186044415 µs`,
        ),
      );
    }
    assert.throws(
      () => cgroup.setPidsLimit(4_194_305),
      /^SboxError: invalid option Cgroup\.setPidsLimit: bad value 4194305: the kernel takes at most 4194304/,
    );
    // The message names the setter.
    assert.throws(
      () => cgroup.setMemoryLimit(-1),
      /^SboxError: invalid option Cgroup\.setMemoryLimit: bad value -1$/,
    );
  } finally {
    await cgroup.remove();
  }
});

Deno.test("processes: addProcess, procs, populated, kill", async () => {
  const cgroup = testCgroup();
  const child = new Deno.Command("/bin/sleep", { args: ["100"] }).spawn();
  try {
    for (const pid of [1.5, -1, 0, Number.NaN, "1" as unknown as number]) {
      assert.throws(
        () => cgroup.addProcess(pid),
        (err: unknown) =>
          err instanceof SboxError && err.step === "options" &&
          /^invalid option pid: must be a process id \(a positive integer\), got /.test(err.message),
        String(pid),
      );
    }
    cgroup.addProcess(child.pid);
    assert.deepEqual(cgroup.procs(), [child.pid]);
    assert.equal(cgroup.populated(), true);
    cgroup.kill();
    const status = await child.status;
    assert.equal(status.signal, "SIGKILL");
    assert.equal(cgroup.populated(), false);
  } finally {
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
    await cgroup.remove();
  }
});

Deno.test("a container's processes land in its cgroup; cpu.stat counts them", async () => {
  await using setup = await busyboxContainer();
  const init = await setup.container.start({
    command: ["/bin/sh", "-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done"],
    cgroup: "init",
  });
  assert.deepEqual(setup.cgroup.child("init").procs(), [init.pid]);
  assert.equal((await init.status).code, 0);
  const usage = setup.cgroup.cpuUsage();
  assert.ok(usage.usageUsec > 0, `usage ${JSON.stringify(usage)}`);
  assert.ok(usage.usageUsec >= usage.userUsec);
});

const HAS_MEMORY = Cgroup.current().controllers().includes("memory");
if (HAS_MEMORY) {
  console.log("ignored: the missing-controller test needs a cgroup2 without memory (this host's has one)");
}

Deno.test({
  name: "controllers: this host has none; a limit names the controller and the path",
  ignore: HAS_MEMORY,
}, async () => {
  const cgroup = testCgroup();
  try {
    const listed = Deno.readTextFileSync(`${cgroup.path}/cgroup.controllers`).split(/\s+/).filter(Boolean);
    assert.deepEqual(cgroup.controllers(), listed);
    // Not "enable it in the parent's cgroup.subtree_control": the parent
    // does not offer it either, and doing so fails the same way a level up.
    // Here (a hybrid host) the kernel has bound it to a v1 hierarchy.
    const hierarchy = (controller: string) =>
      Deno.readTextFileSync("/proc/cgroups").split("\n").map((line) => line.split(/\s+/))
        .find((fields) => fields[0] === controller)?.[1];
    const expected = (controller: string, path: string) =>
      hierarchy(controller) !== undefined && hierarchy(controller) !== "0"
        ? `cgroup controller ${controller} is not available in ${path} (no group of the cgroup2 hierarchy can ` +
          `have it: the kernel has bound it to a cgroup v1 hierarchy, number ${hierarchy(controller)} in ` +
          "/proc/cgroups (/proc/self/mountinfo shows its mount), as on a hybrid host; limits need a host with " +
          "all its controllers on cgroup v2, such as sbox's VM tier (docs/vm.md))"
        : new RegExp(
          `^cgroup controller ${controller} is not available in ${path} \\((not even the hierarchy's root|no group up to )`,
        );
    const is = (controller: string, path: string) => (err: unknown) => {
      assert.ok(err instanceof SboxError && err.step === "cgroup", String(err));
      const want = expected(controller, path);
      if (typeof want === "string") assert.equal(err.message, want);
      else assert.match(err.message, want);
      return true;
    };
    assert.throws(() => cgroup.setMemoryLimit(64 << 20), is("memory", cgroup.path));
    assert.throws(() => cgroup.setPidsLimit(10), is("pids", cgroup.path));
    assert.throws(() => cgroup.setCpuLimit(50_000), is("cpu", cgroup.path));
    assert.throws(() => cgroup.memoryPeak(), is("memory", cgroup.path));
    assert.throws(() => cgroup.addSubtreeControllers(["memory"]), is("memory", cgroup.path));
    // The advice followed a level up meets the same answer, not new advice.
    assert.throws(
      () => cgroup.parent().addSubtreeControllers(["memory"]),
      is("memory", cgroup.parent().path),
    );
  } finally {
    await cgroup.remove();
  }
});

Deno.test("a missing controller's error says who offers it, or why none can: each case", () => {
  const up = (...offers: boolean[]) =>
    offers.map((offer, i) => ({ path: ["/cg/a/b", "/cg/a", "/cg"][i], offers: offer }));
  const procCgroups = "#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpu\t0\t1\t1\nmemory\t4\t30\t1\n" +
    "pids\t0\t1\t0\n";
  const message = (controller: string, facts: Partial<ControllerFacts>) =>
    missingControllerMessage(controller, { path: "/cg/a/b/c", ancestors: [], topIsRoot: true, ...facts });
  const head = (controller: string) => `cgroup controller ${controller} is not available in /cg/a/b/c (`;
  // The parent offers it: the one write that helps.
  assert.equal(
    message("cpu", { ancestors: up(true, true, true), procCgroups }),
    `${head("cpu")}its cgroup.controllers does not list it; its parent offers it: write +cpu to ` +
      "/cg/a/b/cgroup.subtree_control)",
  );
  // ...unless the parent has processes of its own, from which the kernel
  // hands nothing down: they must move first (a user's shell in a delegated
  // group, whose own group below it was named with --cgroup).
  assert.equal(
    message("cpu", { ancestors: up(true, true, true), procCgroups, parentHasProcesses: true }),
    `${head("cpu")}its cgroup.controllers does not list it; its parent offers it: write +cpu to ` +
      "/cg/a/b/cgroup.subtree_control, which the kernel refuses while the parent has processes of its own: " +
      "move them into a cgroup below it first (its cgroup.procs lists them))",
  );
  // A group further up does: every write on the way down, or systemd's delegation.
  assert.equal(
    message("cpu", { ancestors: up(false, false, true), procCgroups }),
    `${
      head("cpu")
    }neither its cgroup.controllers nor its parent's lists it; the nearest group above that does ` +
      "is /cg: write +cpu to the cgroup.subtree_control of that group and of each one below it down to /cg/a/b " +
      "(where systemd manages them, have it delegate instead: Delegate=cpu))",
  );
  // None does, and the kernel bound it to a v1 hierarchy (a hybrid host), wherever the top is.
  for (const topIsRoot of [true, false]) {
    assert.equal(
      message("memory", { ancestors: up(false, false, false), topIsRoot, procCgroups }),
      `${
        head("memory")
      }no group of the cgroup2 hierarchy can have it: the kernel has bound it to a cgroup v1 ` +
        "hierarchy, number 4 in /proc/cgroups (/proc/self/mountinfo shows its mount), as on a hybrid host; " +
        "limits need a host with all its controllers on cgroup v2, such as sbox's VM tier (docs/vm.md))",
    );
  }
  // None up to the top of a cgroup namespace: not delegated.
  assert.equal(
    message("cpu", { ancestors: up(false, false), topIsRoot: false, procCgroups }),
    `${
      head("cpu")
    }no group up to /cg/a, the top of the cgroup2 mount, lists it in cgroup.controllers, not the ` +
      "hierarchy's root (a cgroup namespace or a mount of a subtree): cpu was not delegated to it, by the host's " +
      "administrator or by systemd (Delegate=cpu))",
  );
  assert.match(
    message("cpu", { topIsRoot: false, procCgroups }),
    /\(its cgroup.controllers does not list it, and it is the top of the cgroup2 mount, not the hierarchy's root /,
  );
  // Not even the root: disabled at boot, not in the kernel, or (no /proc/cgroups) most likely v1.
  assert.equal(
    message("pids", { ancestors: up(false, false, false), procCgroups }),
    `${head("pids")}not even the hierarchy's root, /cg, lists it in cgroup.controllers: the kernel has it ` +
      "disabled (/proc/cgroups says enabled 0; cgroup_disable= at boot))",
  );
  assert.equal(
    message("rdma", { procCgroups }),
    `${
      head("rdma")
    }its cgroup.controllers does not list it, and it is the hierarchy's root: the kernel has no ` +
      "rdma controller (/proc/cgroups does not list it))",
  );
  assert.equal(
    message("cpu", { ancestors: up(false) }),
    `${
      head("cpu")
    }not even the hierarchy's root, /cg/a/b, lists it in cgroup.controllers: where the kernel has ` +
      "it, it is bound to a cgroup v1 hierarchy, as on a hybrid host (see /proc/cgroups or /proc/self/mountinfo); " +
      "limits need a host with all its controllers on cgroup v2, such as sbox's VM tier (docs/vm.md))",
  );
});

Deno.test("a failed exec into a new child cgroup kills and removes nothing another exec uses", async () => {
  await using setup = await busyboxContainer();
  const { container, cgroup } = setup;
  const env = { PATH: "/bin" };
  const init = await container.start({ command: ["/bin/sleep", "100"], env });
  // Alone, a failed exec leaves no cgroup behind.
  const alone = await container.exec(init, { command: ["/bin/true"], cwd: "/nonexistent", cgroup: "alone" })
    .then(() => undefined, (e) => e);
  assert.equal(alone?.step, "chdir", `the exec: ${alone}`);
  assert.equal(cgroup.child("alone").exists(), false, "the failed exec left its cgroup");
  // Two failing together: the last one removes it.
  const both = await Promise.allSettled(
    [1, 2].map(() => container.exec(init, { command: ["/bin/true"], cwd: "/nonexistent", cgroup: "both" })),
  );
  assert.deepEqual(both.map((r) => r.status), ["rejected", "rejected"]);
  assert.equal(cgroup.child("both").exists(), false, "two failed execs left their cgroup");
  // The failing exec makes the group (at once, in the call); the valid one
  // finds it there. Each round a new group: the race is the first use.
  const names = Array.from({ length: 10 }, (_, i) => `g${i}`);
  for (const name of names) {
    const failing = container.exec(init, { command: ["/bin/sh"], cwd: "/nonexistent", cgroup: name });
    const valid = container.exec(init, { command: ["/bin/sleep", "100"], env, cgroup: name });
    const err = await failing.then(() => undefined, (e) => e);
    assert.equal(err?.step, "chdir", `the failing exec: ${err}`);
    const process = await valid;
    assert.ok(cgroup.child(name).exists(), `${name} was removed under the valid exec`);
    assert.deepEqual(cgroup.child(name).procs(), [process.pid], `${name}: the valid exec's process is in it`);
    // SIGTERM ends it (it is not pid 1): a cgroup.kill would have said SIGKILL.
    process.kill("SIGTERM");
    assert.equal((await process.status).signal, "SIGTERM", `${name}: the valid exec's process was killed`);
  }
  // What a process ran in is the container's until destroy().
  for (const name of names) assert.ok(cgroup.child(name).exists(), name);
  await container.destroy();
  for (const name of names) {
    assert.equal(cgroup.child(name).exists(), false, `${name} is left after destroy()`);
  }
});

Deno.test("destroy() removes the child cgroups it made with rmdir alone: another container's process there lives", async () => {
  // Two containers given one parent cgroup, both running in a child named
  // "init": the first made it, the second found it. The first's destroy()
  // must not kill the second's process to remove the group.
  await using first = await busyboxContainer();
  const env = { PATH: "/bin" };
  Deno.mkdirSync(`${first.dir}/root2`);
  const second = await Container.create({
    rootfs: `${first.dir}/root2`,
    cgroup: first.cgroup,
    userMapper: first.container.userMapper,
    mounts: [new OverlayMount([first.image])],
  });
  try {
    await first.container.start({ command: ["/bin/sleep", "100"], env, cgroup: "init" });
    const other = await second.start({ command: ["/bin/sleep", "100"], env, cgroup: "init" });
    await first.container.destroy();
    assert.ok(first.cgroup.child("init").exists(), "the group in use was removed");
    assert.deepEqual(first.cgroup.child("init").procs(), [other.pid], "the other container's process died");
  } finally {
    await second.destroy();
  }
});

Deno.test("a group killed with kill() takes no new container until it is made anew; nothing is left", async () => {
  const cgroup = testCgroup();
  try {
    cgroup.kill();
    const start = async (group: Cgroup) => {
      await using container = await Container.create({
        rootfs: busyboxImage(),
        cgroup: group,
        userMapper: identityMapper(),
      });
      const init = await container.start({ command: ["/bin/echo", "ran"], stdout: "piped" });
      return new TextDecoder().decode((await init.output()).stdout);
    };
    const before = snapshot();
    // It started, then died of the group's kill before it ran: status
    // SIGKILL with nothing written, or EPIPE at the release.
    const err = await start(cgroup).then((out) => `ran: ${JSON.stringify(out)}`, (e) => e);
    assert.ok(err instanceof SboxError && err.step === "options", String(err));
    assert.match(err.message, /^invalid option cgroup: \S+ is in a group killed with kill\(\)/);
    assert.deepEqual(snapshot(), before, "no process or fd was made");
    // A group of that name made anew is a new group.
    await cgroup.remove();
    cgroup.create();
    assert.equal(await start(cgroup), "ran\n");
  } finally {
    await cgroup.remove();
  }
});

// ---- where the groups are: mountinfo and /proc/self/cgroup ------------------

/** A mountinfo line of a cgroup2 mount of group `root` at `point`, both as the kernel escapes them. */
function cgroup2Line(id: number, root: string, point: string): string {
  return `${id} 23 0:38 ${root} ${point} rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw`;
}

Deno.test("a bind mount of a subtree listed first is not taken for the hierarchy; escapes are undone", () => {
  const mountinfo = [
    "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw",
    // The subtree "/judge box" (a space, escaped) bound at /srv/cg\040box.
    cgroup2Line(30, "/judge\\040box", "/srv/cg\\040box"),
    "31 22 0:5 / /sys rw shared:2 - sysfs sysfs rw",
    cgroup2Line(32, "/", "/sys/fs/cgroup"),
    "",
  ].join("\n");
  const mounts = cgroup2Mounts(mountinfo);
  assert.deepEqual(mounts, [
    { root: "/judge box", point: "/srv/cg box" },
    { root: "/", point: "/sys/fs/cgroup" },
  ]);
  // The whole hierarchy's mount, though listed second: the bind would make
  // "/srv/cg box/judge box/w1", a directory that is not there.
  const w1 = locateCgroup("/judge box/w1", "w1", mounts);
  assert.deepEqual([w1.mountPath, w1.name], ["/sys/fs/cgroup", "judge box/w1"]);
  // With the bind alone: the name below its root.
  assert.deepEqual(placeCgroup(mounts.slice(0, 1), "/judge box/w1"), { mount: mounts[0], name: "w1" });
  assert.deepEqual(placeCgroup(mounts.slice(0, 1), "/judge box"), { mount: mounts[0], name: "" });
  // A group outside the subtree it shows, or one by a longer name, is not on it.
  assert.equal(placeCgroup(mounts.slice(0, 1), "/other"), undefined);
  assert.equal(placeCgroup(mounts.slice(0, 1), "/judge boxes"), undefined);
  assert.throws(
    () => locateCgroup("/other", 'cgroup "/other"', mounts.slice(0, 1)),
    /^SboxError: cgroup "\/other" is on no cgroup2 mount of this mount namespace \(\/srv\/cg box shows "\/judge box"\)$/,
  );
});

Deno.test('a cgroup namespace\'s "/.." is followed where a mount shows it, and named where none does', () => {
  // Made outside the namespace: the mount's root is above the namespace's.
  const above = cgroup2Mounts(cgroup2Line(30, "/../..", "/sys/fs/cgroup"));
  assert.deepEqual(above, [{ root: "/../..", point: "/sys/fs/cgroup" }]);
  // "/" is two groups below the mount's root, whose names no path says.
  assert.throws(
    () => locateCgroup("/", "this process's cgroup", above),
    /^SboxError: this process's cgroup is on no cgroup2 mount .*\(\/sys\/fs\/cgroup shows "\/\.\.\/\.\."\): "\/\.\." is above the root of this process's cgroup namespace/,
  );
  // A group moved out of the namespace, next to its root: under "/..".
  const parent = cgroup2Mounts(cgroup2Line(30, "/..", "/mnt/cg"));
  assert.deepEqual(placeCgroup(parent, "/../w2"), { mount: parent[0], name: "w2" });
  assert.equal(placeCgroup(parent, "/../../w2"), undefined);
  // Beside a mount made inside the namespace (root "/"): "/a" is below
  // "/.." too, but by the name of the namespace's root, which no path
  // gives; so only the namespace's mount shows it by name.
  const both = [...parent, ...cgroup2Mounts(cgroup2Line(31, "/", "/sys/fs/cgroup"))];
  assert.deepEqual(placeCgroup(both, "/a"), { mount: both[1], name: "a" });
  assert.deepEqual(placeCgroup(both, "/../w2"), { mount: both[0], name: "w2" });
});

// sbox run's --cgroup as a directory of a cgroup2 mount was translated in
// cli/limits.ts, with a path-prefix test of its own; it is now beside the
// rest of "which mount shows which group" (cgroup_mount.ts).
Deno.test("--cgroup as a directory: its group's path by the deepest cgroup2 mount that holds it, by its root", () => {
  const mounts = cgroup2Mounts([
    cgroup2Line(30, "/", "/sys/fs/cgroup"),
    // A bind of the subtree "/judge" inside the mount of the whole hierarchy.
    cgroup2Line(31, "/judge", "/sys/fs/cgroup/bound"),
    cgroup2Line(32, "/..", "/mnt/cg"),
  ].join("\n"));
  assert.equal(cgroupPathOfDirectory("/sys/fs/cgroup", mounts), "/");
  assert.equal(cgroupPathOfDirectory("/sys/fs/cgroup/a/b", mounts), "/a/b");
  assert.equal(cgroupPathOfDirectory("/sys/fs/cgroup/bound", mounts), "/judge");
  assert.equal(cgroupPathOfDirectory("/sys/fs/cgroup/bound/w1", mounts), "/judge/w1");
  assert.equal(cgroupPathOfDirectory("/mnt/cg/w2", mounts), "/../w2");
  // Not a directory of any: a cgroup path already, or a prefix of a point's text only.
  assert.equal(cgroupPathOfDirectory("/judge", mounts), undefined);
  assert.equal(cgroupPathOfDirectory("/sys/fs/cgroupx", mounts), undefined);
});

Deno.test('/proc/self/cgroup: the v2 entry as it is, " (deleted)" and \\040 kept; a control character named', () => {
  const hybrid = "4:memory:/a\n1:name=systemd:/\n0::/judge/w1\n";
  assert.equal(ownCgroupPath(hybrid), "/judge/w1");
  assert.equal(ownCgroupPath("1:name=systemd:/\n"), undefined);
  // The group of a live process cannot have been removed: the kernel's mark
  // for that is part of this name. Nor does the kernel escape anything here.
  assert.equal(ownCgroupPath("0::/w (deleted)\n"), "/w (deleted)");
  assert.equal(ownCgroupPath("0::/a\\040b\n"), "/a\\040b");
  const mounts = cgroup2Mounts(cgroup2Line(30, "/", "/sys/fs/cgroup"));
  assert.equal(locateCgroup("/w (deleted)", "w", mounts).path, "/sys/fs/cgroup/w (deleted)");
  assert.equal(locateCgroup("/a\\040b", "w", mounts).path, "/sys/fs/cgroup/a\\040b");
  // Not "invalid option cgroup name", an option nobody gave.
  assert.throws(
    () => locateCgroup("/a\tb", `this process's cgroup "/a\\tb"`, mounts),
    /^SboxError: this process's cgroup "\/a\\tb" has a control character in its name, which sbox does not take in cgroup names$/,
  );
});

const REPORT_CGROUP = `
import { Cgroup, findCgroup2Mount } from ${JSON.stringify(new URL("../mod.ts", import.meta.url).href)};
import { resolveParentCgroup } from ${JSON.stringify(new URL("../src/cli/limits.ts", import.meta.url).href)};
import { ProcReading } from ${JSON.stringify(new URL("../src/mountinfo.ts", import.meta.url).href)};
try {
  const spec = Deno.env.get("SBOX_TEST_CGROUP");
  const parent = spec === undefined ? {} : { parent: resolveParentCgroup(spec, new ProcReading()).path };
  console.log(JSON.stringify({ mount: findCgroup2Mount(), current: Cgroup.current().path, ...parent }));
} catch (err) {
  console.log(JSON.stringify({ error: String(err) }));
}`;

/**
 * What findCgroup2Mount() and Cgroup.current() say in a Deno started by
 * `sh -c script` as "$0" (its code "$1"; `args` from "$2" on): `script`
 * moves it to a group, into namespaces, and ends with `exec "$0" eval "$1"`;
 * with $SBOX_TEST_CGROUP set, also what sbox run's --cgroup makes of it.
 */
async function cgroupSeenAfter(
  script: string,
  args: string[],
): Promise<{ mount?: string; current?: string; parent?: string; error?: string }> {
  const output = await new Deno.Command("/bin/sh", {
    args: ["-c", script, Deno.execPath(), REPORT_CGROUP, ...args],
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(60_000),
  }).output();
  const stderr = new TextDecoder().decode(output.stderr);
  assert.equal(output.code, 0, stderr);
  return JSON.parse(new TextDecoder().decode(output.stdout));
}

const SUBTREE_FIRST_TEST =
  "with a bind mount of a subtree listed before the hierarchy's mount, this process's group is where it is";
Deno.test({
  name: SUBTREE_FIRST_TEST,
  ignore: skipUnlessRoot(
    SUBTREE_FIRST_TEST,
    "it mounts cgroup2 in a mount namespace of its own (unshare -m)",
  ),
}, async () => {
  const group = testCgroup();
  const dir = scratchDir("cgroup-bind-");
  try {
    group.child("inner").create();
    // The subtree bound first, then the hierarchy mounted anew: after it in mountinfo.
    const inNamespace =
      'mount --bind "$2" "$4" && umount -l "$3" && mount -t cgroup2 cgroup2 "$3" || exit 1\n' +
      "first=$(awk '/ - cgroup2 /{ print $4; exit }' /proc/self/mountinfo)\n" +
      '[ "$first" != / ] || { echo "the hierarchy is listed first" >&2; exit 1; }\n' +
      'SBOX_TEST_CGROUP="$4/inner" exec "$0" eval "$1"';
    const seen = await cgroupSeenAfter(
      'echo $$ > "$2/inner/cgroup.procs" && exec unshare -m --propagation private sh -c "$5" "$0" "$1" "$2" "$3" "$4"',
      [group.path, group.mountPath, dir, inNamespace],
    );
    // --cgroup as a directory of the bind mount: the same group, by the same mount.
    const inner = `${group.path}/inner`;
    assert.deepEqual(seen, { mount: group.mountPath, current: inner, parent: inner });
  } finally {
    await group.remove();
    Deno.removeSync(dir, { recursive: true });
  }
});

// cgroup.ts read mountinfo with a parser and a TextDecoder of its own: a
// mount point that is not UTF-8 came back with U+FFFD, a path that names
// nothing. It now reads the one mount table (mountinfo.ts), whose names encode
// back to their bytes.
const ODD_POINT_TEST = "a cgroup2 mount point that is not UTF-8 is found, and the groups on it are there";
Deno.test({
  name: ODD_POINT_TEST,
  ignore: skipUnlessRoot(ODD_POINT_TEST, "it mounts cgroup2 in a mount namespace of its own (unshare -m)"),
}, async () => {
  const group = testCgroup();
  const dir = scratchDir("cgroup-odd-");
  try {
    const report = `
import { Cgroup } from ${JSON.stringify(new URL("../src/cgroup.ts", import.meta.url).href)};
import { checkOnCgroup2, readCgroup2Mounts } from ${
      JSON.stringify(new URL("../src/cgroup_mount.ts", import.meta.url).href)
    };
import { printable } from ${JSON.stringify(new URL("../src/cstring.ts", import.meta.url).href)};
const points = readCgroup2Mounts().map((m) => m.point);
const odd = points.find((point) => printable(point) === Deno.args[0] + "/cg\\\\376");
const inside = odd === undefined ? undefined : new Cgroup(odd, Deno.args[1]);
if (inside) checkOnCgroup2(inside);
console.log(JSON.stringify({ points: points.map(printable), exists: inside?.exists() }));`;
    // Only the new mount: the host's is gone from this namespace.
    const script = 'odd="$2/cg$(printf "\\376")" && mkdir "$odd" && umount -l "$3" && ' +
      'mount -t cgroup2 cgroup2 "$odd" && exec "$0" eval "$1" "$2" "$4"';
    const output = await commandInOwnMountNamespace([
      "sh",
      "-c",
      script,
      Deno.execPath(),
      report,
      dir,
      group.mountPath,
      group.name,
    ], { signal: AbortSignal.timeout(60_000) }).output();
    assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
    assert.deepEqual(JSON.parse(new TextDecoder().decode(output.stdout)), {
      points: [`${dir}/cg\\376`],
      exists: true,
    });
  } finally {
    await group.remove();
    Deno.removeSync(dir, { recursive: true });
  }
});

const OWN_NAME_TEST =
  'this process\'s group named "x (deleted)" is found, and one not UTF-8, where sbox run ' +
  "starts below it; one named with a tab is named as the problem";
Deno.test({
  name: OWN_NAME_TEST,
  ignore: skipUnlessRoot(OWN_NAME_TEST, "it moves a process between cgroups"),
}, async () => {
  const group = testCgroup();
  try {
    const into = 'echo $$ > "$2/cgroup.procs" && exec "$0" eval "$1"';
    const deleted = group.child("x (deleted)");
    deleted.create();
    assert.deepEqual(await cgroupSeenAfter(into, [deleted.path]), {
      mount: group.mountPath,
      current: deleted.path,
    });
    Deno.mkdirSync(`${group.path}/a\tb`);
    const tab = await cgroupSeenAfter(into, [`${group.path}/a\tb`]);
    assert.deepEqual(tab, {
      error:
        `SboxError: this process's cgroup ${JSON.stringify(`/${group.name}/a\tb`)} (in /proc/self/cgroup) ` +
        "has a control character in its name, which sbox does not take in cgroup names",
    });
    Deno.removeSync(`${group.path}/a\tb`);
    // /proc/self/cgroup was read with a plain TextDecoder: a name that is
    // not UTF-8 came back with U+FFFD, a path that names no directory, and
    // sbox run, which makes the container's group below its own, failed.
    // It is decoded as mountinfo is (cstring.ts's decodeName). A Deno path
    // is text: the shell makes the name, 0xff, and moves itself there.
    const odd = `${shellQuote(group.path)}"/x$(printf '\\377')"`;
    const oddInto = `mkdir -p ${odd} && echo $$ > ${odd}/cgroup.procs`;
    assert.deepEqual(await cgroupSeenAfter(`${oddInto} && exec "$0" eval "$1"`, []), {
      mount: group.mountPath,
      current: `${group.path}/x\udcff`,
    });
    const run = await new Deno.Command("/bin/sh", {
      args: ["-c", `${oddInto} && exec "$@"`, "sh", ...sboxArgv(["--", "echo", "ran"])],
      stdin: "null",
      signal: AbortSignal.timeout(60_000),
    }).output();
    assert.equal(new TextDecoder().decode(run.stderr), "");
    assert.equal(new TextDecoder().decode(run.stdout), "ran\n");
  } finally {
    await group.remove();
  }
});

const NAMESPACE_TEST =
  "in a cgroup namespace under the host's mount, this process's group is not taken for the mount's root";
Deno.test({
  name: NAMESPACE_TEST,
  ignore: skipUnlessRoot(NAMESPACE_TEST, "it makes a cgroup namespace (unshare -C)"),
}, async () => {
  const group = testCgroup();
  try {
    // The namespace's root is the group; the mount shows the hierarchy's
    // root, "/.." and more from inside: no name says which group is ours.
    const seen = await cgroupSeenAfter('echo $$ > "$2/cgroup.procs" && exec unshare -C "$0" eval "$1"', [
      group.path,
    ]);
    const up = group.name.split("/").map(() => "..").join("/");
    assert.deepEqual(seen, {
      error: `SboxError: this process's cgroup "/" (in /proc/self/cgroup) is on no cgroup2 mount of this ` +
        `mount namespace (${group.mountPath} shows "/${up}"): "/.." is above the root of this process's ` +
        "cgroup namespace, whose groups a cgroup2 mount made inside the namespace shows",
    });
  } finally {
    await group.remove();
  }
});

// ---- frozen groups -----------------------------------------------------------

/**
 * `promise`'s error, or a string saying what it did instead: resolved, or
 * still pending after `ms` (a process cloned into a frozen group waits for
 * the thaw, and so does its start).
 */
async function errorOf(promise: Promise<unknown>, ms = 5_000): Promise<unknown> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise((resolve) =>
    timer = setTimeout(() => resolve(`still pending after ${ms} ms`), ms)
  );
  try {
    return await Promise.race([promise.then((v) => `resolved: ${v}`, (err) => err), late]);
  } finally {
    clearTimeout(timer);
  }
}

Deno.test("a frozen group, or one below a frozen group, takes no process: refused before one is made, nothing left", async () => {
  await using setup = await busyboxContainer();
  const { container, cgroup } = setup;
  const freeze = (group: Cgroup, on: boolean) =>
    Deno.writeTextFileSync(`${group.path}/cgroup.freeze`, on ? "1" : "0");
  const frozen = cgroup.child("frozen");
  const inner = frozen.child("inner");
  inner.create();
  freeze(frozen, true);
  const pending: Promise<unknown>[] = [];
  let created: Container | undefined;
  try {
    // Container.create: a group below a frozen one (its own cgroup.freeze is 0).
    Deno.mkdirSync(`${setup.dir}/root2`);
    const creation = Container.create({
      rootfs: `${setup.dir}/root2`,
      cgroup: inner,
      userMapper: identityMapper(),
    });
    pending.push(creation.then((c) => created = c, () => {}));
    const refused = await errorOf(creation);
    assert.ok(refused instanceof SboxError && refused.step === "options", String(refused));
    assert.equal(
      refused.message,
      `invalid option cgroup: ${inner.path} is frozen (cgroup.freeze of ${frozen.path} is 1): ` +
        "a process started in it would not run until it is thawed (0 written to that cgroup.freeze)",
    );
    // A running container whose group is frozen: an exec into it, or into a
    // new child group of it, would never start.
    const env = { PATH: "/bin" };
    const init = await container.start({ command: ["/bin/sleep", "100"], env });
    freeze(cgroup, true);
    // A launch looks at its group's cgroup.events alone (one read on every
    // start's path), which says frozen 1 once the freeze is done.
    while (!/^frozen 1$/m.test(Deno.readTextFileSync(`${cgroup.path}/cgroup.events`))) {
      await new Promise((ok) => setTimeout(ok, 5));
    }
    const before = snapshot();
    const why = "its cgroup.events says frozen 1";
    for (const child of [undefined, "sub"]) {
      const exec = container.exec(init, { command: ["/bin/true"], env, cgroup: child });
      pending.push(exec.then((p) => p.status, () => {}));
      const err = await errorOf(exec);
      assert.ok(err instanceof SboxError, String(err));
      const path = child ? cgroup.child(child).path : cgroup.path;
      assert.ok(err.message.startsWith(`invalid option cgroup: ${path} is frozen (${why})`), err.message);
    }
    assert.equal(cgroup.child("sub").exists(), false, "the refused exec left its new child group");
    assert.deepEqual(snapshot(), before, "a process or an fd was made");
    // Thawed, the same exec runs.
    freeze(cgroup, false);
    const ran = await container.exec(init, { command: ["/bin/true"], env, cgroup: "sub" });
    assert.equal((await ran.status).code, 0);
  } finally {
    freeze(cgroup, false);
    freeze(frozen, false);
    // On a start that hung (the old code), what it made ends now.
    await Promise.all(pending);
    await created?.destroy();
  }
});

// ---- groups frozen during a start ---------------------------------------------
// The checks before a start miss a freeze written after them, one of an
// ancestor still under way, and one during the setup: the process is cloned
// into a frozen group and never runs. The start must fail then, not wait.

const ENV = { PATH: "/bin" };

function setFrozen(group: Cgroup, on: boolean): void {
  Deno.writeTextFileSync(`${group.path}/cgroup.freeze`, on ? "1" : "0");
}

/** `err` is the failure of a start given up on because `group` was frozen, for `why`. */
function assertFrozenStart(err: unknown, group: Cgroup, why: string): void {
  assert.ok(err instanceof SboxError && err.step === "cgroup", String(err));
  assert.equal(
    err.message,
    `${group.path} was frozen during the start (${why}): a process in it does not run until it is thawed ` +
      "(0 written to that cgroup.freeze), so the start was given up and its processes killed",
  );
}

/**
 * A host process moved into `group` and held in an uninterruptible sleep
 * until disposed of: the kernel freezes a task only once it wakes, so a
 * freeze of the group, or of one above it, stays under way (cgroup.events:
 * frozen 0) meanwhile. It sleeps opening a pipe whose lock a splice of this
 * process holds: the splice moves the pipe's data into a socket that is
 * full and that nobody reads, and waits in that send with the lock held.
 */
async function taskStuckInKernel(group: Cgroup): Promise<{ pid: number } & AsyncDisposable> {
  const libc = Deno.dlopen(
    "libc.so.6",
    {
      socketpair: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" },
      pipe2: { parameters: ["buffer", "i32"], result: "i32" },
      send: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
      write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
      close: { parameters: ["i32"], result: "i32" },
      splice: {
        parameters: ["i32", "pointer", "i32", "pointer", "usize", "u32"],
        result: "isize",
        nonblocking: true,
      },
    } as const,
  );
  const { socketpair, pipe2, send, write, close, splice } = libc.symbols;
  // Close-on-exec: the process below must not hold the socket's other end.
  const AF_UNIX = 1, SOCK_STREAM = 1, CLOEXEC = 0o2000000, MSG_DONTWAIT = 0x40;
  const SPLICE = Deno.build.arch === "x86_64" ? 275 : 76; // the syscall's number (aarch64: 76)
  const socket = new Int32Array(2), pipeFds = new Int32Array(2);
  assert.equal(socketpair(AF_UNIX, SOCK_STREAM | CLOEXEC, 0, new Uint8Array(socket.buffer)), 0);
  assert.equal(pipe2(new Uint8Array(pipeFds.buffer), CLOEXEC), 0);
  const chunk = new Uint8Array(4096);
  while (send(socket[0], chunk, BigInt(chunk.length), MSG_DONTWAIT) > 0);
  assert.equal(write(pipeFds[1], chunk, BigInt(chunk.length)), BigInt(chunk.length));
  // On a thread of Deno's pool; it fails with EPIPE once the socket's other end is closed.
  const splicing = splice(pipeFds[0], null, socket[0], null, BigInt(chunk.length), 0);
  let child: Deno.ChildProcess | undefined;
  // The splice fails, the open goes on and the process exits.
  const release = async () => {
    close(socket[1]);
    await splicing;
    await child?.status;
    for (const fd of [socket[0], ...pipeFds]) close(fd);
    libc.close();
  };
  const waitFor = async (what: string, done: () => boolean) => {
    for (const start = Date.now(); !done(); await new Promise((ok) => setTimeout(ok, 5))) {
      if (Date.now() - start > 5_000) throw new Error(`not after 5 s: ${what}`);
    }
  };
  /** The state letter of /proc/PID/stat ("S", "D"), or "gone". */
  const state = (path: string) => {
    try {
      return Deno.readTextFileSync(`${path}/stat`).split(") ")[1][0];
    } catch {
      return "gone";
    }
  };
  // Asleep in splice: in its send, as the pipe has data.
  const inSplice = () =>
    [...Deno.readDirSync("/proc/self/task")].some(({ name }) => {
      const task = `/proc/self/task/${name}`;
      try {
        return Deno.readTextFileSync(`${task}/syscall`).startsWith(`${SPLICE} `) && state(task) === "S";
      } catch {
        return false; // a thread that ended since the listing
      }
    });
  try {
    await waitFor("a thread of this process asleep in splice", inSplice);
    child = new Deno.Command("/bin/sh", {
      args: ["-c", `echo $$ > ${group.path}/cgroup.procs && exec 3>/proc/${Deno.pid}/fd/${pipeFds[1]}`],
      stdout: "null",
    }).spawn();
    const proc = `/proc/${child.pid}`;
    await waitFor(
      `process ${child.pid}, moved into ${group.path}, in an uninterruptible sleep`,
      () => state(proc) === "D",
    );
  } catch (err) {
    await release();
    throw err;
  }
  return { pid: child.pid, [Symbol.asyncDispose]: release };
}

Deno.test("a group frozen between the check and clone3: start() and exec() fail, naming the freeze; nothing is left", async () => {
  await using setup = await busyboxContainer();
  const { container, cgroup } = setup;
  const sub = cgroup.child("sub");
  // The next launch's quick check sees its group thawed; then the group is
  // frozen, and clone3 puts the process into it, where it never runs.
  const openDirectory = Cgroup.prototype.openDirectory;
  const freezeAfterCheck = () => {
    Cgroup.prototype.openDirectory = function (this: Cgroup): number {
      Cgroup.prototype.openDirectory = openDirectory;
      const fd = openDirectory.call(this);
      setFrozen(this, true);
      return fd;
    };
  };
  const pending: Promise<unknown>[] = [];
  try {
    let before = snapshot();
    freezeAfterCheck();
    const start = container.start({ command: ["/bin/true"], env: ENV });
    pending.push(start.then((init) => init.status, () => {}));
    assertFrozenStart(await errorOf(start), cgroup, "its cgroup.freeze is 1");
    assert.deepEqual(cgroup.procs(), []);
    assert.deepEqual(snapshot(), before, "a process, an fd, a cgroup or a mount was left");

    // exec() into a new child group: the process its first one forks is the
    // one in the frozen group. The group it made goes too.
    setFrozen(cgroup, false);
    const init = await container.start({ command: ["/bin/sleep", "100"], env: ENV });
    before = snapshot();
    freezeAfterCheck();
    const exec = container.exec(init, { command: ["/bin/true"], env: ENV, cgroup: "sub" });
    pending.push(exec.then((p) => p.status, () => {}));
    assertFrozenStart(await errorOf(exec), sub, "its cgroup.freeze is 1");
    assert.equal(sub.exists(), false, "the exec's new group was left");
    assert.deepEqual(cgroup.procs(), [init.pid]);
    assert.deepEqual(snapshot(), before, "a process, an fd, a cgroup or a mount was left");
  } finally {
    Cgroup.prototype.openDirectory = openDirectory;
    setFrozen(cgroup, false);
    if (sub.exists()) setFrozen(sub, false);
    // On a start that hung (the old code), what it made ends now.
    await Promise.all(pending);
  }
});

Deno.test("a group frozen after the clone, while the init waits for its id maps: the start fails, naming the freeze; nothing is left", async () => {
  const identity = identityMapper();
  const freezeOnMap: { group?: Cgroup } = {};
  const userMapper: UserMapper = {
    uidMap: identity.uidMap,
    gidMap: identity.gidMap,
    setgroupsAllowed: identity.setgroupsAllowed,
    map(pid) {
      if (freezeOnMap.group) setFrozen(freezeOnMap.group, true);
      return identity.map(pid);
    },
  };
  await using setup = await busyboxContainer({ userMapper });
  const { container, cgroup } = setup;
  const before = snapshot();
  freezeOnMap.group = cgroup;
  let start: Promise<InitProcess> | undefined;
  try {
    start = container.start({ command: ["/bin/true"], env: ENV });
    assertFrozenStart(await errorOf(start), cgroup, "its cgroup.freeze is 1");
    assert.deepEqual(cgroup.procs(), []);
    assert.deepEqual(snapshot(), before, "a process, an fd, a cgroup or a mount was left");
  } finally {
    setFrozen(cgroup, false);
    await start?.then((init) => init.status, () => {});
  }
});

Deno.test("an ancestor's freeze still under way (its group's cgroup.events says frozen 0): start() and exec() fail, naming it; nothing is left", async () => {
  if (skipUnlessRoot("a freeze under way", "a process moved into a group of this test")) return;
  const parent = testCgroup();
  const group = parent.child("group");
  group.create();
  const pending: Promise<unknown>[] = [];
  const containers: Container[] = [];
  try {
    await using stuck = await taskStuckInKernel(group);
    // Made before the freeze: Container.create's check of the whole tree passes.
    const create = () =>
      Container.create({ rootfs: busyboxImage(), cgroup: group, userMapper: identityMapper() });
    const running = await create();
    const idle = await create();
    containers.push(running, idle);
    const init = await running.start({ command: ["/bin/sleep", "100"], env: ENV });
    const before = snapshot();
    setFrozen(parent, true);
    try {
      // The freeze waits for the stuck task: the quick check before each
      // launch (the group's own cgroup.events) sees no freeze.
      await new Promise((ok) => setTimeout(ok, 50));
      assert.match(Deno.readTextFileSync(`${group.path}/cgroup.events`), /^frozen 0$/m);
      const why = `cgroup.freeze of ${parent.path} is 1`;
      const start = idle.start({ command: ["/bin/true"], env: ENV });
      pending.push(start.then((p) => p.status, () => {}));
      assertFrozenStart(await errorOf(start), group, why);
      // exec(): its first process joins the container from this process's
      // group; the process it forks is the one in the frozen group.
      const exec = running.exec(init, { command: ["/bin/true"], env: ENV });
      pending.push(exec.then((p) => p.status, () => {}));
      assertFrozenStart(await errorOf(exec), group, why);
      assert.deepEqual(group.procs().sort(), [init.pid, stuck.pid].sort());
      assert.deepEqual(snapshot(), before, "a process, an fd, a cgroup or a mount was left");
    } finally {
      setFrozen(parent, false);
    }
    // Thawed, the container runs as before.
    const ran = await running.exec(init, { command: ["/bin/true"], env: ENV });
    assert.equal((await ran.status).code, 0);
  } finally {
    setFrozen(parent, false);
    // On a start that hung (the old code), what it made ends now.
    await Promise.all(pending);
    for (const container of containers) await container.destroy();
    await parent.remove();
  }
});

Deno.test("sbox run: a group frozen between the check and clone3 fails the run with 125, naming the freeze; nothing is left", async () => {
  // In this process, to reach the window: the CLI's own group is new and
  // empty, so a freeze before its check is seen, and refused, at once.
  const parent = testCgroup();
  const invocation = parseCommandLine([
    "run",
    "--rootfs",
    busyboxImage(),
    "--cgroup",
    parent.path,
    "--",
    "/bin/true",
  ]);
  assert.ok(invocation.kind === "run");
  reactor(); // the process's own epoll set, made once: not the run's to close
  const before = snapshot();
  let frozen: Cgroup | undefined;
  const openDirectory = Cgroup.prototype.openDirectory;
  Cgroup.prototype.openDirectory = function (this: Cgroup): number {
    Cgroup.prototype.openDirectory = openDirectory;
    const fd = openDirectory.call(this);
    frozen = this;
    setFrozen(this, true);
    return fd;
  };
  let run: ReturnType<typeof runContainer> | undefined;
  try {
    run = runContainer(invocation.options);
    const result = await Promise.race([
      run,
      new Promise((ok) => setTimeout(ok, 5_000, "still running after 5 s")),
    ]);
    assert.ok(typeof result === "object" && result !== null, String(result));
    const { exitStatus, report, messages } = result as Awaited<typeof run>;
    assert.equal(exitStatus, 125);
    assert.equal(report.status, "XX");
    assert.equal(messages.length, 1, messages.join("\n"));
    assert.ok(frozen?.path.startsWith(`${parent.path}/sbox-`), frozen?.path);
    assert.equal(
      messages[0],
      `${
        frozen!.path
      } was frozen during the start (its cgroup.freeze is 1): a process in it does not run until ` +
        "it is thawed (0 written to that cgroup.freeze), so the start was given up and its processes killed",
    );
    assert.equal(frozen!.exists(), false, "the run's cgroup was left");
    const scratch = SCRATCH_PARENTS.flatMap((dir) =>
      [...Deno.readDirSync(dir)].filter((e) => e.name.startsWith(`sbox-${Deno.pid}-`)).map((e) => e.name)
    );
    assert.deepEqual(scratch, [], "the run's scratch directory was left");
    assert.deepEqual(snapshot(), before, "a process, an fd, a cgroup or a mount was left");
  } finally {
    Cgroup.prototype.openDirectory = openDirectory;
    if (frozen?.exists()) setFrozen(frozen, false);
    await run;
    await parent.remove();
  }
});
