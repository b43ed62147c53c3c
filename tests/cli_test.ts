/**
 * The command line as a user runs it: `deno run --allow-ffi sbox.ts run ...`
 * in a subprocess, checking real exit codes, real output and what is left on
 * the host afterwards. Run as root on the host (no cgroup controllers).
 * The parsers of option values are checked directly at the end.
 */

import assert from "node:assert/strict";
import { BaseMounts, Cgroup, Container } from "../mod.ts";
import { DEFAULT_SHM_SIZE } from "../src/mount.ts";
import { DEFAULT_TMP_SIZE } from "../src/cli/mounts.ts";
import { missingControllerError } from "../src/cgroup_diagnostics.ts";
import { whyNoCgroup } from "../src/cli/cgroup_access.ts";
import { ownProcessesCure } from "../src/cli/limits.ts";
import { planFreshly, planHostRoot, PlannedHostRoot } from "../src/host_root.ts";
import { type MountEntry, mountTable } from "../src/mountinfo.ts";
import { PROGRAM_LIMITS } from "../src/program.ts";
import { TemporaryLayers } from "../src/temporary_layers.ts";
import { parseCommandLine, reportPathOf, RUN_OPTIONS, type RunOptions } from "../src/cli/args.ts";
import { asCliOption } from "../src/cli/option_errors.ts";
import { runHelp as runHelpText } from "../src/cli/help.ts";
import { failedReport, formatReport } from "../src/cli/report.ts";
import { securityOptions } from "../src/cli/security.ts";
import { HOST_ROOT_TRIES } from "../src/cli/run.ts";
import { openStdio } from "../src/cli/stdio.ts";
import { processGroupOrphaned, SignalRelay, type SignalTarget } from "../src/cli/job_control.ts";
import { commandEnvironment, parseEnvFile } from "../src/cli/environment.ts";
import { ArgvError, exactArguments, tokenize } from "../src/cli/argv.ts";
import { SCRATCH_PARENTS, ScratchDir } from "../src/cli/scratch.ts";
import { helper } from "../src/ffi.ts";
import { claimDir, tryLockDir } from "../src/dir_lock.ts";
import { close, fstat, O, open } from "../src/sys.ts";
import { parseCpus, parseDuration, parseSize } from "../src/cli/units.ts";
import { SboxError } from "../src/error.ts";
import { ownLimits, RLIMIT_RESOURCES } from "../src/security/rlimits.ts";
import meta from "../deno.json" with { type: "json" };
import {
  busyboxImage,
  COMMAND_TIMEOUT_MS,
  commandAsNobody,
  commandInOwnMountNamespace,
  identityMapper,
  isRoot,
  listenOnHostLoopback,
  OWN_MOUNT_NAMESPACE,
  processesWith,
  processState,
  REPLACE_DIR_SCRIPT,
  replacedDirOutput,
  SBOX,
  sboxArgv,
  sboxOnBusybox,
  sboxOnBusyboxArgv,
  scratchDir,
  shellQuote,
  skipUnlessRoot,
  skipWithout,
  skipWithoutManyIds,
  testCgroup,
  text,
} from "./fixtures.ts";
import { type CommandResult, outputOf, runCommand } from "./command.ts";

interface Result extends CommandResult {
  /** The pid of the sbox process, for leak checks. */
  pid: number;
}

/** Runs `deno run --allow-ffi sbox.ts ARGS...` to the end. */
async function sbox(
  args: string[],
  options: {
    stdin?: string;
    /** `false`: no --allow-ffi; a string: `--allow-ffi=` that list. */
    allowFfi?: boolean | string;
    cwd?: string;
    env?: Record<string, string>;
    /** A module run before sbox.ts (`deno run --preload`). */
    preload?: string;
  } = {},
): Promise<Result> {
  const preload = options.preload === undefined ? [] : ["--preload", options.preload];
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      ...(options.allowFfi === false
        ? []
        : [typeof options.allowFfi === "string" ? `--allow-ffi=${options.allowFfi}` : "--allow-ffi"]),
      ...preload,
      SBOX,
      ...args,
    ],
    cwd: options.cwd,
    env: options.env,
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(COMMAND_TIMEOUT_MS),
  }).spawn();
  if (options.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(options.stdin));
    await writer.close();
  }
  return { ...await outputOf(child), pid: child.pid };
}

/** `sbox run --rootfs <busybox> ARGS...`. */
function busybox(args: string[], options: { stdin?: string } = {}): Promise<Result> {
  return sbox(["run", "--rootfs", busyboxImage(), ...args], options);
}

/** Checks that sbox failed itself: status 125 and one line naming the cause. */
function assertSboxFailed(result: Result, pattern: RegExp): void {
  assert.equal(result.code, 125, `expected 125, got ${result.code}: ${result.stderr}`);
  const lines = result.stderr.trimEnd().split("\n");
  assert.equal(lines.length, 1, `expected one line, got: ${result.stderr}`);
  assert.match(lines[0], /^sbox: /);
  assert.match(lines[0], pattern);
}

/** Scratch directories of sbox process `pid`, wherever scratch.ts puts them. */
function scratchDirsOf(pid: number): string[] {
  return SCRATCH_PARENTS.flatMap((parent) =>
    [...Deno.readDirSync(parent)].filter((e) => e.name.startsWith(`sbox-${pid}-`)).map((e) =>
      `${parent}/${e.name}`
    )
  );
}

/** Nothing of sbox process `pid` may be left: no scratch directory, no cgroup. */
function assertNothingLeft(pid: number): void {
  assert.deepEqual(scratchDirsOf(pid), [], "scratch directories left");
  const parent = Cgroup.current().path;
  const cgroups = [...Deno.readDirSync(parent)].filter((e) => e.name.startsWith(`sbox-${pid}-`));
  assert.deepEqual(cgroups.map((e) => e.name), [], `cgroups left in ${parent}`);
}

function report(text: string): Record<string, unknown> {
  return JSON.parse(text.trim().split("\n").at(-1)!);
}

function randomName(): string {
  return `sbox-cli-test-${crypto.randomUUID().slice(0, 8)}`;
}

/** Starts `sbox run` on the busybox image with a command that prints "ready" first; returns once it has. */
async function startUntilReady(args: string[]): Promise<Deno.ChildProcess> {
  const child = sboxOnBusybox(args).spawn();
  const reader = child.stdout.getReader();
  assert.equal(text((await reader.read()).value!), "ready\n");
  reader.releaseLock();
  return child;
}

const REPORT_KEYS = [
  "status",
  "exitCode",
  "signal",
  "wallTimeMs",
  "cpu",
  "memoryPeakBytes",
  "maxRssBytes",
  "oomKilled",
  "timedOut",
];

// ---- help and start-up ------------------------------------------------------

Deno.test("cli: --help, run --help and --version need no permission at all", async () => {
  const help = await sbox(["--help"], { allowFfi: false });
  assert.equal(help.code, 0, help.stderr);
  assert.match(help.stdout, /sbox run \[OPTIONS\] \[--\] COMMAND/);
  assert.match(help.stdout, /Examples:/);

  const runHelp = await sbox(["run", "--help"], { allowFfi: false });
  assert.equal(runHelp.code, 0, runHelp.stderr);
  // Every option the parser knows, in the help (the docs: the next test).
  for (const name of Object.keys(RUN_OPTIONS)) {
    assert.match(runHelp.stdout, flagPattern(name), `run --help does not mention --${name}`);
  }
  assert.equal((await sbox(["help", "run"], { allowFfi: false })).stdout, runHelp.stdout);

  const version = await sbox(["--version"], { allowFfi: false });
  assert.equal(version.code, 0);
  assert.equal(version.stdout, `sbox ${meta.version}\n`);
});

/** `--name` as a whole flag: not a part of `--hostname` or `--wall-time`. */
function flagPattern(name: string): RegExp {
  return new RegExp(`(?<![\\w-])--${name}(?![\\w-])`);
}

/** The flags of the options table in markdown `text`: its rows' first cells, `-e, --env NAME=VALUE` too. */
function optionsTable(text: string): Set<string> {
  return new Set([...text.matchAll(/^\| `(?:-\w, )?--([a-z-]+)[ `]/gm)].map((m) => m[1]));
}

// The lists kept by hand beside the code: each option in the options tables
// of docs/cli.md and README.md (every one, and none that is gone), and
// the help's "Report:" line with the report's keys.
Deno.test("cli docs: the options tables are RUN_OPTIONS; run --help's report keys are the report's", () => {
  const options = Object.keys(RUN_OPTIONS).filter((name) => !NO_OP_OPTIONS.includes(name));
  for (const file of ["docs/cli.md", "README.md"]) {
    const table = optionsTable(Deno.readTextFileSync(new URL(`../${file}`, import.meta.url)));
    for (const name of options) assert.ok(table.has(name), `${file}'s options table has no --${name}`);
    for (const name of table) {
      assert.ok(options.includes(name), `${file}'s options table has --${name}, no option`);
    }
  }
  const help = runHelpText();
  assert.doesNotMatch(help, flagPattern("host"), "a word match: --hostname is no --host");
  const line = /^Report: (\{.*?\}), status/ms.exec(help)?.[1].replaceAll("\n", "");
  assert.ok(line !== undefined, "run --help has no Report: line");
  const keys = (text: string) => [...text.matchAll(/"(\w+)"/g)].map((m) => m[1]);
  const format = JSON.parse(formatReport(failedReport()));
  assert.deepEqual(keys(line.replace(/:\{[^}]*\}/g, "")), REPORT_KEYS, "the help's report keys");
  assert.deepEqual(
    keys(/"cpu":(\{[^}]*\})/.exec(line)?.[1] ?? ""),
    Object.keys(format.cpu),
    "the help's cpu keys",
  );
  assert.deepEqual(Object.keys(format), REPORT_KEYS);
});

Deno.test("cli: without --allow-ffi, or with it for a list of paths, run says how to run it and exits 125", async () => {
  const result = await sbox(["run", "--", "/bin/true"], { allowFfi: false });
  assertSboxFailed(result, /--allow-ffi/);
  assert.match(result.stderr, /deno run --allow-ffi sbox\.ts/);
  // The list holds the checkout's library, but Deno refuses sbox's pointers under it.
  const root = decodeURIComponent(new URL("../", import.meta.url).pathname);
  const listed = await sbox(["run", "--", "/bin/true"], { allowFfi: root });
  assertSboxFailed(listed, /--allow-ffi/);
  assert.match(listed.stderr, /deno run --allow-ffi sbox\.ts/);
});

Deno.test("cli: without a helper library, help and version work and run says what to do, exiting 125", async () => {
  // A copy of the sources, as before ./tools/setup built the library.
  const dir = scratchDir("nolib-");
  try {
    const root = decodeURIComponent(new URL("../", import.meta.url).pathname);
    Deno.copyFileSync(`${root}sbox.ts`, `${dir}/sbox.ts`);
    Deno.copyFileSync(`${root}deno.json`, `${dir}/deno.json`);
    const copy = new Deno.Command("/bin/cp", { args: ["-r", `${root}src`, `${dir}/src`] }).outputSync();
    assert.ok(copy.success, text(copy.stderr));
    const inCopy = (args: string[]) =>
      outputOf(
        new Deno.Command(Deno.execPath(), { args: ["run", "--allow-ffi", `${dir}/sbox.ts`, ...args] }),
      );
    const help = await inCopy(["--help"]);
    assert.equal(help.code, 0, help.stderr);
    assert.match(help.stdout, /sbox run \[OPTIONS\]/);
    assert.equal((await inCopy(["--version"])).stdout, `sbox ${meta.version}\n`);
    const result = { ...await inCopy(["run", "--", "/bin/true"]), pid: 0 };
    assertSboxFailed(
      result,
      /^sbox: cannot open the sbox helper library: run \.\/tools\/setup in sbox's checkout/,
    );
    // Named once, not twice as dlerror() already names it; the one candidate tried.
    assert.equal(result.stderr.split(`${dir}/zig-out/lib/libsbox.so`).length, 2, result.stderr);
    assert.equal(
      result.stderr.match(/\(([^()]*)\)\n$/)?.[1],
      `${dir}/zig-out/lib/libsbox.so: cannot open shared object file: No such file or directory`,
    );
    assert.doesNotMatch(result.stderr, /another architecture/);
    // No report can be written without the helper: said in one more line, not the cause again.
    const reported = await inCopy(["run", "--report", `${dir}/report.json`, "--", "/bin/true"]);
    const lines = reported.stderr.trimEnd().split("\n");
    assert.equal(reported.code, 125);
    assert.equal(lines.length, 2, reported.stderr);
    assert.match(lines[0], /^sbox: cannot open the sbox helper library: /);
    assert.equal(lines[1], `sbox: --report: no report written to ${dir}/report.json`);

    // A library for another machine (e_machine patched), which glibc reports
    // as "No such file or directory" although it is there.
    const library = Deno.readFileSync(`${root}zig-out/lib/libsbox.so`);
    const E_MACHINE = 18, EM_AARCH64 = 183, EM_X86_64 = 62;
    library[E_MACHINE] = Deno.build.arch === "aarch64" ? EM_X86_64 : EM_AARCH64;
    Deno.mkdirSync(`${dir}/zig-out/lib`, { recursive: true });
    Deno.writeFileSync(`${dir}/zig-out/lib/libsbox.so`, library);
    const foreign = await inCopy(["run", "--", "/bin/true"]);
    assert.equal(foreign.code, 125, foreign.stderr);
    assert.match(
      foreign.stderr,
      new RegExp(
        `libsbox\\.so: .*\\(the file is there: built for another architecture\\? this machine is ${Deno.build.arch}\\)`,
      ),
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

// ---- the host's root --------------------------------------------------------

const HOST_ROOT_TEST = "cli: the default root is the host's, and writes to it vanish";
Deno.test(HOST_ROOT_TEST, {
  ignore: skipUnlessRoot(
    HOST_ROOT_TEST,
    "a user cannot write host files of other owners; rootless_test.ts checks what a user sees",
  ),
}, async () => {
  const name = randomName();
  const script = `echo top > /${name} && echo usr > /usr/${name} && echo etc >> /etc/os-release && ` +
    `cat /${name} /usr/${name} && tail -n 1 /etc/os-release && hostname && echo $$ && ` +
    `(readlink /bin || echo none); ls -A /tmp | wc -l; grep -c ' /tmp tmpfs ' /proc/mounts`;
  const result = await sbox(["run", "--", "/bin/sh", "-c", script]);
  assert.equal(result.code, 0, result.stderr);
  const [top, usr, osRelease, hostname, pid, binLink, tmpEntries, tmpTmpfs] = result.stdout.trimEnd().split(
    "\n",
  );
  assert.deepEqual([top, usr, osRelease, hostname, pid], ["top", "usr", "etc", "sbox", "2"]);
  // Symbolic links of the host's root are there as links.
  assert.equal(binLink, Deno.lstatSync("/bin").isSymlink ? Deno.readLinkSync("/bin") : "none");
  // /tmp is a fresh, empty tmpfs.
  assert.deepEqual([tmpEntries, tmpTmpfs], ["0", "1"]);

  assert.throws(() => Deno.statSync(`/${name}`), Deno.errors.NotFound);
  assert.throws(() => Deno.statSync(`/usr/${name}`), Deno.errors.NotFound);
  assert.ok(
    !Deno.readTextFileSync("/etc/os-release").endsWith("etc\n"),
    "the host's /etc/os-release changed",
  );
  assertNothingLeft(result.pid);
});

const HOST_DIR_TEST = "cli: a host directory can be removed and made again in the container, not on the host";
Deno.test(HOST_DIR_TEST, {
  // docs/rootless.md: the copy-up of a parent with an unmapped owner fails.
  ignore: skipUnlessRoot(HOST_DIR_TEST, "the scratch directory's parents belong to ids a user cannot map"),
}, async () => {
  // Not in the tests' scratch directory, which may be under /tmp: the host's
  // root view has a fresh /tmp.
  const dir = Deno.makeTempDirSync({ dir: "/var/tmp", prefix: "sbox-host-dir-" });
  try {
    Deno.mkdirSync(`${dir}/sub`);
    Deno.writeTextFileSync(`${dir}/sub/kept`, "kept");
    const script = `rm -rf ${dir}/sub && mkdir ${dir}/sub && ls -A ${dir}/sub | wc -l`;
    const result = await sbox(["run", "--", "/bin/sh", "-c", script]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout.trim(), "0");
    assert.equal(Deno.readTextFileSync(`${dir}/sub/kept`), "kept");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("cli: the host's programs and files are there, the environment is PATH and HOME only", async () => {
  const result = await sbox(["run", "--", "env"]);
  assert.equal(result.code, 0, result.stderr);
  assert.deepEqual(result.stdout.trimEnd().split("\n").sort(), [
    "HOME=/root",
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
  ]);
  const same = await sbox(["run", "--", "cat", "/etc/os-release"]);
  assert.equal(same.stdout, Deno.readTextFileSync("/etc/os-release"));
});

Deno.test("cli: the command's soft limit of open files is 1024, not the one Deno raised its own to", async () => {
  // Deno raises its soft RLIMIT_NOFILE to the hard limit at start; the
  // command got that (20000 here) where a shell's child gets 1024.
  const hard = /^Max open files\s+\S+\s+(\S+)/m.exec(Deno.readTextFileSync("/proc/self/limits"))?.[1];
  const result = await sbox(["run", "--", "sh", "-c", "ulimit -Sn; ulimit -Hn"]);
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout, `${Number(hard) < 1024 ? hard : 1024}\n${hard}\n`);
  const asked = await sbox([
    "run",
    "--rlimit",
    "NOFILE=2000:3000",
    "--",
    "sh",
    "-c",
    "ulimit -Sn; ulimit -Hn",
  ]);
  assert.equal(asked.stdout, "2000\n3000\n", asked.stderr);
  // The command may raise its own soft limit up to the hard one.
  const raised = await sbox(["run", "--", "sh", "-c", `ulimit -Sn ${hard} && ulimit -Sn`]);
  assert.equal(raised.stdout, `${hard}\n`, raised.stderr);
});

/**
 * How many times `sbox run ARGS -- /bin/true` opens /proc/self/cgroup and
 * /proc/self/mountinfo, by strace: of each, [before the container's start,
 * after it]. Without -f: sbox reads on its main thread (synchronous FFI),
 * and newuidmap, a child, keeps its set-user-ID bit.
 */
async function procReads(args: string[], trace: string): Promise<Record<string, number[]>> {
  const argv = ["-o", trace, "-e", "trace=openat,clone3", ...sboxArgv([...args, "--", "/bin/true"])];
  const run = await new Deno.Command("strace", {
    args: argv,
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(COMMAND_TIMEOUT_MS),
  }).output();
  assert.equal(run.code, 0, text(run.stderr));
  const lines = Deno.readTextFileSync(trace).split("\n");
  // Deno reads /proc/self/cgroup at its start (for its thread count); sbox
  // reads through the helper library, which it opens first.
  const loaded = lines.findIndex((line) => line.includes('libsbox.so"'));
  const started = lines.findIndex((line) => line.startsWith("clone3(") && line.includes("CLONE_NEWUSER"));
  assert.ok(loaded >= 0 && started > loaded, `no helper library, then the container's clone3:\n${lines}`);
  const reads = (file: string, from: number, to: number) =>
    lines.slice(from, to).filter((line) => line.startsWith(`openat(AT_FDCWD, "/proc/self/${file}"`)).length;
  const both = (file: string) => [reads(file, loaded, started), reads(file, started, Infinity)];
  return { cgroup: both("cgroup"), mountinfo: both("mountinfo") };
}

const PROC_READS_TEST =
  "cli: a run reads /proc/self/cgroup and mountinfo once to set up (and the host's root's plan its own), " +
  "at most once after";
const noStrace = skipWithout("/usr/bin/strace", PROC_READS_TEST, "strace");
Deno.test(PROC_READS_TEST, { ignore: noStrace }, async () => {
  // Each reading costs ~0.5 ms with its parsing: the setup's checks share
  // one (ProcReading, mountinfo.ts). The host's root is planned from two
  // of its own, at the start (host_root.ts's FreshHostRoot: before and
  // after its walk of the host's tree), for the host mounts at any moment.
  // The teardown's look for what came during the run (sbox moved into the
  // container's cgroup), so they share one of their own.
  const dir = scratchDir("proc-reads-");
  try {
    for (const [args, plan] of [[[], 2], [["--rootfs", busyboxImage()], 0]] as const) {
      const counts = await procReads([...args], `${dir}/trace`);
      const what = `reads before the container's start and after, in sbox run ${args.join(" ")}`;
      const expected = { cgroup: 1, mountinfo: 1 + plan };
      const once = Object.entries(counts).every(([file, [setup, after]]) =>
        setup === expected[file as keyof typeof expected] && after <= 1
      );
      assert.ok(once, `${what}: ${JSON.stringify(counts)}`);
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

// ---- an image ---------------------------------------------------------------

Deno.test("cli: --rootfs runs in an image; writes vanish and the image is untouched", async () => {
  const image = busyboxImage();
  const result = await busybox([
    "--",
    "sh",
    "-c",
    "echo new > /etc/new && rm /bin/ls && cat /etc/new && ls /bin/ls 2>/dev/null || echo gone; cat /etc/passwd",
  ]);
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout, `new\ngone\n${Deno.readTextFileSync(`${image}/etc/passwd`)}`);
  assert.throws(() => Deno.statSync(`${image}/etc/new`), Deno.errors.NotFound);
  assert.ok(Deno.lstatSync(`${image}/bin/ls`).isSymlink, "the image lost /bin/ls");
  assertNothingLeft(result.pid);
});

Deno.test("cli: --rootfs: an image directory can be removed, made again empty, and renamed", async () => {
  const image = busyboxImage();
  const result = await busybox(["--", "sh", "-c", REPLACE_DIR_SCRIPT]);
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout, replacedDirOutput(image));
  assert.ok(Deno.statSync(`${image}/etc/passwd`).isFile, "the image lost /etc/passwd");
});

Deno.test("cli: options end at the command; -- ends them explicitly", async () => {
  const plain = await busybox(["echo", "-n", "hi", "-e", "x"]);
  assert.equal(plain.code, 0, plain.stderr);
  assert.equal(plain.stdout, "hi -e x");
  const dashed = await busybox(["-e", "A=1", "--", "sh", "-c", "echo $A"]);
  assert.equal(dashed.stdout, "1\n");
});

// ---- mounts -----------------------------------------------------------------

Deno.test("cli: --bind read-write and read-only, with missing parents created", async () => {
  const dir = scratchDir("cli-bind-");
  Deno.mkdirSync(`${dir}/rw`);
  Deno.mkdirSync(`${dir}/ro`);
  Deno.writeTextFileSync(`${dir}/ro/data`, "read me");
  Deno.writeTextFileSync(`${dir}/file`, "a file");
  try {
    const result = await busybox([
      "--bind",
      `${dir}/rw:/data`,
      "--bind",
      `${dir}/ro:/deep/er/ro:ro`,
      "--bind",
      `${dir}/file:/etc/file:ro`,
      "--",
      "sh",
      "-c",
      "echo out > /data/out && cat /deep/er/ro/data && echo && cat /etc/file && echo && " +
      "(echo x > /deep/er/ro/x 2>/dev/null && echo wrote || echo refused) && " +
      "(echo x > /etc/file 2>/dev/null && echo wrote || echo refused)",
    ]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, "read me\na file\nrefused\nrefused\n");
    assert.equal(Deno.readTextFileSync(`${dir}/rw/out`), "out\n");
    assert.throws(() => Deno.statSync(`${dir}/ro/x`), Deno.errors.NotFound);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("cli: /tmp and /dev/shm are 64 MiB tmpfs; --tmpfs /tmp:SIZE mounts another /tmp", async () => {
  const script = "df -k /tmp /dev/shm | tail -n +2 | while read fs size rest; do echo $size; done";
  const sizes = await busybox(["--", "sh", "-c", script]);
  assert.equal(sizes.code, 0, sizes.stderr);
  assert.equal(sizes.stdout, `${DEFAULT_TMP_SIZE / 1024}\n${DEFAULT_SHM_SIZE / 1024}\n`);
  assert.equal(DEFAULT_TMP_SIZE, 64 * 1024 ** 2, "as run --help and docs/cli.md say");
  const bigger = await busybox(["--tmpfs", "/tmp:128M", "--", "sh", "-c", script]);
  assert.equal(bigger.stdout, `${128 * 1024}\n${DEFAULT_SHM_SIZE / 1024}\n`, bigger.stderr);
});

Deno.test("cli: --bind SRC:DST:try binds a SRC that exists and skips one that does not; only ENOENT is skipped", async () => {
  const dir = scratchDir("cli-bind-try-");
  Deno.mkdirSync(`${dir}/present`);
  Deno.writeTextFileSync(`${dir}/present/data`, "here");
  Deno.symlinkSync(`${dir}/gone`, `${dir}/dangling`);
  try {
    const result = await busybox([
      "-v",
      "--bind",
      `${dir}/present:/opt/present:ro,try`,
      "--bind",
      `${dir}/missing:/opt/missing:try`,
      "--bind",
      `${dir}/dangling:/opt/dangling:rw,try`,
      "--",
      "sh",
      "-c",
      "cat /opt/present/data; echo; (touch /opt/present/x 2>/dev/null && echo wrote || echo refused); " +
      "ls /opt",
    ]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, "here\nrefused\npresent\n");
    for (const name of ["missing", "dangling"]) {
      assert.match(
        result.stderr,
        new RegExp(`^sbox: bind: ${dir}/${name} does not exist: skipped \\(:try\\)$`, "m"),
      );
    }
    // Without try a missing SRC stops sbox, as before; with try, any other
    // failure to reach SRC does too (here ENOTDIR: a file on its way).
    assertSboxFailed(
      await busybox(["--bind", `${dir}/missing:/opt/missing:ro`, "--", "true"]),
      /^sbox: invalid option --bind: .*\/missing does not exist \(add :try to skip it\)$/,
    );
    assertSboxFailed(
      await busybox(["--bind", `${dir}/present/data/x:/opt/x:try`, "--", "true"]),
      /^sbox: invalid option --bind: cannot stat .*\/present\/data\/x: ENOTDIR/,
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("cli: --bind through a symbolic link of the image that leads out of it fails; nothing reaches the host", async () => {
  const dir = scratchDir("cli-link-");
  try {
    // An image whose /mnt points at a host directory.
    Deno.mkdirSync(`${dir}/victim`);
    Deno.mkdirSync(`${dir}/image`);
    Deno.symlinkSync(`${dir}/victim`, `${dir}/image/mnt`);
    Deno.writeTextFileSync(`${dir}/file`, "a file");
    const result = await sbox([
      "run",
      "--rootfs",
      `${dir}/image`,
      "--bind",
      `${dir}/file:/mnt/sub/file`,
      "--",
      "/x",
    ]);
    // Inside the root, the link leads to a path that does not exist there.
    assertSboxFailed(result, /cannot create directory \/mnt\/sub: ENOENT/);
    assert.deepEqual([...Deno.readDirSync(`${dir}/victim`)], [], "nothing was created on the host");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

const HOST_MODES_TEST = "cli: the host's directories keep their mode and owner in the host-root container";
Deno.test(HOST_MODES_TEST, { ignore: skipWithoutManyIds(HOST_MODES_TEST) }, async () => {
  // The top directories of the host's root are overlays with upper layers
  // of their own (host_root.ts): /root is 0700 on the host, and must stay so.
  // As a user, host root is outside the id map: /root stays the container root's.
  const result = await sbox(["run", "-u", "65534", "--", "sh", "-c", "stat -c '%a %u %g' /root; ls /root"]);
  const host = Deno.statSync("/root");
  const [mode, rest] = [result.stdout.split("\n")[0], result.stdout.split("\n").slice(1).join("\n")];
  const owner = Deno.uid() === 0 ? `${host.uid} ${host.gid}` : "0 0";
  assert.equal(mode, `${(host.mode! & 0o7777).toString(8)} ${owner}`, result.stderr);
  if ((host.mode! & 0o005) === 0) {
    assert.equal(rest, "", "another user listed /root");
    assert.match(result.stderr, /Permission denied/);
  }
});

const IMAGE_MOUNT_TEST = "cli: --rootfs with a mount below the image is refused, naming the mount";
Deno.test(
  IMAGE_MOUNT_TEST,
  { ignore: skipUnlessRoot(IMAGE_MOUNT_TEST, "it mounts a file system on the host") },
  async () => {
    // overlayfs refuses a lower layer with (locked) mounts below it: the
    // child failed with a bare "cannot mount the overlay of the image on /: EINVAL".
    const dir = scratchDir("cli-image-mount-");
    const image = `${dir}/image`;
    new Deno.Command("cp", { args: ["-a", busyboxImage(), image] }).outputSync();
    const mounted = new Deno.Command("mount", { args: ["-t", "tmpfs", "none", `${image}/tmp`] }).outputSync();
    assert(mounted.success, "mount tmpfs");
    try {
      const result = await sbox(["run", "--rootfs", image, "--", "true"]);
      assertSboxFailed(
        result,
        new RegExp(`^sbox: invalid option --rootfs: image ${image} has a mount below it \\(${image}/tmp\\)`),
      );
      assertNothingLeft(result.pid);
    } finally {
      new Deno.Command("umount", { args: [`${image}/tmp`] }).outputSync();
      Deno.removeSync(dir, { recursive: true });
    }
  },
);

const HOST_VIEW_TEST = "cli: the host-root view shows no host socket, FIFO, device or kernel file system";
Deno.test(
  HOST_VIEW_TEST,
  { ignore: skipUnlessRoot(HOST_VIEW_TEST, "it mounts file systems on the host") },
  async () => {
    // A host directory shaped like /run: a mount below it (so its entries are
    // planned one by one), a daemon's socket, a FIFO, a device node, a proc
    // mount (a chroot's /proc: its /proc/PID/root leads to the host's
    // writable root) and a directory on a file system overlayfs cannot stack
    // on (bound read-only: nodev must hold there). Not under /tmp, which the
    // container gets a fresh one of.
    const dir = Deno.makeTempDirSync({ dir: "/var/tmp", prefix: "sbox-hostview-" });
    const mounted: string[] = [];
    const listener = Deno.listen({ transport: "unix", path: `${dir}/daemon.sock` });
    try {
      for (const sub of ["lock", "proc", "ram"]) Deno.mkdirSync(`${dir}/${sub}`);
      const mount = async (args: string[], at: string) => {
        const result = await new Deno.Command("mount", { args: [...args, at] }).output();
        assert(result.success, `mount ${args.join(" ")} ${at}`);
        mounted.unshift(at);
      };
      await mount(["-t", "tmpfs", "tmpfs"], `${dir}/lock`);
      await mount(["-t", "proc", "proc"], `${dir}/proc`);
      await mount(["-t", "ramfs", "ramfs"], `${dir}/ram`);
      // A kernel file system on a file (`ip netns add`'s /run/netns/NAME): a handle of the host's namespace.
      Deno.writeTextFileSync(`${dir}/netns`, "");
      await mount(["--bind", "/proc/self/ns/net"], `${dir}/netns`);
      const mknod = (args: string[]) => new Deno.Command("mknod", { args }).output();
      assert((await mknod([`${dir}/zero`, "c", "1", "5"])).success);
      assert((await mknod([`${dir}/ram/zero`, "c", "1", "5"])).success);
      assert((await mknod([`${dir}/fifo`, "p"])).success);
      Deno.writeTextFileSync(`${dir}/file`, "plain");
      Deno.writeTextFileSync(`${dir}/ram/file`, "in ramfs");

      const script =
        `ls -A ${dir}; cat ${dir}/file; echo; ls -A ${dir}/proc | wc -l; cat ${dir}/ram/file; echo; ` +
        `head -c 1 ${dir}/ram/zero >/dev/null 2>&1 && echo device readable || echo device refused`;
      const result = await sbox(["run", "--", "/bin/sh", "-c", script]);
      assert.equal(result.code, 0, result.stderr);
      assert.equal(
        result.stdout,
        ["file", "lock", "proc", "ram", "plain", "0", "in ramfs", "device refused", ""].join("\n"),
        result.stderr,
      );
    } finally {
      listener.close();
      for (const at of mounted) await new Deno.Command("umount", { args: [at] }).output();
      Deno.removeSync(dir, { recursive: true });
    }
  },
);

/**
 * `sbox run ARGS...` as the given argv, in a mount namespace of its own
 * (OWN_MOUNT_NAMESPACE): what the test mounts there, and what a preload
 * module (`deno run --preload`) mounts in sbox's process, no one else on
 * the host sees, and it goes with the namespace's last process.
 */
function sboxInOwnMountNamespace(args: string[], preload?: string): Deno.Command {
  const deno = [Deno.execPath(), "run", "--allow-ffi", ...(preload ? ["--preload", preload] : []), SBOX];
  return commandInOwnMountNamespace([...deno, ...args]);
}

const MOUNT_RACE_TEST =
  "cli: sbox run on the host's root works while the host mounts and unmounts below /var";
Deno.test(
  MOUNT_RACE_TEST,
  { ignore: skipUnlessRoot(MOUNT_RACE_TEST, "it mounts a file system, in a mount namespace of its own") },
  async () => {
    // The host's root is planned from the host's mount table, and the
    // container copies the host's mounts a moment later: a mount made
    // below a directory planned as one overlay in between made overlayfs
    // refuse it ("cannot mount overlay on /var: EINVAL": runs failed so
    // while other test sessions mounted under /var/tmp, and one in four
    // under this racer). A racer
    // mounts and unmounts a tmpfs below a directory of the test's own
    // while runs go on, all in a mount namespace of their own: no other
    // process of the host sees its mounts, and they go with it.
    const dir = Deno.makeTempDirSync({ dir: "/var/tmp", prefix: "sbox-mount-race-" });
    try {
      Deno.mkdirSync(`${dir}/racer`);
      const script = 'd="$1"; n="$2"; shift 2; ' +
        '(c=0; while [ ! -e "$d/stop" ]; do mount -t tmpfs none "$d/racer" && umount "$d/racer"; ' +
        'c=$((c + 1)); done; echo "$c" > "$d/cycles") & racer=$!; ' +
        'failed=0; i=0; while [ "$i" -lt "$n" ]; do "$@" 2>> "$d/stderr" || failed=$((failed + 1)); ' +
        'i=$((i + 1)); done; touch "$d/stop"; wait "$racer"; echo "$failed"';
      const runs = 20;
      const deno = [Deno.execPath(), "run", "--allow-ffi", SBOX, "run", "--", "/bin/true"];
      const output = await commandInOwnMountNamespace(
        ["sh", "-c", script, "sh", dir, String(runs), ...deno],
      ).output();
      assert.ok(output.success, text(output.stderr));
      const stderr = Deno.readTextFileSync(`${dir}/stderr`);
      assert.equal(text(output.stdout), "0\n", `runs failed of ${runs}:\n${stderr}`);
      assert.equal(stderr, "");
      // The racer raced: it mounted and unmounted all the while.
      assert.ok(Number(Deno.readTextFileSync(`${dir}/cycles`)) >= runs, "too few mounts to race with");
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
);

const STALE_PLAN_TEST =
  "cli: a mount made below the host's root's plan before the container copies it: planned again, or named";
Deno.test(
  STALE_PLAN_TEST,
  { ignore: skipUnlessRoot(STALE_PLAN_TEST, "it mounts file systems, in a mount namespace of its own") },
  async () => {
    // The same race, made certain: a preload module mounts a tmpfs below
    // a directory of the test's own once sbox has compiled the container's
    // mounts, before the clone (ProgramBuilder's pivotRoot comes right
    // after them), at each start given one. The start after a mount plans
    // with it. A start that fails so each time says what was mounted, and
    // how often sbox tried.
    const dir = Deno.makeTempDirSync({ dir: "/var/tmp", prefix: "sbox-stale-plan-" });
    try {
      const names = Array.from({ length: HOST_ROOT_TRIES }, (_, i) => `a${i + 1}`);
      for (const name of names) Deno.mkdirSync(`${dir}/${name}/x`, { recursive: true });
      /** A preload module that mounts a tmpfs on `targets[i]` at the i-th start. */
      const preload = (targets: string[]) => {
        const path = `${dir}/preload-${targets.length}.ts`;
        Deno.writeTextFileSync(
          path,
          `import { ProgramBuilder } from ${
            JSON.stringify(new URL("../src/program.ts", import.meta.url).href)
          };
const libc = Deno.dlopen("libc.so.6", {
  mount: { parameters: ["buffer", "buffer", "buffer", "u64", "pointer"], result: "i32" },
}).symbols;
const c = (s: string) => new TextEncoder().encode(s + "\\0");
const targets: string[] = ${JSON.stringify(targets)};
let starts = 0;
const pivotRoot = ProgramBuilder.prototype.pivotRoot;
ProgramBuilder.prototype.pivotRoot = function (...args: Parameters<typeof pivotRoot>) {
  const target = targets[starts++];
  if (target !== undefined && libc.mount(c("none"), c(target), c("tmpfs"), 0n, null) !== 0) {
    throw new Error("cannot mount a tmpfs on " + target);
  }
  return pivotRoot.apply(this, args);
};
`,
        );
        return path;
      };

      // Once: the next start plans with the mount, and runs.
      const once = sboxInOwnMountNamespace(["run", "-v", "--", "/bin/true"], preload([`${dir}/a1/x`]))
        .spawn();
      const onceOutput = await once.output();
      const onceErr = text(onceOutput.stderr);
      assert.equal(onceOutput.code, 0, onceErr);
      const retried = onceErr.split("\n").filter((line) => line.includes("trying again"));
      assert.equal(retried.length, 1, onceErr);
      // The overlay refused is one of the test directory's own or of a directory above it.
      const refused = /cannot mount overlay on (\S+): EINVAL/.exec(retried[0])?.[1];
      assert.ok(refused !== undefined && `${dir}/a1`.startsWith(`${refused}/`), retried[0]);
      assert.ok(retried[0].includes(`${dir}/a1/x was mounted since`), retried[0]);
      assertNothingLeft(once.pid);

      // At every start: the last one's error names its mount and the tries.
      const always = sboxInOwnMountNamespace(
        ["run", "--", "/bin/true"],
        preload(names.map((name) => `${dir}/${name}/x`)),
      ).spawn();
      const alwaysOutput = await always.output();
      const last = names.at(-1);
      assertSboxFailed(
        { code: alwaysOutput.code, stdout: "", stderr: text(alwaysOutput.stderr), pid: always.pid },
        new RegExp(
          `^sbox: cannot mount overlay on ${dir}/${last}: EINVAL \\(Invalid argument\\): the host's mounts ` +
            `changed while the container was set up: .* ${dir}/${last}/x was mounted since, .* ` +
            `\\(sbox run tried ${HOST_ROOT_TRIES} times, reading the host's mounts anew each time\\)$`,
        ),
      );
      assertNothingLeft(always.pid);
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
);

Deno.test("cli: the host's root's last plan keeps the mount table it was made from, not the one read after", () => {
  // FreshHostRoot plans again while each reading of the table after a plan
  // has a new mount on an overlay's directory, and keeps its third plan.
  // That plan's errors compare the table it came from with the one after a
  // failure: given the one read after the plan, a mount made on the
  // overlay's own directory in between counted as seen by the plan, and the
  // error did not name it.
  const real = mountTable();
  const overlay = planHostRoot(real).find((e) => e.kind === "overlay");
  assert.ok(overlay, "the host's root has a directory to overlay");
  const reads: MountEntry[][] = [];
  const readTable = () => {
    // Each reading has one tmpfs more on the overlay's directory.
    const made = reads.map((_, i): MountEntry => ({
      path: overlay.path,
      fstype: "tmpfs",
      id: 1_000_000 + i,
      parentId: 1,
      device: `0:${10_000 + i}`,
      root: "/",
      options: ["rw"],
      superOptions: "rw",
    }));
    reads.push([...real, ...made]);
    return reads.at(-1)!;
  };
  const { entries, plannedFrom } = planFreshly(readTable);
  assert.equal(reads.length, 4, "three plans: the table read before the first, and after each");
  assert.equal(plannedFrom, reads[2], "the table the third plan was made from");
  assert.deepEqual(entries, planHostRoot(reads[2]));
});

const HOST_RACE_TEST =
  "cli: a host-root entry swapped for a link or gone since the plan is left out, not followed";
Deno.test(
  HOST_RACE_TEST,
  { ignore: skipUnlessRoot(HOST_RACE_TEST, "it mounts a file system on the host") },
  async () => {
    // The entries of a directory with a mount below it are planned one by
    // one (host_root.ts), and mounted a moment later: a host user who can
    // write there may swap a planned file for a link, to a root daemon's
    // socket or to "/", or remove it, in between. Planned first, then
    // changed so, then mounted.
    const dir = Deno.makeTempDirSync({ dir: "/var/tmp", prefix: "sbox-hostrace-" });
    const scratch = scratchDir("hostrace-");
    const listener = Deno.listen({ transport: "unix", path: `${dir}/daemon.sock` });
    let mounted = false;
    try {
      Deno.mkdirSync(`${dir}/lock`);
      assert(
        (await new Deno.Command("mount", { args: ["-t", "tmpfs", "tmpfs", `${dir}/lock`] }).output()).success,
      );
      mounted = true;
      for (const name of ["plain", "swapped", "swapped-root", "gone"]) {
        Deno.writeTextFileSync(`${dir}/${name}`, name);
      }
      Deno.mkdirSync(`${dir}/gone-dir`);
      const entries = planHostRoot();
      const planned = (path: string) => entries.find((e) => e.path === path)?.kind;
      assert.deepEqual(
        ["plain", "swapped", "swapped-root", "gone", "gone-dir"].map((name) => planned(`${dir}/${name}`)),
        ["bind", "bind", "bind", "bind", "overlay"],
      );
      for (const name of ["swapped", "swapped-root", "gone"]) Deno.removeSync(`${dir}/${name}`);
      Deno.removeSync(`${dir}/gone-dir`);
      Deno.symlinkSync(`${dir}/daemon.sock`, `${dir}/swapped`);
      Deno.symlinkSync("/", `${dir}/swapped-root`);

      for (const sub of ["root", "layers"]) Deno.mkdirSync(`${scratch}/${sub}`);
      const container = await Container.create({
        rootfs: `${scratch}/root`,
        userMapper: identityMapper(),
        mounts: [
          new PlannedHostRoot(entries, new TemporaryLayers(`${scratch}/layers`, 64 << 20)),
          new BaseMounts(),
        ],
      });
      try {
        const p = await container.start({
          command: [
            "/bin/sh",
            "-c",
            `cd ${dir} && stat -c '%n %F' plain swapped swapped-root gone gone-dir; ls -A gone-dir; cat plain`,
          ],
          env: { PATH: "/usr/bin:/bin" },
          stdout: "piped",
          stderr: "piped",
        });
        const output = await p.output();
        assert.equal(
          text(output.stdout),
          [
            "plain regular file",
            "swapped regular empty file",
            "swapped-root regular empty file",
            "gone regular empty file",
            "gone-dir directory",
            "plain",
          ].join("\n"),
          text(output.stderr),
        );
      } finally {
        await container.destroy();
      }
    } finally {
      listener.close();
      if (mounted) await new Deno.Command("umount", { args: [`${dir}/lock`] }).output();
      Deno.removeSync(dir, { recursive: true });
      Deno.removeSync(scratch, { recursive: true });
    }
  },
);

const NON_UTF8_TEST =
  "cli: host names that are not UTF-8 (a mount point, a file, a link's target, a directory on the way to a mount) " +
  "show in the host-root view as on the host";
Deno.test({
  name: NON_UTF8_TEST,
  ignore: skipUnlessRoot(
    NON_UTF8_TEST,
    "it mounts file systems in a mount namespace of its own (unshare -m)",
  ),
  async fn() {
    // A directory with mounts below it is planned entry by entry
    // (host_root.ts). Its names were read as text, 0xfe as U+FFFD, so each
    // path named no file and its entry was left out as gone since the plan
    // read it, the mount point with its mount; a link's target came out
    // changed, and a leading byte order mark was dropped. The shell makes
    // the names (a Deno path is text), in a directory of the test's own, not
    // under /tmp (the container gets a fresh one), and mounts in a mount
    // namespace of its own; after the run it shows what the host has.
    const dir = Deno.makeTempDirSync({ dir: "/var/tmp", prefix: "sbox-nonutf8-" });
    try {
      const setup = 'cd "$1" && x=$(printf "\\376") && bom=$(printf "\\357\\273\\277") && ' +
        'mkdir plain "mnt$x" "sub$x" "sub$x/deep" && mount -t tmpfs none "mnt$x" && ' +
        'mount -t tmpfs none "sub$x/deep" && echo in-mount > "mnt$x/inner" && echo beside > "sub$x/sibling" && ' +
        'echo odd > "file$x" && echo bom > "${bom}bom" && ln -s "target$x" link && shift && "$@" && ' +
        'cat "mnt$x/inner" && ls "mnt$x"';
      const probe = 'x=$(printf "\\376"); ls -b; ls -b "sub$x"; cat "mnt$x/inner" "file$x" *bom; ' +
        '[ "$(readlink link)" = "target$x" ] && echo link: same target; ' +
        'echo written > "mnt$x/inner" && touch "mnt$x/new" && cat "mnt$x/inner"';
      const output = await commandInOwnMountNamespace([
        "sh",
        "-c",
        setup,
        "sh",
        dir,
        ...sboxArgv(["--cwd", dir, "--", "sh", "-c", probe]),
      ]).output();
      assert.equal(output.code, 0, text(output.stderr));
      assert.equal(text(output.stderr), "");
      assert.equal(
        text(output.stdout),
        [
          // ls -b, bytes in the C locale's order; the mount point and the directory on the way to one too
          "file\\376",
          "link",
          "mnt\\376",
          "plain",
          "sub\\376",
          "\\357\\273\\277bom",
          "deep",
          "sibling",
          // the mount's file, overlaid, and the files bound
          "in-mount",
          "odd",
          "bom",
          "link: same target",
          "written",
          // the host's, after the run: the writes vanished
          "in-mount",
          "inner",
          "",
        ].join("\n"),
      );
    } finally {
      // Deno.removeSync would take the names as text.
      await new Deno.Command("rm", { args: ["-rf", dir] }).output();
    }
  },
});

// scratch.ts read /proc/self/mountinfo's fields as they are, not through
// the shared mount table (sys.ts): a mount below the scratch directory was
// named with the kernel's escapes ("a\040b") or, not UTF-8, with U+FFFD.
const SCRATCH_MOUNT_TEST =
  "cli: a mount below a scratch directory stops its removal, its mount point named as it is (a space, a byte not UTF-8)";
Deno.test({
  name: SCRATCH_MOUNT_TEST,
  ignore: skipUnlessRoot(
    SCRATCH_MOUNT_TEST,
    "it mounts a tmpfs in a mount namespace of its own (unshare -m)",
  ),
  async fn() {
    const script = `
import { ScratchDir } from ${JSON.stringify(new URL("../src/cli/scratch.ts", import.meta.url).href)};
import { tryLockDir } from ${JSON.stringify(new URL("../src/dir_lock.ts", import.meta.url).href)};
const refusals: string[] = [];
for (const name of ["a b", 'x$(printf "\\\\376")']) {
  const scratch = ScratchDir.create();
  const at = \`"$1/\${name}"\`;
  const sh = (code: string) =>
    new Deno.Command("sh", { args: ["-c", code, "sh", scratch.path], stderr: "inherit" }).outputSync().code;
  try {
    if (sh(\`mkdir \${at} && mount -t tmpfs none \${at}\`) !== 0) throw new Error("no mount");
    try {
      scratch.remove();
      refusals.push("removed");
    } catch (err) {
      refusals.push((err as Error).message.replaceAll(scratch.path, "S"));
    }
  } finally {
    sh(\`umount \${at}\`);
    // remove() dropped the lock, refused or not. Undefined: another test's
    // sbox run took the unlocked directory for a leftover, and removes it.
    const lock = tryLockDir(scratch.path);
    if (lock) ScratchDir.adopt(scratch.path, lock).remove();
  }
}
console.log(JSON.stringify(refusals));`;
    const output = await commandInOwnMountNamespace([Deno.execPath(), "eval", script]).output();
    assert.equal(output.code, 0, text(output.stderr));
    assert.deepEqual(JSON.parse(text(output.stdout)), [
      "not removing S: S/a b is mounted below it",
      "not removing S: S/x\\376 is mounted below it",
    ]);
  },
});

// A file bound into a scratch directory failed its removal with a bare
// "cannot remove S/a/f1: EBUSY", after its siblings were deleted.
const SCRATCH_FILE_MOUNT_TEST =
  "cli: a file mounted in a scratch directory stops its removal, named, before its siblings are deleted";
Deno.test({
  name: SCRATCH_FILE_MOUNT_TEST,
  ignore: skipUnlessRoot(
    SCRATCH_FILE_MOUNT_TEST,
    "it binds a file in a mount namespace of its own (unshare -m)",
  ),
  async fn() {
    const keep = Deno.makeTempFileSync({ dir: "/var/tmp", prefix: "sbox-scratch-keep-" });
    try {
      Deno.writeTextFileSync(keep, "kept");
      const program = decodeURIComponent(
        new URL("./programs/scratch_file_mount.ts", import.meta.url).pathname,
      );
      // With a /dev/shm of its own: no other run's sweep takes the
      // directories once their removal failed (and dropped their locks).
      const output = await commandInOwnMountNamespace(
        [
          "sh",
          "-c",
          'mount -t tmpfs none /dev/shm && exec "$@"',
          "sh",
          Deno.execPath(),
          "run",
          "-A",
          program,
          keep,
        ],
      ).output();
      assert.equal(output.code, 0, text(output.stderr));
      const refusal = "not removing S: S/a/f1 is mounted below it";
      assert.deepEqual(JSON.parse(text(output.stdout)), {
        // Checked before anything of its directory is deleted.
        before: { message: refusal, left: ["f0", "f1", "f2"] },
        // Mounted after that check: unlinkat's EBUSY, named as well.
        during: { message: refusal },
      });
      assert.equal(Deno.readTextFileSync(keep), "kept");
    } finally {
      Deno.removeSync(keep);
    }
  },
});

Deno.test("cli: a scratch directory's removal opens each subdirectory through its open parent, not by its path", () => {
  // A directory on the way renamed and swapped for a link to another
  // directory of the same mount, once the removal has opened it: opened by
  // its whole path, its subdirectory was looked up through the link, and
  // the other directory's files were deleted (the mount check passes).
  const scratch = ScratchDir.create();
  const parent = scratch.path.slice(0, scratch.path.lastIndexOf("/"));
  const other = Deno.makeTempDirSync({ dir: parent, prefix: "sbox-test-other-" });
  const symbols = helper();
  const mountId = symbols.sbox_mount_id;
  try {
    for (const dir of [`${scratch.path}/a/b`, `${other}/b`]) {
      Deno.mkdirSync(dir, { recursive: true });
      Deno.writeTextFileSync(`${dir}/file`, "");
    }
    // The removal asks for each directory's mount right after it opens it
    // to read it (not O_PATH, as a look at an entry's mount may).
    const O_PATH = 0o10000000;
    const flags = (fd: number) =>
      parseInt(/^flags:\s+(\d+)/m.exec(Deno.readTextFileSync(`/proc/self/fdinfo/${fd}`))![1], 8);
    symbols.sbox_mount_id = (fd) => {
      if (Deno.readLinkSync(`/proc/self/fd/${fd}`) === `${scratch.path}/a` && !(flags(fd) & O_PATH)) {
        Deno.renameSync(`${scratch.path}/a`, `${scratch.path}/moved`);
        Deno.symlinkSync(other, `${scratch.path}/a`);
      }
      return mountId(fd);
    };
    const err = (() => {
      try {
        scratch.remove();
      } catch (err) {
        return err;
      }
    })();
    symbols.sbox_mount_id = mountId;
    assert.ok(Deno.statSync(`${other}/b/file`).isFile, "the other directory's file is there");
    assert.deepEqual([...Deno.readDirSync(`${scratch.path}/moved`)], [], "the directory opened was emptied");
    // The link now where the directory was cannot be removed as one.
    assert.match(String(err), /cannot remove .*\/a: ENOTDIR/);
  } finally {
    symbols.sbox_mount_id = mountId;
    // remove() dropped the lock: another run's sweep may have taken it.
    Deno.removeSync(other, { recursive: true });
    try {
      Deno.removeSync(scratch.path, { recursive: true });
    } catch {
      // Another run's sweep took it first.
    }
  }
});

const LEFTOVER_BIND_TEST =
  "cli: the sweep of a killed run's scratch directory stops at a mount made below it after sbox read the mount table";
Deno.test({
  name: LEFTOVER_BIND_TEST,
  ignore: skipUnlessRoot(
    LEFTOVER_BIND_TEST,
    "it mounts file systems in a mount namespace of its own (unshare -m)",
  ),
  async fn() {
    // The sweep checked a leftover for mounts below it by the setup's
    // reading of the mount table, then deleted it all, across mount
    // points: a mount made there after that reading lost its files. Here
    // a preload module binds a directory of the test's own on a leftover
    // right after sbox's first reading. All in a mount namespace of its
    // own, with a /dev/shm of its own: no other run's sweep sees the
    // leftover, and nothing of it is left once the namespace is gone.
    const dir = Deno.makeTempDirSync({ dir: "/var/tmp", prefix: "sbox-leftover-bind-" });
    try {
      Deno.mkdirSync(`${dir}/data/sub`, { recursive: true });
      Deno.writeTextFileSync(`${dir}/data/keep`, "kept");
      Deno.writeTextFileSync(`${dir}/data/sub/deep`, "kept");
      // A pid past PID_MAX_LIMIT: no process's, so the leftover's owner is gone (leftovers.ts).
      const leftover = "/dev/shm/sbox-4194305-0123abcd";
      Deno.writeTextFileSync(
        `${dir}/preload.ts`,
        `import { ProcReading } from ${JSON.stringify(new URL("../src/mountinfo.ts", import.meta.url).href)};
const libc = Deno.dlopen("libc.so.6", {
  mount: { parameters: ["buffer", "buffer", "pointer", "u64", "pointer"], result: "i32" },
}).symbols;
const c = (s: string) => new TextEncoder().encode(s + "\\0");
const MS_BIND = 4096n;
const mounts = Object.getOwnPropertyDescriptor(ProcReading.prototype, "mounts")!;
let bound = false;
Object.defineProperty(ProcReading.prototype, "mounts", {
  get(this: ProcReading) {
    const table = mounts.get!.call(this);
    if (!bound) {
      bound = true;
      if (libc.mount(c(${JSON.stringify(`${dir}/data`)}), c(${
          JSON.stringify(`${leftover}/root`)
        }), null, MS_BIND, null) !== 0) {
        throw new Error("cannot bind the data on the leftover");
      }
    }
    return table;
  },
});
`,
      );
      const script =
        'left="$1"; shift; mount -t tmpfs none /dev/shm && mkdir -p "$left/root" "$left/layers" && ' +
        '"$@" && if mountpoint -q "$left/root"; then echo kept; else echo gone; fi';
      const deno = [Deno.execPath(), "run", "--allow-ffi", "--preload", `${dir}/preload.ts`, SBOX];
      const output = await commandInOwnMountNamespace(
        ["sh", "-c", script, "sh", leftover, ...deno, "run", "--", "/bin/true"],
      ).output();
      assert.equal(output.code, 0, text(output.stderr));
      // The sweep left it, the bind on it, for a later run.
      assert.equal(text(output.stdout), "kept\n", text(output.stderr));
      assert.equal(Deno.readTextFileSync(`${dir}/data/keep`), "kept");
      assert.equal(Deno.readTextFileSync(`${dir}/data/sub/deep`), "kept");
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

Deno.test("cli: a directory lock released twice closes its fd once, not a file that took its number since", () => {
  const dir = Deno.makeTempDirSync({ prefix: "sbox-lock-" });
  try {
    const lock = tryLockDir(dir)!;
    lock.release();
    const other = open("/dev/null", O.RDONLY); // the lowest free number: the lock's
    try {
      lock.release();
      assert.ok(fstat(other) !== undefined, `fd ${other} was closed by the second release()`);
    } finally {
      close(other);
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("cli: a directory claimed while another holds its lock is removed, not left; one claimed gets its mode", () => {
  const dir = Deno.makeTempDirSync({ prefix: "sbox-claim-" });
  try {
    // A sweep's lock (ownership.ts): the run gives the directory up, and
    // must not leave it behind (before the fix: left for the sweep).
    const taken = `${dir}/taken`;
    Deno.mkdirSync(taken, { mode: 0o700 });
    const sweep = tryLockDir(taken)!;
    try {
      assert.equal(claimDir(taken, 0o755), undefined);
      assert.throws(() => Deno.statSync(taken), Deno.errors.NotFound, "the directory given up was left");
    } finally {
      sweep.release();
    }
    // Claimed: 0700 until locked, then the mode asked for (umask or not).
    const claimed = `${dir}/claimed`;
    Deno.mkdirSync(claimed, { mode: 0o700 });
    const lock = claimDir(claimed, 0o755)!;
    try {
      assert.equal(Deno.statSync(claimed).mode! & 0o7777, 0o755);
      assert.equal(tryLockDir(claimed), undefined, "the claimed directory is not locked");
    } finally {
      lock.release();
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("cli: a relative host path works, and is named as `ls -b` names it, from a working directory that is not UTF-8", async () => {
  // --bind SRC is made absolute against sbox's working directory, which
  // was read as text: "cwd\ufffd/data" named no file.
  const dir = scratchDir("cli-nonutf8-cwd-");
  try {
    const run = (bind: string) =>
      new Deno.Command("sh", {
        args: [
          "-c",
          'x=$(printf "\\376") && mkdir -p "$1/cwd$x" && echo bound > "$1/cwd$x/data" && cd "$1/cwd$x" && ' +
          'shift && exec "$@"',
          "sh",
          dir,
          ...sboxOnBusyboxArgv(["--bind", bind, "--", "cat", "/opt/data"]),
        ],
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
        signal: AbortSignal.timeout(COMMAND_TIMEOUT_MS),
      }).output();
    const bound = await run("data:/opt/data:ro");
    assert.equal(text(bound.stdout), "bound\n", text(bound.stderr));
    assert.equal(bound.code, 0);
    // A message shows the byte as ls -b does, not as U+FFFD.
    const missing = await run("missing:/opt/data:ro");
    assert.equal(missing.code, 125);
    assert.equal(
      text(missing.stderr),
      `sbox: invalid option --bind: ${dir}/cwd\\376/missing does not exist (add :try to skip it)\n`,
    );
  } finally {
    await new Deno.Command("rm", { args: ["-rf", dir] }).output();
  }
});

// Deno.args has U+FFFD for a byte that is not UTF-8, and sbox once refused
// such an argument: a file name of a Latin-1 system could not be given to
// a command, nor such a value to a variable.
Deno.test("cli: arguments and variables that are not UTF-8 reach the command as their bytes: a file named with 0xff is cat, -e and --env-file values are env's", async () => {
  const dir = scratchDir("cli-nonutf8-args-");
  try {
    // The host's name has the byte 0xff; bash passes the byte itself.
    const run = (script: string) =>
      new Deno.Command("bash", {
        args: ["-c", script, Deno.execPath(), SBOX, busyboxImage(), dir],
        stdout: "piped",
        stderr: "piped",
        signal: AbortSignal.timeout(COMMAND_TIMEOUT_MS),
      }).output();
    const made = await run(
      `printf 'in a Latin-1 name\\n' > "$3"/r$'\\xff'sum; printf 'F=\\xfe\\n' > "$3"/vars`,
    );
    assert.equal(made.code, 0, text(made.stderr));
    const sboxRun = `exec "$0" run --allow-ffi "$1" run --rootfs "$2" --bind "$3":/d`;
    const bytes = (b: Uint8Array) => [...b];
    const encode = (s: string) => [...new TextEncoder().encode(s)];

    // Listed in the container (busybox's ls shows "?"), then opened by the name listed.
    const list = `${sboxRun} -- find /d -name 'r*'`;
    const listed = await run(list);
    assert.equal(listed.code, 0, text(listed.stderr));
    assert.deepEqual(bytes(listed.stdout), [...encode("/d/r"), 0xff, ...encode("sum\n")]);
    const cat = await run(`name=$(${list.slice(5)}) && ${sboxRun} -- cat "$name"`);
    assert.equal(cat.code, 0, text(cat.stderr));
    assert.equal(text(cat.stdout), "in a Latin-1 name\n");

    // An argument, a -e value, sbox's own value (-e NAME) and an env file's: the bytes given.
    const echo = await run(`${sboxRun} -- /bin/echo $'a\\xffb'`);
    assert.equal(echo.code, 0, text(echo.stderr));
    assert.deepEqual(bytes(echo.stdout), [0x61, 0xff, 0x62, 0x0a]);
    const env = await run(
      `export OWN=$'\\xfc'; ${sboxRun} -e $'V=\\xff' -e $'K\\xfd=x' -e OWN --env-file "$3"/vars -- env`,
    );
    assert.equal(env.code, 0, text(env.stderr));
    const lines = new Map<string, number[]>();
    let start = 0;
    for (let i = 0; i < env.stdout.length; i++) {
      if (env.stdout[i] !== 0x0a) continue;
      const line = bytes(env.stdout.subarray(start, i));
      lines.set(line.slice(0, line.indexOf(0x3d)).map((b) => b.toString(16)).join(" "), line);
      start = i + 1;
    }
    assert.deepEqual(lines.get("56"), [0x56, 0x3d, 0xff], "V");
    assert.deepEqual(lines.get("4b fd"), [0x4b, 0xfd, 0x3d, 0x78], "K\\xfd");
    assert.deepEqual(lines.get("46"), [0x46, 0x3d, 0xfe], "F");
    assert.deepEqual(lines.get("4f 57 4e"), [...encode("OWN="), 0xfc], "OWN");

    // Messages show such a byte as ls -b does.
    const missing = await run(`${sboxRun} -- /d/r$'\\xfe'`);
    assert.equal(missing.code, 127);
    assert.match(text(missing.stderr), /^sbox: cannot exec \/d\/r\\376: ENOENT/);
    const good = await run(`${sboxRun} -- /bin/echo $'caf\\xc3\\xa9'`);
    assert.equal(text(good.stdout), "café\n", text(good.stderr));
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("cli: 65536 arguments run; more, or more variables, are refused in the command line's words", async () => {
  const numbers = Array.from({ length: 65532 }, (_, i) => String(i));
  const most = await busybox(["--", "sh", "-c", 'echo "$#"', "x", ...numbers]);
  assert.equal(most.stdout, "65532\n", most.stderr);
  // It said "invalid option command: 65537 arguments, at most 65536".
  const many = await busybox(["--", "sh", "-c", 'echo "$#"', "x", ...numbers, "one more"]);
  assertSboxFailed(many, /^sbox: the command has 65537 arguments \(COMMAND and its ARGs\), at most 65536: /);
  const dir = scratchDir("cli-many-env-");
  try {
    // With PATH and HOME: 65537. It said "invalid option env: ...".
    Deno.writeTextFileSync(`${dir}/env`, numbers.concat("a", "b", "c").map((n) => `V${n}=1\n`).join(""));
    const env = await busybox(["--env-file", `${dir}/env`, "--", "true"]);
    assertSboxFailed(
      env,
      /^sbox: the command's environment has 65537 variables, at most 65536 \(-e, --env-file\)$/,
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("cli: a hostile image's /etc/passwd and FIFOs given as files neither hang sbox nor show host files", async () => {
  const dir = scratchDir("cli-hostile-");
  // sbox must end by itself; a hang is cut short here (SIGKILL: SIGTERM
  // cannot reach a JS thread stuck in a blocking open).
  const run = async (args: string[]) => {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-ffi", SBOX, "run", ...args],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const hang = setTimeout(() => child.kill("SIGKILL"), 20_000);
    const result = await outputOf(child);
    clearTimeout(hang);
    return result;
  };
  try {
    const image = `${dir}/image`;
    new Deno.Command("cp", { args: ["-a", busyboxImage(), image] }).outputSync();
    const passwd = `${image}/etc/passwd`;
    const idOf = ["--rootfs", image, "--", "sh", "-c", "id -g; echo $HOME"];
    // A FIFO: opening it would wait for a writer forever.
    Deno.removeSync(passwd);
    assert.ok(new Deno.Command("mkfifo", { args: [passwd] }).outputSync().success);
    const fifo = await run(idOf);
    assert.deepEqual([fifo.code, fifo.stdout], [0, "0\n/root\n"], fifo.stderr);
    // Endless: reading it all would take all memory.
    Deno.removeSync(passwd);
    Deno.symlinkSync("/dev/zero", passwd);
    const endless = await run(idOf);
    assert.deepEqual([endless.code, endless.stdout], [0, "0\n/root\n"], endless.stderr);
    // /etc leading to a host directory: its passwd is not the image's to give.
    Deno.mkdirSync(`${dir}/host-etc`, { mode: 0o700 });
    Deno.writeTextFileSync(`${dir}/host-etc/passwd`, "root:x:0:4242:root:/host-only:/bin/sh\n", {
      mode: 0o600,
    });
    Deno.renameSync(`${image}/etc`, `${image}/etc.real`);
    Deno.symlinkSync(`${dir}/host-etc`, `${image}/etc`);
    const linked = await run(idOf);
    assert.deepEqual([linked.code, linked.stdout], [0, "0\n/root\n"], linked.stderr);
    // A FIFO as --stdin is opened without blocking sbox (its writer is
    // then waited for in the event loop: see the --stdin FIFO test).
    assert.ok(new Deno.Command("mkfifo", { args: [`${dir}/in`] }).outputSync().success);
    const writer = new Deno.Command("sh", {
      args: ["-c", `echo x > ${dir}/in`],
      signal: AbortSignal.timeout(20_000),
    })
      .output();
    const stdin = await run(["--rootfs", busyboxImage(), "--stdin", `${dir}/in`, "--", "/bin/true"]);
    assert.equal(stdin.code, 0, stdin.stderr);
    await writer;
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

/**
 * `sbox ARGS...`, cut short by SIGKILL after `ms` (a JS thread stuck in a
 * blocking FFI call does not see SIGTERM); `hung` says it was.
 */
async function sboxWithin(ms: number, args: string[]): Promise<Result & { hung: boolean }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-ffi", SBOX, ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let hung = false;
  const timer = setTimeout(() => {
    hung = true;
    child.kill("SIGKILL");
  }, ms);
  const output = await outputOf(child);
  clearTimeout(timer);
  return { ...output, pid: child.pid, hung };
}

Deno.test("cli: --seccomp FILE must hold a policy object; only the word unconfined turns the filter off", async () => {
  const dir = scratchDir("cli-seccomp-");
  try {
    const seccompOf = async (value: string) => {
      const result = await sbox(["run", "--seccomp", value, "--", "grep", "^Seccomp:", "/proc/self/status"]);
      assert.equal(result.code, 0, result.stderr);
      return result.stdout.split(/\s+/)[1];
    };
    assert.equal(await seccompOf("unconfined"), "0");
    Deno.writeTextFileSync(`${dir}/allow.json`, '{"defaultAction": "allow", "rules": []}');
    assert.equal(await seccompOf(`${dir}/allow.json`), "2");
    const refused: [string, RegExp][] = [
      ['"unconfined"', /must hold a policy object .*, not "unconfined"/],
      ["null", /must hold a policy object .*, not null/],
      ["[]", /must hold a policy object .*, not an array/],
      ["42", /must hold a policy object .*, not 42/],
      ["{nope", /is not JSON/],
      ['{"defaultAction": "allow"}', /: rules must be an array$/m],
      // Docker's format: it said "unknown option syscalls", as if a key were misspelled.
      [
        '{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}',
        /: this looks like a Docker\/OCI seccomp profile \(it has "syscalls"\), which sbox does not read: .*security\.md/,
      ],
    ];
    await Promise.all(refused.map(async ([content, pattern], i) => {
      const file = `${dir}/policy-${i}.json`;
      Deno.writeTextFileSync(file, content);
      const result = await sbox(["run", "--seccomp", file, "--", "true"]);
      assertSboxFailed(result, new RegExp(`^sbox: invalid option --seccomp: ${file}`));
      assert.match(result.stderr, pattern, `${content}: ${result.stderr}`);
      assertNothingLeft(result.pid);
    }));
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("cli: a FIFO as --stdin: the command starts once a writer has opened it, as with a shell's <", async () => {
  // sbox opened the FIFO without waiting and the command started at once: a
  // read before the writer came returned end-of-file, the run was OK on
  // empty input, and the writer then waited for a reader that was gone.
  const dir = scratchDir("cli-stdin-fifo-");
  // Each step is bounded: on the old code a writer waits forever.
  const bounded = (script: string) =>
    new Deno.Command("sh", { args: ["-c", script], signal: AbortSignal.timeout(20_000) }).output();
  const runWith = (args: string[]) =>
    new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-ffi", SBOX, "run", "--rootfs", busyboxImage(), ...args],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(20_000),
    }).spawn();
  try {
    const fifo = `${dir}/in`;
    assert.ok(new Deno.Command("mkfifo", { args: [fifo] }).outputSync().success);
    // A writer that comes a moment later, after the --wall-time the command
    // has: the wait is before its start, not its time.
    const late = runWith(["--stdin", fifo, "--wall-time", "300ms", "--report", "-", "--", "cat"]);
    const lateWriter = bounded(`sleep 0.6; echo from-the-writer > ${fifo}`);
    const lateOut = await late.output();
    assert.equal(text(lateOut.stdout), "from-the-writer\n", text(lateOut.stderr));
    assert.deepEqual([lateOut.code, report(text(lateOut.stderr)).status], [0, "OK"]);
    assert.ok((await lateWriter).success);
    // A writer that holds the FIFO open and writes only once the command
    // has started (an interactor waiting for the first line): the command
    // starts without any input yet.
    const started = `${dir}/started`;
    const silent = runWith([
      "--stdin",
      fifo,
      "--bind",
      `${dir}:/w`,
      "--",
      "sh",
      "-c",
      "touch /w/started; cat",
    ]);
    const silentWriter = bounded(
      `exec 3>${fifo}; while [ ! -e ${started} ]; do sleep 0.05; done; echo after-the-start >&3`,
    );
    const silentOut = await silent.output();
    assert.equal(text(silentOut.stdout), "after-the-start\n", text(silentOut.stderr));
    assert.ok((await silentWriter).success);
    // A writer that came and went without a word: end-of-file, as from a shell's <.
    const empty = runWith(["--stdin", fifo, "--", "sh", "-c", "cat; echo read-to-the-end"]);
    const emptyWriter = bounded(`sleep 0.3; : > ${fifo}`);
    assert.equal(text((await empty.output()).stdout), "read-to-the-end\n");
    assert.ok((await emptyWriter).success);
    // The same writer, already waiting in its open when sbox opens the FIFO:
    // it is gone before sbox's read-only view of the FIFO is open, and that
    // view, a reader opened after the writer's visit, never sees it.
    const earlyWriter = bounded(`: > ${fifo}`);
    await new Promise((r) => setTimeout(r, 300));
    const early = runWith(["--stdin", fifo, "--", "sh", "-c", "cat; echo read-to-the-end"]);
    assert.equal(text((await early.output()).stdout), "read-to-the-end\n");
    assert.ok((await earlyWriter).success);
    // No writer at all: a signal still ends the wait, and sbox cleans up.
    const waiting = runWith(["--stdin", fifo, "--report", "-", "--", "cat"]);
    await new Promise((r) => setTimeout(r, 1000));
    waiting.kill("SIGTERM");
    const stopped = await waiting.output();
    const stderr = text(stopped.stderr);
    assert.deepEqual([stopped.code, stopped.signal], [143, "SIGTERM"], stderr);
    assert.match(stderr, /^sbox: interrupted by SIGTERM: the container was killed$/m);
    assert.equal(report(stderr).status, "XX");
    assertNothingLeft(waiting.pid);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("cli: a FIFO or a device as --seccomp, --report or --stdout fails at once, before anything is created", async () => {
  const dir = scratchDir("cli-fifo-");
  try {
    // One FIFO each: two runs opening one FIFO would meet there.
    for (const name of ["policy", "report", "stdout"]) {
      assert.ok(new Deno.Command("mkfifo", { args: [`${dir}/${name}`] }).outputSync().success);
    }
    const cases: [string[], RegExp][] = [
      // Reading it would wait for a writer.
      [
        ["--seccomp", `${dir}/policy`],
        /^sbox: invalid option --seccomp: policy .*\/policy is not a regular file$/,
      ],
      // A device (/dev/zero would be endless).
      [
        ["--seccomp", "/dev/null"],
        /^sbox: invalid option --seccomp: policy \/dev\/null is not a regular file$/,
      ],
      // Writing it would wait for a reader: refused, saying so (a bare
      // ENXIO, "No such device or address", left the user puzzled).
      [
        ["--report", `${dir}/report`],
        /^sbox: --report: cannot open .*\/report: ENXIO \(No such device or address\): the FIFO has no reader, and sbox does not wait for one: start the reader first, then sbox$/,
      ],
      [
        ["--stdout", `${dir}/stdout`],
        /^sbox: --stdout: cannot open .*\/stdout: ENXIO \(No such device or address\): the FIFO has no reader, and sbox does not wait for one: start the reader first, then sbox$/,
      ],
    ];
    await Promise.all(cases.map(async ([args, pattern]) => {
      const result = await sboxWithin(15_000, ["run", ...args, "--", "true"]);
      assert.ok(!result.hung, `${args.join(" ")} hung`);
      assertSboxFailed(result, pattern);
      assertNothingLeft(result.pid);
    }));
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("cli: --cwd makes a missing directory and its parents, as mkdir -p, inside the root", async () => {
  const made = await busybox(["-w", "/new/deep/../dir/./", "--", "sh", "-c", "pwd; stat -c '%u %a' . /new"]);
  assert.equal(made.code, 0, made.stderr);
  assert.equal(made.stdout, "/new/dir\n0 755\n0 755\n");
  // An existing directory is used as it is; one on a mount is made there.
  const existing = await busybox(["-w", "/etc", "--", "sh", "-c", "pwd; stat -c %a ."]);
  assert.equal(existing.stdout, "/etc\n755\n", existing.stderr);
  const onMount = await busybox([
    "--tmpfs",
    "/data",
    "-w",
    "/data/x",
    "--",
    "sh",
    "-c",
    "pwd; stat -f -c %T .",
  ]);
  assert.equal(onMount.stdout, "/data/x\ntmpfs\n", onMount.stderr);
  assertSboxFailed(
    await busybox(["-w", "/etc/passwd/x", "--", "true"]),
    /cannot create directory \/etc\/passwd\/x: ENOTDIR/,
  );

  const dir = scratchDir("cli-cwd-link-");
  try {
    // An image whose /mnt points at a host directory: followed inside the root only.
    Deno.mkdirSync(`${dir}/victim`);
    Deno.mkdirSync(`${dir}/image`);
    Deno.symlinkSync(`${dir}/victim`, `${dir}/image/mnt`);
    const result = await sbox(["run", "--rootfs", `${dir}/image`, "-w", "/mnt/sub", "--", "/x"]);
    assertSboxFailed(result, /cannot create directory \/mnt\/sub: ENOENT/);
    assert.deepEqual([...Deno.readDirSync(`${dir}/victim`)], [], "nothing was created on the host");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("cli: sbox's own directories and files have their modes whatever the umask; the command gets the caller's", async () => {
  const dir = scratchDir("cli-umask-");
  try {
    // A hardened service's umask: it reached the setup, which made the
    // directories 0700 and resolv.conf 0600, out of reach of -u 1000, and
    // the container's cgroup 0700 (its limits unreadable there).
    const result = await busyboxFromShell(
      [
        "--net",
        "slirp4netns",
        "--bind",
        `${dir}:/deep/er/ws`,
        "--tmpfs",
        "/cache/x",
        "-w",
        "/job/dir",
        "--",
        "sh",
        "-c",
        "stat -c '%a %n' /deep /deep/er /cache /job /job/dir /etc/resolv.conf /sys/fs/cgroup; umask; " +
        "touch /tmp/f && mkdir /tmp/d && stat -c '%a %n' /tmp/f /tmp/d",
      ],
      "",
      "",
      "",
      "umask 077;",
    );
    assert.equal(result.code, 0, result.stderr);
    assert.equal(
      result.stdout,
      "755 /deep\n755 /deep/er\n755 /cache\n755 /job\n755 /job/dir\n644 /etc/resolv.conf\n755 /sys/fs/cgroup\n" +
        "0077\n" +
        "600 /tmp/f\n700 /tmp/d\n",
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("cli: --write-limit bounds what is written to the root, at the top and in every layer, host root or image", async () => {
  // 2 MB into a 1 MiB limit: at the top of / (the root's own directory),
  // in a layer, and both together, on the host's root and on an image.
  const script = "head -c 2000000 /dev/zero > /big 2>/dev/null; echo top $?; rm -f /big; " +
    "head -c 2000000 /dev/zero > /etc/big 2>/dev/null; echo layer $?; rm -f /etc/big; " +
    "head -c 700000 /dev/zero > /a && head -c 700000 /dev/zero > /etc/b 2>/dev/null; echo both $?";
  const expected = "top 1\nlayer 1\nboth 1\n";
  const host = await sbox(["run", "--write-limit", "1M", "--", "/bin/sh", "-c", script]);
  assert.equal(host.stdout, expected, host.stderr);
  const inImage = (script: string) =>
    sbox(["run", "--rootfs", busyboxImage(), "--write-limit", "1M", "--", "/bin/sh", "-c", script]);
  const image = await inImage(script);
  assert.equal(image.stdout.split("\n").slice(1).join("\n"), "layer 1\nboth 1\n", image.stderr);
  // Files are bounded too, not only bytes: one inode per page of the limit,
  // at least 1024 (empty files take no bytes, but kernel memory each).
  const files = await inImage(
    "i=0; while [ $i -lt 1100 ]; do touch /f$i 2>/dev/null || break; i=$((i+1)); done; echo $i",
  );
  const made = Number(files.stdout.trim());
  assert.ok(made > 900 && made < 1024, `${made} files in a 1 MiB limit: ${files.stderr}`);
  // The default: 1 GiB, as df shows it.
  const df = await sbox(["run", "--rootfs", busyboxImage(), "--", "/bin/sh", "-c", "df -k / | tail -1"]);
  assert.equal(df.stdout.trim().split(/\s+/)[1], String(1024 * 1024), df.stderr);
});

Deno.test("cli: --tmpfs with and without a size", async () => {
  const result = await busybox([
    "--tmpfs",
    "/scratch:1M",
    "--tmpfs",
    "/a/b",
    "--",
    "sh",
    "-c",
    "echo x > /scratch/f && echo y > /a/b/g && cat /scratch/f /a/b/g && " +
    "grep ' /scratch ' /proc/mounts | grep -c size=1024k; grep -c ' /a/b tmpfs ' /proc/mounts",
  ]);
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout, "x\ny\n1\n1\n");
});

// ---- process settings -------------------------------------------------------

const SETTINGS_TEST = "cli: --env, --cwd, --user and --hostname reach the command";
Deno.test(SETTINGS_TEST, { ignore: skipWithoutManyIds(SETTINGS_TEST) }, async () => {
  const env = await busybox([
    "-e",
    "A=1",
    "-e",
    "B=x=y",
    "-e",
    "A=2",
    "-e",
    "PATH=/bin",
    "--",
    "/usr/bin/env",
  ]);
  assert.equal(env.code, 0, env.stderr);
  assert.deepEqual(env.stdout.trimEnd().split("\n").sort(), ["A=2", "B=x=y", "HOME=/root", "PATH=/bin"]);

  const who = await busybox([
    "-w",
    "/tmp",
    "-u",
    "65534",
    "--hostname",
    "judge-7",
    "--",
    "sh",
    "-c",
    "pwd; id -u; id -g; hostname; echo $HOME; touch mine && stat -c %u mine",
  ]);
  assert.equal(who.code, 0, who.stderr);
  assert.equal(who.stdout, "/tmp\n65534\n65534\njudge-7\n/\n65534\n");

  const ids = await busybox(["--user", "1000:2000", "--", "sh", "-c", "id -u; id -g; echo $HOME"]);
  assert.equal(ids.stdout, "1000\n2000\n/\n", ids.stderr);
});

Deno.test("cli: -e NAME passes sbox's own value of NAME, off the command line; unset, NAME is left out", async () => {
  const secret = `s3cret-${crypto.randomUUID()}`;
  const result = await sbox(
    [
      ...["run", "-e", "SBOX_TEST_TOKEN", "-e", "GONE=1", "-e", "GONE", "-e", "SBOX_TEST_UNSET"],
      ...["-e", "HOME", "--", "/usr/bin/env"],
    ],
    { env: { SBOX_TEST_TOKEN: secret, GONE: "host", HOME: "/home/judge" } },
  );
  assert.equal(result.code, 0, result.stderr);
  // GONE=1 is replaced by -e GONE's sbox value; SBOX_TEST_UNSET is set in no environment.
  assert.deepEqual(result.stdout.trimEnd().split("\n").sort(), [
    "GONE=host",
    "HOME=/home/judge",
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    `SBOX_TEST_TOKEN=${secret}`,
  ]);
  // Set but empty is set.
  const empty = await sbox(["run", "-e", "GONE=1", "-e", "GONE", "--", "/usr/bin/env"], {
    env: { GONE: "" },
  });
  assert.equal(empty.code, 0, empty.stderr);
  assert.ok(empty.stdout.split("\n").includes("GONE="), empty.stdout);
  // Unset in sbox's environment, -e NAME removes what an earlier -e (or the default) gave.
  const unset = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-ffi", SBOX, "run", "-e", "A=1", "-e", "A", "-e", "HOME", "--", "/usr/bin/env"],
    clearEnv: true,
    stdin: "null",
  }).outputSync();
  assert.equal(unset.code, 0, text(unset.stderr));
  assert.deepEqual(text(unset.stdout).trimEnd().split("\n"), [
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
  ]);
});

Deno.test("cli environment: -e settings apply in order over the defaults", () => {
  const variable = (name: string) => ({ TOKEN: "t", EMPTY: "" })[name];
  const env = commandEnvironment({ PATH: "/bin", HOME: "/root" }, [
    { kind: "set", name: "A", value: "1" },
    { kind: "inherit", name: "A" }, // unset: removes A
    { kind: "inherit", name: "TOKEN" },
    { kind: "set", name: "TOKEN", value: "later" },
    { kind: "inherit", name: "EMPTY" },
    { kind: "inherit", name: "HOME" }, // unset: removes the default
    { kind: "set", name: "__proto__", value: "p" },
  ], { variable, readFile: () => new Uint8Array() });
  assert.deepEqual(Object.entries(env), [["PATH", "/bin"], ["TOKEN", "later"], ["EMPTY", ""], [
    "__proto__",
    "p",
  ]]);
});

// A library error said in the command line's words keeps what a program
// reads besides the message: the errno, the library's error as the cause,
// and for a bad option the option (now the flag) and the problem.
Deno.test("cli errors: an error renamed to its flag keeps the errno and the cause", () => {
  const run = (...args: string[]) => {
    const invocation = parseCommandLine(["run", ...args, "--", "true"]);
    assert.equal(invocation.kind, "run");
    return (invocation as { options: RunOptions }).options;
  };
  const missing = `/nonexistent-${crypto.randomUUID()}`;
  const thrown = (fn: () => unknown): SboxError => {
    try {
      fn();
    } catch (err) {
      assert.ok(err instanceof SboxError, String(err));
      return err;
    }
    assert.fail("no error");
  };
  // A failure of what a flag asked for: `--stdout: cannot open ...`.
  const output = thrown(() => openStdio(run("--stdout", `${missing}/out`), identityMapper()));
  assert.match(output.message, /^--stdout: cannot open .*: ENOENT/);
  assert.deepEqual([output.step, output.errno], ["open", "ENOENT"]);
  assert.ok(output.cause instanceof SboxError && output.cause.errno === "ENOENT");
  // What makes a flag's value bad: `invalid option --env-file: ...`.
  const envFile = thrown(() => commandEnvironment({}, [{ kind: "file", path: `${missing}/env` }]));
  assert.match(envFile.message, /^invalid option --env-file: cannot open .*: ENOENT/);
  assert.deepEqual([envFile.step, envFile.option, envFile.errno], ["options", "--env-file", "ENOENT"]);
  // A library option error renamed: the option becomes the flag, the problem stays.
  const library = SboxError.invalidOption("seccomp", "cannot read it", { errno: 5 });
  const renamed = asCliOption(library, { seccomp: "--seccomp" }, "/p.json");
  assert.ok(renamed instanceof SboxError);
  assert.equal(renamed.message, "invalid option --seccomp: /p.json: cannot read it");
  assert.deepEqual([renamed.option, renamed.problem, renamed.errno], [
    "--seccomp",
    "/p.json: cannot read it",
    "EIO",
  ]);
  assert.equal(renamed.cause, library);
  assert.equal(asCliOption(library, { capAdd: "--cap-add" }), library, "an option not in the map stays");
  // As --seccomp renames the library's check of a policy, with no regex over its message.
  const dir = scratchDir("renamed-");
  try {
    Deno.writeTextFileSync(`${dir}/policy.json`, '{"defaultAction": "allow", "rules": 5}');
    const policy = thrown(() => securityOptions(run("--seccomp", `${dir}/policy.json`)));
    assert.equal(policy.message, `invalid option --seccomp: ${dir}/policy.json: rules must be an array`);
    assert.deepEqual([policy.option, policy.problem], [
      "--seccomp",
      `${dir}/policy.json: rules must be an array`,
    ]);
    assert.ok(policy.cause instanceof SboxError && policy.cause.option === "seccomp");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("cli: --env-file FILE sets its NAME=VALUE lines as they are, NAME alone from sbox's own environment", async () => {
  const dir = scratchDir("cli-env-file-");
  try {
    Deno.writeTextFileSync(
      `${dir}/vars.env`,
      [
        "# a comment",
        "",
        '  QUOTED="a b"  ',
        "HASH=x # not a comment",
        "CRLF=dos\r",
        "B=from-file",
        "SBOX_TEST_TOKEN",
        "SBOX_TEST_UNSET",
        "EMPTY=",
        "URL=a=b",
      ].join("\n"),
    );
    // In command-line order: the file's B replaces the -e before it; its line SBOX_TEST_UNSET
    // (unset in sbox's environment) is followed by an -e that sets it.
    const result = await sbox(
      [
        "run",
        "-e",
        "B=earlier",
        "--env-file",
        "vars.env",
        "-e",
        "SBOX_TEST_UNSET=later",
        "--",
        "/usr/bin/env",
      ],
      { cwd: dir, env: { SBOX_TEST_TOKEN: "s3cret" } },
    );
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(result.stdout.trimEnd().split("\n").sort(), [
      "B=from-file",
      "CRLF=dos",
      "EMPTY=",
      "HASH=x # not a comment",
      "HOME=/root",
      "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
      'QUOTED="a b"  ',
      "SBOX_TEST_TOKEN=s3cret",
      "SBOX_TEST_UNSET=later",
      "URL=a=b",
    ]);
    // -e after the file wins over it, and the file over -e before it.
    const later = await sbox(["run", "--env-file", `${dir}/vars.env`, "-e", "B=last", "--", "/usr/bin/env"]);
    assert.ok(later.stdout.split("\n").includes("B=last"), later.stdout);

    // Errors name the file and the line; 125 and an XX report, as for any bad option.
    Deno.writeTextFileSync(`${dir}/bad.env`, "A=1\n# fine\nexport B=2\n");
    Deno.writeTextFileSync(`${dir}/r.json`, "STALE\n");
    const bad = await sbox([
      "run",
      "--report",
      `${dir}/r.json`,
      "--env-file",
      `${dir}/bad.env`,
      "--",
      "true",
    ]);
    assertSboxFailed(
      bad,
      new RegExp(
        `^sbox: invalid option --env-file: ${dir}/bad\\.env:3: a variable name holds white space \\(is an "=" missing\\?\\)$`,
      ),
    );
    assert.equal(JSON.parse(Deno.readTextFileSync(`${dir}/r.json`)).status, "XX");
    assertNothingLeft(bad.pid);
    const missing = await sbox(["run", "--env-file", "nope.env", "--", "true"], { cwd: dir });
    assertSboxFailed(
      missing,
      new RegExp(`^sbox: invalid option --env-file: cannot open ${dir}/nope\\.env: ENOENT`),
    );
    // A FIFO is refused, not waited on.
    new Deno.Command("mkfifo", { args: [`${dir}/fifo`] }).outputSync();
    const fifo = await sbox(["run", "--env-file", `${dir}/fifo`, "--", "true"]);
    assertSboxFailed(fifo, /--env-file: env file .*\/fifo is not a regular file/);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("cli: the hostname resolves: /etc/hosts keeps the root's lines and gets one for it", async () => {
  // The host's root: its lines, then the hostname's; glibc resolves it.
  const lookup = "cat /etc/hosts; echo ==; getent hosts judge-7";
  const host = await sbox(["run", "--hostname", "judge-7", "--", "sh", "-c", lookup]);
  assert.equal(host.code, 0, host.stderr);
  const [hosts, resolved] = host.stdout.split("==\n");
  const hostLines = Deno.readTextFileSync("/etc/hosts");
  assert.equal(hosts, `${hostLines}${hostLines.endsWith("\n") ? "" : "\n"}127.0.1.1\tjudge-7\n`);
  assert.match(resolved, /^127\.0\.1\.1\s+judge-7\n$/);

  const dir = scratchDir("cli-hosts-");
  try {
    const image = `${dir}/image`;
    new Deno.Command("cp", { args: ["-a", busyboxImage(), image] }).outputSync();
    const show = (...args: string[]) =>
      sbox(["run", "--rootfs", image, ...args, "--", "sh", "-c", "cat /etc/hosts; echo ==; hostname -i"]);
    // No /etc/hosts in the image: localhost's lines too.
    const none = await show();
    assert.equal(
      none.stdout,
      "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\tsbox\n==\n127.0.1.1\n",
      none.stderr,
    );
    // The image's lines, its last one without a newline.
    Deno.writeTextFileSync(`${image}/etc/hosts`, "# image\n10.9.8.7\tknown other");
    const own = await show("--hostname", "judge-7");
    assert.equal(
      own.stdout,
      "# image\n10.9.8.7\tknown other\n127.0.1.1\tjudge-7\n==\n127.0.1.1\n",
      own.stderr,
    );
    // A name the image's file gives an address already: left as it is.
    const known = await show("--hostname", "OTHER");
    assert.equal(known.stdout, "# image\n10.9.8.7\tknown other==\n10.9.8.7\n", known.stderr);
    // A --bind onto /etc/hosts is the user's file.
    Deno.writeTextFileSync(`${dir}/hosts`, "10.1.1.1\tbound\n");
    const bound = await show("--bind", `${dir}/hosts:/etc/hosts:ro`, "--hostname", "bound");
    assert.equal(bound.stdout, "10.1.1.1\tbound\n==\n10.1.1.1\n", bound.stderr);
    // A link (to a host file): not read, and left as it is.
    Deno.removeSync(`${image}/etc/hosts`);
    Deno.writeTextFileSync(`${dir}/secret`, "10.6.6.6\tsecret\n");
    Deno.symlinkSync(`${dir}/secret`, `${image}/etc/hosts`);
    const linked = await sbox(["run", "--rootfs", image, "--", "readlink", "/etc/hosts"]);
    assert.equal(linked.stdout, `${dir}/secret\n`, linked.stderr);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

const NEUTRAL_TEST =
  "cli: the command does not inherit sbox's real-time policy, negative nice, realtime I/O " +
  "class or NIS domain name; an oom_score_adj above 0 is kept";
Deno.test(NEUTRAL_TEST, {
  ignore: skipUnlessRoot(
    NEUTRAL_TEST,
    "it runs sbox under chrt -f and ionice -c 1 in a UTS namespace of its own",
  ),
}, async () => {
  // chrt -f 1: a real-time policy, priority 1, for sbox's short run. Each
  // line: oom_score_adj, nice, policy (0 SCHED_OTHER), I/O class and level;
  // of the command and of pid 1. (A negative oom_score_adj, which this
  // host's kernel may refuse to set, is container_test.ts's.)
  const script = 'for p in $$ 1; do echo "$(cat /proc/$p/oom_score_adj) $(cut -d" " -f19,41 /proc/$p/stat) ' +
    '$(ionice -p $p)"; done; cat /proc/sys/kernel/domainname';
  const sboxRun = sboxOnBusyboxArgv(["--", "sh", "-c", script]).map(shellQuote).join(" ");
  const output = await new Deno.Command("unshare", {
    args: [
      "--uts",
      "sh",
      "-c",
      `domainname corp.example && exec chrt -f 1 nice -n -5 ionice -c 1 -n 2 choom -n 500 -- ${sboxRun}`,
    ],
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(COMMAND_TIMEOUT_MS),
  }).output();
  assert.equal(output.code, 0, text(output.stderr));
  assert.equal(text(output.stdout), "500 0 0 none: prio 0\n500 0 0 none: prio 0\n(none)\n");
});

const HOSTNAME_FILE_TEST = "cli: /etc/hostname holds the --hostname, as /etc/hosts resolves it";
Deno.test(HOSTNAME_FILE_TEST, async () => {
  // The host's root: the host's /etc/hostname ("vm", say) was shown.
  const host = await sbox(["run", "--hostname", "judge-7", "--", "cat", "/etc/hostname"]);
  assert.equal(host.code, 0, host.stderr);
  assert.equal(host.stdout, "judge-7\n");

  const dir = scratchDir("cli-hostname-");
  try {
    const image = `${dir}/image`;
    new Deno.Command("cp", { args: ["-a", busyboxImage(), image] }).outputSync();
    Deno.writeTextFileSync(`${image}/etc/hostname`, "image\n");
    const show = (...args: string[]) =>
      sbox(["run", "--rootfs", image, ...args, "--", "cat", "/etc/hostname"]);
    // The image's file, replaced in the upper layer: the image keeps its own.
    const own = await show();
    assert.equal(own.stdout, "sbox\n", own.stderr);
    assert.equal(Deno.readTextFileSync(`${image}/etc/hostname`), "image\n");
    // An image without one gets one.
    Deno.removeSync(`${image}/etc/hostname`);
    const none = await show("--hostname", "judge-7");
    assert.equal(none.stdout, "judge-7\n", none.stderr);
    // A --bind onto /etc/hostname is the user's file.
    Deno.writeTextFileSync(`${dir}/hostname`, "bound\n");
    const bound = await show("--bind", `${dir}/hostname:/etc/hostname:ro`, "--hostname", "judge-7");
    assert.equal(bound.stdout, "bound\n", bound.stderr);
    // A link (to a host file) is left as it is, as /etc/hosts is.
    Deno.symlinkSync(`${dir}/hostname`, `${image}/etc/hostname`);
    const linked = await sbox(["run", "--rootfs", image, "--", "readlink", "/etc/hostname"]);
    assert.equal(linked.stdout, `${dir}/hostname\n`, linked.stderr);
    if (!isRoot) return;
    // A host whose /etc/hostname is a mount point, as in every Docker,
    // Podman or Kubernetes container: copied, so that it can be replaced.
    const script = `mount --bind ${shellQuote(`${dir}/hostname`)} /etc/hostname && exec ${
      [
        Deno.execPath(),
        "run",
        "--allow-ffi",
        SBOX,
        "run",
        "--hostname",
        "judge-7",
        "--",
        "cat",
        "/etc/hostname",
      ]
        .map(shellQuote).join(" ")
    }`;
    const onMountedHostname = async (content: Uint8Array) => {
      Deno.writeFileSync(`${dir}/hostname`, content);
      const mounted = await new Deno.Command("unshare", {
        args: ["--mount", "--", "sh", "-c", script],
        stdin: "null",
        signal: AbortSignal.timeout(COMMAND_TIMEOUT_MS),
      }).output();
      assert.equal(text(mounted.stderr), "");
      return mounted.stdout;
    };
    assert.equal(text(await onMountedHostname(new TextEncoder().encode("bound\n"))), "judge-7\n");
    // One the copy could not write back (not UTF-8; a NUL, which failed
    // the run: "a string contains a NUL byte") is bound, and left as it is.
    for (const odd of [[0x76, 0xfe, 0x0a], [0x76, 0x00, 0x6d, 0x0a]]) {
      assert.deepEqual([...await onMountedHostname(new Uint8Array(odd))], odd);
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("cli environment: parseEnvFile takes Docker's env-file lines as they are, and names the line of an error", () => {
  const encode = (text: string) => new TextEncoder().encode(text);
  assert.deepEqual(
    parseEnvFile(encode("\ufeffA=1\n\t# c\n \t\r\nB\n  C= x \r\nD='q'\\n\nE==\n"), "f"),
    [
      { line: 1, name: "A", value: "1" },
      { line: 4, name: "B" },
      { line: 5, name: "C", value: " x " },
      { line: 6, name: "D", value: "'q'\\n" },
      { line: 7, name: "E", value: "=" },
    ],
  );
  const cases: [Uint8Array, string][] = [
    [encode("A=1\n=2\n"), 'f:2: no variable name before "="'],
    [encode("A B=1"), 'f:1: a variable name holds white space (is an "=" missing?)'],
    [encode("A\t=1"), 'f:1: a variable name holds white space (is an "=" missing?)'],
    [encode("\n\nA=x\0y"), "f:3: holds a NUL byte"],
  ];
  for (const [bytes, message] of cases) {
    assert.throws(
      () => parseEnvFile(bytes, "f"),
      (e) => e instanceof SboxError && e.message === `invalid option --env-file: ${message}`,
      message,
    );
  }
  // Bytes that are not UTF-8 are escaped as a host name's (cstring.ts), to be passed on as the same bytes.
  assert.deepEqual(parseEnvFile(new Uint8Array([0x41, 0x3d, 0x31, 0x0a, 0x42, 0xfe, 0x3d, 0xff]), "f"), [
    { line: 1, name: "A", value: "1" },
    { line: 2, name: "B\udcfe", value: "\udcff" },
  ]);
  // A line NAME takes sbox's value, as -e NAME does.
  const sources = {
    variable: (name: string) => ({ T: "t" })[name],
    readFile: () => encode("T\nU=1\nU\n"),
  };
  assert.deepEqual(commandEnvironment({ U: "0" }, [{ kind: "file", path: "/e" }], sources), { T: "t" });
});

Deno.test("cli: --rlimit AS=256M and FSIZE=1M:2M reach the command in bytes", async () => {
  const result = await sbox([
    "run",
    "--rlimit",
    "AS=256M",
    "--rlimit",
    "FSIZE=1M:2M",
    "--",
    "cat",
    "/proc/self/limits",
  ]);
  assert.equal(result.code, 0, result.stderr);
  const limit = (name: string) =>
    result.stdout.split("\n").find((l) => l.startsWith(name))?.split(/\s{2,}/).slice(1, 3);
  assert.deepEqual(limit("Max address space"), ["268435456", "268435456"]);
  assert.deepEqual(limit("Max file size"), ["1048576", "2097152"]);
});

Deno.test("cli: --rlimit above sbox's own hard limit says that it cannot be raised, and what sbox's is", async () => {
  const ownNofile = /^Max open files +\S+ +(\d+)/m.exec(Deno.readTextFileSync("/proc/self/limits"))![1];
  const above = String(BigInt(ownNofile) + 1n);
  for (const [value, asked] of [[`NOFILE=${above}`, above], ["NOFILE=64:unlimited", "unlimited"]]) {
    const result = await sbox(["run", "--rlimit", value, "--", "true"]);
    // It was "cannot set rlimit NOFILE: EPERM (Operation not permitted)".
    assertSboxFailed(
      result,
      new RegExp(
        `^sbox: cannot raise NOFILE's hard limit to ${asked}, above this process's ${ownNofile}: EPERM \\(`,
      ),
    );
    assertNothingLeft(result.pid);
  }
});

Deno.test("cli rlimits: ownLimits reads the soft or hard column of /proc/self/limits by resource", () => {
  const limits = [
    "Limit                     Soft Limit           Hard Limit           Units     ",
    "Max cpu time              unlimited            unlimited            seconds   ",
    "Max file size             1024                 12345678901234567890 bytes     ",
    "Max data size             unlimited            0                    bytes     ",
  ].join("\n");
  assert.deepEqual(ownLimits("hard", limits), [(1n << 64n) - 1n, 12345678901234567890n, 0n]);
  assert.deepEqual(ownLimits("soft", limits), [(1n << 64n) - 1n, 1024n, (1n << 64n) - 1n]);
  const own = ownLimits("hard");
  assert.equal(own.length, Object.keys(RLIMIT_RESOURCES).length);
  const nofile = /^Max open files +\S+ +(\d+)/m.exec(Deno.readTextFileSync("/proc/self/limits"))![1];
  assert.equal(own[RLIMIT_RESOURCES.NOFILE], BigInt(nofile));
});

Deno.test("cli: --net none has only loopback, and it is up", async () => {
  const result = await busybox([
    "--net",
    "none",
    // busybox ping needs a raw socket, which the default capabilities leave out.
    "--cap-add",
    "NET_RAW",
    "--",
    "sh",
    "-c",
    "ls /sys/class/net; cat /sys/class/net/lo/flags; ping -c 1 -W 2 127.0.0.1 >/dev/null && echo ping-ok",
  ]);
  assert.equal(result.code, 0, result.stderr);
  const [ifaces, flags, ping] = result.stdout.trimEnd().split("\n");
  assert.equal(ifaces, "lo");
  assert.equal(Number(flags) & 1, 1, "IFF_UP");
  assert.equal(ping, "ping-ok");
});

/** The interface names of /proc/net/dev (the network namespace of its reader), sorted. */
function interfaceNames(procNetDev: string): string[] {
  return procNetDev.split("\n").slice(2).map((line) => line.split(":")[0].trim()).filter((name) => name)
    .sort();
}

Deno.test("cli: --net host has the host's interfaces and reaches a listener on the host's 127.0.0.1", async () => {
  using listener = listenOnHostLoopback("from the host\n");
  const result = await busybox([
    "--net",
    "host",
    "--",
    "sh",
    "-c",
    `cat /proc/net/dev; echo ---; ls /sys/class/net; echo ---; nc 127.0.0.1 ${listener.port}`,
  ]);
  assert.equal(result.code, 0, result.stderr);
  const [procNetDev, sysClassNet, received] = result.stdout.split("---\n");
  const host = interfaceNames(Deno.readTextFileSync("/proc/net/dev"));
  assert.ok(host.length > 1, `the host has more than lo: ${host}`);
  assert.deepEqual(interfaceNames(procNetDev), host);
  assert.deepEqual(sysClassNet.trim().split(/\s+/).sort(), host);
  assert.equal(received, "from the host\n");
  await listener.served;
});

Deno.test("cli: --net host cannot change the host's network, even with NET_ADMIN added", async () => {
  const loFlags = () => Deno.readTextFileSync("/sys/class/net/lo/flags");
  const before = loFlags();
  const result = await busybox([
    "--net",
    "host",
    "--cap-add",
    "NET_ADMIN",
    "--",
    "sh",
    "-c",
    // NET_ADMIN of the container's user namespace, which does not own the
    // host's network namespace: both must fail.
    "ip link set lo down && echo lo-down; ip addr add 10.99.0.1/32 dev lo && echo added; echo done",
  ]);
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout, "done\n", result.stderr);
  assert.equal(result.stderr.match(/Operation not permitted/g)?.length, 2, result.stderr);
  assert.equal(loFlags(), before);
});

Deno.test("cli: --net host refuses --publish and --allow-host-loopback with 125, saying why", async () => {
  for (const option of [["--publish", "8080:80"], ["--allow-host-loopback"]]) {
    assertSboxFailed(
      await busybox(["--net", "host", ...option, "--", "true"]),
      new RegExp(
        `^sbox: invalid option ${
          option[0]
        }: means nothing with --net host: the container has the host's network`,
      ),
    );
  }
});

/**
 * What the container shows of /sys: a covered host mount, a write, the file
 * system at /sys/fs/cgroup (its magic number: 63677270 is cgroup2's).
 */
const SYS_PROBE = 'echo "security: $(ls -A /sys/kernel/security)"; ' +
  'echo "cpus: $(cat /sys/devices/system/cpu/online)"; ' +
  "(touch /sys/kernel/new 2>/dev/null && echo sys: wrote || echo sys: refused); " +
  'echo "cgroup: $(stat -f -c %t /sys/fs/cgroup)"';
const HOST_SYS_TEST =
  "cli: --net host binds the host's /sys read-only, with its mounts (directories and files) covered and its own cgroup2";
Deno.test({
  name: HOST_SYS_TEST,
  ignore: skipUnlessRoot(HOST_SYS_TEST, "it mounts below /sys in a mount namespace of its own (unshare -m)"),
  async fn() {
    // Host mounts below /sys, in a mount namespace of the test's own: a
    // directory, and a file bound over a sysfs file as lxcfs does. The
    // container must not see what they hold.
    const script = "mount -t tmpfs hostfs /sys/kernel/security && " +
      "echo host-only > /sys/kernel/security/host-file && " +
      "mount --bind /sys/kernel/security/host-file /sys/devices/system/cpu/online && " +
      `exec ${sboxOnBusyboxArgv(["--net", "host", "--", "sh", "-c", SYS_PROBE]).map(shellQuote).join(" ")}`;
    const output = await commandInOwnMountNamespace(["sh", "-c", script]).output();
    assert.equal(output.code, 0, text(output.stderr));
    assert.equal(text(output.stdout), "security: \ncpus: \nsys: refused\ncgroup: 63677270\n");
  },
});

// ---- exit status ------------------------------------------------------------

Deno.test("cli: exit status 0 and the command's own (7)", async () => {
  assert.equal((await busybox(["true"])).code, 0);
  const seven = await busybox(["sh", "-c", "exit 7"]);
  assert.equal(seven.code, 7);
  assert.equal(seven.stderr, "");
});

Deno.test("cli: 137 for a command killed by SIGKILL it sent itself (kill -9 $$)", async () => {
  // pid 1 is the reaper, so the command can die of its own signals.
  const result = await busybox(["--report", "-", "--", "sh", "-c", "kill -9 $$; echo survived"]);
  assert.equal(result.code, 137, result.stderr);
  assert.equal(result.stdout, "");
  const sg = report(result.stderr);
  assert.deepEqual([sg.status, sg.signal], ["SG", "SIGKILL"]);
  const aborted = await busybox(["--report", "-", "--", "sh", "-c", "kill -ABRT $$"]);
  assert.equal(aborted.code, 134, aborted.stderr);
  assert.equal(report(aborted.stderr).signal, "SIGABRT");
});

Deno.test("cli: 127 when the command is not found, 126 when it cannot be executed", async () => {
  const missing = await busybox(["/bin/nope"]);
  assert.equal(missing.code, 127);
  assert.equal(missing.stderr, "sbox: cannot exec /bin/nope: ENOENT (No such file or directory)\n");
  assert.equal((await busybox(["nope"])).code, 127);
  // Docker's -v SRC:DST is --verbose here: the bind becomes the command, and a hint says so.
  const dir = scratchDir("cli-bind-hint-");
  try {
    const asDocker = await busybox(["--report", `${dir}/r.json`, "-v", "/tmp:/s:ro", "--", "ls", "/s"]);
    assert.equal(asDocker.code, 127, asDocker.stderr);
    assert.equal(
      asDocker.stderr.trimEnd().split("\n").at(-1),
      "sbox: cannot exec /tmp:/s:ro: ENOENT (No such file or directory) (a bind is --bind SRC:DST; -v is --verbose)",
    );
    const report = JSON.parse(Deno.readTextFileSync(`${dir}/r.json`));
    assert.deepEqual([report.status, report.exitCode], ["RE", 127]);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }

  const notExecutable = await busybox(["/etc/passwd"]);
  assert.equal(notExecutable.code, 126);
  assert.equal(notExecutable.stderr, "sbox: cannot exec /etc/passwd: EACCES (Permission denied)\n");
  assertNothingLeft(notExecutable.pid);
});

Deno.test("cli: the line of a failed exec says when the program is a directory, and quotes a blank name", async () => {
  // A directory gave EACCES alone, which reads as a file without x; a blank
  // name showed as nothing between two spaces.
  const dir = scratchDir("cli-exec-line-");
  try {
    Deno.mkdirSync(`${dir}/sub`);
    const bind = ["--bind", `${dir}:/w:ro`];
    const cases: [string[], number, string][] = [
      [["/etc"], 126, "cannot exec /etc: EACCES (Permission denied): it is a directory"],
      [[...bind, "--", "/w/sub"], 126, "cannot exec /w/sub: EACCES (Permission denied): it is a directory"],
      [
        [...bind, "-w", "/w", "--", "./sub/"],
        126,
        "cannot exec ./sub/: EACCES (Permission denied): it is a directory",
      ],
      [[" "], 127, 'cannot exec " ": ENOENT (No such file or directory)'],
      [["\tprog"], 127, 'cannot exec "\\tprog": ENOENT (No such file or directory)'],
    ];
    for (const [args, code, line] of cases) {
      const result = await busybox(args);
      assert.equal(result.code, code, result.stderr);
      assert.equal(result.stderr, `sbox: ${line}\n`);
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("cli: 125 and one line when sbox itself fails", async () => {
  assertSboxFailed(
    await busybox(["-w", "/etc/passwd", "--", "true"]),
    /cannot change directory to \/etc\/passwd: ENOTDIR/,
  );
  assertSboxFailed(await sbox(["run", "--rootfs", "/nonexistent", "--", "true"]), /--rootfs.*\/nonexistent/);
});

Deno.test("cli: a control character in a path or an option's name cannot split the line, nor forge another", async () => {
  // A file name may hold a newline, and what follows it would be a line of
  // its own, which looks like sbox's to a judge that reads its log.
  const forged = "/nope/a\nsbox: forged";
  const shown = "/nope/a\\nsbox: forged";
  const cases: [string[], string][] = [
    [[`--stdin=${forged}`], `sbox: --stdin: cannot open ${shown}: ENOENT`],
    [[`--stdout=${forged}`], `sbox: --stdout: cannot open ${shown}: ENOENT`],
    [[`--report=${forged}`], `sbox: --report: cannot open ${shown}: ENOENT`],
    [[`--seccomp=${forged}`], `sbox: invalid option --seccomp: cannot open ${shown}: ENOENT`],
    [[`--env-file=${forged}`], `sbox: invalid option --env-file: cannot open ${shown}: ENOENT`],
    // SRC:DST, so no ":" in SRC.
    [["--bind", "/nope/a\nb\r:/x"], "sbox: invalid option --bind: /nope/a\\nb\\r does not exist"],
    [["--memory\nsbox: forged"], "sbox: unknown option --memory\\nsbox: forged (see `sbox run --help`)"],
    // A terminal's escape sequence; line separators that some readers split at.
    [
      ["--stdin=/nope/\x1b[2Ka\u2028b\u0085"],
      "sbox: --stdin: cannot open /nope/\\033[2Ka\\342\\200\\250b\\302\\205: ",
    ],
  ];
  for (const [args, start] of cases) {
    const result = await busybox([...args, "--", "true"]);
    assertSboxFailed(result, /./);
    assert.ok(
      result.stderr.startsWith(start),
      `expected ${JSON.stringify(start)}, got ${JSON.stringify(result.stderr)}`,
    );
    assertNothingLeft(result.pid);
  }
  // The line ends with a newline, and holds no other character that ends a line.
  const result = await busybox(["--stdin=/nope/\v\f\x1c\x1d\x1e", "--", "true"]);
  assert.equal(
    result.stderr,
    "sbox: --stdin: cannot open /nope/\\v\\f\\034\\035\\036: ENOENT (No such file or directory)\n",
  );
});

Deno.test("cli: a long value is shown by its start and its length", async () => {
  const result = await busybox([`--memory=${"x".repeat(100_000)}`, "--", "true"]);
  assertSboxFailed(
    result,
    /^sbox: invalid option --memory: bad value "x{200}\.\.\. \(a string of 100000 characters\): /,
  );
  assert.ok(result.stderr.length < 500, `${result.stderr.length} characters`);
});

Deno.test("cli: / as --rootfs, or as the destination of --bind or --tmpfs, fails with 125 naming the option", async () => {
  const dir = scratchDir("cli-root-");
  try {
    Deno.symlinkSync("/", `${dir}/root-link`);
    const rootfs =
      /^sbox: invalid option --rootfs: .* is the host's root \/, which is the default: leave --rootfs out$/;
    const cases: [string[], RegExp][] = [
      [["--rootfs", "/"], rootfs],
      [["--rootfs", "//."], rootfs],
      [["--rootfs", `${dir}/root-link`], rootfs],
      [["--rootfs", "/.."], rootfs],
      [["--bind", "/tmp:/"], /^sbox: invalid option --bind: bad value "\/tmp:\/": DST cannot be \//],
      [["--bind", "/tmp://:ro"], /^sbox: invalid option --bind: bad value "\/tmp:\/\/:ro": DST cannot be \//],
      [["--tmpfs", "/"], /^sbox: invalid option --tmpfs: bad value "\/": DST cannot be \//],
      [["--tmpfs", "/.:1M"], /^sbox: invalid option --tmpfs: bad value "\/.:1M": DST cannot be \//],
    ];
    for (const [args, pattern] of cases) {
      const result = await sbox(["run", ...args, "--", "true"]);
      assertSboxFailed(result, pattern);
      assertNothingLeft(result.pid);
    }
    // Relative to sbox's working directory.
    assertSboxFailed(await sbox(["run", "--rootfs", ".", "--", "true"], { cwd: "/" }), rootfs);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

// ---- the report -------------------------------------------------------------

Deno.test("cli: report OK to a file, RE to stderr", async () => {
  const dir = scratchDir("cli-report-");
  try {
    const ok = await busybox(["--report", `${dir}/ok.json`, "--", "true"]);
    assert.equal(ok.code, 0, ok.stderr);
    const text = Deno.readTextFileSync(`${dir}/ok.json`);
    const okReport = JSON.parse(text);
    assert.deepEqual(Object.keys(okReport), REPORT_KEYS);
    assert.deepEqual(Object.keys(okReport.cpu), ["usageUsec", "userUsec", "systemUsec"]);
    assert.equal(okReport.status, "OK");
    assert.equal(okReport.exitCode, 0);
    assert.equal(okReport.signal, null);
    assert.equal(typeof okReport.wallTimeMs, "number");
    assert.ok(okReport.wallTimeMs > 0);
    assert.ok(Number.isInteger(okReport.cpu.usageUsec));
    assert.equal(okReport.memoryPeakBytes, null, "this host's cgroup2 has no memory controller");
    assert.ok(
      Number.isInteger(okReport.maxRssBytes) && okReport.maxRssBytes > 0,
      String(okReport.maxRssBytes),
    );
    assert.equal(okReport.oomKilled, false);
    assert.equal(okReport.timedOut, false);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }

  const re = await busybox(["--report", "-", "--", "sh", "-c", "exit 3"]);
  assert.equal(re.code, 3);
  assert.deepEqual(
    { ...report(re.stderr), wallTimeMs: 0, cpu: 0, maxRssBytes: 0 },
    {
      status: "RE",
      exitCode: 3,
      signal: null,
      wallTimeMs: 0,
      cpu: 0,
      memoryPeakBytes: null,
      maxRssBytes: 0,
      oomKilled: false,
      timedOut: false,
    },
  );
  const notFound = await busybox(["--report", "-", "--", "/bin/nope"]);
  assert.equal(notFound.code, 127);
  assert.deepEqual([report(notFound.stderr).status, report(notFound.stderr).exitCode], ["RE", 127]);
});

Deno.test("cli: /dev/zero maps executable, as on the host (the device binds are read-only, not noexec)", async () => {
  const script = "import mmap, os\n" +
    "fd = os.open('/dev/zero', os.O_RDWR)\n" +
    "m = mmap.mmap(fd, 4096, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)\n" +
    "print('mapped', len(m))";
  const result = await sbox(["run", "--", "python3", "-c", script]);
  assert.deepEqual([result.code, result.stdout], [0, "mapped 4096\n"], result.stderr);
});

Deno.test("cli: the container's IPC namespace bounds SysV shared memory, semaphores and message queues", async () => {
  // The kernel's defaults for a new IPC namespace bound nothing (shmmax
  // 2^64): kernel memory no rlimit counts. python3 from the host's root.
  const script = [
    "import ctypes, os",
    "libc = ctypes.CDLL(None, use_errno=True)",
    "def shm(size):",
    "    i = libc.shmget(0, ctypes.c_size_t(size), 0o1600)",
    "    if i < 0: return os.strerror(ctypes.get_errno())",
    "    libc.shmctl(i, 0, None)",
    "    return 'ok'",
    "def sem(n):",
    "    i = libc.semget(0, n, 0o1600)",
    "    if i < 0: return os.strerror(ctypes.get_errno())",
    "    libc.semctl(i, 0, 0)",
    "    return 'ok'",
    "print(shm(32 << 20), shm(128 << 20), sem(250), sem(1000))",
    "print(open('/proc/sys/kernel/msgmni').read().strip())",
  ].join("\n");
  const result = await sbox(["run", "--", "python3", "-c", script]);
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout, "ok Invalid argument ok Invalid argument\n256\n");
});

Deno.test("cli: --wall-time is judged by pid 1's clock: a command that ended in time while sbox lagged is OK", async () => {
  // sbox stopped (as a loaded machine would delay its event loop) while the
  // command ends at 0.5 s; it wakes after the 1 s limit has passed.
  const child = await startUntilReady([
    "--wall-time",
    "1s",
    "--report",
    "-",
    "--",
    "sh",
    "-c",
    "echo ready; sleep 0.5",
  ]);
  Deno.kill(child.pid, "SIGSTOP");
  await new Promise((resolve) => setTimeout(resolve, 1500));
  Deno.kill(child.pid, "SIGCONT");
  const output = await child.output();
  const stderr = text(output.stderr);
  const ok = report(stderr);
  assert.deepEqual([output.code, ok.status, ok.timedOut], [0, "OK", false], stderr);
  const wall = ok.wallTimeMs as number;
  assert.ok(wall >= 500 && wall < 1000, `wallTimeMs ${wall}: the command's, not sbox's 1.5 s pause`);
});

// The --wall-time timer fired early (Deno's timers drop a delay's fraction,
// and the delay had one: the limit less the command's time so far), and
// killed the command before the limit by pid 1's clock: the report, judged
// by that clock, then said a command killed within its limit (RE), not TO.
Deno.test("cli: --wall-time never kills before the limit by pid 1's clock, even when timers fire early: TO", async () => {
  const earlyTimers = decodeURIComponent(new URL("./programs/early_timers.ts", import.meta.url).pathname);
  const runs = await Promise.all(Array.from({ length: 6 }, () =>
    sbox(
      ["run", "--rootfs", busyboxImage(), "--wall-time", "100.5ms", "--report", "-", "--", "sleep", "10"],
      { preload: earlyTimers },
    )));
  for (const run of runs) {
    const killed = report(run.stderr);
    assert.deepEqual(
      [run.code, killed.status, killed.signal, killed.timedOut],
      [137, "TO", "SIGKILL", true],
      run.stderr,
    );
    assert.ok((killed.wallTimeMs as number) > 100.5, `wallTimeMs ${killed.wallTimeMs}`);
    assertNothingLeft(run.pid);
  }
});

Deno.test("cli: times count from the command's start: a command that never ran used no time", async () => {
  // The setup's CPU (3-6 ms) comes off the cgroup's figure (pid 1 reports
  // it: container_test checks InitProcess.setupCpuUsec), and the clock
  // starts at the command's start; so a command whose exec failed used none.
  const notFound = report((await busybox(["--report", "-", "--", "/bin/nope"])).stderr);
  assert.deepEqual([notFound.wallTimeMs, notFound.cpu], [0, { usageUsec: 0, userUsec: 0, systemUsec: 0 }]);
  assert.equal(notFound.maxRssBytes, null);
});

Deno.test("cli: maxRssBytes is the command's own peak resident set: 64 MiB held by tail, little for true", async () => {
  const MiB = 1 << 20;
  // tail keeps its input's last ten lines: 64 MiB without a newline is one.
  const big = await busybox(["--report", "-", "--", "sh", "-c", "head -c 64m /dev/zero | tail >/dev/null"]);
  assert.equal(big.code, 0, big.stderr);
  const bigRss = report(big.stderr).maxRssBytes as number;
  assert.ok(bigRss >= 64 * MiB && bigRss < 80 * MiB, `maxRssBytes ${bigRss}`);
  // The command's process starts from pid 1's memory: not from a copy of
  // sbox's own (tens of MiB, which the kernel would count in its peak).
  const small = await busybox(["--report", "-", "--", "true"]);
  assert.equal(small.code, 0, small.stderr);
  const smallRss = report(small.stderr).maxRssBytes as number;
  assert.ok(smallRss > 0 && smallRss < 8 * MiB, `maxRssBytes ${smallRss}`);
});

Deno.test("cli: a command that replaces or writes its --report file in its read-write bind gets XX, and the report back", async () => {
  const dir = scratchDir("cli-report-spoof-");
  try {
    const fake = '{"status":"OK","exitCode":0}';
    const cases: [string, string, RegExp][] = [
      // Unlinked and made anew: sbox's report went to the unlinked file.
      ["rm /ws/rep.json /ws/job.out; echo 'all tests passed' > /ws/job.out", "replaced", /was replaced/],
      // Written in place, longer than the report: its last line stayed.
      [`printf '%400s\\n' '' > /ws/rep.json`, "written", /was written to/],
    ];
    for (const [script, how, message] of cases) {
      const ws = `${dir}/${how}`;
      Deno.mkdirSync(ws);
      const result = await busybox([
        "--bind",
        `${ws}:/ws`,
        "--report",
        `${ws}/rep.json`,
        "--stdout",
        `${ws}/job.out`,
        "--",
        "sh",
        "-c",
        `echo 'real output'; ${script}; echo '${fake}' >> /ws/rep.json; exit 3`,
      ]);
      assert.equal(result.code, 125, result.stderr);
      assert.match(result.stderr, new RegExp(`^sbox: --report \\S+/rep.json ${message.source}`, "m"));
      // One line of JSON, sbox's: the run's figures, and XX.
      const written = JSON.parse(Deno.readTextFileSync(`${ws}/rep.json`));
      assert.deepEqual([written.status, written.exitCode], ["XX", 3], how);
      if (how === "replaced") {
        // The output cannot be put back (it went to the unlinked file): said.
        assert.match(result.stderr, /^sbox: warning: --stdout \S+\/job.out was replaced during the run/m);
      }
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("cli: a command line that does not parse still writes an XX report to its --report FILE", async () => {
  const dir = scratchDir("cli-report-xx-");
  try {
    const file = `${dir}/r.json`;
    const cases: [string[], RegExp][] = [
      [["--report", file, "--memory", "64MB", "--", "true"], /--memory: bad value "64MB"/],
      [["--bogus", `--report=${file}`, "--", "true"], /unknown option --bogus/],
      [["--report", file], /missing COMMAND/],
      [["--report", file, "--rootfs", "/nonexistent-image", "--", "true"], /--rootfs/],
      // Docker's -h NAME (--hostname): read as help, it ran nothing, exited 0 and left the stale report.
      [
        ["--report", file, "-h", "judge1", "--", "true"],
        /^sbox: -h is --help, which takes no other arguments; the hostname option is --hostname/,
      ],
      [["--report", file, "--help", "--", "true"], /^sbox: --help takes no other arguments/],
    ];
    for (const [args, pattern] of cases) {
      Deno.writeTextFileSync(file, "STALE\n");
      const result = await sbox(["run", ...args]);
      assertSboxFailed(result, pattern);
      assert.deepEqual(JSON.parse(Deno.readTextFileSync(file)), {
        status: "XX",
        exitCode: null,
        signal: null,
        wallTimeMs: 0,
        cpu: { usageUsec: 0, userUsec: 0, systemUsec: 0 },
        memoryPeakBytes: null,
        maxRssBytes: null,
        oomKilled: false,
        timedOut: false,
      }, args.join(" "));
    }
    // --report - goes to stderr, after the line that says why.
    const toStderr = await sbox(["run", "--report", "-", "--bogus", "--", "true"]);
    assert.equal(toStderr.code, 125);
    assert.match(toStderr.stderr, /^sbox: unknown option --bogus/);
    assert.equal(report(toStderr.stderr).status, "XX");
    // Where --report is not surely sbox's option, nothing is written.
    for (const args of [["--bogus", "--", "prog", "--report", file], ["-e", "--report", file]]) {
      Deno.writeTextFileSync(file, "STALE\n");
      assert.equal((await sbox(["run", ...args])).code, 125);
      assert.equal(Deno.readTextFileSync(file), "STALE\n", args.join(" "));
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("cli: sbox empties a stale report before it loads the rest of its code", async () => {
  // A signal while Deno loads sbox's modules (tens of milliseconds, more
  // under load) ends sbox before any handler of its own is set: the report
  // left was the earlier run's, an OK say. Here the rest of sbox fails to
  // load instead (an import map sends src/cli/main.ts to a module that
  // throws), which ends sbox at the same point every time.
  const dir = scratchDir("cli-stale-report-");
  try {
    const unloadable = `${dir}/unloadable.ts`;
    Deno.writeTextFileSync(
      unloadable,
      'export function main() {}\nthrow new Error("the rest of sbox did not load");\n',
    );
    const main = new URL("../src/cli/main.ts", import.meta.url).href;
    const map = `${dir}/map.json`;
    Deno.writeTextFileSync(map, JSON.stringify({ imports: { [main]: `file://${unloadable}` } }));
    const cutShort = async (args: string[]) => {
      const output = await new Deno.Command(Deno.execPath(), {
        args: ["run", "--allow-ffi", "--import-map", map, SBOX, "run", ...args],
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
        signal: AbortSignal.timeout(COMMAND_TIMEOUT_MS),
      }).output();
      assert.notEqual(output.code, 0);
      assert.match(text(output.stderr), /the rest of sbox did not load/);
    };
    const file = `${dir}/r.json`;
    Deno.writeTextFileSync(file, "STALE\n");
    await cutShort(["--report", file, "--", "true"]);
    assert.equal(Deno.readTextFileSync(file), "");
    // A name that is not UTF-8 (Deno.args has U+FFFD for its byte): the file of its bytes.
    const latin1 = await new Deno.Command("bash", {
      args: [
        "-c",
        `f="$3"/r$'\\xff'.json; echo STALE > "$f"; "$0" run --allow-ffi --import-map "$1" "$2" run ` +
        `--report "$f" -- true; wc -c < "$f"`,
        Deno.execPath(),
        map,
        SBOX,
        dir,
      ],
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(COMMAND_TIMEOUT_MS),
    }).output();
    assert.match(text(latin1.stderr), /the rest of sbox did not load/);
    assert.equal(text(latin1.stdout).trim(), "0");
    // Left alone: a report that is the --stdin file (by another name too),
    // which sbox refuses rather than empty the input; a --report among the
    // command's arguments; a file that is not there (nothing is created).
    Deno.linkSync(file, `${dir}/input`);
    const untouched = [
      ["--stdin", `${dir}/input`, "--report", file, "--", "cat"],
      ["--", "true", "--report", file],
    ];
    for (const args of untouched) {
      Deno.writeTextFileSync(file, "STALE\n");
      await cutShort(args);
      assert.equal(Deno.readTextFileSync(file), "STALE\n", args.join(" "));
    }
    await cutShort(["--report", `${dir}/new.json`, "--", "true"]);
    assert.throws(() => Deno.statSync(`${dir}/new.json`), Deno.errors.NotFound);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

/** Runs `argv` (Deno's path first) through sh as `exec argv REDIRECT`, after `setup`. */
async function inShell(argv: string[], redirect: string, setup = ""): Promise<Result> {
  const child = new Deno.Command("sh", {
    args: ["-c", `${setup}\nexec "$@" ${redirect}`, "sh", ...argv],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(COMMAND_TIMEOUT_MS),
  }).spawn();
  return { ...await outputOf(child), pid: child.pid };
}

// `--report /dev/stdout > out.txt` emptied out.txt and wrote the report over
// the command's output; the run then turned XX (the report "written to
// during the run") with a line blaming the command. With /dev/stderr, sbox's
// own line went over the report. Refused now, before the file is emptied;
// into a pipe /dev/stdout works as before, the report after the output.
Deno.test("cli: --report naming the file of sbox's own stdout or stderr is refused; into a pipe it works", async () => {
  const dir = scratchDir("cli-report-own-output-");
  try {
    const log = `${dir}/log`;
    const cases: [string[], string, string][] = [
      [["--report", "/dev/stdout"], `>>${log}`, "stdout, which the command writes to"],
      [["--report", log], `>>${log}`, "stdout, which the command writes to"],
      [["--report", "/dev/stderr"], `2>>${log}`, "stderr, where sbox writes its own lines"],
      [["--stderr", `${dir}/err`, "--report", "/dev/stderr"], `2>>${log}`, "stderr, where sbox writes"],
    ];
    for (const [args, redirect, what] of cases) {
      Deno.writeTextFileSync(log, "kept\n");
      const result = await inShell(
        sboxArgv([...args, "--", "sh", "-c", "echo out; echo err >&2; exit 3"]),
        redirect,
      );
      const shown = redirect.startsWith("2") ? Deno.readTextFileSync(log) : result.stderr;
      const message = `${args.join(" ")} ${redirect}: ${shown}`;
      assert.equal(result.code, 125, message);
      assert.ok(shown.includes(`is the file of sbox's ${what}`), message);
      assert.ok(Deno.readTextFileSync(log).startsWith("kept\n"), message);
      assert.ok(!Deno.readTextFileSync(log).includes("out\n"), `the command ran: ${message}`);
    }
    // With --stdout, the command does not write to sbox's stdout.
    Deno.writeTextFileSync(log, "");
    const given = await inShell(
      sboxArgv(["--stdout", `${dir}/out`, "--report", "/dev/stdout", "--", "echo", "out"]),
      `>>${log}`,
    );
    assert.equal(given.code, 0, given.stderr);
    assert.equal(report(Deno.readTextFileSync(log)).status, "OK");
    // Into a pipe: the output, then the report.
    const piped = await inShell(
      sboxArgv(["--report", "/dev/stdout", "--", "sh", "-c", "echo out; exit 3"]),
      "",
    );
    assert.equal(piped.code, 3, piped.stderr);
    assert.match(piped.stdout, /^out\n\{"status":"RE","exitCode":3,/);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("cli: a stderr that cannot be written loses neither the report nor the exit status", async () => {
  // A line of sbox's on such a stderr threw: the run ended with status 1
  // and an empty report (or, over a file-size limit, died of SIGXFSZ).
  const dir = scratchDir("cli-stderr-full-");
  try {
    const file = `${dir}/r.json`;
    // A log past the file-size limit, which sbox's stderr appends to: sparse,
    // past the limit whether sh counts it in blocks of 512 or 1024 bytes.
    const log = `${dir}/log`;
    Deno.writeFileSync(log, new Uint8Array());
    Deno.truncateSync(log, 1100 * 2 ** 20);
    const overLimit = ["ulimit -f 1048576", `2>>${log}`] as const;
    // Not a fixed name such as /nonexistent, which a process of the host can
    // make (an executable there that writes to stderr dies of SIGXFSZ: 153).
    const missing = `/nonexistent-${randomName()}`;
    const cases: [string, string, string[], number, string][] = [
      ["", "2>/dev/full", ["--verbose", "--", missing], 127, "RE"],
      ["", "2>/dev/full", ["--bogus", "--", "true"], 125, "XX"],
      [overLimit[0], overLimit[1], ["--", missing], 127, "RE"],
      [overLimit[0], overLimit[1], ["--bogus", "--", "true"], 125, "XX"],
    ];
    for (const [setup, redirect, args, code, status] of cases) {
      Deno.writeTextFileSync(file, "STALE\n");
      const result = await inShell(sboxArgv(["--report", file, ...args]), redirect, setup);
      const what = `${setup} ${redirect} ${args.join(" ")}`;
      assert.equal(result.code, code, what);
      assert.equal(JSON.parse(Deno.readTextFileSync(file)).status, status, what);
    }
    assert.equal(Deno.statSync(log).size, 1100 * 2 ** 20, "a line was written past the limit");
    // The report to stderr cannot be written there: sbox failed.
    assert.equal((await inShell(sboxArgv(["--report", "-", "--", "true"]), "2>/dev/full")).code, 125);
    // So for --version (or --help) to a stdout that cannot be written, which ended with a trace.
    const version = await inShell([Deno.execPath(), "run", "--allow-ffi", SBOX, "--version"], ">/dev/full");
    assert.equal(version.code, 125, version.stderr);
    assert.match(version.stderr, /^sbox: cannot write to stdout: No space left on device/);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("cli: a line past a file-size limit at sbox's end does not end the process that runs sbox's main", async () => {
  // SIGXFSZ was a no-op listener's, removed as main returned. Deno passes a
  // signal on to the listeners later, from another thread, and ends the
  // process by its default action where none is left by then: the line of
  // a failed run (past the limit) ended the process with 153 once main had
  // returned (the CLI itself now and then, under load: it exits at once).
  // That thread gets its turn as soon as main has returned in a program
  // that embeds main and goes on; as root, pinned to one CPU at a real-time
  // priority, not before: the main thread keeps the CPU until it waits.
  const dir = scratchDir("cli-fsize-end-");
  try {
    const log = `${dir}/log`;
    Deno.writeFileSync(log, new Uint8Array());
    Deno.truncateSync(log, 1100 * 2 ** 20);
    const program = decodeURIComponent(new URL("./programs/embedded_main.ts", import.meta.url).pathname);
    const cpu = /^Cpus_allowed_list:\s*(\d+)/m.exec(Deno.readTextFileSync("/proc/self/status"))![1];
    const pinned = isRoot ? ["taskset", "-c", cpu, "chrt", "-f", "1"] : [];
    const report = `${dir}/r.json`;
    // Without --allow-ffi, sbox only says what it needs: a listener then.
    const cases: [string[], string[], number][] = [
      [["--allow-ffi"], ["--bogus", "--", "true"], 125],
      [["--allow-ffi"], ["--report", report, "--", `/nonexistent-${randomName()}`], 127],
      [[], ["--", "true"], 125],
    ];
    for (const [permissions, args, code] of cases) {
      const argv = [...pinned, Deno.execPath(), "run", ...permissions, program, "run", ...args];
      const result = await inShell(argv, `2>>${log}`, "ulimit -f 1048576");
      const what = [...permissions, ...args].join(" ");
      assert.equal(result.code, code, what);
      assert.equal(result.stdout, `alive ${code}\n`, what);
    }
    assert.equal(JSON.parse(Deno.readTextFileSync(report)).status, "RE");
    assert.equal(Deno.statSync(log).size, 1100 * 2 ** 20, "a line was written past the limit");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("cli: report SG when the command is killed by a signal", async () => {
  const marker = randomName();
  const child = await startUntilReady([
    "--report",
    "-",
    "--",
    "sh",
    "-c",
    `echo ready; sleep 1000; : ${marker}`,
  ]);
  // The command (pid 2 inside, under the reaper) killed from the host.
  const [init] = processesWith(marker).filter((pid) =>
    Deno.readTextFileSync(`/proc/${pid}/cmdline`).startsWith("sh")
  );
  assert.ok(init, "the container's first process is not visible on the host");
  Deno.kill(init, "SIGKILL");
  const output = await child.output();
  assert.equal(output.code, 137);
  const sg = report(text(output.stderr));
  assert.deepEqual([sg.status, sg.exitCode, sg.signal, sg.timedOut], ["SG", null, "SIGKILL", false]);
  assertNothingLeft(child.pid);
});

Deno.test("cli: report TO for CPU time burnt by a forked process; the whole container is killed", async () => {
  const marker = randomName();
  const result = await busybox([
    "--time",
    "300ms",
    "--report",
    "-",
    "--",
    "sh",
    "-c",
    `sh -c "while :; do :; done; : ${marker}" & sleep 1000 & wait`,
  ]);
  assert.equal(result.code, 137, result.stderr);
  assert.match(result.stderr, /^sbox: CPU-time limit of 300ms exceeded \(--time\)/);
  const to = report(result.stderr);
  assert.deepEqual([to.status, to.exitCode, to.signal, to.timedOut], ["TO", null, "SIGKILL", true]);
  assert.ok((to.cpu as { usageUsec: number }).usageUsec >= 300_000, `cpu ${JSON.stringify(to.cpu)}`);
  // pid 1 killed the rest and reported: the peak of what it reaped (the
  // shell, busybox: about a MiB), as a judge shows for a run over its limit.
  assert.ok(typeof to.maxRssBytes === "number" && to.maxRssBytes > 0, `maxRssBytes ${to.maxRssBytes}`);
  assert.deepEqual(processesWith(marker), []);
  assertNothingLeft(result.pid);
});

/** About 100 ms of a shell's CPU. */
const BUSY_LOOP = "i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done";

Deno.test("cli: --extra-time moves the kill, not the limit: a command that ends in it is TO with its own status", async () => {
  // The busy loop, then `end`, under --time 10ms.
  const busy = (extra: string, end: string) =>
    busybox([
      "--time",
      "10ms",
      "--extra-time",
      extra,
      "--report",
      "-",
      "--",
      "sh",
      "-c",
      `${BUSY_LOOP}; ${end}`,
    ]);
  const ended =
    /^sbox: CPU-time limit of 10ms exceeded \(--time\): the command ended within --extra-time 60000ms$/m;
  // Over --time by far, within --time plus --extra-time: not killed, TO.
  const cpu = await busy("60s", "exit 4");
  assert.equal(cpu.code, 4, cpu.stderr);
  assert.match(cpu.stderr, ended);
  const over = report(cpu.stderr);
  assert.deepEqual([over.status, over.exitCode, over.signal, over.timedOut], ["TO", 4, null, true]);
  assert.ok((over.cpu as { usageUsec: number }).usageUsec > 10_000, `cpu ${JSON.stringify(over.cpu)}`);
  // A command that kills itself in the extra time was not killed by sbox
  // (the line said "the container was killed" for any SIGKILL).
  const selfKilled = await busy("60s", "kill -KILL $$");
  assert.equal(selfKilled.code, 137, selfKilled.stderr);
  assert.match(selfKilled.stderr, ended);
  assert.equal(report(selfKilled.stderr).status, "TO");
  // isolate's default -x 0: no extra time, the kill at the limit.
  const none = await busy("0s", "while :; do :; done");
  assert.equal(none.code, 137, none.stderr);
  assert.match(none.stderr, /^sbox: CPU-time limit of 10ms exceeded \(--time\): the container was killed$/m);
  // Past both, the container is killed as without it.
  const wall = await busybox([
    "--wall-time",
    "100ms",
    "--extra-time",
    "200ms",
    "--report",
    "-",
    "--",
    "sleep",
    "60",
  ]);
  assert.equal(wall.code, 137, wall.stderr);
  assert.match(
    wall.stderr,
    /^sbox: wall-clock limit of 100ms exceeded \(--wall-time\): the container was killed$/m,
  );
  const killed = report(wall.stderr);
  assert.deepEqual([killed.status, killed.signal, killed.timedOut], ["TO", "SIGKILL", true]);
  assert.ok((killed.wallTimeMs as number) >= 300, `wallTimeMs ${killed.wallTimeMs}`);
  assertNothingLeft(wall.pid);
});

Deno.test("cli: report TO for wall-clock time; no process and no cgroup is left", async () => {
  const marker = randomName();
  const result = await busybox([
    "--wall-time",
    "500ms",
    "--report",
    "-",
    "--",
    "sh",
    "-c",
    `sh -c "while :; do :; done; : ${marker}" & sh -c "sleep 1000; : ${marker}" & wait`,
  ]);
  assert.equal(result.code, 137, result.stderr);
  assert.match(result.stderr, /^sbox: wall-clock limit of 500ms exceeded \(--wall-time\)/);
  const to = report(result.stderr);
  assert.deepEqual([to.status, to.signal, to.timedOut], ["TO", "SIGKILL", true]);
  assert.ok((to.wallTimeMs as number) >= 500);
  assert.deepEqual(processesWith(marker), [], "processes of the container are still running");
  assertNothingLeft(result.pid);
});

/**
 * Sends `signal` (number `number`) to a running `sbox run`: it must kill the
 * container, say so, report XX, exit 128+N and leave nothing.
 */
async function assertStoppedBy(signal: Deno.Signal, number: number): Promise<void> {
  const marker = randomName();
  const child = await startUntilReady([
    "--report",
    "-",
    "--",
    "sh",
    "-c",
    `echo ready; sh -c "sleep 1000; : ${marker}"`,
  ]);
  child.kill(signal);
  const output = await child.output();
  const stderr = text(output.stderr);
  assert.equal(output.code, 128 + number, `${signal}: ${stderr}`);
  // Dead of it, once it had cleaned up: not an exit with 128+N.
  assert.equal(output.signal, signal, stderr);
  assert.match(stderr, new RegExp(`^sbox: interrupted by ${signal}: the container was killed$`, "m"));
  assert.equal(report(stderr).status, "XX");
  assert.deepEqual(processesWith(marker), []);
  assertNothingLeft(child.pid);
}

Deno.test("cli: SIGINT to sbox kills the container and cleans up", () => assertStoppedBy("SIGINT", 2));

/**
 * Runs `sbox run ARGS` with stderr a pipe that is full from the start, so
 * that sbox's first write there waits; `whileRunning` runs once the run has
 * begun, and `signal` is sent to sbox once it waits to write. Returns what
 * sbox wrote on stderr and how it ended.
 */
async function signalledWhileWritingStderr(
  args: string[],
  signal: Deno.Signal,
  whileRunning: (pid: number) => Promise<void> = () => Promise.resolve(),
): Promise<{ stderr: string; status: Deno.CommandStatus; pid: number }> {
  const dir = scratchDir("cli-full-stderr-");
  try {
    const fifo = `${dir}/stderr`;
    assert.ok(new Deno.Command("mkfifo", { args: [fifo] }).outputSync().success);
    // Read and write: the open waits for no one, and the pipe stays open.
    const pipe = Deno.openSync(fifo, { read: true, write: true });
    try {
      const filler = new Uint8Array(65536); // a pipe's default capacity
      assert.equal(pipe.writeSync(filler), filler.length);
      const child = new Deno.Command("sh", {
        args: ["-c", 'f="$1"; shift; exec "$@" 2>"$f"', "sh", fifo, ...sboxArgv(args)],
        stdin: "null",
        stdout: "null",
        stderr: "inherit",
        signal: AbortSignal.timeout(COMMAND_TIMEOUT_MS),
      }).spawn();
      await whileRunning(child.pid);
      // pipe_write, anon_pipe_write since Linux 6.16 or so.
      while (!/pipe_write$/.test(Deno.readTextFileSync(`/proc/${child.pid}/wchan`))) {
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      child.kill(signal);
      // Time for Deno to take the signal, and for its default action if it would.
      await new Promise((resolve) => setTimeout(resolve, 300));
      const buffer = new Uint8Array(65536);
      for (let drained = 0; drained < filler.length;) {
        drained += pipe.readSync(buffer.subarray(0, filler.length - drained))!;
      }
      const status = await child.status;
      const end = "\nEND\n";
      pipe.writeSync(new TextEncoder().encode(end));
      let stderr = "";
      while (!stderr.endsWith(end)) stderr += text(buffer.subarray(0, pipe.readSync(buffer)!));
      return { stderr: stderr.slice(0, -end.length), status, pid: child.pid };
    } finally {
      pipe.close();
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

// sbox stopped listening for signals as the run returned, before it wrote
// the report and its lines: a signal then (a second Ctrl-C during the
// cleanup, a timeout's that expires as the command ends) ended sbox by its
// default action, with no report or no line, and 128+N for a run that had
// ended OK. Here the report waits on a full stderr while the signal comes.
Deno.test("cli: a signal while sbox writes the report of a decided run changes neither the report nor the status", async () => {
  const ok = await signalledWhileWritingStderr(["--report", "-", "--", "sh", "-c", "exit 3"], "SIGTERM");
  assert.equal(ok.status.signal, null, ok.stderr);
  assert.equal(ok.status.code, 3, ok.stderr);
  const re = report(ok.stderr);
  assert.deepEqual([re.status, re.exitCode], ["RE", 3]);
  assertNothingLeft(ok.pid);
  // Interrupted by SIGINT, then a SIGTERM during the line and the report:
  // sbox still says so, reports XX, and dies of the first.
  const marker = randomName();
  const interrupted = await signalledWhileWritingStderr(
    ["--report", "-", "--", "sh", "-c", `sleep 1000; : ${marker}`],
    "SIGTERM",
    async (pid) => {
      // The container's shell (sbox's own command line holds the marker too).
      while (processesWith(marker).every((found) => found === pid)) {
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      Deno.kill(pid, "SIGINT");
    },
  );
  assert.equal(interrupted.status.signal, "SIGINT", interrupted.stderr);
  assert.match(interrupted.stderr, /^sbox: interrupted by SIGINT: the container was killed$/m);
  assert.equal(report(interrupted.stderr).status, "XX");
  assert.deepEqual(processesWith(marker), []);
  assertNothingLeft(interrupted.pid);
});

/** `sbox` in a shell command line of {@linkcode onTerminal}, whatever the paths hold. */
const SBOX_IN_SHELL = '"$DENO" run --allow-ffi "$SBOX_TS"';

/** One step of {@linkcode onTerminal}. */
interface TerminalStep {
  /** Text the terminal must show, after what the previous step waited for. */
  waitFor: string;
  /** Runs once it has, before `keys` are typed (it records; an assertion there would leave `line` hanging). */
  look?: () => Promise<void>;
  /** What is typed then. */
  keys: string;
}

/**
 * Runs shell command line `line` on a pseudo-terminal (util-linux's
 * `script`), goes through `steps` in order (once the output shows a step's
 * text, types its keys), and returns what the terminal showed and how
 * `script` ended (the status of `line`, 128+N for a death by signal N). A
 * step whose text never comes and those after it are skipped.
 * {@linkcode SBOX_IN_SHELL} in `line` runs `sbox`.
 */
async function onTerminal(
  line: string,
  steps: readonly TerminalStep[],
): Promise<{ shown: string; code: number }> {
  const child = new Deno.Command("/usr/bin/script", {
    args: ["-qefc", line, "/dev/null"],
    // script runs `line` with $SHELL: bash's own way with a Ctrl-C, whoever runs the tests.
    env: { DENO: Deno.execPath(), SBOX_TS: SBOX, SHELL: "/bin/bash" },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(COMMAND_TIMEOUT_MS),
  }).spawn();
  const writer = child.stdin.getWriter();
  let shown = "";
  const reader = child.stdout.getReader();
  let from = 0;
  let ended = false;
  for (const step of steps) {
    while (!ended && shown.indexOf(step.waitFor, from) < 0) {
      const { value, done } = await reader.read();
      if (done) ended = true;
      else shown += text(value);
    }
    if (ended) break;
    from = shown.indexOf(step.waitFor, from) + step.waitFor.length;
    await step.look?.();
    await writer.write(new TextEncoder().encode(step.keys));
  }
  while (!ended) {
    const { value, done } = await reader.read();
    if (done) ended = true;
    else shown += text(value);
  }
  await writer.close().catch(() => {});
  const { code } = await child.status;
  await child.stderr.cancel();
  return { shown, code };
}

// With the terminal on its stdin, sbox ran as the one foreground program:
// Ctrl-C killed the whole container, even at an idle shell prompt, with its
// writes. Now the keys go to the command's process group, as in a terminal.
Deno.test("cli: on a terminal, Ctrl-C interrupts the command's running program, not the container", async () => {
  const image = shellQuote(busyboxImage());
  // "ready" comes from the child that then becomes sleep: a Ctrl-C right after it finds the child either way.
  const script = shellQuote(
    'trap "echo trapped" INT; sh -c "echo ready; exec sleep 10"; echo "after $?"; exit 3',
  );
  const { shown, code } = await onTerminal(
    `exec ${SBOX_IN_SHELL} run --rootfs ${image} -- sh -c ${script}`,
    [{ waitFor: "ready", keys: "\x03" }],
  );
  assert.match(shown, /trapped\r?\nafter 130\r?\n/, shown);
  assert.doesNotMatch(shown, /interrupted by SIGINT/);
  assert.equal(code, 3, shown);
  // The command dies of it, and so does sbox: a shell's loop of runs stops
  // there, as for any program (it went on when sbox exited 130).
  const loop = `for i in 1 2; do ${SBOX_IN_SHELL} run --rootfs ${image} -- sh -c 'echo ready; sleep 5'; ` +
    'echo "loop $i $?"; done';
  const died = await onTerminal(`exec bash -c ${shellQuote(loop)}`, [{ waitFor: "ready", keys: "\x03" }]);
  assert.doesNotMatch(died.shown, /loop 1/, died.shown);
  assert.equal(died.code, 128 + 2, died.shown);
});

Deno.test("cli: Ctrl-C ends a shell's loop of runs that read --stdin files", async () => {
  // Interrupted, sbox exited 130. bash goes on with a loop after a child
  // that exits, whatever its status, and stops after one that dies of
  // SIGINT: Ctrl-C on a grader's loop of tests skipped one test at a time.
  const image = shellQuote(busyboxImage());
  const loop = `for i in 1 2; do ${SBOX_IN_SHELL} run --rootfs ${image} --stdin /dev/null -- ` +
    `sh -c 'echo ready; sleep 5'; echo "loop $i $?"; done`;
  const died = await onTerminal(`exec bash -c ${shellQuote(loop)}`, [{ waitFor: "ready", keys: "\x03" }]);
  assert.match(died.shown, /interrupted by SIGINT: the container was killed/, died.shown);
  assert.doesNotMatch(died.shown, /loop 1/, died.shown);
  assert.equal(died.code, 128 + 2, died.shown);
});

/**
 * The states of the processes of a run given `-e MARK=<marker>`: sbox's
 * (the one whose command line holds the marker and starts with Deno) and
 * those of the container (with the marker in their environment).
 */
function markedStates(marker: string): { sbox: string[]; container: string[] } {
  const sbox = processesWith(marker).filter((pid) => {
    try {
      return Deno.readTextFileSync(`/proc/${pid}/cmdline`).split("\0")[0] === Deno.execPath();
    } catch {
      return false;
    }
  });
  return { sbox: sbox.map(processState), container: processesWith(marker, ["environ"]).map(processState) };
}

// Ctrl-Z stopped sbox alone: the container, in a session of its own, ran on
// unwatched by the time limits and went on reading the terminal that the
// user's shell had taken back, so the keys typed were split between them.
Deno.test("cli: on a terminal, Ctrl-Z stops the command's processes with sbox, and fg continues them", async () => {
  const image = shellQuote(busyboxImage());
  const marker = randomName();
  // Texts waited for after `fg` hold "$?": bash's `fg` prints the job's command line.
  const inner = 'echo ready; sleep 2; echo "slept $?"; exec sleep 10';
  const outer = `trap "echo trapped" INT; sh -c ${shellQuote(inner)}; echo "inner $?"`;
  const line =
    `set -m; ${SBOX_IN_SHELL} run --rootfs ${image} -e MARK=${marker} -- sh -c ${shellQuote(outer)}; ` +
    'echo "stopped $?"; read x; fg; echo "after $?"';
  let stopped = markedStates(marker);
  const all = (states: string[]) => states.length > 0 && states.every((state) => state === "T");
  const { shown, code } = await onTerminal(line, [
    { waitFor: "ready", keys: "\x1a" },
    {
      waitFor: "stopped 148",
      // The stop is passed on asynchronously: through sbox's event loop and pid 1.
      look: async () => {
        const deadline = Date.now() + 10_000;
        while (!(all(stopped.sbox) && all(stopped.container)) && Date.now() < deadline) {
          await new Promise((resolve) => setTimeout(resolve, 50));
          stopped = markedStates(marker);
        }
      },
      keys: "\n", // for `read`: then `fg`
    },
    // Ctrl-C after a stop and `fg` still interrupts the running program.
    { waitFor: "slept 0", keys: "\x03" },
  ]);
  // sbox; the shell, its child `sh` and that one's `sleep 2` (unless the stop came before its fork).
  assert.equal(stopped.sbox.length, 1, `sbox's process: ${JSON.stringify(stopped)}\n${shown}`);
  assert.ok(
    all(stopped.sbox) && stopped.container.length >= 2 && all(stopped.container),
    JSON.stringify(stopped),
  );
  assert.match(shown, /trapped\r?\ninner 130\r?\n/, shown);
  assert.match(shown, /after 0\r?\n/, shown);
  assert.equal(code, 0, shown);
  assert.deepEqual(processesWith(marker, ["environ"]), []);
});

// With --stdin FILE at a prompt, Ctrl-Z stopped sbox alone: the container ran
// on, writing to the terminal at the user's shell prompt, its --wall-time
// unwatched until `fg`. The terminal is still the one the user typed at.
Deno.test("cli: at a terminal, Ctrl-Z stops the command with sbox whatever --stdin is", async () => {
  const image = shellQuote(busyboxImage());
  const marker = randomName();
  const inner = 'echo ready; sleep 2; echo "slept $?"';
  const line = `set -m; ${SBOX_IN_SHELL} run --rootfs ${image} --stdin /dev/null -e MARK=${marker} -- ` +
    `sh -c ${shellQuote(inner)}; echo "stopped $?"; read x; fg; echo "after $?"`;
  let stopped = markedStates(marker);
  const all = (states: string[]) => states.length > 0 && states.every((state) => state === "T");
  const { shown, code } = await onTerminal(line, [
    { waitFor: "ready", keys: "\x1a" },
    {
      waitFor: "stopped 148",
      look: async () => {
        const deadline = Date.now() + 10_000;
        while (!(all(stopped.sbox) && all(stopped.container)) && Date.now() < deadline) {
          await new Promise((resolve) => setTimeout(resolve, 50));
          stopped = markedStates(marker);
        }
      },
      keys: "\n",
    },
  ]);
  assert.equal(stopped.sbox.length, 1, `sbox's process: ${JSON.stringify(stopped)}\n${shown}`);
  assert.ok(all(stopped.sbox) && all(stopped.container), `${JSON.stringify(stopped)}\n${shown}`);
  assert.match(shown, /slept 0\r?\n/, shown);
  assert.match(shown, /after 0\r?\n/, shown);
  assert.equal(code, 0, shown);
  assert.deepEqual(processesWith(marker, ["environ"]), []);
});

// A parent that could not be read (ppid 0: a parent in a pid namespace above,
// or one hidden by hidepid) counted as "orphaned", so Ctrl-Z did nothing while
// the rest of the job stopped (review19).
Deno.test("cli: the orphaned-group check follows sbox's ancestors in its group and trusts no unknown parent", () => {
  type Ids = { ppid: number; pgrp: number; session: number };
  const table = (entries: Record<string, Ids>) => (pid: number | "self") => entries[String(pid)];
  // Parent: the job-control shell, same session, another group.
  assert.equal(
    processGroupOrphaned(
      table({ self: { ppid: 10, pgrp: 20, session: 10 }, 10: { ppid: 1, pgrp: 10, session: 10 } }),
    ),
    false,
  );
  // exec'd by the session leader's parent (script): another session.
  assert.equal(
    processGroupOrphaned(
      table({ self: { ppid: 5, pgrp: 20, session: 20 }, 5: { ppid: 1, pgrp: 5, session: 5 } }),
    ),
    true,
  );
  // A shell in the same group, whose parent is in another session.
  assert.equal(
    processGroupOrphaned(table({
      self: { ppid: 30, pgrp: 20, session: 20 },
      30: { ppid: 5, pgrp: 20, session: 20 },
      5: { ppid: 1, pgrp: 5, session: 5 },
    })),
    true,
  );
  // Unknown: a parent pid of 0, or a parent that cannot be read.
  assert.equal(
    processGroupOrphaned(
      table({ self: { ppid: 30, pgrp: 20, session: 10 }, 30: { ppid: 0, pgrp: 20, session: 10 } }),
    ),
    false,
  );
  assert.equal(processGroupOrphaned(table({ self: { ppid: 30, pgrp: 20, session: 10 } })), false);
  // This test's own process: whatever runs it, the walk ends.
  assert.equal(typeof processGroupOrphaned(), "boolean");
});

/**
 * A {@linkcode SignalRelay} that records what it does instead of doing it:
 * `kills` counts the container's kills, `stops` lists sbox's stops (with the
 * command or alone), `passed` what the command was sent.
 */
function recordingRelay(onTerminal: boolean) {
  const seen = { kills: 0, stops: [] as string[], passed: [] as Deno.Signal[] };
  const relay = new SignalRelay({
    onTerminal,
    kill: () => seen.kills++,
    stop: (command) => {
      seen.stops.push(command ? "with the command" : "alone");
      command?.("SIGTSTP");
      command?.("SIGCONT");
    },
  });
  const command: SignalTarget = { kill: (signal) => seen.passed.push(signal) };
  return { relay, seen, command };
}

// The signal state of a run was nine fields of RunState, written in four
// places (review: explore-structure, "where a reader gets lost" 3); one
// Ctrl-C through the start is followed here in one object.
Deno.test("cli: on a terminal, a key during the start is held for the command, a second one interrupts", async () => {
  const held = recordingRelay(true);
  const command = await held.relay.whileStarting(() => {
    held.relay.receive("SIGINT"); // the command may have shown its prompt already
    return Promise.resolve(held.command);
  });
  // Not yet passed on, and nothing killed: the start has not returned yet.
  assert.deepEqual([held.relay.interrupted, held.seen.kills, held.seen.passed], [undefined, 0, []]);
  held.relay.attach(command);
  assert.deepEqual(held.seen.passed, ["SIGINT"]);
  assert.equal(held.relay.interruption.aborted, false);
  // The command died of the key passed on: sbox dies of it too; of another signal, not.
  assert.equal(held.relay.reraise("SIGINT"), "SIGINT");
  assert.equal(held.relay.reraise("SIGKILL"), undefined);
  assert.equal(held.relay.reraise(null), undefined);

  // A key between the start's end and attach() is the command's too.
  const late = recordingRelay(true);
  const started = await late.relay.whileStarting(() => Promise.resolve(late.command));
  late.relay.receive("SIGINT");
  assert.deepEqual([late.relay.interrupted, late.seen.kills, late.seen.passed], [undefined, 0, []]);
  late.relay.attach(started);
  assert.deepEqual(late.seen.passed, ["SIGINT"]);

  const twice = recordingRelay(true);
  await twice.relay.whileStarting(() => {
    twice.relay.receive("SIGINT");
    twice.relay.receive("SIGQUIT"); // a start that takes long (a slow network): the run stops
    return Promise.resolve(twice.command);
  });
  assert.equal(twice.relay.interrupted, "SIGQUIT");
  assert.equal(twice.relay.interruption.aborted, true);
  assert.equal(twice.seen.kills, 1);
  // Interrupted: the held key is not passed on, and the kill comes again (the first may have found no process).
  twice.relay.attach(twice.command);
  assert.deepEqual(twice.seen.passed, []);
  assert.equal(twice.seen.kills, 2);
  assert.equal(twice.relay.reraise(null), "SIGQUIT");
});

Deno.test("cli: a Ctrl-Z and a resize before the command runs reach it once it does; after the end sbox stops alone", () => {
  const { relay, seen, command } = recordingRelay(true);
  relay.receive("SIGTSTP");
  relay.receive("SIGWINCH");
  assert.deepEqual([seen.stops, seen.passed, seen.kills], [[], [], 0]);
  relay.attach(command);
  assert.deepEqual(seen.passed, ["SIGWINCH", "SIGTSTP", "SIGCONT"]);
  assert.deepEqual(seen.stops, ["with the command"]);
  // While it runs: keys and resizes go to it at once; another stop signal stops the run.
  relay.receive("SIGQUIT");
  relay.receive("SIGWINCH");
  assert.deepEqual(seen.passed.slice(3), ["SIGQUIT", "SIGWINCH"]);
  assert.equal(relay.interrupted, undefined);
  relay.receive("SIGTERM");
  assert.deepEqual([relay.interrupted, seen.kills], ["SIGTERM", 1]);
  // Decided: a signal finds only the cleanup, which goes on; Ctrl-Z stops sbox alone.
  relay.decide();
  relay.receive("SIGINT");
  relay.receive("SIGHUP");
  relay.receive("SIGWINCH");
  relay.receive("SIGTSTP");
  assert.equal(seen.passed.length, 5);
  assert.deepEqual([relay.interrupted, seen.kills], ["SIGTERM", 1]);
  assert.deepEqual(seen.stops, ["with the command", "alone"]);
});

Deno.test("cli: without a terminal, or after a start that ran nothing, a key stops the run", async () => {
  const piped = recordingRelay(false);
  await piped.relay.whileStarting(() => {
    piped.relay.receive("SIGINT");
    return Promise.resolve(piped.command);
  });
  piped.relay.attach(piped.command);
  assert.deepEqual([piped.relay.interrupted, piped.seen.kills, piped.seen.passed], ["SIGINT", 2, []]);

  // The exec failed: the start rejects, and what comes then is sbox's; a held Ctrl-Z is dropped.
  const failed = recordingRelay(true);
  failed.relay.receive("SIGTSTP");
  await assert.rejects(failed.relay.whileStarting(() => Promise.reject(new Error("exec failed"))));
  failed.relay.receive("SIGINT");
  failed.relay.attach(undefined);
  assert.deepEqual([failed.relay.interrupted, failed.seen.kills, failed.seen.stops], ["SIGINT", 2, []]);
});

Deno.test("cli: the relay listens for the stop signals, and stops listening", () => {
  const { relay, seen } = recordingRelay(false);
  const stopListening = relay.listen(new Set());
  try {
    Deno.kill(Deno.pid, "SIGUSR2");
  } catch (err) {
    stopListening();
    throw err;
  }
  // The listener runs from the event loop: wait for it, then stop listening.
  return new Promise<void>((resolve, reject) => {
    const started = Date.now();
    const poll = () => {
      if (relay.interrupted === undefined && Date.now() - started < 10_000) return void setTimeout(poll, 5);
      stopListening();
      try {
        assert.deepEqual([relay.interrupted, seen.kills], ["SIGUSR2", 1]);
        resolve();
      } catch (err) {
        reject(err);
      }
    };
    poll();
  });
});

// sbox exec'd by the terminal's session leader: its process group is
// orphaned and the kernel discards its stop (no shell could continue it), so
// the command must not stop either. Passing SIGTSTP and then SIGCONT on at
// once left it stopped in a CI run: pid 1's signalfd gives two pending
// signals by number, SIGCONT first.
Deno.test("cli: on a terminal, Ctrl-Z that cannot stop sbox does not leave the command stopped", async () => {
  const image = shellQuote(busyboxImage());
  const script = shellQuote('echo ready; sleep 1; echo "slept $?"');
  const { shown, code } = await onTerminal(
    `exec ${SBOX_IN_SHELL} run --rootfs ${image} -- sh -c ${script}`,
    [{ waitFor: "ready", keys: "\x1a" }],
  );
  assert.match(shown, /slept 0\r?\n/, shown);
  assert.equal(code, 0, shown);
});

// The command runs in a session of its own, so a resized window's SIGWINCH
// reached sbox alone, and vi, less or top in the container did not redraw;
// and without TERM, `clear` and `less` refused or degraded.
Deno.test("cli: on a terminal, a resize reaches the command, and TERM is passed", async () => {
  const image = shellQuote(busyboxImage());
  const dir = Deno.makeTempDirSync({ prefix: "sbox-winch-" });
  try {
    const ttyFile = `${dir}/tty`;
    // A program the command runs (a shell's vi, say) must redraw: the trap is
    // a child's. It runs between two sleeps; the loop ends it either way.
    const child = shellQuote(
      'trap \'echo "WINCH $(stty size)"; exit 0\' WINCH; echo "ready [$TERM]"; ' +
        "i=0; while [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; exit 1",
    );
    const script = shellQuote(`sh -c ${child}; echo "inner $?"`);
    const piped = shellQuote('echo "piped [$TERM]"');
    const line =
      `tty > ${ttyFile}; export TERM=sbox-test-term; ${SBOX_IN_SHELL} run --rootfs ${image} -- sh -c ${script}; ` +
      `echo "resized $?"; ${SBOX_IN_SHELL} run --rootfs ${image} -- sh -c ${piped} < /dev/null`;
    const { shown, code } = await onTerminal(line, [{
      waitFor: "ready [sbox-test-term]",
      // What a terminal emulator does on a resize: set the size, which signals the foreground group.
      look: async () => {
        const tty = Deno.readTextFileSync(ttyFile).trim();
        const stty = await new Deno.Command("stty", { args: ["-F", tty, "rows", "41", "cols", "101"] })
          .output();
        assert.equal(stty.code, 0, text(stty.stderr));
      },
      keys: "",
    }]);
    assert.match(shown, /WINCH 41 101\r?\ninner 0\r?\nresized 0\r?\n/, shown);
    // Not on a terminal: the environment is the run's own.
    assert.match(shown, /piped \[\]\r?\n/, shown);
    assert.equal(code, 0, shown);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

// A full-screen program killed with the container left the terminal raw:
// no echo, no line editing, for the shell the user came back to.
Deno.test("cli: on a terminal, the terminal's modes are put back after the run", async () => {
  const image = shellQuote(busyboxImage());
  // It ends its own way here (a Ctrl-C would end the shell around sbox too).
  const inside = shellQuote("stty -echo -icanon; echo ready; sleep 1");
  const line =
    `${SBOX_IN_SHELL} run --rootfs ${image} -- sh -c ${inside}; stty -a | tr ' ' '\\n' | grep -x -- '-\\?echo'`;
  const { shown } = await onTerminal(line, [{ waitFor: "ready", keys: "" }]);
  assert.match(shown, /\r?\necho\r?\n/, shown);
  assert.doesNotMatch(shown, /-echo/, shown);
});

// The container's stdio are the caller's open files and terminal: an
// untrusted command could leave the shell's stdin non-blocking (its next
// reader gets EAGAIN), the terminal exclusive (no one else may open it), its
// line discipline N_NULL (the terminal dead) or its output stopped (the next
// write hangs).
Deno.test("cli: what the command changes of the caller's stdio and terminal is put back after the run", async () => {
  const spoil = shellQuote(
    "use Fcntl; fcntl(STDIN, F_SETFL, fcntl(STDIN, F_GETFL, 0) | O_NONBLOCK) or die $!; " +
      'ioctl(STDIN, 0x540C, 0) or die $!; print "spoilt\n"; ioctl(STDIN, 0x540A, 0) or die $!; ' +
      // Last: under N_NULL nothing more is shown, and TCXONC is N_TTY's.
      '$d = pack("i", 27); ioctl(STDIN, 0x5423, $d) or die $!',
  );
  const look = shellQuote(
    'use Fcntl; print((fcntl(STDIN, F_GETFL, 0) & O_NONBLOCK) ? "nonblocking\n" : "blocking\n"); ' +
      '$x = pack("i", 0); ioctl(STDIN, 0x80045440, $x) or die $!; ' +
      'print(unpack("i", $x) ? "exclusive\n" : "shared\n"); ' +
      'ioctl(STDIN, 0x5424, $x) or die $!; print "line discipline ", unpack("i", $x), "\n"',
  );
  // The host's root: its perl makes the calls (TIOCEXCL, TIOCSETD's N_NULL,
  // which takes no privilege and leaves a terminal that reads and shows
  // nothing, TCXONC's TCOOFF).
  const line = `${SBOX_IN_SHELL} run -- perl -e ${spoil}; echo "sbox $?"; perl -e ${look}`;
  const { shown, code } = await onTerminal(line, []);
  assert.equal(code, 0, shown);
  const lines = shown.replaceAll("\r", "").trimEnd().split("\n");
  assert.deepEqual(lines.slice(-5), ["spoilt", "sbox 0", "blocking", "shared", "line discipline 0"], shown);
});

// From the background (a job of a shell with job control), a change of the
// terminal stops sbox with SIGTTOU; the line discipline must be put back
// anyway (N_NULL leaves a terminal no one can repair), and sbox not stop.
Deno.test("cli: a run in the background puts the line discipline back too, and is not stopped for it", async () => {
  const spoil = shellQuote('$d = pack("i", 27); ioctl(STDIN, 0x5423, $d) or die $!');
  const look = shellQuote(
    '$x = pack("i", 0); ioctl(STDIN, 0x5424, $x) or die $!; print "line discipline ", unpack("i", $x), "\n"',
  );
  const line = `set -m; ${SBOX_IN_SHELL} run -- perl -e ${spoil} & wait $!; echo "sbox $?"; perl -e ${look}`;
  const { shown, code } = await onTerminal(line, []);
  assert.equal(code, 0, shown);
  const lines = shown.replaceAll("\r", "").trimEnd().split("\n");
  assert.deepEqual(lines.slice(-2), ["sbox 0", "line discipline 0"], shown);
});

Deno.test("cli: a signal after a limit killed the container leaves the verdict TO, not XX", async () => {
  // sbox is stopped before its 500 ms wall-clock timer and continued after
  // it with a SIGINT pending: the timer fires first (the verdict is TO), then
  // the signal comes. It used to print a second cause, exit 130 and report XX.
  const marker = randomName();
  const child = await startUntilReady([
    "--report",
    "-",
    "--wall-time",
    "500ms",
    "--",
    "sh",
    "-c",
    `echo ready; sh -c "sleep 1000; : ${marker}"`,
  ]);
  while (processesWith(marker).length === 0) await new Promise((r) => setTimeout(r, 1));
  // Once its timer runs (it starts when the command has started), before it fires.
  await new Promise((r) => setTimeout(r, 150));
  child.kill("SIGSTOP");
  await new Promise((r) => setTimeout(r, 600));
  child.kill("SIGINT");
  child.kill("SIGCONT");
  const output = await child.output();
  const stderr = text(output.stderr);
  assert.equal(output.code, 137, stderr);
  assert.doesNotMatch(stderr, /interrupted/);
  assert.match(
    stderr,
    /^sbox: wall-clock limit of 500ms exceeded \(--wall-time\): the container was killed$/m,
  );
  assert.equal(report(stderr).status, "TO");
  assert.deepEqual(processesWith(marker), []);
  assertNothingLeft(child.pid);
});

Deno.test("cli: a time limit's kill that came after the command had exited does not say the container was killed", async () => {
  // sbox is stopped before its 300 ms wall-clock timer and continued after
  // the command has exited by itself: the overdue timer tried a kill that
  // found nothing, and the line said "the container was killed" beside a
  // report of the command's own exit 0.
  const child = await startUntilReady([
    "--report",
    "-",
    "--wall-time",
    "300ms",
    "--",
    "sh",
    "-c",
    "echo ready; sleep 0.6",
  ]);
  // Once its timer runs (it starts when the command has started), before it fires.
  await new Promise((r) => setTimeout(r, 150));
  child.kill("SIGSTOP");
  await new Promise((r) => setTimeout(r, 1500));
  child.kill("SIGCONT");
  const output = await child.output();
  const stderr = text(output.stderr);
  assert.equal(output.code, 0, stderr);
  assert.match(
    stderr,
    /^sbox: wall-clock limit of 300ms exceeded \(--wall-time\): the command ended before it could be killed$/m,
  );
  const timedOut = report(stderr);
  assert.deepEqual([timedOut.status, timedOut.exitCode, timedOut.signal], ["TO", 0, null]);
  assertNothingLeft(child.pid);
});

Deno.test("cli: every other signal that would end sbox kills the container and cleans up too; SIGXFSZ is ignored", async () => {
  // Each of these ended sbox on the spot: no report, the cgroup and the scratch directory left.
  const stopping: [Deno.Signal, number][] = [
    ["SIGHUP", 1],
    ["SIGQUIT", 3],
    ["SIGUSR2", 12],
    ["SIGALRM", 14],
    ["SIGTERM", 15],
    ["SIGSTKFLT", 16],
    ["SIGXCPU", 24],
    ["SIGVTALRM", 26],
    ["SIGPROF", 27],
    ["SIGIO", 29],
    ["SIGPWR", 30],
  ];
  for (let i = 0; i < stopping.length; i += 4) {
    await Promise.all(stopping.slice(i, i + 4).map(([signal, number]) => assertStoppedBy(signal, number)));
  }
  // SIGXFSZ: a write of sbox's over a file-size limit fails (EFBIG) instead; the command runs on.
  const child = await startUntilReady(["--report", "-", "--", "sh", "-c", "echo ready; sleep 1; echo done"]);
  child.kill("SIGXFSZ");
  const output = await child.output();
  assert.equal(output.code, 0, text(output.stderr));
  assert.equal(text(output.stdout), "done\n");
  assert.equal(report(text(output.stderr)).status, "OK");
  assertNothingLeft(child.pid);
});

Deno.test("cli: a signal sbox was started with ignored stays ignored (nohup, a shell's background job)", async () => {
  // `nohup sbox run ...` (SIGHUP ignored) and a shell's background job
  // (SIGINT, SIGQUIT) were stopped by the signal all the same: exit 129, XX.
  const start = Date.now();
  const child = new Deno.Command("sh", {
    args: [
      "-c",
      `trap '' HUP INT QUIT; exec "$@"`,
      "sh",
      ...sboxOnBusyboxArgv([
        "--report",
        "-",
        "--",
        "sh",
        "-c",
        // Before `read`, after which busybox's sh ignores SIGQUIT.
        "grep SigIgn /proc/self/status >/tmp/ign; echo ready; read line; echo got $line; cat /tmp/ign",
      ]),
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(COMMAND_TIMEOUT_MS),
  }).spawn();
  const reader = child.stdout.getReader();
  assert.equal(text((await reader.read()).value!), "ready\n");
  reader.releaseLock();
  // Deno takes SIGHUP and SIGINT for itself half a second after it starts:
  // the signals come after that.
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, 700 - (Date.now() - start))));
  for (const signal of ["SIGHUP", "SIGINT", "SIGQUIT"] as const) child.kill(signal);
  await new Promise((resolve) => setTimeout(resolve, 300));
  const writer = child.stdin.getWriter();
  try {
    await writer.write(new TextEncoder().encode("go\n"));
    await writer.close();
  } catch {
    // sbox ended (the assertions below say how)
  }
  const output = await child.output();
  const stderr = text(output.stderr);
  assert.equal(output.code, 0, stderr);
  assert.equal(report(stderr).status, "OK");
  assert.equal(stderr.trimEnd().split("\n").length, 1, stderr);
  // The command's processes start with every signal at its default, as before.
  assert.equal(text(output.stdout), "got go\nSigIgn:\t0000000000000000\n");
  assertNothingLeft(child.pid);
});

/** Whether some socket listens on TCP port `port` (any address, IPv4 or IPv6). */
function tcpListening(port: number): boolean {
  const hexPort = port.toString(16).toUpperCase().padStart(4, "0");
  return ["/proc/net/tcp", "/proc/net/tcp6"].some((file) =>
    Deno.readTextFileSync(file).split("\n").slice(1).some((line) => {
      const [, local, , state] = line.trim().split(/\s+/);
      return state === "0A" && local?.endsWith(`:${hexPort}`); // 0A: LISTEN
    })
  );
}

Deno.test("cli: SIGUSR1 to sbox is ignored: no inspector on port 9229, the command runs on", async () => {
  const INSPECTOR_PORT = 9229;
  assert.ok(!tcpListening(INSPECTOR_PORT), "something else already listens on port 9229");
  // SigIgn of a process of the command: sbox's SIGUSR1 disposition must not reach it.
  const child = await startUntilReady([
    "--report",
    "-",
    "--",
    "sh",
    "-c",
    "echo ready; sleep 2; grep SigIgn /proc/self/status",
  ]);
  // Deno installs its SIGUSR1 handler 500 ms after start; "ready" came after start.
  await new Promise((resolve) => setTimeout(resolve, 700));
  child.kill("SIGUSR1");
  await new Promise((resolve) => setTimeout(resolve, 500));
  const listening = tcpListening(INSPECTOR_PORT);
  const output = await child.output();
  const stderr = text(output.stderr);
  assert.ok(!listening, "a socket listens on port 9229 after SIGUSR1: Deno's inspector");
  assert.equal(output.code, 0, stderr);
  assert.equal(report(stderr).status, "OK");
  assert.equal(stderr.trimEnd().split("\n").length, 1, stderr);
  const sigIgn = BigInt(`0x${/SigIgn:\s*([0-9a-f]+)/.exec(text(output.stdout))![1]}`);
  assert.equal(sigIgn & (1n << 9n), 0n, "the command inherited SIGUSR1 ignored");
  assertNothingLeft(child.pid);
});

// ---- limits on this host ----------------------------------------------------

const controllers = Cgroup.current().controllers();

for (
  const [option, value, controller] of [["--memory", "64M", "memory"], ["--pids", "16", "pids"], [
    "--cpus",
    "0.5",
    "cpu",
  ]]
) {
  Deno.test({
    name: `cli: ${option} fails with 125 and names the missing ${controller} controller and the cgroup`,
    ignore: controllers.includes(controller),
    fn: async () => {
      const result = await busybox([option, value, "--", "true"]);
      assertSboxFailed(
        result,
        new RegExp(`^sbox: ${option}: cgroup controller ${controller} is not available in /`),
      );
      assert.ok(result.stderr.includes(Cgroup.current().path), result.stderr);
      // The library's wording, which says why the parent lacks it (here: bound to a v1 hierarchy).
      const why = missingControllerError(Cgroup.current(), controller).message;
      assert.ok(result.stderr.includes(`sbox: ${option}: ${why}\n`), result.stderr);
      assertNothingLeft(result.pid);
    },
  });
}

Deno.test("cli: a frozen --cgroup, or one below a frozen group, fails with 125 at once, naming the freeze; nothing is made in it", async () => {
  const frozen = Cgroup.current().child(randomName());
  const below = frozen.child("below");
  below.create();
  Deno.writeTextFileSync(`${frozen.path}/cgroup.freeze`, "1");
  try {
    const cases: [Cgroup, string, string[]][] = [
      [frozen, "its cgroup.freeze is 1", ["below"]],
      [below, `cgroup.freeze of ${frozen.path} is 1`, []],
    ];
    for (const [group, why, groups] of cases) {
      // A container cloned into it would wait for a thaw, and sbox with it;
      // so would the pipes it holds: a thaw, not a kill, ends such a wait.
      const child = new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--allow-ffi",
          SBOX,
          "run",
          "--rootfs",
          busyboxImage(),
          "--cgroup",
          group.path,
          "--",
          "true",
        ],
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      let hung = false;
      const timer = setTimeout(() => {
        hung = true;
        Deno.writeTextFileSync(`${frozen.path}/cgroup.freeze`, "0");
      }, 10_000);
      const output = await outputOf(child);
      clearTimeout(timer);
      const result = { ...output, pid: child.pid };
      assert.equal(hung, false, `sbox waited for a thaw: ${result.stderr}`);
      assertSboxFailed(result, /^sbox: invalid option --cgroup: /);
      assert.equal(
        result.stderr,
        `sbox: invalid option --cgroup: ${group.path} is frozen (${why}): a process started in it would not ` +
          "run until it is thawed (0 written to that cgroup.freeze)\n",
      );
      const made = [...Deno.readDirSync(group.path)].filter((e) => e.isDirectory).map((e) => e.name);
      assert.deepEqual(made, groups, `a cgroup was made in ${group.path}`);
      assertNothingLeft(result.pid);
    }
  } finally {
    Deno.writeTextFileSync(`${frozen.path}/cgroup.freeze`, "0");
    await frozen.remove();
  }
});

Deno.test("cli: whether a user may use a parent cgroup follows the kernel's rules: create in it, move from sbox's own", () => {
  // A user's delegated group /cg/alice: the user may write the directories
  // and cgroup.procs files below it (the kernel says so: faccessat2), and
  // nothing else.
  const mount = "/sys/fs/cgroup";
  const group = (name: string) => new Cgroup(mount, name);
  const writable = new Set([
    `${mount}/alice`,
    `${mount}/alice/cgroup.procs`,
    `${mount}/alice/jobs`,
    `${mount}/alice/jobs/cgroup.procs`,
    `${mount}/alice/shell`,
    `${mount}/alice/shell/cgroup.procs`,
  ]);
  const asked: string[] = [];
  const alice = {
    uid: 1000,
    mayWrite(path: string, search: boolean) {
      // A directory is searched too (mkdir in it), a cgroup.procs only written.
      assert.equal(search, !path.endsWith("/cgroup.procs"), path);
      asked.push(path);
      return writable.has(path);
    },
  };
  const why = (parent: string, own: string, who = alice) => whyNoCgroup(group(parent), group(own), who);
  // sbox in the group, in a leaf below it, or in the group's parent... as
  // long as the common ancestor's cgroup.procs is the user's: the kernel
  // lets uid 1000 move from alice to alice/jobs/x (the explorer's case, which
  // was refused as "outside it").
  assert.equal(why("alice", "alice"), undefined);
  assert.equal(why("alice", "alice/shell"), undefined);
  assert.equal(why("alice/jobs", "alice"), undefined);
  assert.equal(why("alice/jobs", "alice/shell"), undefined);
  // The directory to create in, then cgroup.procs of the common ancestor.
  assert.deepEqual(asked.slice(-2), [`${mount}/alice/jobs`, `${mount}/alice/cgroup.procs`]);
  // Root may anything, and is not even asked.
  asked.length = 0;
  assert.equal(why("", "user.slice", { ...alice, uid: 0 }), undefined);
  assert.deepEqual(asked, []);
  // A group whose directory is not the user's: not even a group can be made.
  const closed = why("", "alice/shell");
  assert.equal(closed?.reason, `uid 1000 may not create cgroups in ${mount}`);
  assert.match(
    closed!.cure.own,
    /^delegate a cgroup to the user \(chown it and its cgroup.procs, .*start sbox from a cgroup below it and name the delegated one with --cgroup/,
  );
  assert.match(closed!.cure.named, /^delegate it to the user \(.*\), then start sbox from a cgroup below it/);
  // Made but not entered: sbox's cgroup is elsewhere, and the common
  // ancestor (the root) is root's. The cure says where to start sbox.
  const outside = why("alice", "user.slice/session-1.scope");
  assert.equal(
    outside?.reason,
    `uid 1000 may create cgroups in ${mount}/alice, but not start processes in them from sbox's own cgroup ` +
      `${mount}/user.slice/session-1.scope, which is not below it: the kernel moves a process only for a user ` +
      `who may write cgroup.procs of both groups' common ancestor, ${mount}`,
  );
  assert.match(
    outside!.cure.named,
    new RegExp(
      `^start sbox from a cgroup below ${mount}/alice, .*echo PID > ${mount}/alice/shell/cgroup.procs`,
    ),
  );
  // A group whose cgroup.procs is root's (delegated in part): say so.
  writable.delete(`${mount}/alice/cgroup.procs`);
  assert.match(
    why("alice", "alice/shell")!.reason,
    /needs write access to cgroup.procs of \/sys\/fs\/cgroup\/alice$/,
  );
  assert.match(why("alice", "alice/shell")!.cure.named, /^delegate it to the user in full \(chown it/);
});

const DAC_OVERRIDE_TEST = "cli: the kernel decides whether a user may use a cgroup: uid 65534 holding " +
  "CAP_DAC_OVERRIDE may use one of root's";
Deno.test(DAC_OVERRIDE_TEST, {
  ignore: skipUnlessRoot(DAC_OVERRIDE_TEST, "it gives uid 65534 CAP_DAC_OVERRIDE with setpriv"),
}, async () => {
  // The group and its cgroup.procs are root's, 0755 and 0644: the kernel
  // lets a process with CAP_DAC_OVERRIDE create in it and move into it
  // whatever the owner and mode say. sbox asks the kernel (faccessat2); a
  // reading of the owner and mode refused it ("uid 65534 may not create
  // cgroups in ...").
  const cgroup = testCgroup();
  try {
    const output = await new Deno.Command("setpriv", {
      args: [
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--inh-caps=+dac_override",
        "--ambient-caps=+dac_override",
        "--",
        ...sboxOnBusyboxArgv(["--cgroup", cgroup.path, "--", "echo", "ran"]),
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(COMMAND_TIMEOUT_MS),
    }).output();
    // A --cgroup that could not be used ends the run with 125 before the command.
    assert.deepEqual([output.code, text(output.stdout)], [0, "ran\n"], text(output.stderr));
  } finally {
    await cgroup.remove();
  }
});

Deno.test("cli: a parent with processes of its own: the error says to move them, or sbox, into a group below it", () => {
  const parent = new Cgroup("/sys/fs/cgroup", "alice");
  // sbox runs in it: the shell that starts sbox moves into a new group below, and --cgroup names this one.
  assert.equal(
    ownProcessesCure(parent, parent),
    "it has processes of its own, sbox among them (the kernel allows that only in the root cgroup): move them " +
      "into a new cgroup below it and name this one with --cgroup, e.g. from the shell that starts sbox: " +
      "mkdir /sys/fs/cgroup/alice/shell; echo $$ > /sys/fs/cgroup/alice/shell/cgroup.procs; " +
      "sbox run --cgroup /sys/fs/cgroup/alice ... (its cgroup.procs lists any others)",
  );
  assert.equal(
    ownProcessesCure(parent, parent.child("shell")),
    "it has processes of its own (the kernel allows that only in the root cgroup): move them into a cgroup " +
      "below it (its cgroup.procs lists them), or give --cgroup a cgroup without processes",
  );
});

// ---- judge-style stdio ------------------------------------------------------

Deno.test("cli: --stdin, --stdout and --stderr files", async () => {
  const dir = scratchDir("cli-stdio-");
  try {
    Deno.writeTextFileSync(`${dir}/in`, "hello judge\n");
    Deno.writeTextFileSync(`${dir}/out`, "old content that must go away\n");
    const result = await busybox(
      [
        "--stdin",
        `${dir}/in`,
        "--stdout",
        `${dir}/out`,
        "--stderr",
        `${dir}/err`,
        "--",
        "sh",
        "-c",
        "tr a-z A-Z; echo oops >&2",
      ],
      { stdin: "not this\n" },
    );
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, "");
    assert.equal(result.stderr, "");
    assert.equal(Deno.readTextFileSync(`${dir}/out`), "HELLO JUDGE\n");
    assert.equal(Deno.readTextFileSync(`${dir}/err`), "oops\n");

    const both = await busybox([
      "--stdout",
      `${dir}/both`,
      "--stderr",
      `${dir}/both`,
      "--",
      "sh",
      "-c",
      "echo one; echo two >&2; echo three",
    ]);
    assert.equal(both.code, 0, both.stderr);
    assert.equal(Deno.readTextFileSync(`${dir}/both`), "one\ntwo\nthree\n");

    const inherited = await busybox(["sh", "-c", "cat; echo err >&2"], { stdin: "piped in\n" });
    assert.deepEqual([inherited.stdout, inherited.stderr], ["piped in\n", "err\n"]);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("cli: --stdout and --stderr naming one file in two ways share it, as >f 2>&1", async () => {
  const dir = scratchDir("cli-same-file-");
  try {
    Deno.writeTextFileSync(`${dir}/hard`, "old content that must go away\n");
    Deno.linkSync(`${dir}/hard`, `${dir}/hard-link`);
    Deno.writeTextFileSync(`${dir}/target`, "");
    Deno.symlinkSync(`${dir}/target`, `${dir}/symlink`);
    const spellings = [
      ["o.txt", "./o.txt"], // relative, two spellings (o.txt does not exist yet)
      [`${dir}//o2.txt`, `${dir}/./o2.txt`],
      [`${dir}/hard`, `${dir}/hard-link`], // one inode, two names
      [`${dir}/symlink`, `${dir}/target`],
    ];
    for (const [stdout, stderr] of spellings) {
      const result = await sbox(
        [
          "run",
          "--rootfs",
          busyboxImage(),
          "--stdout",
          stdout,
          "--stderr",
          stderr,
          "--",
          "sh",
          "-c",
          "echo a; echo B >&2; echo c",
        ],
        { cwd: dir },
      );
      assert.equal(result.code, 0, result.stderr);
      const file = stdout.startsWith("/") ? stdout : `${dir}/${stdout}`;
      assert.equal(Deno.readTextFileSync(file), "a\nB\nc\n", `--stdout ${stdout} --stderr ${stderr}`);
    }
    // The report is written at the end from offset 0: over the output, with
    // the output's tail after it. Refused, however the file is named.
    for (const [output, report] of [["--stdout", "./o.txt"], ["--stderr", `${dir}/hard-link`]]) {
      const file = output === "--stdout" ? "o.txt" : `${dir}/hard`;
      const result = await sbox(
        ["run", "--rootfs", busyboxImage(), output, file, "--report", report, "--", "echo", "a"],
        { cwd: dir },
      );
      assert.equal(result.code, 125, result.stderr);
      assert.match(result.stderr, new RegExp(`^sbox: --report and ${output} name the same file`, "m"));
    }
    // --stdin as an output would be emptied before the command read it: the
    // run looked fine. Refused before anything is truncated.
    Deno.writeTextFileSync(`${dir}/input`, "the test's input\n");
    Deno.symlinkSync("input", `${dir}/input-link`);
    for (
      const [output, name] of [["--stdout", "input"], ["--stderr", "input-link"], ["--report", "input-link"]]
    ) {
      const result = await sbox(
        ["run", "--rootfs", busyboxImage(), "--stdin", "input", output, name, "--", "cat"],
        { cwd: dir },
      );
      assert.equal(result.code, 125, result.stderr);
      assert.match(result.stderr, new RegExp(`--stdin and ${output} name the same file: ${name}`));
      assert.equal(Deno.readTextFileSync(`${dir}/input`), "the test's input\n", `${output} ${name}`);
    }
    // A device is no file to empty: /dev/null in and out throws all I/O away, as it always did.
    const devNull = await sbox([
      "run",
      "--rootfs",
      busyboxImage(),
      ...["--stdin", "--stdout", "--stderr", "--report"].flatMap((option) => [option, "/dev/null"]),
      "--",
      "cat",
    ]);
    assert.equal(devNull.code, 0, devNull.stderr);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

// Overlay with xino=off (the default where the module's xino_auto is N, as
// on Debian and Ubuntu): a file of the lower layer and one of the upper
// layer can have one inode number in one mount, and only the device statx
// gives (each layer's) tells them apart. Two files there are two files to
// sbox: neither refused as one nor sharing one fd.
const OVERLAY_FILES_TEST =
  "cli: two files of an overlay's two layers with one inode number are two files to --stdin, --stdout, --stderr and --report";
Deno.test({
  name: OVERLAY_FILES_TEST,
  ignore: skipUnlessRoot(
    OVERLAY_FILES_TEST,
    "it mounts tmpfs and overlayfs in a mount namespace of its own (unshare -m)",
  ),
  async fn() {
    const dir = scratchDir("cli-overlay-files-");
    try {
      const d = shellQuote(dir);
      const script = [
        `sbox() { ${sboxOnBusyboxArgv([]).map(shellQuote).join(" ")} "$@"; }`,
        `cd ${d} && mkdir low up m && mount -t tmpfs tmpfs low && mount -t tmpfs tmpfs up && mkdir up/u up/w`,
        'for i in $(seq 1 40); do echo "lower file $i" > low/f$i; done',
        `mount -t overlay overlay -o lowerdir=${d}/low,upperdir=${d}/up/u,workdir=${d}/up/w,xino=off m`,
        // An upper file, and the lower file of its inode number.
        ": > m/out",
        'in=$(for f in m/f*; do [ "$(stat -c %i "$f")" = "$(stat -c %i m/out)" ] && echo "$f"; done | head -n 1)',
        '[ -n "$in" ] || { echo "no lower file has the inode number of m/out" >&2; exit 1; }',
        'echo "files: $(stat -c %d:%i "$in") $(stat -c %d:%i m/out)"',
        '{ sbox --stdin "$in" --stdout m/out -- cat; echo "stdin: $? $(cat m/out)"; }',
        `{ sbox --stdout m/out --stderr "$in" -- sh -c 'echo out; echo err >&2'; ` +
        'echo "stderr: $? $(cat m/out) $(cat "$in")"; }',
        '{ sbox --stdout m/out --report "$in" -- echo out; echo "report: $? $(cat m/out) $(cat "$in")"; }',
      ].join(" && ");
      const output = await commandInOwnMountNamespace(["sh", "-c", script]).output();
      const stdout = text(output.stdout), stderr = text(output.stderr);
      assert.equal(output.code, 0, `${stdout}${stderr}`);
      // The test's premise: one inode number, two devices.
      const [, lowerDevice, lowerInode, upperDevice, upperInode] = /^files: (\d+):(\d+) (\d+):(\d+)$/m.exec(
        stdout,
      )!;
      assert.equal(lowerInode, upperInode, stdout);
      assert.notEqual(lowerDevice, upperDevice, stdout);
      assert.match(stdout, /^stdin: 0 lower file \d+$/m, stderr);
      assert.match(stdout, /^stderr: 0 out err$/m, stderr);
      assert.match(stdout, /^report: 0 out \{"status":"OK",/m, stderr);
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

/**
 * `sbox run --rootfs <busybox> ARGS...` started by /bin/sh, so that
 * `redirect` (e.g. `<"$f"`, `1<"$f"`) can give sbox a directory or a device
 * as its own fd 0-2, which Deno.Command cannot; "$f" is `file`. `prefix`
 * runs sbox behind a command (`unshare --mount`); `setup` is shell code run
 * before (`umask 077;`).
 */
async function busyboxFromShell(
  args: string[],
  redirect: string,
  file: string,
  prefix = "",
  setup = "",
): Promise<Result> {
  const output = await runCommand([
    "/bin/sh",
    "-c",
    `s=$1 image=$2 f=$3; shift 3; ${setup} exec ${prefix} "$0" run --allow-ffi "$s" run --rootfs "$image" "$@" ${redirect}`,
    Deno.execPath(),
    SBOX,
    busyboxImage(),
    file,
    ...args,
  ]);
  return { ...output, pid: NaN };
}

Deno.test("cli: a directory or a block device as stdio is refused, named or inherited, before anything is created", async () => {
  const dir = scratchDir("cli-stdio-dir-");
  try {
    const out = `${dir}/out`;
    const block = [...Deno.readDirSync("/dev")].map((e) => `/dev/${e.name}`).find((path) => {
      try {
        return Deno.statSync(path).isBlockDevice;
      } catch {
        return false;
      }
    });
    const named: [string[], RegExp][] = [
      // From a directory's fd, `..` climbs to the host's / (past --rootfs).
      [["--stdin", dir, "--stdout", out], /^sbox: --stdin: .*cli-stdio-dir-\w+ is a directory, not a file/],
      [["--stdout", dir], /^sbox: --stdout: .*cli-stdio-dir-\w+ is a directory, not a file/],
      [["--stderr", `${dir}/.`], /^sbox: --stderr: .*cli-stdio-dir-\w+\/\. is a directory, not a file/],
    ];
    if (block) {
      named.push([["--stdin", block, "--stdout", out], /^sbox: --stdin: \/dev\/\S+ is a block device/]);
    } else console.log("no block device in /dev: --stdin BLOCKDEV is not tried");
    await Promise.all(named.map(async ([args, pattern]) => {
      const result = await sbox(["run", "--rootfs", busyboxImage(), ...args, "--", "true"]);
      assertSboxFailed(result, pattern);
      assertNothingLeft(result.pid);
    }));
    // sbox's own fds 0-2, which the command would inherit (`sbox run < dir` in bash).
    const inherited: [string, string[], RegExp][] = [
      [
        '<"$f"',
        ["--stdout", out],
        /^sbox: sbox's stdin \(fd 0\), which the command would inherit, is a directory/,
      ],
      ['1<"$f"', [], /^sbox: sbox's stdout \(fd 1\), which the command would inherit, is a directory/],
      // sbox's stderr is the directory: its message is lost, the report says XX.
      ['2<"$f"', ["--stdout", out], /^$/],
    ];
    for (const [i, [redirect, args, pattern]] of inherited.entries()) {
      const reportFile = `${dir}-report-${i}.json`;
      try {
        const result = await busyboxFromShell(["--report", reportFile, ...args, "--", "true"], redirect, dir);
        assert.equal(result.code, 125, `${redirect}: ${result.stderr}`);
        assert.match(result.stderr.trimEnd(), pattern, redirect);
        assert.equal(JSON.parse(Deno.readTextFileSync(reportFile)).status, "XX", redirect);
      } finally {
        Deno.removeSync(reportFile);
      }
    }
    // Nothing was created: not even the --stdout file.
    assert.throws(() => Deno.statSync(out), Deno.errors.NotFound);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

const WHY_STDIO_ROOT = "only a root sbox maps the host's root into the container";
/**
 * A busybox shell script that makes each of `attacks` on the files behind
 * fds 7-9 (the script's `prelude` makes them copies of 0-2, so that an
 * attack's own redirections cannot change what it aims at) and prints
 * "refused: ATTACK" or "done: ATTACK" for each on its fd 2.
 */
function attackScript(prelude: string[], attacks: string[]): string {
  return [
    "exec 7<&0 8>&1 9>&2",
    ...prelude,
    'try() { if eval "$1" 2>/dev/null; then echo "done: $1" >&2; else echo "refused: $1" >&2; fi; }',
    ...attacks.map((attack) => `try '${attack}'`),
  ].join("\n");
}

/** Owner and permission bits of `path`. */
function ownerOf(path: string): { uid: number; gid: number; mode: number } {
  const info = Deno.statSync(path);
  return { uid: info.uid!, gid: info.gid!, mode: info.mode! & 0o7777 };
}

const STDIN_FILE_TEST =
  "cli: as root, the container's root cannot chmod, chown or rewrite the --stdin file, or a device as --stdout";
Deno.test(STDIN_FILE_TEST, { ignore: skipUnlessRoot(STDIN_FILE_TEST, WHY_STDIO_ROOT) }, async () => {
  const dir = scratchDir("cli-stdin-guard-");
  try {
    const input = `${dir}/in`, device = `${dir}/null`;
    Deno.writeTextFileSync(input, "hello judge\n");
    Deno.chmodSync(input, 0o600);
    // A node of /dev/null of the test's own: a failure changes it, not the host's /dev/null.
    assert.ok(new Deno.Command("mknod", { args: [device, "c", "1", "3"] }).outputSync().success);
    Deno.chmodSync(device, 0o666);
    const attacks = [
      "chmod 0666 /proc/$$/fd/7",
      "chown 1:1 /proc/$$/fd/7",
      "echo PWNED >/proc/$$/fd/7", // the judge's input, rewritten for every later run
      "chmod 0600 /proc/$$/fd/8",
      "chown 1:1 /proc/$$/fd/8",
    ];
    // Read as usual: through fd 0, and opened anew through /proc.
    const script = attackScript(["wc -c >&2", "cat /proc/$$/fd/7 >&2", "echo into the device"], attacks);
    const result = await busybox(["--stdin", input, "--stdout", device, "--", "sh", "-c", script]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, "");
    assert.equal(
      result.stderr,
      ["12", "hello judge", ...attacks.map((a) => `refused: ${a}`)].join("\n") + "\n",
    );
    assert.equal(Deno.readTextFileSync(input), "hello judge\n");
    assert.deepEqual(ownerOf(input), { uid: 0, gid: 0, mode: 0o600 });
    assert.deepEqual(ownerOf(device), { uid: 0, gid: 0, mode: 0o666 });
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

const STDOUT_FILES_TEST =
  "cli: as root, the container's root cannot chmod or chown the --stdout and --stderr files; they keep their owners";
Deno.test(STDOUT_FILES_TEST, { ignore: skipUnlessRoot(STDOUT_FILES_TEST, WHY_STDIO_ROOT) }, async () => {
  const dir = scratchDir("cli-stdout-guard-");
  try {
    const out = `${dir}/out`, err = `${dir}/err`;
    Deno.writeTextFileSync(out, "old content that must go away\n");
    Deno.chownSync(out, 1234, 5678);
    Deno.chmodSync(out, 0o640);
    const attacks = [
      "chmod 4755 /proc/$$/fd/8", // a set-uid-root program made of --stdout
      "chown 0:0 /proc/$$/fd/8",
      "chmod 4755 /proc/$$/fd/9",
      "chown 1:1 /proc/$$/fd/9",
      "echo PWNED >>/proc/$$/fd/8",
    ];
    const script = attackScript(["cat /bin/busybox"], attacks);
    const result = await busybox(["--stdout", out, "--stderr", err, "--", "sh", "-c", script]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(Deno.readTextFileSync(err), attacks.map((a) => `refused: ${a}\n`).join(""));
    assert.deepEqual(Deno.readFileSync(out), Deno.readFileSync(`${busyboxImage()}/bin/busybox`));
    // Owners and modes as before the run; a new file root's, 0644 (less the umask).
    assert.deepEqual(ownerOf(out), { uid: 1234, gid: 5678, mode: 0o640 });
    assert.deepEqual(ownerOf(err), { uid: 0, gid: 0, mode: 0o644 & ~Deno.umask() });
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

const STDOUT_KILLED_TEST =
  "cli: as root, a --stdout file belongs to unmapped ids while the run lasts, and stays so when sbox is killed";
Deno.test(STDOUT_KILLED_TEST, { ignore: skipUnlessRoot(STDOUT_KILLED_TEST, WHY_STDIO_ROOT) }, async () => {
  const dir = scratchDir("cli-stdout-killed-");
  try {
    const out = `${dir}/out`;
    Deno.writeTextFileSync(out, "");
    Deno.chmodSync(out, 0o4755);
    const child = sboxOnBusybox(["--stdout", out, "--", "sh", "-c", "echo ready >&2; sleep 1000"]).spawn();
    const reader = child.stderr.getReader();
    assert.equal(text((await reader.read()).value!), "ready\n");
    reader.releaseLock();
    const running = ownerOf(out);
    child.kill("SIGKILL");
    await child.status;
    await child.stdout.cancel();
    await child.stderr.cancel();
    // The next run removes what the killed one left (scratch dir, cgroup).
    const next = await busybox(["true"]);
    assert.equal(next.code, 0, next.stderr);
    // The highest ids of sbox's user namespace (4294967294 on the host),
    // which no container maps. A crash leaves a file no one owns, without
    // its set-uid bit: harmless.
    const highest = (map: string) =>
      Math.min(
        0xfffffffe,
        Math.max(
          ...Deno.readTextFileSync(map).trim().split("\n").map((line) => {
            const [inside, , count] = line.trim().split(/\s+/).map(Number);
            return inside + count - 1;
          }),
        ),
      );
    const away = { uid: highest("/proc/self/uid_map"), gid: highest("/proc/self/gid_map") };
    assert.deepEqual(running, { ...away, mode: 0o755 });
    assert.deepEqual(ownerOf(out), { ...away, mode: 0o755 });
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

const STDIO_DEVICES_TEST =
  "cli: as root, the container's root cannot chmod or chown an inherited device or terminal, and still uses it";
Deno.test(STDIO_DEVICES_TEST, { ignore: skipUnlessRoot(STDIO_DEVICES_TEST, WHY_STDIO_ROOT) }, async () => {
  const dir = scratchDir("cli-stdio-dev-");
  try {
    // A node of /dev/full of the test's own: a failure changes it, not the host's /dev/full.
    const full = `${dir}/full`;
    assert.ok(new Deno.Command("mknod", { args: [full, "c", "1", "7"] }).outputSync().success);
    Deno.chmodSync(full, 0o666);
    const attacks = ["chmod 0600 /proc/$$/fd/7", "chown 1:1 /proc/$$/fd/7"];
    const script = attackScript(["echo x >&7 || echo write-failed >&2"], attacks);
    // Also from a mount namespace of its own, where the fd's mount (the
    // caller's) cannot be cloned: the same file is found at its path.
    for (const prefix of ["", "unshare --mount"]) {
      const device = await busyboxFromShell(["--", "sh", "-c", script], '0<>"$f"', full, prefix);
      assert.equal(device.code, 0, `${prefix}: ${device.stderr}`);
      // Written through the read-only view, /dev/full still answers ENOSPC.
      assert.match(device.stderr, /No space left on device\n/);
      assert.ok(
        device.stderr.endsWith(["write-failed", ...attacks.map((a) => `refused: ${a}`)].join("\n") + "\n"),
        `${prefix}: ${device.stderr}`,
      );
      const node = Deno.statSync(full);
      assert.deepEqual([node.mode! & 0o7777, node.uid, node.gid, node.rdev], [0o666, 0, 0, (1 << 8) | 7]);
    }

    // The caller's terminal: script(1) runs sbox on a new pty, as its fds 0-2.
    if (skipWithout("/usr/bin/script", STDIO_DEVICES_TEST, "util-linux's script")) return;
    const inContainer = `${dir}/in-container.sh`, inPty = `${dir}/in-pty.sh`;
    Deno.writeTextFileSync(
      inContainer,
      attackScript(["[ -t 0 ] && [ -t 2 ] && echo terminal >&2", "echo written >&7"], attacks),
    );
    Deno.writeTextFileSync(
      inPty,
      [
        'stat -c "before %a %u" "$(tty)"',
        '"$1" run --allow-ffi "$2" run --rootfs "$3" -- sh -c "$(cat "$4")"',
        'stat -c "after %a %u" "$(tty)"',
      ].join("\n"),
    );
    const pty = await new Deno.Command("script", {
      args: [
        "-qec",
        ["sh", inPty, Deno.execPath(), SBOX, busyboxImage(), inContainer].map(shellQuote).join(" "),
        "/dev/null",
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(COMMAND_TIMEOUT_MS),
    }).output();
    const lines = text(pty.stdout).replaceAll("\r", "").trimEnd().split("\n");
    assert.equal(pty.code, 0, lines.join("\n"));
    const before = lines[0].replace("before", "after");
    assert.match(before, /^after \d+ 0$/);
    assert.deepEqual(lines.slice(1), ["terminal", "written", ...attacks.map((a) => `refused: ${a}`), before]);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

const STDIO_TTY_TEST =
  "cli: as root, an inherited /dev/tty is refused: opened anew it could be another terminal";
Deno.test(STDIO_TTY_TEST, { ignore: skipUnlessRoot(STDIO_TTY_TEST, WHY_STDIO_ROOT) }, async () => {
  if (skipWithout("/usr/bin/script", STDIO_TTY_TEST, "util-linux's script")) return;
  const command = sboxOnBusyboxArgv(["--", "true"]).map(shellQuote).join(" ");
  const pty = await new Deno.Command("script", {
    args: ["-qec", `${command} </dev/tty; echo "status $?"`, "/dev/null"],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(COMMAND_TIMEOUT_MS),
  }).output();
  const out = text(pty.stdout).replaceAll("\r", "");
  assert.match(
    out,
    /^sbox: sbox's stdin \(fd 0\): \/dev\/tty or \/dev\/console, which opened anew could be another terminal/m,
  );
  assert.match(out, /^status 125$/m);
});

Deno.test("cli: as root, an output that already belongs to the ids of a running output is refused", {
  ignore: skipUnlessRoot("an output owned by the away ids", WHY_STDIO_ROOT),
}, async () => {
  const dir = scratchDir("cli-stdio-away-");
  try {
    const out = `${dir}/out`;
    Deno.writeTextFileSync(out, "");
    // What another run's output, or a killed run's, looks like.
    Deno.chownSync(out, 0xfffffffe, 0xfffffffe);
    const result = await busybox(["--stdout", out, "--", "echo", "x"]);
    assertSboxFailed(result, /--stdout: .*out belongs to 4294967294:4294967294, .*another run is writing it/);
    assert.equal(Deno.readTextFileSync(out), "", "nothing written");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

// ---- bad values -------------------------------------------------------------

// It got "cannot create directory /dev: EACCES", naming neither. Root reads
// every directory: the rootless tier runs it, as sboxsub and sboxnosub.
const UNREADABLE_IMAGE_TEST =
  "cli: an image directory the user may not enter is refused, naming --rootfs and it; one it may only search runs";
const unreadableImageSkipped = isRoot;
if (unreadableImageSkipped) {
  console.log(`skipping "${UNREADABLE_IMAGE_TEST}": root reads every directory; tools/test-rootless runs it`);
}
Deno.test({ name: UNREADABLE_IMAGE_TEST, ignore: unreadableImageSkipped }, async () => {
  const home = Deno.statSync("/root");
  assert.deepEqual(
    [home.uid, (home.mode ?? 0) & 0o077],
    [0, 0],
    "/root is not root's own 0700 directory here",
  );
  const result = await sbox(["run", "--rootfs", "/root", "--", "/bin/true"]);
  assertSboxFailed(
    result,
    new RegExp(`^sbox: invalid option --rootfs: /root cannot be entered by uid ${Deno.uid()}: EACCES`),
  );
  // An image below it cannot even be looked at: said as --bind says it (it named no option).
  const below = await sbox(["run", "--rootfs", "/root/image", "--", "/bin/true"]);
  assertSboxFailed(below, /^sbox: invalid option --rootfs: cannot stat \/root\/image: EACCES/);
  // Search permission is what the setup needs: a directory it may not list runs.
  const dir = scratchDir("search-only-");
  try {
    const copy = new Deno.Command("/bin/cp", { args: ["-a", busyboxImage(), `${dir}/image`] }).outputSync();
    assert.ok(copy.success, text(copy.stderr));
    Deno.chmodSync(`${dir}/image`, 0o311);
    const ran = await sbox(["run", "--rootfs", `${dir}/image`, "--", "/bin/echo", "ran"]);
    assert.deepEqual([ran.code, ran.stdout], [0, "ran\n"], ran.stderr);
  } finally {
    Deno.chmodSync(`${dir}/image`, 0o755);
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("cli: a bad value for any option fails with 125, naming the option and the value", async () => {
  const cases: [string[], RegExp][] = [
    [["--rootfs"], /option --rootfs needs a value/],
    [["--rootfs", "/nonexistent-image"], /--rootfs: \/nonexistent-image does not exist$/m],
    [["--rootfs", "/etc/passwd"], /--rootfs: \/etc\/passwd is not a directory$/m],
    // It said "sbox: cannot stat /etc/passwd/image: ENOTDIR ...", naming no option.
    [
      ["--rootfs", "/etc/passwd/image"],
      /^sbox: invalid option --rootfs: cannot stat \/etc\/passwd\/image: ENOTDIR/m,
    ],
    [["--bind", "nocolon"], /--bind: bad value "nocolon"/],
    [["--bind", "/tmp:relative"], /--bind: bad value "\/tmp:relative"/],
    [["--bind", "/tmp:/x:rx"], /--bind: bad value "\/tmp:\/x:rx"/],
    // OPTS: one of ro and rw at most, each option once, no empty or unknown one.
    ...["ro,rw", "try,try", "ro,ro", ",try", "ro,", "maybe", "ro:try"].map((opts): [string[], RegExp] => [
      ["--bind", `/tmp:/x:${opts}`],
      new RegExp(`--bind: bad value "/tmp:/x:${opts}": expected SRC:DST or SRC:DST:OPTS`),
    ]),
    [["--bind", "/nonexistent-src:/x"], /--bind: \/nonexistent-src does not exist/],
    [["--tmpfs", "relative"], /--tmpfs: bad value "relative"/],
    [["--tmpfs", "/x:12Q"], /--tmpfs: bad value "12Q"/],
    [["-e", ""], /--env: bad value "": expected NAME=VALUE, or NAME for sbox's own value of NAME/],
    [["--env", "=value"], /--env: bad value "=value"/],
    [["--env-file", ""], /--env-file: bad value ""/],
    [["-w", "relative"], /--cwd: bad value "relative"/],
    // A name is not looked up: the message says where its number is.
    [
      ["-u", "root"],
      /--user: bad value "root": .* \(names are not looked up: the image's \/etc\/passwd gives/,
    ],
    [["-u", "1:x"], /--user: bad value "1:x"/],
    [["--net", "bridge"], /--net: bad value "bridge": expected none, slirp4netns, pasta or host$/m],
    [["--net", "pasta", "--publish", "80"], /--publish: bad value "80": expected HOST_PORT:CONTAINER_PORT/],
    [["--memory", "0"], /--memory: bad value "0"/],
    [["--memory", "1.5G"], /--memory: bad value "1.5G"/],
    [["--memory", "64MB"], /--memory: bad value "64MB"/],
    [["--write-limit", "lots"], /--write-limit: bad value "lots"/],
    [["--memory=-1"], /--memory: bad value "-1"/],
    [["--swap", "lots"], /--swap: bad value "lots"/],
    [["--pids", "0"], /--pids: bad value "0"/],
    [["--pids", "1.5"], /--pids: bad value "1.5"/],
    // The container's pid 1 is the reaper, so one process could not even start the command.
    [
      ["--pids", "1"],
      /--pids: bad value "1": expected a whole number from 2 to 4194304 \(at least 2: the container's pid 1 is sbox's reaper/,
    ],
    // Past what the kernel takes: a bare EINVAL from pids.max or cpu.max before.
    [
      ["--pids", "4194305"],
      /--pids: bad value "4194305": expected a whole number from 2 to 4194304 \(.*PID_MAX_LIMIT\)$/m,
    ],
    [
      ["--cpus", "175921861"],
      /--cpus: bad value "175921861": expected a number of CPUs .*\(0\.01 to 175921860\)$/m,
    ],
    [["--cpus", "0"], /--cpus: bad value "0"/],
    [["--cpus", "two"], /--cpus: bad value "two"/],
    [["--time", "5"], /--time: bad value "5"/],
    [["--time", "0s"], /--time: bad value "0s"/],
    [["--time", "1x"], /--time: bad value "1x"/],
    [["--wall-time", "soon"], /--wall-time: bad value "soon"/],
    [["--extra-time", "1s"], /--extra-time: extends a time limit: add --time or --wall-time$/m],
    [["--time", "1s", "--extra-time", "1"], /--extra-time: bad value "1"/],
    // Past setTimeout's 2^31-1 ms, the kill came at once.
    [
      ["--wall-time", "500h", "--extra-time", "100h"],
      /--extra-time: with --wall-time, at most 2147483647ms \(about 24.8 days\) together$/m,
    ],
    [["--stdin", "/nonexistent-input"], /--stdin: cannot open \/nonexistent-input: ENOENT/],
    [["--stdout", "/nonexistent-dir/out"], /--stdout: cannot open \/nonexistent-dir\/out: ENOENT/],
    [["--stderr", ""], /--stderr: bad value ""/],
    [["--report", "/nonexistent-dir/r.json"], /--report: cannot open \/nonexistent-dir\/r\.json: ENOENT/],
    [["--cgroup", "relative"], /--cgroup: bad value "relative"/],
    // One line, naming --cgroup: the library's "cgroup name" error printed the newline raw.
    [
      ["--cgroup", "/sbox-x\ny"],
      /^sbox: invalid option --cgroup: bad value "\/sbox-x\\ny": expected .*control characters/,
    ],
    [["--cgroup", "/nonexistent-cgroup"], /--cgroup: cgroup .*\/nonexistent-cgroup does not exist/],
    [["--bogus"], /unknown option --bogus/],
    [["--hostname", "a", "--hostname", "b"], /--hostname is given more than once/],
    [["--time"], /option --time needs a value/],
  ];
  // A few at a time: each case starts a Deno.
  for (let i = 0; i < cases.length; i += 4) {
    await Promise.all(
      cases.slice(i, i + 4).map(async ([args, pattern]) => {
        const result = await sbox(["run", ...args, "--", "true"]);
        assertSboxFailed(result, pattern);
        assertNothingLeft(result.pid);
      }),
    );
  }
  assertSboxFailed(await sbox(["run"]), /missing COMMAND/);
  assertSboxFailed(await sbox([]), /missing command/);
  assertSboxFailed(await sbox(["frob"]), /unknown command "frob"/);
});

Deno.test('cli: the hint for a value that starts with "-" gives forms that work, for short and long options', async () => {
  for (const option of ["-e", "--env"]) {
    const refused = await sbox(["run", option, "-x=1", "--", "true"]);
    assertSboxFailed(refused, new RegExp(`option ${option} needs a value; .* write `));
    // Each form the hint gives, with VALUE replaced, sets the variable "-x".
    const forms = /write (.*) \(see/.exec(refused.stderr)![1].split(" or ");
    assert.ok(forms.length > 0 && forms.every((form) => form.includes("VALUE")), refused.stderr);
    for (const form of forms) {
      const result = await sbox(["run", form.replace("VALUE", "-x=1"), "--", "/usr/bin/env"]);
      assert.equal(result.code, 0, `${form}: ${result.stderr}`);
      assert.ok(result.stdout.split("\n").includes("-x=1"), `${form}: ${result.stdout}`);
    }
  }
});

Deno.test("cli: values the library would refuse are refused naming the command-line option and the value", async () => {
  // [arguments, option, value]: the line must be `sbox: invalid option OPTION: ...VALUE...`.
  const cases: [string[], string, string][] = [
    [["-u", "70000"], "--user", "70000"],
    [["--user", "0:70000"], "--user", "70000"],
    [["--hostname", ""], "--hostname", '""'],
    [["--hostname", "bad host"], "--hostname", '"bad host"'],
    [
      ["--hostname", ".x"],
      "--hostname",
      '".x": expected 1-64 letters, digits, "." or "-", starting with a letter or digit',
    ],
    [["--hostname", "a".repeat(65)], "--hostname", "a".repeat(65)],
    [["--bind", "/tmp:/../x"], "--bind", '"/tmp:/../x"'],
    [["--bind", "/tmp:/a/../../x:ro"], "--bind", '"/tmp:/a/../../x:ro"'],
    [["--tmpfs", "/../x"], "--tmpfs", '"/../x"'],
    [["--tmpfs", "/x/..:1M"], "--tmpfs", '"/x/..:1M"'],
    [["--rlimit", "NOFILE=64:32"], "--rlimit", '"NOFILE=64:32"'],
    [["--rlimit", "NOFILE=99999999999999999999"], "--rlimit", '"NOFILE=99999999999999999999"'],
    [["--cgroup", "/../x"], "--cgroup", '"/../x"'],
    [["--cgroup", "/sys/fs/cgroup/./x"], "--cgroup", '"/sys/fs/cgroup/./x"'],
  ];
  for (let i = 0; i < cases.length; i += 4) {
    await Promise.all(
      cases.slice(i, i + 4).map(async ([args, option, value]) => {
        const result = await sbox(["run", "--rootfs", busyboxImage(), ...args, "--", "true"]);
        assertSboxFailed(result, new RegExp(`^sbox: invalid option ${option}: `));
        assert.ok(result.stderr.includes(value), `${args.join(" ")}: ${result.stderr}`);
        assertNothingLeft(result.pid);
      }),
    );
  }
  // The ids the container has are named: as root, the identity map's; a
  // user's come from /etc/subuid (docs/rootless.md).
  // What to do: pick one it has, or (a user with one id only) get more.
  const ids = Deno.uid() === 0 ? "0-65535" : "[-0-9, ]+";
  assert.match(
    (await sbox(["run", "-u", "70000", "--", "true"])).stderr,
    new RegExp(
      `^sbox: invalid option --user: uid 70000 is not mapped into the container, whose ids are ${ids}: ` +
        "(give a uid of the container's|a user without /etc/subuid and /etc/subgid entries has this one id " +
        "only: give the user /etc/subuid and /etc/subgid entries for more ids \\(docs/rootless.md\\), or run the " +
        "command as yourself with " +
        "--keep-id)\n$",
    ),
  );
});

const GID_SOURCE_TEST = "cli: a gid that -u did not give, and the container lacks, says where it came from";
Deno.test({ name: GID_SOURCE_TEST, ignore: skipWithoutManyIds(GID_SOURCE_TEST) }, async () => {
  // An image whose passwd gives uid 1000 a group past any container's ids.
  const image = scratchDir("cli-passwd-");
  try {
    Deno.mkdirSync(`${image}/etc`);
    Deno.writeTextFileSync(`${image}/etc/passwd`, "u:x:1000:70000::/home/u:/bin/sh\n");
    const result = await sbox(["run", "--rootfs", image, "-u", "1000", "--", "true"]);
    assertSboxFailed(
      result,
      new RegExp(
        `^sbox: invalid option --user: gid 70000 \\(the primary group of uid 1000 in ${image}/etc/passwd\\) ` +
          "is not mapped into the container, whose ids are [-0-9, ]+: (give a group of the container's with " +
          "-u UID:GID|a user without .*)$",
      ),
    );
  } finally {
    Deno.removeSync(image, { recursive: true });
  }
});

// ---- refusals of the host, explained -------------------------------------------

/**
 * `sbox ARGS...` started by `sh -c SCRIPT` behind `wrapper` (`unshare -m`):
 * SCRIPT (mounts that make the host hostile) runs first, then sbox.
 */
async function sboxBehind(wrapper: readonly string[], script: string, args: string[]): Promise<Result> {
  const output = await runCommand([
    ...wrapper,
    "sh",
    "-c",
    `${script} && exec "$@"`,
    "sh",
    Deno.execPath(),
    "run",
    "--allow-ffi",
    SBOX,
    ...args,
  ]);
  return { ...output, pid: NaN };
}

/** A mount namespace of the test's own, its mounts private: what is mounted there stays there. */
// sbox run inside a user namespace that maps only uid 0 (unshare -U -r), or
// with a read-only /proc: the id maps cannot be written, and the message
// says why, not only the errno.
const MAP_REFUSALS_TEST =
  "cli: id maps that cannot be written say why: a user namespace mapping only uid 0, a read-only /proc";
Deno.test({
  name: MAP_REFUSALS_TEST,
  ignore: skipUnlessRoot(
    MAP_REFUSALS_TEST,
    "as root sbox maps ids 0-65535, and it remounts /proc (unshare -m)",
  ),
}, async () => {
  const narrow = await sboxBehind(["unshare", "-U", "-r"], "true", ["run", "--", "true"]);
  assert.equal(narrow.code, 125, narrow.stderr);
  assert.match(
    narrow.stderr,
    /uid_map: EPERM .*maps only uids 0 \(\/proc\/self\/uid_map\).* not 0-65535/,
    narrow.stderr,
  );
  // remount,bind: read-only for this mount alone, not for the host's proc.
  const readOnly = await sboxBehind(OWN_MOUNT_NAMESPACE, "mount -o remount,bind,ro /proc", [
    "run",
    "--",
    "true",
  ]);
  assert.equal(readOnly.code, 125, readOnly.stderr);
  assert.match(readOnly.stderr, /uid_map: EROFS .*\/proc is mounted read-only here/, readOnly.stderr);
});

const MASKED_PROC_TEST =
  "cli: a new proc or sysfs refused (EPERM) names what covers the host's, as in Docker";
Deno.test({
  name: MASKED_PROC_TEST,
  ignore: skipUnlessRoot(MASKED_PROC_TEST, "it mounts over /proc and /sys in a mount namespace of its own"),
  async fn() {
    const image = busyboxImage();
    const cases: [string, RegExp][] = [
      // Docker's masks: /dev/null over files, a read-only tmpfs over directories.
      [
        "mount --bind /dev/null /proc/uptime",
        /^sbox: cannot mount proc on \/proc: EPERM \(Operation not permitted\): the kernel mounts a new proc in a user namespace only where .* nothing mounted over a part of it; here \/proc has mounts over parts of it \(\/proc\/uptime\), as Docker, Podman and Kubernetes mask them: .*systempaths=unconfined/,
      ],
      [
        "mount -t tmpfs -o ro tmpfs /sys/firmware",
        /^sbox: cannot mount sysfs on \/sys: EPERM .*; here \/sys has mounts over parts of it \(\/sys\/firmware\)/,
      ],
      // The kernel's own empty mount points hide nothing: not named.
      [
        "mount -t tmpfs tmpfs /proc/sys/fs/binfmt_misc && mount --bind /dev/null /proc/uptime",
        /; here \/proc has mounts over parts of it \(\/proc\/uptime\),/,
      ],
      // Without /proc/sys the IPC limits cannot be written.
      [
        "mount -t proc -o subset=pid proc /proc",
        /^sbox: cannot write \/proc\/sys\/kernel\/shmmax: ENOENT .*: it is a proc mounted with subset=pid/,
      ],
    ];
    await Promise.all(cases.map(async ([script, pattern]) => {
      const result = await sboxBehind(OWN_MOUNT_NAMESPACE, script, ["run", "--rootfs", image, "--", "true"]);
      assertSboxFailed(result, pattern);
    }));
  },
});

const HOST_ATIME_TEST =
  "cli: a host whose /proc or /sys is mounted noatime, nodiratime or strictatime runs containers, their proc and sysfs with its flags";
Deno.test({
  name: HOST_ATIME_TEST,
  ignore: skipUnlessRoot(HOST_ATIME_TEST, "it remounts /proc and /sys in a mount namespace of its own"),
  async fn() {
    const image = busyboxImage();
    // The kernel mounts a proc or sysfs in a user namespace only with the
    // atime flags of the host's, which are locked there: the default
    // relatime was refused (EPERM) wherever the host's differed.
    const cases: [string, RegExp, RegExp][] = [
      ["mount -o remount,bind,noatime /proc", /^\/proc \S*\bnoatime\b/m, /^\/sys \S*\brelatime\b/m],
      [
        "mount -o remount,bind,strictatime /proc && mount -o remount,bind,nodiratime /sys",
        /^\/proc (?!\S*(relatime|noatime))\S+$/m,
        /^\/sys (?=\S*\bnodiratime\b)(?=\S*\brelatime\b)\S+$/m,
      ],
    ];
    for (const [script, proc, sys] of cases) {
      const result = await sboxBehind(OWN_MOUNT_NAMESPACE, script, [
        "run",
        "--rootfs",
        image,
        "--",
        "sh",
        "-c",
        "cut -d' ' -f5,6 /proc/self/mountinfo | grep -E '^/(proc|sys) '",
      ]);
      assert.equal(result.code, 0, `${script}: ${result.stderr}`);
      assert.match(result.stdout, proc, `${script}: ${result.stdout}`);
      assert.match(result.stdout, sys, `${script}: ${result.stdout}`);
    }
  },
});

const OVERLAY_DEPTH_TEST =
  "cli: an image on an overlay of an overlay (EINVAL) says the kernel stacks two deep";
Deno.test({
  name: OVERLAY_DEPTH_TEST,
  ignore: skipUnlessRoot(OVERLAY_DEPTH_TEST, "it mounts overlays in a mount namespace of its own"),
  async fn() {
    const dir = scratchDir("cli-overlay-depth-");
    try {
      // o1 stacks on the image's file system, o2 on o1: a third level is refused.
      const script = `cd ${shellQuote(dir)} && mount -t tmpfs tmpfs . && cd . && ` +
        "mkdir u1 w1 o1 u2 w2 o2 && " +
        `mount -t overlay overlay -o lowerdir=${shellQuote(busyboxImage())},upperdir=u1,workdir=w1 o1 && ` +
        `mount -t overlay overlay -o lowerdir=${shellQuote(dir)}/o1,upperdir=u2,workdir=w2 o2`;
      const result = await sboxBehind(OWN_MOUNT_NAMESPACE, script, [
        "run",
        "--rootfs",
        `${dir}/o2`,
        "--",
        "true",
      ]);
      assertSboxFailed(
        result,
        new RegExp(
          "^sbox: cannot mount the overlay of the image on /: EINVAL \\(Invalid argument\\): the image " +
            `${dir}/o2 is on an overlayfs \\(mounted on ${dir}/o2\\), which has an overlay among its own ` +
            `layers \\(${dir}/o1\\), so it cannot be stacked on again: the kernel stacks file systems at most ` +
            "two deep .*: copy the image to a directory on a disk file system or a tmpfs",
        ),
      );
      // One level is fine: sbox in a Docker container whose root is an overlay.
      const oneLevel = await sboxBehind(OWN_MOUNT_NAMESPACE, script, [
        "run",
        "--rootfs",
        `${dir}/o1`,
        "--",
        "true",
      ]);
      assert.equal(oneLevel.code, 0, oneLevel.stderr);
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

// The library's words for these two are its own (an OverlayMount of an
// image, HostRootMount's steps); sbox run's are about its --rootfs.
const HOST_ROOT_DEPTH_TEST = "cli: a host directory on an overlay of an overlay (EINVAL) advises --rootfs";
Deno.test({
  name: HOST_ROOT_DEPTH_TEST,
  ignore: skipUnlessRoot(HOST_ROOT_DEPTH_TEST, "it mounts overlays in a mount namespace of its own"),
  async fn() {
    // Not under /tmp, which the host root's container has a fresh tmpfs at
    // (a checkout may be there, and so its tests' scratch directories).
    const dir = Deno.makeTempDirSync({ dir: "/var/tmp", prefix: "sbox-host-depth-" });
    try {
      // o2 stacks on o1, which stacks on a tmpfs: the host root's overlay of o2 would be a third level.
      const script = `cd ${shellQuote(dir)} && mount -t tmpfs tmpfs . && cd . && ` +
        "mkdir l1 u1 w1 o1 u2 w2 o2 && mount -t overlay overlay -o lowerdir=l1,upperdir=u1,workdir=w1 o1 && " +
        `mount -t overlay overlay -o lowerdir=${shellQuote(dir)}/o1,upperdir=u2,workdir=w2 o2`;
      const result = await sboxBehind(OWN_MOUNT_NAMESPACE, script, ["run", "--", "true"]);
      assertSboxFailed(
        result,
        new RegExp(
          `^sbox: cannot mount overlay on ${dir}/o2: EINVAL \\(Invalid argument\\): the host's directory ` +
            `${dir}/o2 is on an overlayfs \\(mounted on ${dir}/o2\\), which has an overlay among its own ` +
            `layers \\(${dir}/o1\\), so it cannot be stacked on again: .*: run an image directory on a disk ` +
            "file system or a tmpfs with --rootfs instead$",
        ),
      );
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

const TOO_MANY_MOUNTS_TEST = "cli: a host with too many mounts for one setup program advises --rootfs";
Deno.test({
  name: TOO_MANY_MOUNTS_TEST,
  ignore: skipUnlessRoot(TOO_MANY_MOUNTS_TEST, "it mounts in a mount namespace of its own"),
  async fn() {
    const dir = Deno.makeTempDirSync({ dir: "/var/tmp", prefix: "sbox-too-many-mounts-" });
    try {
      // 150 tmpfs mounts in a/, and a/ bound recursively 150 times in b/:
      // 22800 mounts, about four steps each in the host-root plan, past
      // the 65536 a setup program has at most.
      const script = `cd ${shellQuote(dir)} && mount -t tmpfs tmpfs . && cd . && mkdir a b && i=0 && ` +
        "while [ $i -lt 150 ]; do mkdir a/$i && mount -t tmpfs tmpfs a/$i || exit 1; i=$((i + 1)); done && " +
        "i=0 && while [ $i -lt 150 ]; do mkdir b/$i && mount --rbind a b/$i || exit 1; i=$((i + 1)); done";
      const result = await sboxBehind(OWN_MOUNT_NAMESPACE, script, ["run", "--", "true"]);
      assertSboxFailed(
        result,
        new RegExp(
          `^sbox: the setup program has \\d+ steps, at most ${PROGRAM_LIMITS.ops}: too many mounts \\(sbox ` +
            "run's host root takes about four for each of the host's mounts: run an image with --rootfs " +
            "instead\\)$",
        ),
      );
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

const MANY_MOUNTS_TEST = "cli: a host with 1100 mounts in one directory runs with the host's root";
Deno.test({
  name: MANY_MOUNTS_TEST,
  ignore: skipUnlessRoot(MANY_MOUNTS_TEST, "it mounts in a mount namespace of its own"),
  async fn() {
    // About four steps each in the host-root plan: past the 4096 steps
    // that a setup program once had at most. Not under /tmp, which the
    // container has a fresh tmpfs at (a checkout may be there).
    const dir = Deno.makeTempDirSync({ dir: "/var/tmp", prefix: "sbox-many-mounts-" });
    try {
      const script = `cd ${shellQuote(dir)} && mount -t tmpfs tmpfs . && cd . && i=0 && ` +
        "while [ $i -lt 1100 ]; do mkdir d$i && mount -t tmpfs tmpfs d$i || exit 1; i=$((i + 1)); done";
      const result = await sboxBehind(OWN_MOUNT_NAMESPACE, script, [
        "run",
        "--",
        "sh",
        "-c",
        `ls ${shellQuote(dir)} | wc -l && touch ${shellQuote(dir)}/d7/x && echo wrote`,
      ]);
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdout, "1100\nwrote\n");
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

const NAMESPACE_LIMIT_TEST =
  "cli: clone3's ENOSPC says which limit on namespaces, here max_user_namespaces 0";
Deno.test({
  name: NAMESPACE_LIMIT_TEST,
  ignore: skipUnlessRoot(NAMESPACE_LIMIT_TEST, "it runs sbox as root of a user namespace of its own"),
  async fn() {
    // The limit is the user namespace's own: the host's stays as it is.
    const result = await sboxBehind(
      ["unshare", "--user", "--map-root-user"],
      "echo 0 > /proc/sys/user/max_user_namespaces",
      ["run", "--rootfs", busyboxImage(), "--", "true"],
    );
    assertSboxFailed(
      result,
      /^sbox: cannot create the process \(clone3\): ENOSPC \(No space left on device\) \(a limit on namespaces: user and pid namespaces nest at most 32 deep, .*; here \/proc\/sys\/user\/max_user_namespaces is 0, which forbids them: raise the limit/,
    );
  },
});

// ---- the parsers, directly --------------------------------------------------

Deno.test("cli units: sizes and durations parse strictly", () => {
  assert.equal(parseSize("--memory", "512k"), 512 * 1024);
  assert.equal(parseSize("--memory", "64M"), 64 * 1024 ** 2);
  assert.equal(parseSize("--memory", "1G"), 1024 ** 3);
  assert.equal(parseSize("--memory", "1g"), 1024 ** 3);
  assert.equal(parseSize("--memory", "4096"), 4096);
  assert.equal(parseSize("--swap", "0", { allowZero: true }), 0);
  for (const bad of ["", "0", "1.5G", "64MB", "64 M", "-1", "M", "1e6", "0x10", "99999999999T"]) {
    assert.throws(
      () => parseSize("--memory", bad),
      (e) => e instanceof SboxError && /--memory/.test(e.message),
      bad,
    );
  }
  assert.equal(parseDuration("--time", "500ms"), 500);
  assert.equal(parseDuration("--time", "2s"), 2000);
  assert.equal(parseDuration("--time", "1.5s"), 1500);
  assert.equal(parseDuration("--time", "1m"), 60_000);
  assert.equal(parseDuration("--time", "1h"), 3_600_000);
  // The most setTimeout takes, 2^31-1 ms: 596h passes, and the error gives the bound.
  assert.equal(parseDuration("--time", "596h"), 2_145_600_000);
  assert.throws(() => parseDuration("--time", "597h"), /at most 2147483647ms \(about 24\.8 days\)/);
  for (const bad of ["", "2", "0s", "0ms", "-1s", "1.s", ".5s", "1 s", "1sec", "1m30s", "1e3ms", "999h"]) {
    assert.throws(
      () => parseDuration("--time", bad),
      (e) => e instanceof SboxError && /--time/.test(e.message),
      bad,
    );
  }
  assert.equal(parseCpus("--cpus", "0.5"), 50_000);
  assert.equal(parseCpus("--cpus", "2"), 200_000);
  assert.throws(() => parseCpus("--cpus", "0.001"), SboxError);
  // The kernel's largest quota, 2^44-1 µs, per 100 ms.
  assert.equal(parseCpus("--cpus", "175921860"), 17_592_186_000_000);
  assert.throws(() => parseCpus("--cpus", "175921861"), /expected a number of CPUs .*\(0\.01 to 175921860\)/);
});

/**
 * For each option of `RUN_OPTIONS`, a value (none for a boolean) and what
 * it needs given before it (`context`): its parse must differ from the
 * context's alone, so an option that the parser accepts and ignores fails.
 * The type wants an entry for each option but `--help`, which asks for no
 * run (`NO_OP_OPTIONS`).
 */
const OPTION_SAMPLES: Record<
  Exclude<keyof typeof RUN_OPTIONS, "help">,
  { value?: string; context?: string[] }
> = {
  rootfs: { value: "/img" },
  bind: { value: "/a:/b" },
  tmpfs: { value: "/t" },
  "write-limit": { value: "2G" },
  env: { value: "A=1" },
  "env-file": { value: "f.env" },
  cwd: { value: "/w" },
  user: { value: "5" },
  "keep-id": {},
  hostname: { value: "judge" },
  net: { value: "slirp4netns" },
  "allow-host-loopback": { context: ["--net", "pasta"] },
  publish: { value: "8080:80", context: ["--net", "pasta"] },
  verbose: {},
  memory: { value: "64M" },
  swap: { value: "0" },
  pids: { value: "64" },
  cpus: { value: "1" },
  time: { value: "1s" },
  "wall-time": { value: "1s" },
  "extra-time": { value: "1s", context: ["--time", "1s"] },
  stdin: { value: "in" },
  stdout: { value: "out" },
  stderr: { value: "err" },
  report: { value: "report.json" },
  cgroup: { value: "/judge" },
  "cap-add": { value: "NET_RAW" },
  "cap-drop": { value: "KILL" },
  seccomp: { value: "unconfined" },
  rlimit: { value: "NOFILE=64" },
};
const NO_OP_OPTIONS: readonly string[] = ["help"];

Deno.test("cli args: every option of RUN_OPTIONS changes what is parsed", () => {
  const parse = (args: string[]) => {
    const invocation = parseCommandLine(["run", ...args, "--", "true"]);
    assert.equal(invocation.kind, "run", args.join(" "));
    return (invocation as { options: RunOptions }).options;
  };
  for (const name of Object.keys(RUN_OPTIONS)) {
    if (NO_OP_OPTIONS.includes(name)) continue;
    assert.ok(name in OPTION_SAMPLES, `--${name} has no sample in OPTION_SAMPLES`);
    const { value, context = [] } = OPTION_SAMPLES[name as keyof typeof OPTION_SAMPLES];
    const option = [`--${name}`, ...(value === undefined ? [] : [value])];
    assert.notDeepEqual(
      parse([...context, ...option]),
      parse(context),
      `${option.join(" ")} changed nothing`,
    );
  }
});

// The parser sets every default of the command line, as the docs give
// them; what is left undefined is not asked for. (The hostname's default
// was run.ts's, the working directory's run.ts's and exec_failure.ts's.)
Deno.test("cli args: a run without options has every default of the command line", () => {
  assert.deepEqual(parseCommandLine(["run", "true"]), {
    kind: "run",
    options: {
      command: ["true"],
      mounts: [],
      env: [],
      cwd: "/",
      keepId: false,
      hostname: "sbox",
      net: "none",
      allowHostLoopback: false,
      publish: [],
      verbose: false,
      writeLimit: 1024 ** 3,
    },
  });
});

Deno.test("cli args: options, repeatable options and the command", () => {
  const invocation = parseCommandLine([
    "run",
    "--bind",
    "/a:/b:ro",
    "--tmpfs",
    "/t:1M",
    "--bind",
    "/c:/d",
    "-e",
    "X=1",
    "-u",
    "5:6",
    "--time",
    "1.5s",
    "cmd",
    "--bind",
    "-x",
  ]);
  assert.equal(invocation.kind, "run");
  if (invocation.kind !== "run") return;
  const { options } = invocation;
  assert.deepEqual(options.command, ["cmd", "--bind", "-x"]);
  assert.deepEqual(options.mounts, [
    { kind: "bind", source: "/a", target: "/b", readonly: true, optional: false },
    { kind: "tmpfs", target: "/t", size: 1024 * 1024 },
    { kind: "bind", source: "/c", target: "/d", readonly: false, optional: false },
  ]);
  // try, alone or with ro or rw, in either order.
  for (
    const [opts, readonly] of [["try", false], ["ro,try", true], ["try,ro", true], ["rw,try", false]] as const
  ) {
    const parsed = parseCommandLine(["run", "--bind", `/a:/b:${opts}`, "x"]);
    assert.deepEqual(parsed.kind === "run" && parsed.options.mounts, [
      { kind: "bind", source: "/a", target: "/b", readonly, optional: true },
    ]);
  }
  assert.deepEqual(options.env, [{ kind: "set", name: "X", value: "1" }]);
  const inherited = parseCommandLine(["run", "-e", "TOKEN", "-e", "A=", "-eB=c=d", "x"]);
  assert.deepEqual(inherited.kind === "run" && inherited.options.env, [
    { kind: "inherit", name: "TOKEN" },
    { kind: "set", name: "A", value: "" },
    { kind: "set", name: "B", value: "c=d" },
  ]);
  const files = parseCommandLine(["run", "-e", "A=1", "--env-file", "f.env", "-e", "B", "--env-file=g", "x"]);
  assert.deepEqual(files.kind === "run" && files.options.env, [
    { kind: "set", name: "A", value: "1" },
    { kind: "file", path: "f.env" },
    { kind: "inherit", name: "B" },
    { kind: "file", path: "g" },
  ]);
  assert.deepEqual(options.user, { uid: 5, gid: 6 });
  assert.equal(options.cpuTimeMs, 1500);
  for (const [given, clean] of [["/a/../../b/./c//", "/b/c"], ["/..", "/"], ["/x/", "/x"]]) {
    const cwd = parseCommandLine(["run", "-w", given, "x"]);
    assert.equal(cwd.kind === "run" && cwd.options.cwd, clean, given);
  }
  assert.deepEqual(parseCommandLine(["run", "--help"]), { kind: "help", topic: "run" });
  assert.deepEqual(parseCommandLine(["run", "-h"]), { kind: "help", topic: "run" });
  // Help only alone: with anything else it is an error, which writes the XX report.
  // -vh and -hv once showed the help: one argument, though two options.
  for (
    const argv of [["-h", "judge1"], ["-vh", "x"], ["-vh"], ["-hv"], ["--memory", "1G", "--help"], [
      "--help",
      "--",
    ]]
  ) {
    const message = argv.includes("--help")
      ? /^--help takes no other arguments/
      : /^-h is --help, .*--hostname/;
    assert.throws(
      () => parseCommandLine(["run", ...argv]),
      (e) => e instanceof SboxError && e.step === "options" && message.test(e.message),
      argv.join(" "),
    );
  }
  assert.deepEqual(parseCommandLine(["help", "run"]), { kind: "help", topic: "run" });
  assert.deepEqual(parseCommandLine(["-h"]), { kind: "help", topic: "main" });
  assert.deepEqual(parseCommandLine(["run", "--", "--help"]).kind, "run");
  assert.deepEqual(parseCommandLine(["--version"]), { kind: "version" });
  // Capability names with or without CAP_; ALL only as itself (no capability is named CAP_ALL).
  const caps = parseCommandLine(["run", "--cap-add", "cap_net_raw,SYS_PTRACE", "--cap-drop", "all", "x"]);
  assert.deepEqual(caps.kind === "run" && [caps.options.capAdd, caps.options.capDrop], [
    ["NET_RAW", "SYS_PTRACE"],
    ["ALL"],
  ]);
  assert.throws(() => parseCommandLine(["run", "--cap-add", "CAP_ALL", "x"]), /--cap-add.*CAP_ALL/);
  // A capability both added and dropped is refused by the flags' names (the
  // library would name capAdd and capDrop); ALL added with a drop is not.
  for (
    const [argv, name] of [
      [["--cap-add", "SYS_ADMIN", "--cap-drop", "cap_sys_admin"], "SYS_ADMIN"],
      [["--cap-drop", "KILL", "--cap-add", "NET_RAW,kill"], "KILL"],
      [["--cap-add", "all", "--cap-drop", "ALL"], "ALL"],
    ] as const
  ) {
    assert.throws(
      () => parseCommandLine(["run", ...argv, "x"]),
      (e) =>
        e instanceof SboxError && e.step === "options" &&
        e.message.startsWith(`invalid option --cap-drop: ${name} is in --cap-add too: `),
      argv.join(" "),
    );
  }
  // The message says how to keep everything but one, by the flags.
  assert.throws(
    () => parseCommandLine(["run", "--cap-add", "SYS_ADMIN", "--cap-drop", "SYS_ADMIN", "x"]),
    (e) =>
      e instanceof SboxError &&
      e.message ===
        "invalid option --cap-drop: SYS_ADMIN is in --cap-add too: a capability is either added " +
          "or dropped (--cap-add ALL --cap-drop SYS_ADMIN keeps every capability but SYS_ADMIN)",
  );
  const allBut = parseCommandLine(["run", "--cap-add", "ALL", "--cap-drop", "SYS_ADMIN", "x"]);
  assert.deepEqual(allBut.kind === "run" && [allBut.options.capAdd, allBut.options.capDrop], [
    ["ALL"],
    ["SYS_ADMIN"],
  ]);
});

Deno.test("cli args: --rlimit takes the units of --memory for the resources that count bytes, and only for them", () => {
  const rlimits = (...values: string[]) => {
    const invocation = parseCommandLine(["run", ...values.flatMap((v) => ["--rlimit", v]), "x"]);
    return invocation.kind === "run" ? invocation.options.rlimits : undefined;
  };
  assert.deepEqual(
    rlimits("AS=256M", "fsize=64k:1g", "RLIMIT_STACK=8M:unlimited", "CORE=0", "MEMLOCK=4096"),
    {
      AS: 256 * 1024 ** 2,
      FSIZE: { soft: 64 * 1024, hard: 1024 ** 3 },
      STACK: { soft: 8 * 1024 ** 2, hard: "unlimited" },
      CORE: 0,
      MEMLOCK: 4096,
    },
  );
  assert.deepEqual(rlimits("DATA=1T", "RSS=2m", "MSGQUEUE=1K", "NOFILE=64:128"), {
    DATA: 1024 ** 4,
    RSS: 2 * 1024 ** 2,
    MSGQUEUE: 1024,
    NOFILE: { soft: 64, hard: 128 },
  });
  const refused: [string, RegExp][] = [
    [
      "NOFILE=64k",
      /"NOFILE=64k": expected a number without a unit for NOFILE, which counts no bytes \(k, M, G and T are for FSIZE, /,
    ],
    ["NPROC=1:2M", /expected a number without a unit for NPROC/],
    ["AS=1.5G", /"AS=1\.5G": expected NAME=LIMIT or NAME=SOFT:HARD, e\.g\. NOFILE=64 or AS=256M/],
    ["AS=256MB", /"AS=256MB": expected NAME=LIMIT/],
    ["AS=2G:1G", /SOFT not above HARD/],
    ["AS=99999999999T", /at most 2\^53-1/],
    ["AS=", /expected NAME=LIMIT/],
    ["AS=1:2:3", /expected NAME=LIMIT/],
  ];
  for (const [value, message] of refused) {
    assert.throws(
      () => rlimits(value),
      (e) =>
        e instanceof SboxError && e.message.startsWith("invalid option --rlimit: ") &&
        message.test(e.message),
      value,
    );
  }
});

// They failed later, as "cannot stat" or "cannot create directory" and the
// whole 5000-byte path, naming no option.
Deno.test("cli args: a path the kernel would refuse as too long is refused naming its option", () => {
  const long = "/" + "a".repeat(5000);
  const name = "/x/" + "\u00e9".repeat(200); // 400 bytes in one component
  const cases: [string[], RegExp][] = [
    [["--rootfs", long], /^invalid option --rootfs: a path of 5001 bytes, "\/a{39}"\.\.\.: at most 4095$/],
    [["--bind", `${long}:/x`], /^invalid option --bind: a path of 5001 bytes/],
    [
      ["--bind", `/tmp:${name}`],
      /^invalid option --bind: a file name of 400 bytes, "\u00e9{40}"\.\.\.: at most 255$/,
    ],
    [["--tmpfs", name], /^invalid option --tmpfs: a file name of 400 bytes/],
    [["-w", long], /^invalid option --cwd: a path of 5001 bytes/],
    [["--stdin", name], /^invalid option --stdin: a file name of 400 bytes/],
    [["--stdout", long], /^invalid option --stdout: a path of 5001 bytes/],
    [["--stderr", long], /^invalid option --stderr: a path of 5001 bytes/],
    [["--report", long], /^invalid option --report: a path of 5001 bytes/],
    [["--seccomp", long], /^invalid option --seccomp: a path of 5001 bytes/],
    [["--env-file", long], /^invalid option --env-file: a path of 5001 bytes/],
  ];
  for (const [args, message] of cases) {
    assert.throws(
      () => parseCommandLine(["run", ...args, "--", "true"]),
      (e) => e instanceof SboxError && message.test(e.message),
      args[0],
    );
  }
  // 4095 bytes and a 255-byte name are the kernel's limits, and pass.
  const longest = "/" + "b/".repeat(2046) + "bb";
  assert.equal(new TextEncoder().encode(longest).length, 4095);
  assert.doesNotThrow(() =>
    parseCommandLine(["run", "--stdout", longest, "-w", "/" + "c".repeat(255), "--", "true"])
  );
  // The path's start is cut between characters, not inside a UTF-16 pair (it printed "\ud83d").
  assert.throws(
    () =>
      parseCommandLine(["run", "--rootfs", "/" + "a".repeat(38) + "\u{1f600}".repeat(1100), "--", "true"]),
    (e) => e instanceof SboxError && e.message.includes(`"/${"a".repeat(38)}\u{1f600}"...`),
  );
  // No XX report is tried at such a path: it printed a second error with the whole path.
  assert.equal(reportPathOf(["run", "--report", long, "--", "true"]), undefined);
});

Deno.test("cli args: reportPathOf finds --report FILE only where it surely is one, parsable or not", () => {
  const cases: [string[], string | undefined][] = [
    [["run", "--report", "r.json", "--memory", "64MB", "--", "true"], "r.json"],
    [["run", "--bogus", "--report=r.json"], "r.json"],
    [["run", "--report", "-", "--", "true"], "-"],
    [["run", "--report", "r.json"], "r.json"], // no COMMAND
    [["run", "--", "prog", "--report", "r.json"], undefined], // the command's
    [["run", "prog", "--report", "r.json"], undefined],
    [["run", "-e", "--report", "r.json"], undefined], // -e's value, then the command
    [["run", "--report", "--memory", "1G"], undefined], // a forgotten value
    [["run", "--report=--x", "--", "true"], "--x"], // attached: meant
    [["run", "--report", "a", "--report", "b"], undefined], // which one?
    [["run", "--report", ""], undefined],
    [["--report", "r.json", "run"], undefined],
  ];
  for (const [argv, expected] of cases) assert.equal(reportPathOf(argv), expected, argv.join(" "));
});

Deno.test("cli argv: the tokenizer's conventions and its one-line errors", () => {
  const options = {
    env: { type: "string", short: "e", multiple: true },
    verbose: { type: "boolean", short: "v" },
    help: { type: "boolean", short: "h" },
    cwd: { type: "string", short: "w" },
  } as const;
  const summary = (args: string[], strict = true) =>
    tokenize(args, options, strict).map((t) =>
      t.kind === "option" ? `${t.name}=${t.value}` : t.kind === "positional" ? `pos:${t.value}` : "--"
    );
  assert.deepEqual(summary(["--env", "A=1", "--env=B=2", "-eC=3", "-e", "D=4"]), [
    "env=A=1",
    "env=B=2",
    "env=C=3",
    "env=D=4",
  ]);
  assert.deepEqual(summary(["-vh", "-vw/x", "--cwd", "/y"]), [
    "verbose=undefined",
    "help=undefined",
    "verbose=undefined",
    "cwd=/x",
    "cwd=/y",
  ]);
  assert.deepEqual(summary(["-v", "--", "-x", "y"]), ["verbose=undefined", "--", "pos:-x", "pos:y"]);
  // Not strict: unknown options are booleans, positionals are kept.
  assert.deepEqual(summary(["--bogus", "cmd", "--cwd"], false), [
    "bogus=undefined",
    "pos:cmd",
    "cwd=undefined",
  ]);
  const fails = (args: string[], message: string) =>
    assert.throws(
      () => tokenize(args, options, true),
      (e) => e instanceof ArgvError && e.message === message,
    );
  fails(["--bogus"], "unknown option --bogus");
  fails(["-x"], "unknown option -x");
  fails(["--cwd"], "option --cwd needs a value");
  fails(["--cwd", "--"], 'option --cwd needs a value; to give one that starts with "-", write --cwd=VALUE');
  fails(
    ["-w", "-x"],
    'option -w needs a value; to give one that starts with "-", write -wVALUE or --cwd=VALUE',
  );
  fails(["--verbose=yes"], "option --verbose does not take a value");
  // It said "unknown option -=".
  fails(["-v=1"], 'option -v does not take a value (in "-v=1")');
  fails(["-hv="], 'option -v does not take a value (in "-hv=")');
  fails(["-="], "unknown option -=");
  fails(["cmd"], `unexpected argument "cmd"`);
  assert.deepEqual(summary(["--cwd=-x"]), ["cwd=-x"]);
});

Deno.test("cli argv: exactArguments takes the bytes of an argument with U+FFFD from the command line, and names one it cannot find", () => {
  const encode = (s: string) => [...new TextEncoder().encode(s)];
  // deno run sbox.ts run -- echo a<ff>b é <ef bf bd>
  const cmdline = new Uint8Array([
    ...encode("deno\0run\0sbox.ts\0run\0--\0echo\0a"),
    0xff,
    ...encode("b\0é\0\ufffd\0"),
  ]);
  const args = ["run", "--", "echo", "a\ufffdb", "é", "\ufffd"];
  assert.deepEqual(exactArguments(args, cmdline), {
    args: ["run", "--", "echo", "a\udcffb", "é", "\ufffd"],
    inexact: -1,
  });
  // No U+FFFD: nothing is looked up, whatever the command line holds.
  assert.deepEqual(exactArguments(["run", "x"], new Uint8Array()), { args: ["run", "x"], inexact: -1 });
  // Arguments Deno has besides the command line's (`deno compile` with
  // arguments of its own) come first: entries are matched from the end.
  assert.deepEqual(
    exactArguments(["baked", "run", "a\ufffd"], new Uint8Array([...encode("a"), 0xff, 0])).args,
    ["baked", "run", "a\udcff"],
  );
  // An entry that is not the argument, or none: its text would not be the one given.
  assert.equal(
    exactArguments(["run", "a\ufffd"], new Uint8Array([...encode("run\0a"), 0xfe, 0xfe, 0])).inexact,
    1,
  );
  assert.equal(exactArguments(["a\ufffd", "b"], new Uint8Array([...encode("b\0")])).inexact, 0);
});

Deno.test("cli: what a SIGKILLed sbox left (scratch dir, cgroup) goes with the next run; its container died with it", async () => {
  const marker = randomName();
  const child = await startUntilReady(["--", "sh", "-c", `echo ready; sleep 1000; : ${marker}`]);
  child.kill("SIGKILL");
  await child.status;
  await child.stdout.cancel();
  await child.stderr.cancel();
  // The container died with its owner (parent-death signal)...
  for (let i = 0; i < 200 && processesWith(marker).length > 0; i++) {
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.deepEqual(processesWith(marker), []);
  // ...but the owner had no chance to remove its scratch dir and cgroup.
  const left = () => ({
    scratch: scratchDirsOf(child.pid).length,
    cgroups:
      [...Deno.readDirSync(Cgroup.current().path)].filter((e) => e.name.startsWith(`sbox-${child.pid}-`))
        .length,
  });
  assert.deepEqual(left(), { scratch: 1, cgroups: 1 });
  const next = await busybox(["true"]);
  assert.equal(next.code, 0, next.stderr);
  assert.deepEqual(left(), { scratch: 0, cgroups: 0 });
});

// ---- runs in other pid namespaces ---------------------------------------------

/** util-linux unshare: what follows runs as pid 1 of a new pid namespace, with its own /proc. */
const NEW_PID_NAMESPACE = ["unshare", "--pid", "--fork", "--mount-proc"];

/** `sbox run ARGS...` on the busybox image, behind `prefix` (e.g. {@linkcode NEW_PID_NAMESPACE}). */
function sboxCommand(prefix: string[], args: string[], stdin: "null" | "piped"): Deno.Command {
  const [program, ...rest] = [
    ...prefix,
    Deno.execPath(),
    ...["run", "--allow-ffi", SBOX, "run", "--rootfs", busyboxImage(), ...args],
  ];
  return new Deno.Command(program, {
    args: rest,
    stdin,
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(COMMAND_TIMEOUT_MS),
  });
}

/**
 * Starts a run that prints "ready" and then waits for a line on its stdin,
 * so that it lasts exactly as long as the test wants; `finish()` sends the
 * line "go" and returns how it ended.
 */
async function startWaitingRun(prefix: string[]): Promise<{ pid: number; finish: () => Promise<Result> }> {
  const command = ["--report", "-", "--", "sh", "-c", 'echo ready; read line; echo "got $line"'];
  const child = sboxCommand(prefix, command, "piped").spawn();
  const reader = child.stdout.getReader();
  const first = await reader.read();
  reader.releaseLock();
  const finish = async (): Promise<Result> => {
    const writer = child.stdin.getWriter();
    // A run that already ended (it failed) has closed the pipe: its output tells.
    await writer.write(new TextEncoder().encode("go\n")).then(() => writer.close()).catch(() => {});
    return { ...await outputOf(child), pid: child.pid };
  };
  if (first.done || text(first.value) !== "ready\n") {
    const result = await finish();
    assert.fail(`the waiting run did not start: ${JSON.stringify(result)}`);
  }
  return { pid: child.pid, finish };
}

/** Checks that a run of {@linkcode startWaitingRun} ran to its end, undisturbed. */
function assertFinishedUndisturbed(result: Result): void {
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout, "got go\n");
  assert.equal(report(result.stderr).status, "OK", result.stderr);
}

const SAME_PID_TEST =
  "cli: two runs whose sbox has the same pid (1, in two pid namespaces) do not share a cgroup";
const WHY_ROOT = "unshare --pid needs CAP_SYS_ADMIN";
Deno.test(SAME_PID_TEST, { ignore: skipUnlessRoot(SAME_PID_TEST, WHY_ROOT) }, async () => {
  // Judge workers in containers: each sbox is pid 1 of its own pid namespace,
  // and their cgroups are below one parent (here: this test's cgroup).
  const first = await startWaitingRun(NEW_PID_NAMESPACE);
  const second = await sboxCommand(NEW_PID_NAMESPACE, ["--report", "-", "--", "true"], "null").output();
  assert.equal(second.code, 0, text(second.stderr));
  // With one cgroup for both, the second run's clean-up killed the first one's command.
  assertFinishedUndisturbed(await first.finish());
});

const OTHER_PID_NS_TEST =
  "cli: a run in another pid namespace leaves a live run's scratch dir and cgroup alone";
Deno.test(OTHER_PID_NS_TEST, { ignore: skipUnlessRoot(OTHER_PID_NS_TEST, WHY_ROOT) }, async () => {
  // The first run's pid does not exist in the second one's pid namespace:
  // only its lock says that it is alive.
  const first = await startWaitingRun([]);
  const second = await sboxCommand(NEW_PID_NAMESPACE, ["--report", "-", "--", "true"], "null").output();
  assert.equal(second.code, 0, text(second.stderr));
  const ownCgroups = () =>
    [...Deno.readDirSync(Cgroup.current().path)].filter((e) => e.name.startsWith(`sbox-${first.pid}-`));
  assert.equal(scratchDirsOf(first.pid).length, 1, "the live run's scratch directory was removed");
  assert.equal(ownCgroups().length, 1, "the live run's cgroup was removed");
  assertFinishedUndisturbed(await first.finish());
  assertNothingLeft(first.pid);
});

/**
 * Another user's attack on the locks of ownership.ts (run as uid 65534 by
 * the test below): inotify on each directory of its arguments, and for each
 * new `sbox-PID-*` in them whose PID is a child of the test's process (one
 * of the test's runs), at once, an open and a flock without waiting, held
 * for good. Others' are none of its business: /dev/shm and /tmp are shared
 * with whatever else runs on the machine (another test session's runs as
 * uid 65534, whose 0700 directories it could lock, and then fail them and
 * take them for stolen). Prints `ready` once it watches, then `seen PATH`
 * for each directory it tried and `stole PATH` for each lock it took on a
 * directory that was still there afterwards (a lock taken on one its run
 * had removed already, after the run let go of it, stole nothing). Through
 * libc, as C would do it: Deno.watchFs reports too late to win the race;
 * so is the parent's pid read, from /proc/PID/stat, before the open.
 */
const LOCK_RACER = `
const [directory, testPid, ...dirs] = Deno.args;
const libc = Deno.dlopen("libc.so.6", {
  inotify_init1: { parameters: ["i32"], result: "i32" },
  inotify_add_watch: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  open: { parameters: ["buffer", "i32"], result: "i32" },
  flock: { parameters: ["i32", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
}).symbols;
const cstr = (s) => new TextEncoder().encode(s + "\\0");
const IN_CREATE = 0x100, LOCK_EX = 2, LOCK_NB = 4;
const stat = new Uint8Array(512);
// Whether process PID's parent is the test's process: field 4 of its stat,
// after the command name in parentheses (which may hold anything).
const isTestRun = (pid) => {
  const fd = libc.open(cstr("/proc/" + pid + "/stat"), 0);
  if (fd < 0) return false;
  const n = Number(libc.read(fd, stat, stat.length));
  libc.close(fd);
  const line = new TextDecoder().decode(stat.subarray(0, Math.max(n, 0)));
  return line.slice(line.lastIndexOf(")") + 2).split(" ")[1] === testPid;
};
const inotify = libc.inotify_init1(0);
const watched = new Map();
for (const dir of dirs) {
  const wd = libc.inotify_add_watch(inotify, cstr(dir), IN_CREATE);
  if (wd < 0) throw new Error("cannot watch " + dir);
  watched.set(wd, dir);
}
console.log("ready");
const buf = new Uint8Array(65536);
const view = new DataView(buf.buffer);
for (;;) {
  const n = Number(libc.read(inotify, buf, buf.length));
  if (n <= 0) throw new Error("inotify read failed");
  for (let at = 0; at < n;) {
    const wd = view.getInt32(at, true), length = view.getUint32(at + 12, true);
    const name = new TextDecoder().decode(buf.subarray(at + 16, at + 16 + length)).replace(/\\0+$/, "");
    at += 16 + length;
    const pid = /^sbox-(\\d+)-/.exec(name)?.[1];
    if (pid === undefined || !isTestRun(pid)) continue;
    const path = watched.get(wd) + "/" + name;
    const fd = libc.open(cstr(path), Number(directory));
    console.log("seen " + path);
    if (fd < 0) continue;
    let there = false;
    if (libc.flock(fd, LOCK_EX | LOCK_NB) === 0) {
      try {
        there = Deno.statSync(path).isDirectory;
      } catch {
        // removed: its run is over
      }
    }
    if (there) console.log("stole " + path);
    else libc.close(fd);
  }
}
`;

const LOCK_RACE_TEST =
  "cli: another user who locks each new sbox directory the moment it appears makes no run fail and leaves nothing";
Deno.test(
  LOCK_RACE_TEST,
  { ignore: skipUnlessRoot(LOCK_RACE_TEST, "it runs the racer as another user") },
  async () => {
    // Before the fix, the racer won about 3 in 4 races: it locked a cgroup
    // sbox had just made, which sbox then gave up (left behind) for another,
    // and after 10 such a run failed (125, "cannot keep a cgroup").
    const RUNS = 30;
    const parent = Cgroup.current().child(randomName());
    parent.create();
    const dir = scratchDir("lock-race-");
    Deno.chmodSync(dir, 0o755);
    const racer = commandAsNobody([
      Deno.execPath(),
      "eval",
      "--no-check",
      LOCK_RACER,
      String(O.DIRECTORY),
      String(Deno.pid),
      parent.path,
      ...SCRATCH_PARENTS,
    ], {
      env: { DENO_DIR: `${dir}/deno`, NO_COLOR: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const collect = (stream: ReadableStream<Uint8Array>) => {
      const chunks: string[] = [];
      const done = (async () => {
        for await (const chunk of stream.pipeThrough(new TextDecoderStream())) chunks.push(chunk);
      })();
      return { text: () => chunks.join(""), done };
    };
    const out = collect(racer.stdout), err = collect(racer.stderr);
    try {
      for (let i = 0; !out.text().startsWith("ready\n"); i++) {
        assert.ok(i < 3000, `the racer did not start: ${out.text()} ${err.text()}`);
        await new Promise((r) => setTimeout(r, 10));
      }
      const failed: string[] = [];
      for (let i = 0; i < RUNS; i++) {
        // As another uid than the cgroup's owner: it must read its cgroup (0755 once locked).
        const result = await busybox([
          "--cgroup",
          parent.path,
          "-u",
          "1000",
          "--report",
          "-",
          "--",
          "sh",
          "-c",
          "stat -c %a /sys/fs/cgroup; cat /sys/fs/cgroup/cgroup.type",
        ]);
        if (result.code !== 0 || result.stdout !== "755\ndomain\n") {
          failed.push(`run ${i}: ${result.code} ${JSON.stringify(result.stdout)} ${result.stderr}`);
        }
      }
      const left = [...Deno.readDirSync(parent.path)].filter((e) => e.isDirectory).map((e) => e.name);
      const lines = out.text().split("\n");
      const stolen = lines.filter((line) => line.startsWith("stole "));
      const seen = lines.filter((line) => line.startsWith(`seen ${parent.path}/`));
      assert.deepEqual(stolen, [], `the racer (uid 65534) locked directories of sbox's first`);
      assert.deepEqual(failed, [], "runs failed");
      assert.deepEqual(left, [], `cgroups left in ${parent.path}`);
      // The racer saw every run's cgroup: it raced them all, and lost.
      assert.ok(seen.length >= RUNS, `the racer saw ${seen.length} cgroups made, not ${RUNS}: ${err.text()}`);
    } finally {
      racer.kill("SIGKILL");
      await racer.status;
      await Promise.all([out.done, err.done]);
      await parent.remove();
      Deno.removeSync(dir, { recursive: true });
    }
  },
);

Deno.test("cli: a run's sweep passes over a directory whose run lives and may not have locked it yet", async () => {
  // A run makes its scratch directory, its cgroup and its API socket's
  // directory, and locks each a moment later: many runs of one user at once
  // (a judge), each sweeping as it starts, took such a directory in that
  // moment often enough to fail a run ("cannot keep a scratch directory").
  const sleeper = new Deno.Command("sleep", { args: ["1000"], stdin: "null" }).spawn();
  const ended = new Deno.Command("true").spawn();
  await ended.status;
  const names = (pid: number) => [
    `${SCRATCH_PARENTS[0]}/sbox-${pid}-0123abcd`,
    `/tmp/sbox-slirp4netns-${pid}-0123456789ab`,
  ];
  const live = names(sleeper.pid), dead = names(ended.pid);
  try {
    for (const dir of [...live, ...dead]) Deno.mkdirSync(dir, { mode: 0o700 });
    const run = await busybox(["--", "true"]);
    assert.equal(run.code, 0, run.stderr);
    const exists = (dir: string) => {
      try {
        return Deno.statSync(dir).isDirectory;
      } catch {
        return false;
      }
    };
    assert.deepEqual(live.map(exists), [true, true], "a live run's unlocked directory was swept");
    assert.deepEqual(dead.map(exists), [false, false], "an abandoned directory stayed");
  } finally {
    sleeper.kill("SIGKILL");
    await sleeper.status;
    for (const dir of [...live, ...dead]) {
      try {
        Deno.removeSync(dir, { recursive: true });
      } catch {
        // Swept: the dead run's.
      }
    }
  }
});

const HELD_LEFTOVER_TEST =
  "cli: a killed run's cgroup that another user keeps locked stays, and the runs go on; once let go, it goes";
Deno.test(
  HELD_LEFTOVER_TEST,
  { ignore: skipUnlessRoot(HELD_LEFTOVER_TEST, "it locks the cgroup as another user") },
  async () => {
    // Once made, a cgroup is 0755 (its container reads it), so anyone may
    // lock what a SIGKILLed run left: the sweep cannot tell that lock from a
    // live run's, and must leave it, not fail the run.
    const parent = Cgroup.current().child(randomName());
    parent.create();
    let holder: Deno.ChildProcess | undefined;
    const cgroups = () => [...Deno.readDirSync(parent.path)].filter((e) => e.isDirectory).map((e) => e.name);
    try {
      const marker = randomName();
      const killed = await startUntilReady([
        "--cgroup",
        parent.path,
        "--",
        "sh",
        "-c",
        `echo ready; sleep 1000; : ${marker}`,
      ]);
      killed.kill("SIGKILL");
      await killed.status;
      await killed.stdout.cancel();
      await killed.stderr.cancel();
      for (let i = 0; i < 200 && processesWith(marker).length > 0; i++) {
        await new Promise((r) => setTimeout(r, 10));
      }
      const left = cgroups();
      assert.equal(left.length, 1, "the killed run left no cgroup");
      holder = commandAsNobody([
        "sh",
        "-c",
        'exec 3<"$1" && flock -n 3 && echo locked && exec sleep 1000',
        "sh",
        `${parent.path}/${left[0]}`,
      ], {
        stdin: "null",
        stdout: "piped",
        stderr: "inherit",
      }).spawn();
      const reader = holder.stdout.getReader();
      assert.equal(text((await reader.read()).value!), "locked\n");
      reader.releaseLock();
      const next = await busybox(["--cgroup", parent.path, "--report", "-", "--", "true"]);
      assert.equal(next.code, 0, next.stderr);
      assert.deepEqual(cgroups(), left, "the held leftover went, or the run left one");
      holder.kill("SIGKILL");
      await holder.status;
      await holder.stdout.cancel();
      holder = undefined;
      const last = await busybox(["--cgroup", parent.path, "--", "true"]);
      assert.equal(last.code, 0, last.stderr);
      assert.deepEqual(cgroups(), [], "the leftover let go of stayed");
    } finally {
      if (holder) {
        holder.kill("SIGKILL");
        await holder.status;
        await holder.stdout.cancel();
      }
      await parent.remove();
    }
  },
);

const FULL_SCRATCH_TEST = "cli: with neither /dev/shm nor /tmp writable, the error names both";
Deno.test(
  FULL_SCRATCH_TEST,
  { ignore: skipUnlessRoot(FULL_SCRATCH_TEST, "it mounts file systems in a mount namespace of its own") },
  async () => {
    // In a mount namespace of sbox's own: a tmpfs of one inode (its root) on
    // /dev/shm, and /tmp read-only (not covered: the checkout may be there).
    const script = "mount -t tmpfs -o size=64k,nr_inodes=1 tmpfs /dev/shm && mount --bind /tmp /tmp && " +
      "mount -o remount,bind,ro /tmp && exec " +
      sboxOnBusyboxArgv(["--report", "-", "--", "true"]).map(shellQuote).join(" ");
    const output = await commandInOwnMountNamespace(["sh", "-c", script]).output();
    const stderr = text(output.stderr);
    assert.equal(output.code, 125, stderr);
    assert.match(
      stderr,
      /^sbox: cannot create a scratch directory \/tmp\/sbox-\S+ \(tried first: \/dev\/shm: ENOSPC\): EROFS/m,
    );
    assert.equal(report(stderr).status, "XX");
  },
);
