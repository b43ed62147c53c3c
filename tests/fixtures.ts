/**
 * Test fixtures: a busybox root file system built from Debian's
 * busybox-static (never downloaded), scratch directories and cgroups that
 * clean up after themselves, and a snapshot of what the test process holds
 * (fds, children, cgroups, mounts) for leak checks.
 */

import {
  BaseMounts,
  BinNewIdMapper,
  Cgroup,
  Container,
  OverlayMount,
  ProcUserMapper,
  runAsRoot,
} from "../mod.ts";
import type { Mount, NetworkManager, UserMapper } from "../mod.ts";

/** Scratch space of the tests: tests/.work, or $SBOX_TEST_WORK (e.g. for another user). */
const WORK = Deno.env.get("SBOX_TEST_WORK")?.replace(/\/*$/, "/") ??
  decodeURIComponent(new URL("./.work/", import.meta.url).pathname);

/**
 * Builds (once, with tools/busybox-image) and returns a busybox image
 * directory. Built under a temporary name and renamed into place, so that
 * test processes running at the same time never see half an image.
 */
export function busyboxImage(): string {
  const dir = `${WORK}busybox-image`;
  try {
    Deno.statSync(`${dir}/.complete`);
    return dir;
  } catch {
    // not built yet
  }
  Deno.mkdirSync(WORK, { recursive: true });
  const building = Deno.makeTempDirSync({ dir: WORK, prefix: "busybox-image-building-" });
  const script = decodeURIComponent(new URL("../tools/busybox-image", import.meta.url).pathname);
  const result = new Deno.Command(script, { args: [building], stderr: "piped" }).outputSync();
  if (!result.success) {
    throw new Error(`tools/busybox-image failed: ${new TextDecoder().decode(result.stderr)}`);
  }
  Deno.chmodSync(building, 0o755);
  Deno.writeTextFileSync(`${building}/.complete`, "");
  try {
    Deno.renameSync(building, dir);
  } catch {
    // Another process finished first: use its image.
    Deno.removeSync(building, { recursive: true });
  }
  return dir;
}

/** A fresh scratch directory under tests/.work, removed by `cleanup()`. */
export function scratchDir(prefix: string): string {
  Deno.mkdirSync(WORK, { recursive: true });
  return Deno.makeTempDirSync({ dir: WORK, prefix });
}

/**
 * Removes /etc and makes it again, and moves /sbin (`mv` copies it: a
 * rename of an image directory fails with EXDEV), in a busybox image:
 * overlayfs must mark the new /etc opaque (mount.ts's overlayOptions says
 * why that needed `userxattr`). Prints what {@linkcode replacedDirOutput} says.
 */
export const REPLACE_DIR_SCRIPT = "rm -rf /etc && mkdir /etc && ls -A /etc | wc -l && " +
  "mv /sbin /sbin2 && ls /sbin2 | wc -l && (ls -d /sbin 2>/dev/null || echo moved)";

/** What {@linkcode REPLACE_DIR_SCRIPT} prints in a container of `image`. */
export function replacedDirOutput(image: string): string {
  return `0\n${[...Deno.readDirSync(`${image}/sbin`)].length}\nmoved\n`;
}

/** Whether the tests run as root. */
export const isRoot: boolean = Deno.uid() === 0;

/** Whether this user has /etc/subuid and /etc/subgid entries (and so container ids 0..65535). */
export const hasSubordinateIds: boolean = !isRoot && (() => {
  const name = Deno.env.get("USER") ?? "";
  const listed = (file: string) => {
    try {
      return Deno.readTextFileSync(file).split("\n").some((line) => {
        const owner = line.split(":")[0];
        return owner !== "" && (owner === name || owner === String(Deno.uid()));
      });
    } catch {
      return false;
    }
  };
  return listed("/etc/subuid") && listed("/etc/subgid");
})();

/** Whether containers can have ids other than root (0): as root, or with subordinate ids. */
export const canMapManyIds: boolean = isRoot || hasSubordinateIds;

/** Why a test that needs ids other than root is skipped; printed once per skipped test. */
export function skipWithoutManyIds(name: string): boolean {
  if (canMapManyIds) return false;
  console.log(`skipping "${name}": uid ${Deno.uid()} has no subordinate ids, only container root exists`);
  return true;
}

/**
 * Pids of host processes whose command line contains `marker`; with
 * `["cmdline", "environ"]`, whose command line or environment does.
 */
export function processesWith(
  marker: string,
  files: readonly ("cmdline" | "environ")[] = ["cmdline"],
): number[] {
  const found: number[] = [];
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    for (const file of files) {
      try {
        if (Deno.readTextFileSync(`/proc/${entry.name}/${file}`).includes(marker)) {
          found.push(Number(entry.name));
          break;
        }
      } catch {
        // gone, or a kernel thread
      }
    }
  }
  return found;
}

/** The state letter of process `pid` (field 3 of /proc/PID/stat: "T" when stopped), or "gone". */
export function processState(pid: number): string {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2)[0];
  } catch {
    return "gone";
  }
}

/** Skips (with a printed reason, once, at module load) a test that needs `path` to exist. */
export function skipWithout(path: string, name: string, what: string): boolean {
  try {
    Deno.statSync(path);
    return false;
  } catch {
    console.log(`skipping "${name}": needs ${what} (${path} is missing)`);
    return true;
  }
}

/** Skips (with a printed reason, once, at module load) a test that needs root. */
export function skipUnlessRoot(name: string, why?: string): boolean {
  if (isRoot) return false;
  console.log(`skipping "${name}": needs root (uid ${Deno.uid()})${why ? `: ${why}` : ""}`);
  return true;
}

/**
 * Maps container ids 0..65535 to the same host ids as root; as a user,
 * the mapper `sbox run` would pick: with subordinate ids container root
 * is the user and 1..65535 the subordinate range, without them only root.
 */
export function identityMapper(): UserMapper {
  if (isRoot) {
    const map = [{ containerId: 0, hostId: 0, size: 65536 }];
    return new ProcUserMapper({ uidMap: map, gidMap: map });
  }
  return hasSubordinateIds ? BinNewIdMapper.newRootSubid() : ProcUserMapper.newRoot();
}

/**
 * A new, created cgroup below the test process's own. Named at random: test
 * files may run at the same time in one process, each with its own copy of
 * this module.
 */
export function testCgroup(): Cgroup {
  const cgroup = Cgroup.current().child(`sbox-test-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`);
  cgroup.create();
  return cgroup;
}

/** Everything a busybox container needs; `dispose()` removes all of it. */
export interface BusyboxSetup extends AsyncDisposable {
  container: Container;
  cgroup: Cgroup;
  image: string;
  upper: string;
  dir: string;
}

/** A container on a busybox overlay with base mounts (then `mounts`) and its own cgroup. */
export async function busyboxContainer(
  options: {
    userMapper?: UserMapper;
    hostname?: string;
    cgroup?: boolean;
    network?: NetworkManager | "host";
    mounts?: Mount[];
  } = {},
): Promise<BusyboxSetup> {
  const image = busyboxImage();
  const dir = scratchDir("c-");
  for (const sub of ["root", "upper", "work"]) Deno.mkdirSync(`${dir}/${sub}`);
  const cgroup = testCgroup();
  const userMapper = options.userMapper ?? identityMapper();
  let container: Container;
  try {
    container = await Container.create({
      rootfs: `${dir}/root`,
      cgroup: options.cgroup === false ? undefined : cgroup,
      userMapper,
      mounts: [
        new OverlayMount([image], `${dir}/upper`, `${dir}/work`),
        new BaseMounts(),
        ...options.mounts ?? [],
      ],
      hostname: options.hostname,
      network: options.network,
    });
  } catch (err) {
    // Nothing of a failed setup may stay behind (the scratch dir holds only
    // empty directories the caller created, so no mapper is needed).
    await cgroup.remove();
    Deno.removeSync(dir, { recursive: true });
    throw err;
  }
  return {
    container,
    cgroup,
    image,
    upper: `${dir}/upper`,
    dir,
    async [Symbol.asyncDispose]() {
      await container.destroy();
      await cgroup.remove();
      // The user's own full mapper, not the container's: a test may give the
      // container a mapper that maps fewer ids, or one that fails on purpose.
      await removeScratch(dir);
    },
  };
}

/**
 * Removes a scratch directory. A user cannot remove what the container
 * wrote as other ids (or overlayfs's mode-000 work dir) directly: that goes
 * through runAsRoot with the container's mapper, as a user would do it.
 */
export async function removeScratch(dir: string, mapper: UserMapper = identityMapper()): Promise<void> {
  if (isRoot) return Deno.removeSync(dir, { recursive: true });
  await runAsRoot(mapper, ["/bin/rm", "-rf", dir]);
}

/** Path of sbox.ts, the command line, for tests that run it as a user would. */
export const SBOX: string = decodeURIComponent(new URL("../sbox.ts", import.meta.url).pathname);
/** Generous, only so that a hung command fails its test instead of stalling the suite. */
export const COMMAND_TIMEOUT_MS = 120_000;

/**
 * `deno run --allow-ffi sbox.ts run --rootfs <busybox image> ARGS...`, as a
 * user runs it: stdin /dev/null, stdout and stderr piped, and killed after
 * {@linkcode COMMAND_TIMEOUT_MS}.
 */
export function sboxOnBusybox(args: string[], env?: Record<string, string>): Deno.Command {
  const [program, ...rest] = sboxOnBusyboxArgv(args);
  return new Deno.Command(program, {
    args: rest,
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(COMMAND_TIMEOUT_MS),
  });
}

/** The command line of {@linkcode sboxOnBusybox}, Deno's path first: for a shell to run. */
export function sboxOnBusyboxArgv(args: string[]): string[] {
  return sboxArgv(["--rootfs", busyboxImage(), ...args]);
}

/** `deno run --allow-ffi sbox.ts run ARGS...`, Deno's path first (the host's root, without a --rootfs). */
export function sboxArgv(args: string[]): string[] {
  return [Deno.execPath(), "run", "--allow-ffi", SBOX, "run", ...args];
}

/**
 * unshare(1)'s prefix for a command in a mount namespace of its own whose
 * mounts do not propagate back: its mount games stay off the host.
 */
export const OWN_MOUNT_NAMESPACE: readonly string[] = ["unshare", "-m", "--propagation", "private"];

/**
 * A command run in a mount namespace of its own ({@linkcode OWN_MOUNT_NAMESPACE}),
 * as a script would run it: stdin /dev/null, stdout and stderr piped, and
 * killed after {@linkcode COMMAND_TIMEOUT_MS}. `options` add to those or
 * replace them.
 */
export function commandInOwnMountNamespace(
  argv: readonly string[],
  options: Deno.CommandOptions = {},
): Deno.Command {
  const [program, ...args] = OWN_MOUNT_NAMESPACE;
  return new Deno.Command(program, {
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(COMMAND_TIMEOUT_MS),
    ...options,
    args: [...args, ...argv],
  });
}

/**
 * A command run as uid and gid 65534 (nobody, nogroup) with no groups, by
 * setpriv(1): another user of the host, who owns nothing of the test's.
 */
export function commandAsNobody(argv: readonly string[], options: Deno.CommandOptions = {}): Deno.Command {
  return new Deno.Command("setpriv", {
    ...options,
    args: ["--reuid=65534", "--regid=65534", "--clear-groups", "--", ...argv],
  });
}

/** What tests/programs/neutral_probe.ts prints: each rank "oom_score_adj nice policy ionice-class". */
export interface NeutralProbeResult {
  /** The exit code and stderr of the process exec'd into the container. */
  code: number;
  stderr: string;
  /** The ranks of the exec'd process, pid 1 (the reaper) and pid 2 (the init's command). */
  exec: string;
  pid1: string;
  pid2: string;
  /** The container's NIS domain name. */
  domainname: string;
  /** The network daemon's rank, with `net`. */
  daemon?: string;
  /** The rank of a command run by runAsRoot. */
  runAsUser: string;
  /** The ranks of commands that launch() ran from a program of their exec alone: with a wait for the parent, without. */
  launchWaits: string;
  launchAlone: string;
  /** The pid of a `sleep` so launched, running when the probe ended. */
  orphan: number;
  /** The probe's own oom_score_adj at the end. */
  caller: string;
}

/**
 * Runs tests/programs/neutral_probe.ts under `rank` (commands such as
 * `chrt -f 1 nice -n -5`, then `choom -n 500`) in a UTS namespace of its
 * own with the NIS domain name corp.example (root only). sbox takes
 * `fakeOomScoreAdj` for the probe's oom_score_adj (a host may refuse a
 * negative one even to root); `net`: the container's network backend.
 */
export async function neutralProbe(
  rank: string,
  options: { fakeOomScoreAdj?: number; net?: "slirp4netns" | "pasta" } = {},
): Promise<NeutralProbeResult> {
  const probe = decodeURIComponent(new URL("./programs/neutral_probe.ts", import.meta.url).pathname);
  const output = await new Deno.Command("unshare", {
    args: [
      "--uts",
      "sh",
      "-c",
      // The paths go through the environment: they may hold spaces.
      `domainname corp.example && exec ${rank} choom -n 500 -- "$PROBE_DENO" run --allow-all "$PROBE"`,
    ],
    env: {
      PROBE_DENO: Deno.execPath(),
      PROBE: probe,
      ...options.fakeOomScoreAdj === undefined
        ? {}
        : { PROBE_OOM_SCORE_ADJ: String(options.fakeOomScoreAdj) },
      ...options.net === undefined ? {} : { PROBE_NET: options.net },
    },
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(COMMAND_TIMEOUT_MS),
  }).output();
  if (!output.success) throw new Error(`neutral_probe.ts failed: ${text(output.stderr)}`);
  return JSON.parse(text(output.stdout));
}

/** `arg` quoted for sh: in single quotes, each of its own as '"'"'. */
export function shellQuote(arg: string): string {
  return `'${arg.replaceAll("'", `'"'"'`)}'`;
}

/**
 * A new scratch directory (`dir`) with a tmpfs mounted on the host at
 * `dir/sub` (`fs`), with mount(8) `options`; root only. Disposing of it
 * (`await using`) unmounts the tmpfs and removes the directory.
 */
export function scratchTmpfs(
  prefix: string,
  sub: string,
  options = "",
): { dir: string; fs: string } & AsyncDisposable {
  const dir = scratchDir(prefix);
  const fs = `${dir}/${sub}`;
  Deno.mkdirSync(fs, { recursive: true });
  const args = ["-t", "tmpfs", ...(options ? ["-o", options] : []), "tmpfs", fs];
  const mounted = new Deno.Command("mount", { args }).outputSync();
  if (!mounted.success) {
    Deno.removeSync(dir, { recursive: true });
    throw new Error(`mount ${args.join(" ")}: ${text(mounted.stderr)}`);
  }
  return {
    dir,
    fs,
    async [Symbol.asyncDispose]() {
      new Deno.Command("umount", { args: [fs] }).outputSync();
      await removeScratch(dir);
    },
  };
}

/** Text of captured output. */
export function text(bytes: Uint8Array): string {
  return new TextDecoder().decode(bytes);
}

/** What the test process holds right now, to compare before and after. */
export function snapshot(): { fds: string[]; children: string[]; cgroups: string[]; mounts: number } {
  const fds = [...Deno.readDirSync("/proc/self/fd")].map((e) => {
    try {
      return `${e.name}->${Deno.readLinkSync(`/proc/self/fd/${e.name}`)}`;
    } catch {
      return `${e.name}->?`;
    }
  })
    // Not ours: the directory handle of this very listing ("?" once closed)
    // and Deno's own sockets; the library never opens a socket here.
    .filter((fd) => !fd.endsWith("->?") && !fd.includes("/proc/self/fd") && !fd.includes("->socket:"))
    .sort();
  const children: string[] = [];
  for (const task of Deno.readDirSync("/proc/self/task")) {
    let list: string;
    try {
      list = Deno.readTextFileSync(`/proc/self/task/${task.name}/children`).trim();
    } catch (err) {
      // A thread that ended since the listing (a Worker's, a pool thread).
      if (err instanceof Deno.errors.NotFound) continue;
      throw err;
    }
    if (list) children.push(...list.split(" "));
  }
  const root = Cgroup.current();
  // Only this process's: test files running at the same time make their own.
  const cgroups = [...Deno.readDirSync(root.path)]
    .filter((e) => e.isDirectory && e.name.startsWith(`sbox-test-${Deno.pid}-`))
    .map((e) => e.name).sort();
  const mounts = Deno.readTextFileSync("/proc/self/mountinfo").trim().split("\n").length;
  return { fds, children: children.sort(), cgroups, mounts };
}

/**
 * Waits (a generous bound, against hangs only) until process `pid` is
 * dead: gone, or a zombie, as an orphan is until whoever adopted it reaps
 * it. Fails naming `what` if it still runs.
 */
export async function waitDead(pid: string | number, what = `process ${pid}`): Promise<void> {
  const dead = () => {
    try {
      return /^State:\s+Z/m.test(Deno.readTextFileSync(`/proc/${pid}/status`));
    } catch {
      return true;
    }
  };
  for (let i = 0; i < 3000 && !dead(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
  if (!dead()) throw new Error(`${what} is still running`);
}

/** A TCP listener on the host's 127.0.0.1 that sends `message` to its first client, then closes it. */
export interface HostListener extends Disposable {
  /** Its port. */
  port: number;
  /** Settles once the message is sent. */
  served: Promise<void>;
}

/** Opens a {@linkcode HostListener}; `using` closes it. */
export function listenOnHostLoopback(message: string): HostListener {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const served = listener.accept().then(async (conn) => {
    await conn.write(new TextEncoder().encode(message));
    conn.close();
  });
  // A test that fails before a client came closes the listener: not an error of its own.
  served.catch(() => {});
  return { port: listener.addr.port, served, [Symbol.dispose]: () => listener.close() };
}
