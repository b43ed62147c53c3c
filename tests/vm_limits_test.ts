/**
 * Real cgroup v2 limits, proven on a real kernel: run inside the VM tier
 * (`tools/vm/run deno test -A tests/vm_limits_test.ts`), whose cgroup2 has
 * the memory, pids and cpu controllers. On a host without them these tests
 * fail, as they should: the point is to prove the limits.
 */

import assert from "node:assert/strict";
import { BaseMounts, Cgroup, Container, OverlayMount } from "../mod.ts";
import { restoreControllers } from "../src/cli/limits.ts";
import { busyboxImage, identityMapper, SBOX, sboxArgv, sboxOnBusybox, scratchDir, text } from "./fixtures.ts";
import { outputOf } from "./command.ts";

const ENV = { PATH: "/bin:/usr/bin" };
const MiB = 1024 * 1024;

/** A fresh cgroup below ours, with the limit controllers enabled for it. */
function limitedCgroup(name: string): Cgroup {
  const parent = Cgroup.current().parent();
  const cgroup = parent.child(`vm-${name}-${crypto.randomUUID().slice(0, 6)}`);
  cgroup.create();
  return cgroup;
}

/** A container of the busybox image in `cgroup`, with a temporary upper layer. */
function busyboxContainer(cgroup: Cgroup, rootfs: string): Promise<Container> {
  return Container.create({
    rootfs,
    cgroup,
    userMapper: identityMapper(),
    mounts: [new OverlayMount([busyboxImage()]), new BaseMounts()],
  });
}

/** The JSON report, the last line of stderr; throws with all of stderr when there is none. */
function parseReport(stderr: string) {
  try {
    return JSON.parse(stderr.trim().split("\n").at(-1)!);
  } catch {
    throw new Error(`no report on stderr:\n${stderr}`);
  }
}

/**
 * Runs `sbox run` on the busybox image with a JSON report in a file (the
 * command's own stderr may end mid-line when it is killed, so a report on
 * stderr could share its line). Its parent cgroup is a fresh, empty one:
 * ours holds this test process, and a cgroup with processes cannot enable
 * controllers for its children.
 */
async function sbox(args: string[]) {
  const parent = limitedCgroup("cli");
  try {
    return await sboxIn(parent, args);
  } finally {
    await parent.remove();
  }
}

/** `sbox run` on the busybox image with `--cgroup parent`, as {@linkcode sbox}. */
async function sboxIn(parent: Cgroup, args: string[]) {
  const reportFile = Deno.makeTempFileSync({ prefix: "sbox-report-" });
  try {
    const output = await outputOf(sboxOnBusybox(["--cgroup", parent.path, "--report", reportFile, ...args]));
    const report = parseReport(Deno.readTextFileSync(reportFile) || output.stderr);
    return { ...output, report };
  } finally {
    Deno.removeSync(reportFile);
  }
}

/**
 * A fresh cgroup that holds a process of its own (a sleep), as the cgroup a
 * judge worker runs in does, with `controllers` enabled for its children
 * first. Disposing of it kills the sleep and removes the cgroup.
 */
function populatedCgroup(controllers: string[] = []): { cgroup: Cgroup } & AsyncDisposable {
  const cgroup = limitedCgroup("populated");
  cgroup.addSubtreeControllers(controllers);
  const sleep = new Deno.Command("sleep", { args: ["1000"] }).spawn();
  cgroup.addProcess(sleep.pid);
  return {
    cgroup,
    async [Symbol.asyncDispose]() {
      sleep.kill("SIGKILL");
      await sleep.status;
      await cgroup.remove();
    },
  };
}

Deno.test("sbox test_cgroup: subtree controllers start empty, then cpu memory pids", async () => {
  const cgroup = limitedCgroup("subtree");
  try {
    assert.deepEqual(cgroup.subtreeControllers(), []);
    for (const name of ["cpu", "memory", "pids"]) assert.ok(cgroup.controllers().includes(name), name);
    cgroup.addSubtreeControllers(["cpu", "memory", "pids"]);
    assert.deepEqual(cgroup.subtreeControllers().sort(), ["cpu", "memory", "pids"]);
    const child = cgroup.child("leaf");
    child.create();
    child.setMemoryLimit(64 * MiB);
    child.setMemoryGuarantee(MiB);
    child.setSwapMemoryLimit(0);
    child.setPidsLimit(10);
    child.setCpuLimit(50_000, 100_000);
    assert.equal(Deno.readTextFileSync(`${child.path}/memory.max`).trim(), String(64 * MiB));
    assert.equal(Deno.readTextFileSync(`${child.path}/memory.min`).trim(), String(MiB));
    assert.equal(Deno.readTextFileSync(`${child.path}/memory.swap.max`).trim(), "0");
    assert.equal(Deno.readTextFileSync(`${child.path}/pids.max`).trim(), "10");
    assert.equal(Deno.readTextFileSync(`${child.path}/cpu.max`).trim(), "50000 100000");
    assert.equal(child.memoryCurrent(), 0);
    assert.deepEqual(child.memoryEvents(), { low: 0, high: 0, max: 0, oom: 0, oomKill: 0, oomGroupKill: 0 });
  } finally {
    await cgroup.remove();
  }
});

Deno.test("sbox test_container_oom: 256 KiB, no swap: the program dies, memory.events counts it", async () => {
  const cgroup = limitedCgroup("oom");
  const dir = scratchDir("oom-");
  Deno.mkdirSync(`${dir}/root`);
  try {
    cgroup.setMemoryLimit(256 * 1024);
    cgroup.setSwapMemoryLimit(0);
    // Without it the OOM killer may pick `tr` rather than the shell, which
    // then prints "success" with a short string: kill them all as one.
    cgroup.setMemoryOomGroup(true);
    assert.equal(Deno.readTextFileSync(`${cgroup.path}/memory.oom.group`).trim(), "1");
    await using container = await busyboxContainer(cgroup, `${dir}/root`);
    const init = await container.start({
      // A shell variable of 4 MB: far over the limit.
      command: ["/bin/sh", "-c", 'x=$(head -c 4000000 /dev/zero | tr "\\0" a); echo success'],
      env: ENV,
      stdout: "piped",
      stderr: "null",
    });
    const output = await init.output();
    assert.doesNotMatch(text(output.stdout), /success/);
    assert.ok(cgroup.memoryEvents().oom > 0, JSON.stringify(cgroup.memoryEvents()));
    assert.ok(cgroup.memoryPeak() >= 256 * 1024 - 4096, `peak ${cgroup.memoryPeak()}`);
  } finally {
    await cgroup.remove();
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("pids.max 1: the init alone gets its own network namespace, made without a thread", async () => {
  const cgroup = limitedCgroup("onepid");
  const dir = scratchDir("onepid-");
  Deno.mkdirSync(`${dir}/root`);
  try {
    cgroup.setPidsLimit(1);
    await using container = await busyboxContainer(cgroup, `${dir}/root`);
    // cat is pid 1 and the one task the cgroup allows: the thread that
    // makes the network namespace cannot be created, so the init makes it.
    const init = await container.start({
      command: ["/bin/cat", "/sys/class/net/lo/flags", "/proc/net/dev"],
      env: ENV,
      stdout: "piped",
    });
    const output = await init.output();
    const lines = text(output.stdout).trim().split("\n");
    assert.ok(output.success, lines.join("\n"));
    assert.equal(lines[0], "0x9"); // IFF_UP | IFF_LOOPBACK
    const interfaces = lines.slice(3).map((line) => line.trim().split(":")[0]);
    assert.deepEqual(interfaces, ["lo"]);
    const refused = Number(/^max (\d+)$/m.exec(Deno.readTextFileSync(`${cgroup.path}/pids.events`))?.[1]);
    assert.ok(refused >= 1, `pids.events: ${refused} refused`);
  } finally {
    await cgroup.remove();
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("sbox run --memory 1M --swap 0 reports ML", async () => {
  const result = await sbox([
    "--memory",
    "1M",
    "--swap",
    "0",
    "--",
    "sh",
    "-c",
    'x=$(head -c 4000000 /dev/zero | tr "\\0" a); echo success',
  ]);
  assert.doesNotMatch(result.stdout, /success/);
  assert.equal(result.report.status, "ML", result.stderr);
  assert.equal(result.report.oomKilled, true);
  assert.ok(result.report.memoryPeakBytes >= 200 * 1024, JSON.stringify(result.report));
});

Deno.test("--memory below what the setup needs: XX and 125, naming --memory, not an ML of a command that never ran", async () => {
  // The container's pid 1 was OOM-killed while it mounted, and the report
  // said ML with the setup's CPU and time as the command's.
  const result = await sbox(["--memory", "64K", "--swap", "0", "--", "/bin/true"]);
  assert.equal(result.code, 125, result.stderr);
  assert.equal(result.report.status, "XX", result.stderr);
  assert.match(
    result.stderr,
    /^sbox: the container ran out of memory before the command started: --memory 65536 bytes is less than its setup needs$/m,
  );
  assert.equal(result.report.wallTimeMs, 0);
  assert.equal(result.report.cpu.usageUsec, 0);
});

Deno.test("64 MiB under --memory 128M succeeds; the reported peak is the cgroup's, within 10% of 64 MiB", async () => {
  // Pages of a tmpfs file are charged to the writer's cgroup: exactly 64 MiB.
  const result = await sbox([
    "--memory",
    "128M",
    "--",
    "sh",
    "-c",
    "head -c 67108864 /dev/zero > /dev/shm/x && echo ok",
  ]);
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout, "ok\n");
  assert.equal(result.report.status, "OK");
  const peak = result.report.memoryPeakBytes as number;
  assert.ok(peak >= 64 * MiB && peak <= 64 * MiB * 1.1, `peak ${peak} bytes`);
});

Deno.test("a fork bomb under --pids 32 is contained and reported; the machine stays responsive", async () => {
  const result = await sbox([
    "--pids",
    "32",
    "--wall-time",
    "3s",
    "--",
    "sh",
    "-c",
    "bomb() { bomb | bomb & }; while :; do bomb; done",
  ]);
  // It cannot grow past 32 processes: forks fail ("can't fork"), and the
  // shell ends on such a failure or at the wall-clock limit. The report must
  // say which of the two happened, consistently with the exit status.
  assert.match(result.stderr, /can't fork: Resource temporarily unavailable/);
  // sbox says why (the report has no field for it): the failure is the limit's.
  // (Not at a line's start: the shells' stderr, shared, may end mid-line.)
  assert.match(
    result.stderr,
    /sbox: process limit reached \(--pids 32\): a fork or a new thread was refused \d+ times$/m,
  );
  const expected = result.report.timedOut ? "TO" : result.report.exitCode === 0 ? "OK" : "RE";
  assert.equal(result.report.status, expected, result.stderr);
  assert.equal(result.code, result.report.timedOut ? 137 : result.report.exitCode);
  // Still responsive: a fresh container runs at once. Under its limit, not a word.
  const after = await sbox(["--pids", "32", "--", "echo", "alive"]);
  assert.equal(after.stdout, "alive\n");
  assert.doesNotMatch(after.stderr, /process limit/);
});

Deno.test("--cpus 0.5: a busy loop for 2 s of wall time uses about 1 s of CPU", async () => {
  const result = await sbox(["--cpus", "0.5", "--wall-time", "2s", "--", "sh", "-c", "while :; do :; done"]);
  assert.equal(result.report.status, "TO", result.stderr);
  const cpuSeconds = result.report.cpu.usageUsec / 1e6;
  // Tolerance: cpu.max is enforced per 100 ms period, and the VM's clock runs
  // under emulation: 0.7 to 1.3 s.
  assert.ok(cpuSeconds > 0.7 && cpuSeconds < 1.3, `used ${cpuSeconds} s of CPU`);
});

Deno.test("--cpus 0.1: a burst of busy threads at the start does not hide a run past --wall-time", async () => {
  // Eight threads busy for 100 ms use up the container's CPU quota, which
  // holds its pid 1 (the reaper) too: pid 1 read the command's start only
  // once it ran again, up to hundreds of ms late, and a run of 1.1 s could be
  // OK with 0.9 s as its time (one run in three, in the host-root view, whose
  // setup uses more of the quota). tools/vm/run builds the program.
  const burst = decodeURIComponent(new URL("../zig-out/bin/vm_burst", import.meta.url).pathname);
  const parent = limitedCgroup("burst");
  try {
    for (let run = 0; run < 4; run++) {
      const reportFile = Deno.makeTempFileSync({ prefix: "sbox-report-" });
      const [program, ...args] = sboxArgv([
        "--cgroup",
        parent.path,
        "--report",
        reportFile,
        "--cpus",
        "0.1",
        "--wall-time",
        "1s",
        // Bound in: the host-root view has a /tmp of its own, and CI's checkout is in /tmp.
        "--bind",
        `${burst}:/burst:ro`,
        "--",
        "/burst",
        "1100",
        "8",
        "100",
      ]);
      const output = await new Deno.Command(program, { args, stdout: "piped", stderr: "piped" }).output();
      const report = parseReport(Deno.readTextFileSync(reportFile));
      Deno.removeSync(reportFile);
      assert.equal(
        report.status,
        "TO",
        `run ${run}: ${text(output.stdout)}${text(output.stderr)}${JSON.stringify(report)}`,
      );
      assert.ok(report.wallTimeMs >= 1000, JSON.stringify(report));
    }
  } finally {
    await parent.remove();
  }
});

Deno.test("--time 1s ends a multi-process busy loop with TO", async () => {
  const result = await sbox([
    "--time",
    "1s",
    "--wall-time",
    "30s",
    "--",
    "sh",
    "-c",
    "sh -c 'while :; do :; done' & sh -c 'while :; do :; done' & wait",
  ]);
  assert.equal(result.report.status, "TO", result.stderr);
  assert.match(result.stderr, /CPU-time limit/);
  assert.ok(result.report.cpu.usageUsec >= 1_000_000, JSON.stringify(result.report.cpu));
});

Deno.test("an unprivileged user with a delegated cgroup subtree runs a limited container", async () => {
  // Delegate as systemd does for user@1000.service: a subtree owned by the
  // user, controllers enabled for its children, the user's processes in a
  // leaf of it (a cgroup with enabled controllers cannot hold processes).
  const delegated = Cgroup.current().child(`user-1000-${crypto.randomUUID().slice(0, 6)}`);
  delegated.create();
  delegated.addSubtreeControllers(["cpu", "memory", "pids"]);
  const leaf = delegated.child("session");
  leaf.create();
  for (
    const path of [
      delegated.path,
      ...["cgroup.procs", "cgroup.subtree_control", "cgroup.threads"].map((f) => `${delegated.path}/${f}`),
      leaf.path,
      `${leaf.path}/cgroup.procs`,
    ]
  ) {
    Deno.chownSync(path, 1000, 1000);
  }
  const work = "/tmp/sboxtest-work";
  Deno.mkdirSync(work, { recursive: true });
  Deno.chownSync(work, 1000, 1000);
  const runAsUser = async (limit: string, inside = true) => {
    // The shell moves itself into the leaf while still root, then becomes
    // uid 1000 for good (su): sbox runs as the user, inside the delegated subtree
    // (or, with `inside` false, where the test itself runs: outside it).
    const sbox = `env HOME=${work} DENO_DIR=${work}/deno ${Deno.execPath()} run --allow-ffi ${SBOX} run ` +
      `--rootfs ${busyboxImage()} --cgroup ${delegated.path} --memory ${limit} --swap 0 --report - -- ` +
      `sh -c 'id -u; head -c 33554432 /dev/zero > /dev/shm/x && echo wrote'`;
    const join = inside ? `echo $$ > ${leaf.path}/cgroup.procs && ` : "";
    const script = `${join}exec su -s /bin/sh sboxtest -c "${sbox}"`;
    const output = await outputOf(
      new Deno.Command("/bin/sh", {
        args: ["-c", script],
        stdout: "piped",
        stderr: "piped",
      }),
    );
    return { ...output, report: parseReport(output.stderr) };
  };
  try {
    const roomy = await runAsUser("128M");
    assert.equal(roomy.code, 0, roomy.stderr);
    assert.equal(roomy.stdout, "0\nwrote\n"); // root inside, the user outside
    assert.equal(roomy.report.status, "OK");
    assert.ok(roomy.report.memoryPeakBytes >= 32 * MiB, JSON.stringify(roomy.report));
    // From outside the subtree the user may make a group there but not move
    // a process into it (the common ancestor's cgroup.procs is root's):
    // one line that says so and where to start sbox, not clone3's bare EACCES.
    const outside = await runAsUser("128M", false);
    assert.equal(outside.code, 125, outside.stderr);
    assert.match(
      outside.stderr,
      new RegExp(
        `^sbox: --memory needs a cgroup, but uid 1000 may create cgroups in ${delegated.path}, but not start ` +
          `processes in them from sbox's own cgroup ${Cgroup.current().path}, which is not below it: .* common ` +
          `ancestor, ${Cgroup.current().path}: start sbox from a cgroup below ${delegated.path}, `,
        "m",
      ),
    );
    const tight = await runAsUser("16M");
    assert.equal(tight.report.status, "ML", tight.stderr);
    assert.doesNotMatch(tight.stdout, /wrote/);
    // sbox removed the container cgroups it made in the user's subtree.
    assert.deepEqual([...Deno.readDirSync(delegated.path)].filter((e) => e.isDirectory).map((e) => e.name), [
      "session",
    ]);
  } finally {
    await delegated.remove();
  }
});

Deno.test("docs/rootless.md's delegation recipe works for every limit, and each misstep says what to do", async () => {
  // As root, as docs/rootless.md says: a group for user 1000 (sboxtest),
  // its directory, cgroup.procs, cgroup.subtree_control and cgroup.threads
  // the user's; no controllers handed down yet (sbox writes that itself).
  const delegated = Cgroup.current().child(`alice-${crypto.randomUUID().slice(0, 6)}`);
  delegated.create();
  for (const file of ["", "/cgroup.procs", "/cgroup.subtree_control", "/cgroup.threads"]) {
    Deno.chownSync(`${delegated.path}${file}`, 1000, 1000);
  }
  const work = "/tmp/sboxtest-work";
  Deno.mkdirSync(work, { recursive: true });
  Deno.chownSync(work, 1000, 1000);
  const sboxRun = `env HOME=${work} DENO_DIR=${work}/deno ${Deno.execPath()} run --allow-ffi ${SBOX} run ` +
    `--rootfs ${busyboxImage()} --report -`;
  // Root moves a shell into `cgroup`, which then becomes the user (busybox's
  // su execs the user's shell in place): the user's login, there. It has no
  // PAM, so nothing moves the shell out again, as runuser -u (the doc's) and
  // setpriv do not; a PAM su with pam_systemd may (docs/rootless.md).
  const asUserIn = async (cgroup: Cgroup, script: string) => {
    const file = `${work}/script-${crypto.randomUUID().slice(0, 6)}.sh`;
    Deno.writeTextFileSync(file, script);
    const output = await outputOf(
      new Deno.Command("/bin/sh", {
        args: [
          "-c",
          `echo $$ > ${cgroup.path}/cgroup.procs && exec su -s /bin/sh sboxtest -c 'exec sh ${file}'`,
        ],
        stdout: "piped",
        stderr: "piped",
      }),
    );
    Deno.removeSync(file);
    return output;
  };
  const shell = delegated.child("shell");
  try {
    // The recipe rootless.md had: the user's shell in the group itself. The
    // group holds processes (the shell, sbox), so the kernel hands it no
    // controller to give: the line says to move them below it and name it.
    const inGroup = await asUserIn(delegated, `${sboxRun} --memory 64M -- true`);
    assert.equal(inGroup.code, 125, inGroup.stderr);
    assert.match(
      inGroup.stderr,
      new RegExp(
        `^sbox: --memory: cannot hand cgroup controller memory to the children of ${delegated.path}: it has ` +
          `processes of its own, sbox among them .*: move them into a new cgroup below it and name this one ` +
          `with --cgroup, e\\.g\\. from the shell that starts sbox: mkdir ${shell.path}; echo \\$\\$ > ` +
          `${shell.path}/cgroup.procs; sbox run --cgroup ${delegated.path} \\.\\.\\.`,
        "m",
      ),
    );
    // A group of the user's own below it, from there: it cannot have the
    // controller either, and the line says why (it said: write +memory to
    // the group's subtree_control, which the kernel refuses with EBUSY).
    const jobs = delegated.child("jobs");
    const belowBusy = await asUserIn(
      delegated,
      `mkdir ${jobs.path} && ${sboxRun} --cgroup ${jobs.path} --memory 64M -- true`,
    );
    assert.equal(belowBusy.code, 125, belowBusy.stderr);
    assert.match(
      belowBusy.stderr,
      new RegExp(
        `^sbox: --memory: cgroup controller memory is not available in ${jobs.path} \\(.*its parent offers it: ` +
          `write \\+memory to ${delegated.path}/cgroup.subtree_control, which the kernel refuses while the ` +
          `parent has processes of its own: move them into a cgroup below it first`,
        "m",
      ),
    );
    assert.deepEqual(delegated.subtreeControllers(), []);
    // The advice taken, as is: the user's shell moves itself below the
    // group (a scope of systemd's is such a shell: docs/rootless.md).
    const followed = await asUserIn(
      delegated,
      `mkdir ${shell.path}; echo $$ > ${shell.path}/cgroup.procs; ${sboxRun} --cgroup ${delegated.path} ` +
        `--memory 64M -- sh -c 'head -c 16777216 /dev/zero > /dev/shm/x && echo wrote'`,
    );
    assert.equal(followed.code, 0, followed.stderr);
    assert.equal(followed.stdout, "wrote\n");
    assert.ok(parseReport(followed.stderr).memoryPeakBytes >= 16 * MiB, followed.stderr);
    // rootless.md's recipe: root puts the user's shell in the leaf. Every
    // limit works, with --cgroup the delegated group, or a group the user
    // made in it (sbox's cgroup, shell, and jobs share the delegated group
    // as their ancestor, whose cgroup.procs is the user's: the kernel allows
    // the move, which sbox refused, its own cgroup being "outside" jobs).
    for (const parent of [delegated, jobs]) {
      const limited = await asUserIn(
        shell,
        `${sboxRun} --cgroup ${parent.path} --memory 64M --pids 16 --cpus 0.5 --time 5s -- echo ok`,
      );
      assert.equal(limited.code, 0, `--cgroup ${parent.path}: ${limited.stderr}`);
      assert.equal(limited.stdout, "ok\n");
      assert.equal(parseReport(limited.stderr).status, "OK");
    }
    // sbox removed its groups; the user's own stay.
    assert.deepEqual(
      [...Deno.readDirSync(delegated.path)].filter((e) => e.isDirectory).map((e) => e.name).sort(),
      ["jobs", "shell"],
    );
  } finally {
    await delegated.remove();
  }
});

Deno.test("a parent cgroup with processes: --memory, --pids, --cpus stop with one line and change nothing", async () => {
  await using populated = populatedCgroup();
  const parent = populated.cgroup;
  for (
    const [option, value, controller] of [["--memory", "64M", "memory"], ["--pids", "16", "pids"], [
      "--cpus",
      "0.5",
      "cpu",
    ]]
  ) {
    const result = await sboxIn(parent, [option, value, "--", "true"]);
    assert.equal(result.code, 125, result.stderr);
    assert.match(
      result.stderr,
      new RegExp(
        `^sbox: ${option}: cannot hand cgroup controller ${controller} to the children of ${parent.path}: ` +
          `it has processes of its own`,
        "m",
      ),
    );
    // Left enabled, pids or cpu would make every later run from here fail.
    assert.deepEqual(parent.subtreeControllers(), [], `after ${option}`);
  }
  // A run without limits goes on, without the memory controller: no peak memory.
  const plain = await sboxIn(parent, ["--", "echo", "ok"]);
  assert.equal(plain.code, 0, plain.stderr);
  assert.equal(plain.stdout, "ok\n");
  assert.equal(plain.report.memoryPeakBytes, null);
  assert.deepEqual(parent.subtreeControllers(), []);
});

Deno.test("restoreControllers takes pids back from a parent a process joined, unless a child group is left", async () => {
  // What enableControllers leaves when a process joins the parent between
  // its check and the container's start: pids enabled in a populated parent.
  await using populated = populatedCgroup(["pids"]);
  const parent = populated.cgroup;
  const child = parent.child("other-run");
  child.create();
  restoreControllers(parent, ["pids"]);
  assert.deepEqual(parent.subtreeControllers(), ["pids"], "another run's group may be using pids");
  await child.remove();
  restoreControllers(parent, ["pids"]);
  assert.deepEqual(parent.subtreeControllers(), []);
});

Deno.test("a run without --memory reports its peak memory when the parent offers the controller", async () => {
  // A fresh parent: memory offered, not yet handed down.
  const result = await sbox(["--", "sh", "-c", "head -c 8388608 /dev/zero > /dev/shm/x"]);
  assert.equal(result.code, 0, result.stderr);
  const peak = result.report.memoryPeakBytes;
  assert.ok(typeof peak === "number" && peak >= 8 * MiB, JSON.stringify(result.report));
});

Deno.test("--wall-time of 1ms: TO, the container killed, with a message", async () => {
  // The limit counts from the command's exec (stop 14): `true` may well end
  // within 1 ms and be OK, so the command here cannot.
  const result = await sbox(["--wall-time", "1ms", "--", "sleep", "1"]);
  assert.equal(result.report.status, "TO", result.stderr);
  assert.equal(result.report.signal, "SIGKILL", result.stderr);
  assert.equal(result.code, 137, result.stderr);
  assert.match(
    result.stderr,
    /^sbox: wall-clock limit of 1ms exceeded \(--wall-time\): the container was killed$/m,
  );
  assert.ok(result.report.wallTimeMs < 1000, JSON.stringify(result.report));
});
