/**
 * The options of {@linkcode Container.create}, `start()` and `exec()`: their
 * types, and the checks that refuse bad ones, naming the option, before
 * anything exists (container.ts calls them first). `checkProcessOptions`
 * turns process options into the {@linkcode CheckedProcess} the setup
 * programs are compiled from.
 *
 * @module
 */

import { Cgroup, isInterfaceFileName } from "./cgroup.ts";
import { checkNotFrozen } from "./cgroup_diagnostics.ts";
import { checkOnCgroup2 } from "./cgroup_mount.ts";
import { SboxError } from "./error.ts";
import {
  checkBoolean,
  checkCommand,
  checkId,
  checkKnownKeys,
  checkNoHoles,
  checkPathText,
  isPlainObject,
  kindOf,
  type KnownKeys,
  notPassable,
  show,
} from "./options.ts";
import { BaseMounts, checkTarget, type Mount, replacesRoot, statHostPath } from "./mount.ts";
import { cleanPath } from "./path.ts";
import type { Stdio } from "./process.ts";
import { PROGRAM_LIMITS } from "./program.ts";
import { ProcReading } from "./mountinfo.ts";
import { close, fstat, isOpenFd, O, readLink, tryOpen } from "./sys.ts";
import { checkUserMapper, type UserMapper } from "./user.ts";
import { type NetworkManager, RESOLV_CONF_PATH, UserModeNetworkManager } from "./network.ts";
import { CAPABILITIES } from "./security/capabilities.ts";
import type { SeccompPolicy } from "./security/policy.ts";
import type { Rlimits } from "./security/rlimits.ts";
import { checkProcessSecurity, type ProcessSecurity } from "./security/security.ts";

/** Options of {@linkcode Container.create}. */
export interface ContainerOptions {
  /**
   * Absolute path of the directory that becomes "/" (the overlay is mounted
   * on it); not the host's root, however it is spelled (a link to it too),
   * as checked by `create()` and again by `start()`.
   */
  rootfs: string;
  /**
   * The container's cgroup (it must exist, on the cgroup2 file system); processes go in it or in child groups.
   * Without it they stay in the caller's cgroup, which is then the root of the container's cgroup namespace:
   * BaseMounts' /sys/fs/cgroup shows that group and every group below it, with their usage (other
   * containers' too). Give each container a group of its own where they must not see each other's figures.
   */
  cgroup?: Cgroup;
  /** Writes the id maps of the container's user namespace. */
  userMapper: UserMapper;
  /**
   * Mounts in order, the root first: e.g. `[new OverlayMount(...), new BaseMounts()]`.
   * Without a mount on "/" the rootfs directory itself is the root, e.g.
   * `[new BaseMounts()]` on an unpacked image. Refused: a mount on "/"
   * itself anywhere but first (it would hide what the mounts before it
   * mounted), and a second `BaseMounts`. A mount on or inside an earlier
   * one's target is taken: a bigger tmpfs over /tmp, a bind inside it.
   */
  mounts?: Mount[];
  /**
   * Hostname inside; default {@linkcode DEFAULT_HOSTNAME}, "sbox". (The NIS domain name is always
   * "(none)", never the host's, which a new UTS namespace would copy.)
   */
  hostname?: string;
  /**
   * The container's network. A {@linkcode NetworkManager} connects its own
   * network namespace (e.g. `new Slirp4NetnsManager()`). The user-mode
   * ones (slirp4netns, pasta: a `UserModeNetworkManager`) write the
   * container's /etc/resolv.conf after the mounts, so a bind of a host path
   * on /etc or /etc/resolv.conf (a `BindMount`, or a custom mount that says
   * so, see `Mount.bindSource`) is refused with one of them; other managers
   * write nothing there.
   * Without a manager, that namespace has only `lo`, up. `"host"` makes no network namespace: the
   * container has the caller's, its interfaces, routes and ports, the
   * services on its 127.0.0.1 and its abstract Unix sockets included, and
   * /sys (which `BaseMounts` then binds read-only from the host: a new sysfs
   * cannot be mounted there). It still cannot change them: its capabilities
   * are its user namespace's, not the host's. But under the identity map its
   * root is the host's uid 0 there, for the kernel's checks by uid alone:
   * a root service's `SO_REUSEPORT` port, peer credentials, root's files in
   * /proc/net such as iptables' `xt_recent` lists; a `uid` other than 0
   * avoids that (see docs/security.md, "Host network").
   *
   * @example A container that reaches the host's services directly
   * ```ts ignore
   * import { BaseMounts, Container, ProcUserMapper } from "../mod.ts";
   *
   * await using container = await Container.create({
   *   // An image directory (`tools/busybox-image /tmp/sbox-image`): with no
   *   // mount on "/", it is the root itself.
   *   rootfs: "/tmp/sbox-image",
   *   userMapper: ProcUserMapper.newRoot(),
   *   mounts: [new BaseMounts()],
   *   network: "host",
   * });
   * ```
   */
  network?: NetworkManager | "host";
  /**
   * Capabilities to keep beyond the default set (`DEFAULT_CAPABILITIES`:
   * CHOWN, DAC_OVERRIDE, FOWNER, FSETID, KILL, SETGID, SETUID, SETPCAP,
   * NET_BIND_SERVICE, SYS_CHROOT, MKNOD, AUDIT_WRITE, SETFCAP), e.g.
   * `["NET_RAW"]`, or `["ALL"]`. They are capabilities in the container's
   * user namespace; a process with a uid other than 0 has none either way.
   * `["ALL"]` keeps every capability but those in `capDrop`. A name in both
   * `capAdd` and `capDrop` (`ALL` included) is refused: a capability asked
   * to be dropped is never kept.
   */
  capAdd?: string[];
  /**
   * Capabilities to drop from the default set, e.g. `["SETUID", "SETGID"]`,
   * or `["ALL"]`, which keeps only those in `capAdd`. A name also in `capAdd`
   * is refused, not silently added or dropped.
   *
   * @example Every capability but SYS_ADMIN; the same name in both is refused
   * ```ts
   * import { Container } from "./container.ts";
   * import { ProcUserMapper } from "./user.ts";
   *
   * // create() only checks the options (start() mounts): any directory does here.
   * const rootfs = "/tmp";
   * const userMapper = ProcUserMapper.newRoot();
   * const container = await Container.create({ rootfs, userMapper, capAdd: ["ALL"], capDrop: ["SYS_ADMIN"] });
   * await container.destroy();
   * await Container.create({ rootfs, userMapper, capAdd: ["SYS_ADMIN"], capDrop: ["SYS_ADMIN"] })
   *   .catch((err) => console.log(err.message)); // invalid option capDrop: SYS_ADMIN is in capAdd too: ...
   * ```
   */
  capDrop?: string[];
  /**
   * The seccomp policy of every process but a reaper (pid 1 under
   * `reaper: true`, which has no filter: docs/security.md, "Known gaps"):
   * `DEFAULT_SECCOMP_POLICY` unless given, or "unconfined" for no filter
   * (no_new_privs and the capability limits stay). A policy object is
   * compiled once and the filter reused: do not change it after passing it.
   * See docs/security.md.
   */
  seccomp?: SeccompPolicy | "unconfined";
}

/** Options of {@linkcode Container.start} and {@linkcode Container.exec}. */
export interface ProcessOptions {
  /**
   * Program and arguments; a program without "/" is looked up in `env.PATH`,
   * or without one in /usr/local/bin:/usr/bin:/bin (and the command gets no
   * PATH variable).
   */
  command: string[];
  /** The complete environment: nothing is inherited from the host. */
  env?: Record<string, string>;
  /** Working directory inside the container; default "/". */
  cwd?: string;
  /** User id inside the container (must be mapped); default 0. */
  uid?: number;
  /** Group id inside the container (must be mapped); default 0. */
  gid?: number;
  /**
   * Supplementary groups (container gids, each mapped), set with
   * setgroups(2). Default: none where sbox runs as root; for a user, a
   * process that is the user on the host (container root of `newRoot`
   * maps, the user's own uid of keep-id maps) keeps the user's groups, and
   * any other process has none (`supplementaryGroups` in src/user.ts says
   * why). Refused where the user mapper denies setgroups (a user without
   * subordinate gids): processes keep the caller's groups there.
   */
  groups?: number[];
  /**
   * Name of a child cgroup of the container's cgroup to run in, created if
   * missing. A group the container made is removed by destroy(), or at
   * once by a failed start or exec that had it to itself.
   */
  cgroup?: string;
  /**
   * `start()` only (`exec()` refuses true). When true, pid 1 of the
   * container is a minimal init from the helper that runs the command as
   * its child (pid 2), forwards signals to it and reaps orphans. The status
   * is then exactly the command's: a command that kills itself (`abort()`,
   * `kill -9 $$`) is reported killed by that signal, which a pid 1 cannot
   * receive from inside its own namespace. `kill()` reaches the command
   * through it: SIGINT, SIGQUIT and SIGCONT its process group, as a
   * terminal's keys and a shell's `fg` do, so that a shell's running program
   * gets them too, and SIGTSTP stops that group with SIGSTOP (the kernel
   * discards SIGTSTP's stop in an orphaned group, which the command's in a
   * session of its own is). Not the two signals no process can catch:
   * SIGKILL ends pid 1 and with it the whole container, and SIGSTOP stops
   * pid 1 and not the command (as under Docker's `--init`). Pid 1 also
   * reports what the command and the processes waited for used
   * (`InitProcess.resourceUsage`: CPU time, with or without a cgroup, and
   * with `measureMaxRss` the peak resident set), not a child still running
   * when the command exits: a judged program can hide work there, so take
   * CPU time from the container's cgroup (`Cgroup.cpuUsage()`) where there
   * is one. Default false: the command is pid 1, as in sbox.
   */
  reaper?: boolean;
  /**
   * `start()` with `reaper: true` only. Also measure the command's peak
   * resident set (`InitProcess.resourceUsage.maxRssBytes`, as isolate's
   * max-rss). The kernel counts in it the memory the command's process had
   * before its `execve`, which it is cloned from pid 1 with; so pid 1 then
   * starts from a copy of this process's memory and drops it at once,
   * instead of sharing it, and a start costs the copy of this process's
   * page tables: measured, 2.5 ms a start became 4.5 ms with a small heap,
   * 34 ms with a 1 GiB one. `sbox run` always measures it (its heap is
   * small). Default false: `maxRssBytes` is null.
   */
  measureMaxRss?: boolean;
  /**
   * Resource limits, e.g. `{ NOFILE: 64, FSIZE: 1 << 20 }`; `CORE` is 0
   * unless given, and `NOFILE`'s soft limit 1024 (Deno raised this
   * process's to its hard limit, which the command would inherit), the
   * hard one kept. They can only be lowered below the host's.
   */
  rlimits?: Rlimits;
  /**
   * Default true: the process starts a new session, detached from the
   * caller's controlling terminal, so it cannot send it signals or type
   * into it. false keeps the caller's session (interactive job control)
   * and its process group: the kernel delivers a group signal whatever the
   * pid namespace, so `kill(0, sig)` in the container reaches this Deno
   * process and its parent shell's group where the ids allow it (the same
   * uid, or a container root mapped to the host's). For trusted commands.
   */
  newSession?: boolean;
  /**
   * Default "inherit". With "piped", as with `Deno.Command`, our end of the
   * pipe stays open until it is closed (`stdin.close()`, `abort()`) or the
   * container destroyed; and the container keeps the Process until then.
   *
   * A number is an open fd of this process, e.g. a test's input file:
   * `openSync(path, "r")` of `node:fs` (Deno 2's `Deno.FsFile` gives no fd;
   * it needs `--allow-read` for the file). The command gets a copy of it,
   * which shares the file's offset (open it anew for each run); close yours
   * once `start()`/`exec()` returned. A directory or a block device is
   * refused.
   */
  stdin?: Stdio;
  /**
   * Default "inherit". With "piped", as with `Deno.Command`, our end of the
   * pipe stays open until it is read to end-of-file (`output()` does),
   * cancelled, or the container destroyed; and the container keeps the
   * Process until then. A number is an open fd, as for stdin (a file opened
   * with `openSync(path, "w")`, which needs `--allow-write`).
   */
  stdout?: Stdio;
  /**
   * Default "inherit"; "piped" or an fd as for stdout. `output()`'s
   * `maxBytes` is one limit for both piped streams, fatal on either: to
   * keep stderr from ending a run, give it "null" or a file's fd.
   */
  stderr?: Stdio;
  /**
   * Ends the process when it aborts: a request's signal to stop when its
   * client goes, `AbortSignal.timeout(ms)` for a deadline of the whole call.
   * That counts from when the signal was made: the container's setup and a
   * wait for the launch's turn among hundreds of starts count too. For a
   * judge's limit on the command's own time use
   * `InitProcess.limitWallTime(ms)`, which counts from its `execve`. The
   * process is sent SIGKILL, not `Deno.Command`'s SIGTERM: as a container's
   * pid 1 a command would not even get SIGTERM (see kill()), and code you do
   * not trust must not be able to refuse. An init takes the whole container
   * with it; with `reaper: true` through pid 1 (`InitProcess.killCommand`),
   * which keeps `resourceUsage` and `wallTimeMs`. An exec'd process takes its process group with it: with
   * `newSession` (the default) the group it leads, which holds what it
   * started (a shell's `cmd &`, a pipeline) unless that moved to a group or
   * session of its own. The group is killed even when the abort comes after
   * the process ended, while a pipe of ours to it is open (before Linux 6.9,
   * only while the process runs).
   *
   * The signal also bounds the wait for output(): once the process is
   * reaped, its stdout and stderr end with what their pipes hold then,
   * without waiting for the end-of-file that a writer left over would hold
   * back, and stdin is closed. output() resolves with what was read and the
   * process's status. A writer left over (a `setsid` daemon, a job-control
   * shell's job) keeps running in the container until destroy(), and gets
   * EPIPE from the closed pipes; to end it too, give each exec a child
   * `cgroup` of its own and `Cgroup.kill()` that group (then remove it: a
   * killed group takes no new process).
   *
   * Aborted already when `start()` or `exec()` is called, the call rejects
   * with the signal's `reason` (an `AbortError` or `TimeoutError`
   * DOMException unless you gave another) before anything is created, as
   * `fetch` does; once the process runs, its `status` says SIGKILL (unless
   * it had ended by itself). The listener stays on the signal until the
   * process is reaped and its pipes are closed. For a gentler end, listen to
   * the signal yourself and call `kill("SIGTERM")`.
   */
  signal?: AbortSignal;
}

/** Every key of {@linkcode ContainerOptions}: any other is refused. */
const CONTAINER_OPTIONS: KnownKeys<ContainerOptions> = {
  rootfs: true,
  cgroup: true,
  userMapper: true,
  mounts: true,
  hostname: true,
  network: true,
  capAdd: true,
  capDrop: true,
  seccomp: true,
};

/** Every key of {@linkcode ProcessOptions}: any other is refused. */
const PROCESS_OPTIONS: KnownKeys<ProcessOptions> = {
  command: true,
  env: true,
  cwd: true,
  uid: true,
  gid: true,
  groups: true,
  cgroup: true,
  reaper: true,
  measureMaxRss: true,
  rlimits: true,
  newSession: true,
  stdin: true,
  stdout: true,
  stderr: true,
  signal: true,
};

/**
 * Where a program named without "/" is looked for when `env` has no PATH
 * (the command then gets no PATH variable either), as execvp does.
 */
const SEARCH_PATH_WITHOUT_ENV = "/usr/local/bin:/usr/bin:/bin";

/** Process options as checked: what the programs are compiled from. */
export interface CheckedProcess {
  command: string[];
  env: string[];
  searchPath: string;
  cwd: string;
  uid: number;
  gid: number;
  /** Undefined: as `supplementaryGroups` decides. */
  groups: number[] | undefined;
  cgroup: string | undefined;
  stdio: [Stdio, Stdio, Stdio];
  security: ProcessSecurity;
  signal: AbortSignal | undefined;
}

/** The hostname of a container that names none: `ContainerOptions.hostname`'s default, and `sbox run`'s. */
export const DEFAULT_HOSTNAME = "sbox";

/** A hostname the container accepts: 1-64 letters, digits, "." or "-", not starting with "." or "-". */
export const HOSTNAME: RegExp = /^[A-Za-z0-9][A-Za-z0-9.-]{0,63}$/;

/**
 * slirp4netns and pasta forward whatever frames the container sends, and
 * connect to their destination from the host: a frame to 127.0.0.1, sent
 * past the container's own kernel (a packet socket: NET_RAW) or routed out
 * through the gateway (NET_ADMIN), reaches the host's loopback, which
 * `allowHostLoopback: false` is meant to keep out. So those capabilities
 * with such a network need that option set. Returns the first of them in
 * `capabilities`, or undefined.
 */
function hostLoopbackCapability(capabilities: bigint): string | undefined {
  return ["NET_RAW", "NET_ADMIN"].find((name) => (capabilities & (1n << BigInt(CAPABILITIES[name]))) !== 0n);
}

/** How a caller spells what {@linkcode hostLoopbackConflict}'s message names. */
export interface HostLoopbackNames {
  /** The option that adds capabilities, e.g. `"capAdd"`. */
  capAdd: string;
  /** How capability `name` was asked for: `"NET_RAW"`, or through ALL. */
  added(name: string): string;
  /** The network, e.g. `"a network"`. */
  network: string;
  /** What lets the container reach the host's loopback, e.g. `"give the network allowHostLoopback: true"`. */
  accept: string;
}

/** The library's words. */
const LIBRARY_LOOPBACK_NAMES: HostLoopbackNames = {
  capAdd: "capAdd",
  added: (name) => name,
  network: "a network",
  accept: "give the network allowHostLoopback: true",
};

/**
 * The error for `capabilities` (the mask a container keeps) that reach the
 * host's loopback through a network daemon that is to keep it out
 * (`hostLoopbackCapability` says how), or undefined: the library and `sbox
 * run` refuse them alike, each naming its own options (`names`).
 */
export function hostLoopbackConflict(capabilities: bigint, names: HostLoopbackNames): SboxError | undefined {
  const name = hostLoopbackCapability(capabilities);
  if (name === undefined) return undefined;
  return SboxError.invalidOption(
    names.capAdd,
    `${names.added(name)} with ${names.network} lets the container send frames to 127.0.0.1 that the ` +
      `network daemon delivers to the host's loopback: ${names.accept} to accept that`,
  );
}

/**
 * Refuses NET_RAW or NET_ADMIN in `capabilities` (the container's, as
 * `checkContainerSecurity` computed them) with a network whose
 * `allowHostLoopback` is false: either reaches the host's loopback past the
 * network daemon. A network without that setting (none, "host", or a
 * manager of the caller's own) is not checked. Throws the
 * {@linkcode SboxError} of {@linkcode hostLoopbackConflict} in the
 * library's words (step "options", naming `capAdd`), before any process
 * exists (`Container.create`).
 *
 * @example NET_RAW with the host's network, and with pasta's
 * ```ts
 * import { checkRawNetworkAccess } from "./container_options.ts";
 * import { PastaManager } from "./network.ts";
 * import { CAPABILITIES } from "./security/capabilities.ts";
 *
 * const netRaw = 1n << BigInt(CAPABILITIES.NET_RAW);
 * checkRawNetworkAccess("host", netRaw); // nothing to check
 * // Throws "invalid option capAdd: NET_RAW with a network lets ...": pasta
 * // keeps the host's loopback out unless told otherwise.
 * checkRawNetworkAccess(new PastaManager(), netRaw);
 * ```
 */
export function checkRawNetworkAccess(network: ContainerOptions["network"], capabilities: bigint): void {
  if ((network as { allowHostLoopback?: unknown } | undefined)?.allowHostLoopback !== false) return;
  const conflict = hostLoopbackConflict(capabilities, LIBRARY_LOOPBACK_NAMES);
  if (conflict) throw conflict;
}

/**
 * Refuses a `rootfs` that resolves to the host's root `/`, which its text
 * misses: a link to / (or /proc/self/root). start() then failed at
 * pivot_root, but only after its setup had made directories and files (a
 * temporary overlay's upper, mount targets) on the host's own root; or,
 * without a mount on "/", ran the command there. `create()` checks it, and
 * `start()` again (`since` "create()"): a link may be turned to / in
 * between. A rootfs that cannot be opened passes: create() refused one
 * already, and a start's setup fails on it before it makes anything.
 */
export function checkRootfsNotHostRoot(rootfs: string, since?: "create()"): void {
  const fd = tryOpen(rootfs, O.PATH);
  if (fd < 0) return;
  let resolved: string;
  try {
    resolved = readLink(`/proc/self/fd/${fd}`);
  } finally {
    close(fd);
  }
  if (resolved !== "/") return;
  throw SboxError.invalidOption(
    "rootfs",
    `${rootfs} is the host's root / (it resolves to /)${since ? `, since ${since} checked it` : ""}: ` +
      "give a directory of its own (for the host's root as the container's, a HostRootMount on one)",
  );
}

/**
 * Checks `Container.create`'s options other than the security ones
 * (`checkContainerSecurity`) and the network's own: that `options` is an
 * object of known keys, `rootfs` an absolute path of a directory other
 * than / (by the path it resolves to), `cgroup` an existing cgroup2 group
 * that is not frozen and does not hold this process, and `userMapper`,
 * `network`, `mounts` and `hostname` of the right kinds, no mount taking
 * the network's /etc/resolv.conf, no `validate()` or `compile()` of theirs
 * async. Throws an {@linkcode SboxError} of step "options" that
 * names the first option that is wrong; reads the host (a stat of
 * `rootfs`, the cgroup's files) but creates nothing. The checks of the
 * cgroup go by `reading`, this process's mounts and cgroup (one reading
 * for all of them; read anew by default).
 *
 * @example A rootfs that is not an absolute path
 * ```ts
 * import { checkContainerOptions } from "./container_options.ts";
 * import { ProcUserMapper } from "./user.ts";
 *
 * try {
 *   checkContainerOptions({ rootfs: "image", userMapper: ProcUserMapper.newRoot() });
 * } catch (err) {
 *   console.log((err as Error).message); // "invalid option rootfs: must be an absolute path, got \"image\""
 * }
 * ```
 */
export function checkContainerOptions(
  options: ContainerOptions,
  reading: ProcReading = new ProcReading(),
): void {
  checkOptionsIsObject(options);
  checkKnownKeys(options, CONTAINER_OPTIONS);
  const { rootfs, cgroup, userMapper, mounts, hostname, network } = options;
  if (typeof rootfs !== "string" || !rootfs.startsWith("/")) {
    throw SboxError.invalidOption("rootfs", `must be an absolute path, got ${show(rootfs)}`);
  }
  checkPathText("rootfs", undefined, rootfs);
  if (cleanPath(rootfs) === "/" || rootfs.split("/").includes("..")) {
    throw SboxError.invalidOption("rootfs", `must be a plain directory other than /, got ${rootfs}`);
  }
  if (!statHostPath("rootfs", undefined, rootfs)?.isDirectory) {
    throw SboxError.invalidOption("rootfs", `${rootfs} is not a directory`);
  }
  checkRootfsNotHostRoot(rootfs);
  if (cgroup !== undefined) {
    if (!(cgroup instanceof Cgroup)) throw SboxError.invalidOption("cgroup", "must be a Cgroup");
    if (!cgroup.exists()) {
      throw SboxError.invalidOption("cgroup", `${cgroup.path} does not exist (call create())`);
    }
    checkOnCgroup2(cgroup, reading);
    checkNotFrozen(cgroup);
    checkNotHoldingCaller(cgroup, reading);
  }
  checkUserMapper(userMapper);
  checkNetwork(network);
  if (mounts !== undefined && !Array.isArray(mounts)) {
    throw SboxError.invalidOption("mounts", "must be an array");
  }
  if (mounts !== undefined) checkNoHoles("mounts", mounts);
  (mounts ?? []).forEach(checkMount);
  checkMountOrder(mounts ?? []);
  checkResolvConfNotBound(network, mounts ?? []);
  if (
    hostname !== undefined &&
    (typeof hostname !== "string" || !HOSTNAME.test(hostname))
  ) {
    throw SboxError.invalidOption(
      "hostname",
      `must be 1-64 letters, digits, "." or "-", got ${show(hostname)}`,
    );
  }
}

/**
 * Whether a bind on `target`, a path in the container, would take the
 * /etc/resolv.conf that sbox's networks write after every mount: a bind on
 * /etc or on the file itself, however the path is spelled. The one rule of
 * create()'s check and of the CLI's check of `--bind` with a network.
 *
 * @example
 * ```ts
 * import { bindTakesResolvConf } from "./container_options.ts";
 * console.log(bindTakesResolvConf("/etc/./")); // true
 * console.log(bindTakesResolvConf("/etc/hosts")); // false
 * ```
 */
export function bindTakesResolvConf(target: string): boolean {
  return ["/etc", RESOLV_CONF_PATH].includes(cleanPath(target));
}

/** Why a bind that {@linkcode bindTakesResolvConf} is refused with a network, and what to do instead. */
export const RESOLV_CONF_TAKEN: string =
  `would take the network's ${RESOLV_CONF_PATH}, which it writes after ` +
  "the mounts (into the host's files, or failing on a read-only one): bind your own resolv.conf elsewhere, " +
  "or the directory's files one by one";

/**
 * sbox's networks write /etc/resolv.conf after every mount: a bind on /etc
 * or on the file itself would take that write, into a host directory (a
 * read-write bind of the host's), or fail it in the child (`EROFS`,
 * `EBUSY` on a bound file). Refused here, naming the bind: any mount that
 * says it binds a host path ({@linkcode Mount.bindSource}), not only a
 * BindMount.
 */
function checkResolvConfNotBound(network: ContainerOptions["network"], mounts: readonly Mount[]): void {
  if (!(network instanceof UserModeNetworkManager)) return;
  const taker = mounts.find((m) => m.bindSource !== undefined && bindTakesResolvConf(m.target));
  if (taker !== undefined) {
    throw SboxError.invalidOption(
      "mounts",
      `the bind of ${taker.bindSource} on ${taker.target} ${RESOLV_CONF_TAKEN}`,
    );
  }
}

/**
 * Checks mount `i` as start() will use it: a custom Mount's target is
 * checked nowhere else, nor a BindMount's changed since its constructor
 * checked it. The helper refuses a target that leads out of the root, but
 * in the child, with an EXDEV that names neither the mount nor why.
 */
function checkMount(mount: Mount, i: number): void {
  if (!mount || typeof mount.compile !== "function" || typeof mount.validate !== "function") {
    throw SboxError.invalidOption(`mounts[${i}]`, "not a Mount (it needs validate(), compile() and target)");
  }
  // A method written async is refused now, validate() before it runs; a
  // compile() that returns a promise otherwise only once start() calls it.
  for (const method of ["validate", "compile"] as const) {
    if (isAsyncFunction(mount[method])) throw asyncMethodError(`mounts[${i}]`, method);
  }
  checkNotPromise(`mounts[${i}]`, "validate", mount.validate());
  checkTarget(`mounts[${i}]`, mount.target);
  if (mount.bindSource !== undefined && typeof mount.bindSource !== "string") {
    throw SboxError.invalidOption(
      `mounts[${i}]`,
      `bindSource must be a string, got ${show(mount.bindSource)}`,
    );
  }
}

/**
 * Refuses `result`, what a caller's `validate()` or `compile()` of a Mount
 * or NetworkManager (`option`) returned, when it is a promise (any
 * thenable). TypeScript accepts an `async` method where the interface's
 * returns void, but the library does not wait for it: a validate()'s
 * refusal came too late, as an unhandled rejection that ended the Deno
 * process, and a compile()'s ops after the program was built, the mount
 * silently left out. The promise's rejection is handled first, so that it
 * cannot end the process; the SboxError (step "options") names `option`.
 */
export function checkNotPromise(option: string, method: "validate" | "compile", result: unknown): void {
  if (result === null || (typeof result !== "object" && typeof result !== "function")) return;
  if (typeof (result as { then?: unknown }).then !== "function") return;
  Promise.resolve(result).catch(() => {});
  throw asyncMethodError(option, method);
}

/** Whether `f` was written `async`: then it returns a promise, whatever it does. */
function isAsyncFunction(f: unknown): boolean {
  return Object.prototype.toString.call(f) === "[object AsyncFunction]";
}

/** The refusal of a `method` of `option` that returns a promise. */
function asyncMethodError(option: string, method: "validate" | "compile"): SboxError {
  const need = method === "validate" ? "throw its refusal" : "append its ops";
  return SboxError.invalidOption(
    option,
    `${method}() returns a promise (it is async?), which the container does not wait for: it must ${need} ` +
      "before it returns",
  );
}

/**
 * The order of `mounts` that the docs promise works, "the root first":
 * - a mount that replaces the root (`replacesRoot`: an OverlayMount or
 *   HostRootMount on "/") comes first, and alone: mounted later, it would
 *   hide all that the mounts before it mounted (/proc, /dev, a bind), the
 *   container would run without them, and what they made (mount points)
 *   would be left in the rootfs directory on the host;
 * - one BaseMounts: a second mounts its file systems again on the first
 *   one's, and fails in the child (sysfs: EBUSY).
 * A mount on or inside an earlier one's target is the caller's to choose,
 * not refused: a bigger tmpfs over /tmp, a tmpfs over /sys/fs/cgroup.
 */
function checkMountOrder(mounts: readonly Mount[]): void {
  let base: number | undefined;
  mounts.forEach((mount, i) => {
    if (i > 0 && replacesRoot(mount)) {
      const earlier = replacesRoot(mounts[0]) ? 'mounts[0] is a mount on "/" already, ' : "";
      throw SboxError.invalidOption(
        `mounts[${i}]`,
        `mounts on "/" itself, in place of the root: it must come first (mounts are in order, the root ` +
          `first), as it would hide what ${earlier}mounts[0..${i - 1}] mounted`,
      );
    }
    if (!(mount instanceof BaseMounts)) return;
    if (base !== undefined) {
      throw SboxError.invalidOption(
        `mounts[${i}]`,
        `a second BaseMounts (mounts[${base}] is one): /proc, /sys and /dev are mounted once`,
      );
    }
    base = i;
  });
}

/**
 * A network manager has the methods start() calls: else it would fail with
 * a TypeError, and attach() only once the init exists. sbox's own managers
 * check their fields again (`UserModeNetworkManager.validate`): read-only
 * to TypeScript alone, they may have changed since the constructor.
 */
function checkNetwork(network: unknown): void {
  if (network === undefined || network === "host") return;
  const manager = network as Partial<Record<keyof NetworkManager, unknown>> | null;
  if (
    !manager || typeof manager !== "object" || typeof manager.compile !== "function" ||
    typeof manager.attach !== "function"
  ) {
    throw SboxError.invalidOption(
      "network",
      'must be "host", a Slirp4NetnsManager, a PastaManager or another NetworkManager (with compile() and attach())',
    );
  }
  if (isAsyncFunction(manager.compile)) throw asyncMethodError("network", "compile");
  if (network instanceof UserModeNetworkManager) network.validate();
}

/**
 * Refuses options that are not an object, an array included: its keys
 * ("0", "1") would be refused one by one as unknown options, which says
 * nothing of what was wrong.
 */
function checkOptionsIsObject(options: unknown): asserts options is object {
  if (!options || typeof options !== "object" || Array.isArray(options)) {
    throw SboxError.invalidOption("options", `must be an object, got ${kindOf(options)}`);
  }
}

/**
 * Refuses a group that holds this process: its limits would bind the caller
 * too, and killing the container's group (Cgroup.kill) would kill it.
 */
function checkNotHoldingCaller(cgroup: Cgroup, reading: ProcReading): void {
  const own = Cgroup.current(reading);
  if (cgroup.contains(own)) {
    throw SboxError.invalidOption(
      "cgroup",
      `${cgroup.path} holds this process (${own.path}): give the container a group of its own ` +
        '(e.g. Cgroup.current().child("c1"), then create())',
    );
  }
}

/** A stdio option's values besides an fd; and the three options, in the order of their fds. */
const STDIO_VALUES: readonly Stdio[] = ["inherit", "piped", "null"];
const STDIO_NAMES = ["stdin", "stdout", "stderr"] as const;
/** The largest fd number: an fd is a C `int` (the op's field, dup2's argument). */
const MAX_FD = 2 ** 31 - 1;

/** Checks a stdio option; throws an SboxError naming it. */
function checkStdio(name: string, value: unknown): Stdio {
  if (value === undefined) value = "inherit";
  if (typeof value === "number") {
    if (!Number.isInteger(value) || value < 0 || value > MAX_FD) {
      throw SboxError.invalidOption(name, `an fd must be a non-negative integer, got ${value}`);
    }
    // Here, not in the child: its dup2 would fail with EBADF after clone3.
    if (!isOpenFd(value)) throw SboxError.invalidOption(name, `fd ${value} is not open`);
    refuseEscapingFd(name, value);
    return value;
  }
  if (value === "inherit") refuseEscapingFd(name, STDIO_NAMES.indexOf(name as typeof STDIO_NAMES[number]));
  if (!STDIO_VALUES.includes(value as Stdio)) {
    throw SboxError.invalidOption(
      name,
      `must be "inherit", "piped", "null" or an fd, got ${show(value)}`,
    );
  }
  return value as Stdio;
}

/**
 * What a file of mode `mode` is when it must not be a container's stdio,
 * else undefined: a directory (from its fd, `/proc/self/fd/N/..` climbs to
 * the host's own root, past pivot_root) or a block device (reopened through
 * `/proc/self/fd/N` by the container's root, a host disk to write to). The
 * library refuses such fds, and `sbox run` such files and inherited fds.
 */
export function escapingStdio(mode: number): "a directory" | "a block device" | undefined {
  switch (mode & 0o170000) {
    case 0o040000:
      return "a directory";
    case 0o060000:
      return "a block device";
  }
  return undefined;
}

/** Refuses an fd that {@linkcode escapingStdio} names. `fd` < 0: nothing to check. */
function refuseEscapingFd(name: string, fd: number): void {
  if (fd < 0) return;
  // fstat, every time: ~1 µs, where a stat of /proc/self/fd/N cost ~3% of a
  // start; and fds 0-2 can change between starts (dup2), so no cache.
  const info = fstat(fd);
  if (!info) return; // a closed inherited fd: the child gets none either
  const what = escapingStdio(info.mode);
  if (what) {
    throw SboxError.invalidOption(
      name,
      `fd ${fd} is ${what}, which would give the container the host's files (give a file, a pipe or a terminal)`,
    );
  }
}

/** Validates process options before anything is created. */
export function checkProcessOptions(options: ProcessOptions): CheckedProcess {
  checkOptionsIsObject(options);
  checkKnownKeys(options, PROCESS_OPTIONS);
  const { command, env = {}, cwd = "/", cgroup } = options;
  checkCommand(command);
  if (!isPlainObject(env)) {
    throw SboxError.invalidOption("env", `must be a plain object of NAME: value, got ${kindOf(env)}`);
  }
  const envp: string[] = [];
  for (const [key, value] of Object.entries(env)) {
    if (key === "" || key.includes("=") || notPassable(key)) {
      throw SboxError.invalidOption("env", `bad variable name ${show(key)}`);
    }
    if (typeof value !== "string") throw SboxError.invalidOption("env", `value of ${key} must be a string`);
    const problem = notPassable(value);
    if (problem) throw SboxError.invalidOption("env", `value of ${key} holds ${problem}`);
    envp.push(`${key}=${value}`);
  }
  if (envp.length > PROGRAM_LIMITS.arrayEntries) {
    throw SboxError.invalidOption("env", `${envp.length} variables, at most ${PROGRAM_LIMITS.arrayEntries}`);
  }
  if (typeof cwd !== "string" || !cwd.startsWith("/") || cwd.includes("\0")) {
    throw SboxError.invalidOption(
      "cwd",
      `must be an absolute path without NUL bytes, got ${show(cwd)}`,
    );
  }
  checkPathText("cwd", undefined, cwd);
  if (
    cgroup !== undefined &&
    (typeof cgroup !== "string" || !/^[A-Za-z0-9_.-]+$/.test(cgroup) || /^\.+$/.test(cgroup))
  ) {
    throw SboxError.invalidOption("cgroup", `must be a plain cgroup name, got ${show(cgroup)}`);
  }
  if (cgroup !== undefined && isInterfaceFileName(cgroup)) {
    throw SboxError.invalidOption(
      "cgroup",
      `${show(cgroup)} is the name of a cgroup interface file, not a group`,
    );
  }
  checkBoolean("reaper", options.reaper);
  checkBoolean("measureMaxRss", options.measureMaxRss);
  if (options.measureMaxRss && !options.reaper) {
    throw SboxError.invalidOption("measureMaxRss", "needs reaper: true (pid 1 measures it)");
  }
  const groups = options.groups;
  if (groups !== undefined && !Array.isArray(groups)) {
    throw SboxError.invalidOption("groups", "must be an array of ids");
  }
  if (groups !== undefined) checkNoHoles("groups", groups);
  if (groups !== undefined && groups.length > PROGRAM_LIMITS.arrayEntries) {
    throw SboxError.invalidOption(
      "groups",
      `${groups.length} groups, at most ${PROGRAM_LIMITS.arrayEntries}`,
    );
  }
  return {
    command: [...command],
    env: envp,
    searchPath: env.PATH ?? SEARCH_PATH_WITHOUT_ENV,
    cwd,
    uid: checkId("uid", options.uid, 0),
    gid: checkId("gid", options.gid, 0),
    groups: groups?.map((g) => checkId("groups", g, 0)),
    cgroup,
    stdio: [
      checkStdio("stdin", options.stdin),
      checkStdio("stdout", options.stdout),
      checkStdio("stderr", options.stderr),
    ],
    security: checkProcessSecurity(options),
    signal: checkAbortSignal(options.signal),
  };
}

function checkAbortSignal(signal: unknown): AbortSignal | undefined {
  if (signal === undefined || signal instanceof AbortSignal) return signal;
  throw SboxError.invalidOption("signal", `must be an AbortSignal, got ${show(signal)}`);
}
