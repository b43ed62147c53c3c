/**
 * The launch sequence shared by every process sbox creates (a container's
 * init, a process exec'd into it, a host helper such as newuidmap):
 *
 * 1. pipes: the result pipe (child → parent) and, when the parent has work to
 *    do before the child may go on, the sync pipe (parent → child);
 * 2. compile the program with those fd numbers and clone3 it (helper);
 * 3. close the child's ends here, so that end-of-file means what it should;
 * 4. `beforeStart(pid)`: write the id maps while the child waits;
 * 5. release the child with one byte on the sync pipe, then
 *    `afterRelease(pid)`, which overlaps the child's setup;
 * 6. read the result pipe to end-of-file (protocol.ts).
 *
 * On any failure everything is undone here: the child is killed and reaped,
 * every fd closed and the child stack freed, then the error is thrown. So
 * too when the launch is stuck ({@linkcode LaunchSpec.stall}: its child can
 * never run, as in a frozen cgroup).
 *
 * @module
 */

import { helper } from "./ffi.ts";
import { SboxError, TOO_MANY_OPEN_FILES_HINT } from "./error.ts";
import { describeErrno, errnoName, errnoNumber } from "./errno.ts";
import { CLONE, type OpName, type Program } from "./program.ts";
import { ownLimits, RLIMIT_RESOURCES } from "./security/rlimits.ts";
import { type ChildRecord, RecordReader } from "./protocol.ts";
import { reactor } from "./reactor.ts";
import { signalName } from "./signal.ts";
import { beginLaunch, endLaunch } from "./teardown.ts";
import {
  close,
  ids,
  num,
  pidfdSignal,
  pipe,
  readLink,
  readTextFile,
  setNonblocking,
  stat,
  tryKill,
  tryPidfdOpen,
  waitPid,
  waitPidfd,
  type WaitResult,
  writeAll,
} from "./sys.ts";

/** What to launch. */
export interface LaunchSpec {
  /** clone3 flags (namespaces, CLONE_VM). */
  flags: bigint;
  /** cgroup directory fd for CLONE_INTO_CGROUP, or -1. */
  cgroupFd: number;
  /**
   * Compiles the program; `sync` holds the pipe ends for `waitParent`, or
   * -1s; `resultFd` is the child's end of the result pipe (its
   * Context.result_fd), which it writes until its exec: a dup2 onto that
   * number before then would close it.
   */
  program: (sync: SyncPipe, resultFd: number) => Program;
  /** Whether the child must wait for `beforeStart`. */
  sync: boolean;
  /** fds that only the child needs (stdio ends): closed here after clone3. */
  childFds: number[];
  /** Runs while the child waits, e.g. writing its id maps. */
  beforeStart?: (pid: number) => Promise<void> | void;
  /**
   * Once aborted, `beforeStart` has `graceMs` more to settle; still pending
   * after that (a caller's mapper or network that never settles), the
   * launch gives up on it: the child is killed, and the launch rejects with
   * the abort's reason. Settled, the child is killed all the same, never
   * released (step `"destroyed"`). An abort after the release changes
   * nothing. Container.destroy() aborts it.
   */
  cancel?: { signal: AbortSignal; graceMs: number; onAbandon?: () => void };
  /** Runs right after the child is released, while it sets up. */
  afterRelease?: (pid: number) => void;
  /**
   * A launch still under way `afterMs` after its clone3 (and every `afterMs`
   * after that) calls `check`; an error from it says that the child can
   * never finish (its cgroup is frozen): the child is killed, and once it
   * is reaped the launch rejects with that error. A slow launch is not one:
   * `check` returns undefined, and the wait goes on. One timer per launch,
   * cleared at its end: a launch that ends sooner reads nothing.
   */
  stall?: { afterMs: number; check: () => SboxError | undefined };
}

/** The sync pipe: the child waits on `read`; `write` is the parent's end. */
export interface SyncPipe {
  read: number;
  write: number;
}

/** A running process created by {@linkcode launch}. */
export interface Launched {
  pid: number;
  pidfd: number;
  /** For a reaper: the result pipe, still open; `exited` will come through it. */
  channel?: StatusChannel;
  /** For a reaper: the CPU time of the setup in microseconds (its `setupCpu` record). */
  setupCpuUsec?: number;
  /** For a reaper: when it saw the command's execve (its `startedAt` record), and when this process read that. */
  startedAt?: ReaperTime;
  /** For a reaper: the value its kill request must carry (its `killToken` record), if it drew one. */
  killToken?: bigint;
}

/** A time of pid 1's clock (microseconds, low 31 bits), and `performance.now()` when it was read here. */
export interface ReaperTime {
  usec: number;
  seenMs: number;
}

/** The open result pipe of a reaper and how to let it go after end-of-file. */
export interface StatusChannel {
  reader: RecordReader;
  /** Closes the pipe and frees the child stack: only after end-of-file. */
  release(): void;
}

const SIGKILL = 9;

/** `work`, unless {@linkcode LaunchSpec.cancel} gives up on it first: see there. */
function unlessAbandoned<T>(work: Promise<T> | T, cancel: LaunchSpec["cancel"]): Promise<T> {
  const pending = Promise.resolve(work);
  if (!cancel) return pending;
  const { signal, graceMs } = cancel;
  return new Promise<T>((resolve, reject) => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const abandon = () =>
      timer = setTimeout(() => {
        cancel.onAbandon?.();
        reject(signal.reason);
      }, graceMs);
    if (signal.aborted) abandon();
    else signal.addEventListener("abort", abandon, { once: true });
    pending.then(resolve, reject).finally(() => {
      clearTimeout(timer);
      signal.removeEventListener("abort", abandon);
    });
  });
}

/** {@linkcode LaunchSpec.stall}'s watch of one launch: `error` once `check` gave one; `stop()` ends it. */
interface StallWatch {
  readonly error: SboxError | undefined;
  stop(): void;
}

const NO_STALL_WATCH: StallWatch = { error: undefined, stop: () => {} };

/**
 * Watches a launch for {@linkcode LaunchSpec.stall} from its clone3 on:
 * `kill` ends its processes on the first error of `check`, which the
 * watch keeps. Only a launch still under way after `afterMs` runs `check`.
 */
function watchStall(stall: LaunchSpec["stall"], kill: () => void): StallWatch {
  if (!stall) return NO_STALL_WATCH;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const watch = { error: undefined as SboxError | undefined, stop: () => clearTimeout(timer) };
  const arm = () => {
    timer = setTimeout(() => {
      try {
        watch.error = stall.check();
      } catch {
        // A check that fails tells nothing: the wait goes on, as without one.
      }
      if (watch.error) kill();
      else arm();
    }, stall.afterMs);
  };
  arm();
  return watch;
}

/** Runs the launch sequence; see the module documentation. */
export async function launch(spec: LaunchSpec): Promise<Launched> {
  // Until the child has exec'd, it holds copies of our fds: background
  // closes of container teardowns wait (teardown.ts).
  await beginLaunch();
  try {
    return await launchChild(spec);
  } finally {
    endLaunch();
  }
}

/** A child just made by {@linkcode spawn}, and our ends of its pipes. */
interface Spawned {
  pid: number;
  pidfd: number;
  /** The child stack region, freed once the result pipe reaches end-of-file. */
  stack: bigint;
  program: Program;
  resultRead: number;
  /** Our end of the sync pipe, or -1 without one. */
  syncWrite: number;
}

/**
 * The synchronous part of a launch: pipes, the program, clone3. The
 * child's fds are closed here, whatever happens; ours too if it fails.
 */
function spawn(spec: LaunchSpec): Spawned {
  const lib = helper();
  const opened: number[] = [];
  let resultRead = -1, resultWrite = -1, syncRead = -1, syncWrite = -1;
  let program: Program;
  try {
    [resultRead, resultWrite] = pipe();
    opened.push(resultRead, resultWrite);
    setNonblocking(resultRead);
    if (spec.sync) {
      [syncRead, syncWrite] = pipe();
      opened.push(syncRead, syncWrite);
    }
    program = spec.program({ read: syncRead, write: syncWrite }, resultWrite);
  } catch (err) {
    for (const fd of [...opened, ...spec.childFds]) close(fd);
    throw err;
  }

  const out = new BigInt64Array(2);
  const outBytes = new Uint8Array(out.buffer);
  const rc = num(
    lib.sbox_spawn(
      program.bytes,
      BigInt(program.bytes.length),
      spec.flags,
      spec.cgroupFd,
      resultWrite,
      outBytes,
    ),
  );
  for (const fd of [resultWrite, syncRead, ...spec.childFds]) close(fd);
  if (rc < 0) {
    close(resultRead);
    close(syncWrite);
    const hint = cloneHint(-rc, (spec.flags & NAMESPACE_FLAGS) !== 0n);
    throw new SboxError(`cannot create the process (clone3): ${describeErrno(-rc)}${hint}`, {
      step: "clone",
      errno: -rc,
    });
  }
  const pid = Number(out[0] & 0xffffffffn);
  const pidfd = Number(out[0] >> 32n);
  return { pid, pidfd, stack: BigInt.asUintN(64, out[1]), program, resultRead, syncWrite };
}

/**
 * Launches share the event loop in slices. A launch's synchronous part (the
 * program's compile and clone3: 1-3 ms) runs without a break, and a burst
 * of hundreds started together ran back to back as one long task, with
 * every timer (a judge's wall-time kill) and every exit waiting behind it:
 * 300 starts held the loop for half a second, 1000 exec()s for three. So a
 * slice of launches lasts `TURN_SLICE_MS`; a launch that finds it older
 * waits for a task of its own (setTimeout), after the timers and I/O due.
 * A zero timer set when a slice begins ends it once the loop has turned: a
 * launch alone, or one after a pause, never waits.
 *
 * Those that wait go in the order they came: each slice lets the oldest go
 * first (`onTurn`), each launch lets the next go while the slice lasts
 * (`passTurn`), and a new launch waits behind them. Without the queue a
 * launch that came while a slice was fresh went at once, and a waiter went
 * to the back each time it found the slice used up: under a judge's steady
 * stream of starts, one start waited 13 s while 119 later ones went.
 */
const TURN_SLICE_MS = 10;
/** When the current slice began; undefined once the event loop has turned since. */
let sliceStartMs: number | undefined;
/** The launches waiting for their turn, oldest first. */
const waiting: (() => void)[] = [];
/** Launches given their turn that have not made their process yet: a new one waits behind them too. */
let granted = 0;

function startSlice(now: number): void {
  sliceStartMs = now;
  setTimeout(onTurn, 0);
}

/** The event loop has turned: the slice is over, and the oldest waiter goes in a new one. */
function onTurn(): void {
  sliceStartMs = undefined;
  if (waiting.length === 0) return;
  startSlice(performance.now());
  grantNext();
}

function grantNext(): void {
  granted++;
  waiting.shift()!();
}

/**
 * A launch's synchronous part is done (`wasGranted`: it had waited for its
 * turn): the next waiter goes, while the slice lasts.
 */
function passTurn(wasGranted: boolean): void {
  if (wasGranted) granted--;
  if (waiting.length === 0 || sliceStartMs === undefined) return;
  if (performance.now() - sliceStartMs < TURN_SLICE_MS) grantNext();
}

/** undefined: go on now; or a promise that resolves when it is this launch's turn. */
function turnWait(): Promise<void> | undefined {
  if (waiting.length === 0 && granted === 0) {
    const now = performance.now();
    if (sliceStartMs === undefined) {
      startSlice(now);
      return undefined;
    }
    if (now - sliceStartMs < TURN_SLICE_MS) return undefined;
  }
  return new Promise((resolve) => waiting.push(resolve));
}

async function launchChild(spec: LaunchSpec): Promise<Launched> {
  const lib = helper();
  // Not awaited when there is no wait: a launch alone goes on in the same task.
  const turn = turnWait();
  if (turn) await turn;
  let spawned;
  try {
    spawned = spawn(spec);
  } finally {
    passTurn(turn !== undefined);
  }
  const { pid, pidfd, stack, program, resultRead } = spawned;
  let { syncWrite } = spawned;

  const reader = new RecordReader(resultRead);
  // Only once every process that runs on the child stack has exec'd or
  // exited may it be freed: that is when the result pipe reaches end-of-file.
  const release = () => {
    reactor().close(resultRead);
    lib.sbox_stack_free(stack);
  };
  const drain = async () => {
    while (await reader.next().catch(() => undefined));
  };
  const records: ChildRecord[] = [];
  // A forked process is a child of ours (CLONE_PARENT) until adopt(): its
  // pid names it alone. It holds the result pipe open as the child does.
  const kill = () => {
    pidfdSignal(pidfd, SIGKILL);
    for (const record of records) if (record.kind === "forked") tryKill(record.pid, SIGKILL);
  };
  const stall = watchStall(spec.stall, kill);
  try {
    if (spec.beforeStart) {
      try {
        await unlessAbandoned(spec.beforeStart(pid), spec.cancel);
        // Cancelled meanwhile: no release, so nothing of the command runs.
        if (spec.cancel?.signal.aborted) {
          throw new SboxError("the launch was cancelled before its process was released", {
            step: "destroyed",
            cause: spec.cancel.signal.reason,
          });
        }
      } catch (err) {
        // The child sees end-of-file on the sync pipe and exits; kill it anyway.
        close(syncWrite);
        syncWrite = -1;
        pidfdSignal(pidfd, SIGKILL);
        throw err;
      }
    }
    if (syncWrite >= 0) {
      writeAll(syncWrite, new Uint8Array(1), "cannot release the child");
      close(syncWrite);
      syncWrite = -1;
      spec.afterRelease?.(pid);
    }
    let setupCpuUsec: number | undefined;
    let startedAt: ReaperTime | undefined;
    let killToken: bigint | undefined;
    for (let record = await reader.next(); record; record = await reader.next()) {
      records.push(record);
      // Killed for a stall: what it forked meanwhile goes too, or the pipe stays open.
      if (stall.error) kill();
      if (record.kind === "setupCpu") setupCpuUsec = record.usec;
      if (record.kind === "startedAt") startedAt = { usec: record.usec, seenMs: performance.now() };
      if (record.kind === "killToken") killToken = record.token;
      // A reaper keeps the pipe open for the container's life; one killed
      // for a stall closes it.
      if (record.kind === "started" && !stall.error) {
        stall.stop();
        return { pid, pidfd, channel: { reader, release }, setupCpuUsec, startedAt, killToken };
      }
    }
  } catch (err) {
    // Before any reap: a kill after it could reach whatever reuses the
    // pidfd's number or the forked pid.
    stall.stop();
    close(syncWrite);
    pidfdSignal(pidfd, SIGKILL);
    await drain();
    release();
    await reap(pidfd);
    // The stall's kill is what made the step fail (a map of a dead process).
    throw stall.error ?? err;
  }
  stall.stop();
  release();

  const failed = records.find((r) => r.kind === "failed");
  const forked = records.find((r) => r.kind === "forked");
  if (forked) await reap(pidfd); // the go-between of a fork op exits at once
  // A failed op after the stall's kill is of the kill: the stall is the error.
  const error = stall.error ?? (failed && opFailure(program, failed.opIndex, failed.errno));
  if (error) {
    // The failure is the one to report; adopt() reaps the process either way.
    if (forked) await adopt(forked.pid).then(reap, () => undefined);
    else await reap(pidfd);
    throw error;
  }
  if (forked) return { pid: forked.pid, pidfd: await adopt(forked.pid) };
  if (program.hasReaper) {
    // pid 1 reports the command's start; it ended before, with no failure
    // to tell: killed (a memory limit the setup hit, a kill from outside).
    const how = describeEnd(await reap(pidfd));
    throw new SboxError(`the container's pid 1 ${how} before the command started`, { step: "reaper" });
  }
  return { pid, pidfd };
}

/**
 * The error of op `opIndex` of `program`, which the child reports failed
 * with `errno`: what the op does, the errno, and why where the errno alone
 * would not say (the op's `explain`, else {@linkcode hintFor}).
 */
export function opFailure(program: Program, opIndex: number, errno: number): SboxError {
  const { step, what, explain } = program.describe(opIndex);
  const why = explain?.(errnoName(errno));
  const hint = why === undefined ? hintFor(errno, step, what) : `: ${why}`;
  return new SboxError(`${what}: ${describeErrno(errno)}${hint}`, { step, errno });
}

/**
 * What an errno of `step` means where it is not plain. EOVERFLOW: to
 * write in a directory of an overlay, the kernel copies it up with its
 * owner, which must be an id of the container; a host directory of an id
 * outside its map (host root's, under a user's container) cannot be.
 * ELOOP of a mount: the helper refuses a symbolic link at the target of an
 * overlay and of /dev, /proc and /sys (program.ts, `targetNoLink`), which
 * an image may well have; overlayfs also gives it for layers that overlap,
 * which OverlayMount.validate() refuses by path, but not a bind mount of one
 * layer inside another. Ops of overlays say so in `what` ("cannot mount
 * overlay on /"), of OverlayMount and of `sbox run` alike. EROFS of a mount:
 * an overlay that came out read-only (program.ts, `checkWritable`).
 */
function hintFor(errno: number, step: OpName, what: string): string {
  if (step === "fork" || step === "unshare" || step === "net_spawn" || step === "reaper") {
    // Only unshare and net_spawn make namespaces: sbox's one fork op (the
    // exec's, container.ts) clones with CLONE_VM | CLONE_PARENT alone, and
    // the namespaces it enters are joined or made by the ops after it.
    return cloneHint(errno, step === "unshare" || step === "net_spawn");
  }
  if (
    errno === errnoNumber("ENOENT") && step === "write_existing" && what.startsWith("cannot write /proc/sys/")
  ) {
    // The IPC limits go through sbox's own /proc (ipc_limits.ts).
    return stat("/proc/sys") === undefined
      ? " (sbox's /proc has no /proc/sys: it is a proc mounted with subset=pid, which shows processes " +
        "only, as some containers have it; run sbox where /proc is a whole one)"
      : "";
  }
  if (errno === errnoNumber("ELOOP") && step === "mount" && what.startsWith("cannot mount overlay ")) {
    return " (a symbolic link on the way: an overlay is mounted only on a path of the image, or of a kept " +
      "upper layer, that has none; or layers that overlap: overlayfs refuses a lower, upper or work " +
      "directory that is, holds or lies inside another)";
  }
  if (errno === errnoNumber("ELOOP") && step === "write_file") {
    return " (its directory is a symbolic link, which the setup does not follow for this file: it could lead " +
      "into a mount of the caller's)";
  }
  if (errno === errnoNumber("ELOOP") && step === "mount") {
    return " (a symbolic link on the way: /dev, /proc, /sys and overlays are mounted only on a path " +
      "of the image, or of a kept upper layer, that has none)";
  }
  if (errno === errnoNumber("EROFS") && step === "mount") {
    return " (the overlay came out read-only: overlayfs could not make its work directory, as when the work " +
      "directory is not writable or the upper layer's file system is out of space or inodes)";
  }
  if (errno !== errnoNumber("EOVERFLOW")) return "";
  return " (a directory on the way belongs to a host id outside the container's id map, so the overlay " +
    "cannot copy it up to write in it: see docs/rootless.md)";
}

/** The clone3 flags that make namespaces, the ones whose limits ENOSPC and EPERM may be about. */
const NAMESPACE_FLAGS = CLONE.NEWUSER | CLONE.NEWPID | CLONE.NEWNS | CLONE.NEWNET | CLONE.NEWIPC |
  CLONE.NEWUTS | CLONE.NEWCGROUP | CLONE.NEWTIME;

/** What {@linkcode cloneHint} reads of the host, only once a clone has failed. */
export interface CloneLimits {
  /** This process's effective uid. */
  euid: number;
  /**
   * Whether this process runs in a user namespace other than the host's
   * (a rootless container, `unshare -U -r`), whose uid 0 RLIMIT_NPROC may
   * bind as any uid. Absent: the host's.
   */
  nestedUserNamespace?: boolean;
  /** The soft RLIMIT_NPROC (`ulimit -u`), or undefined where it cannot be read; `-1n` for unlimited. */
  nproc: bigint | undefined;
  /** The `/proc/sys/user/max_*_namespaces` files whose value is 0 here, by name: "max_user_namespaces". */
  zeroNamespaceLimits: string[];
}

/** The host's {@linkcode CloneLimits}, read as the failure is reported. */
function readCloneLimits(): CloneLimits {
  let nproc: bigint | undefined;
  try {
    const soft = ownLimits("soft")[RLIMIT_RESOURCES.NPROC];
    // ownLimits gives "unlimited" as RLIM_INFINITY, 2^64 - 1.
    nproc = soft === undefined ? undefined : soft === (1n << 64n) - 1n ? -1n : soft;
  } catch {
    nproc = undefined;
  }
  const zeroNamespaceLimits = ["user", "pid", "mnt", "net", "ipc", "uts", "cgroup", "time"]
    .map((kind) => `max_${kind}_namespaces`)
    .filter((name) => {
      try {
        return readTextFile(`/proc/sys/user/${name}`).trim() === "0";
      } catch {
        return false; // a kernel without that namespace
      }
    });
  let nestedUserNamespace: boolean | undefined;
  try {
    nestedUserNamespace = readLink("/proc/self/ns/user") !== INITIAL_USER_NAMESPACE;
  } catch {
    nestedUserNamespace = undefined; // unknown (no /proc): taken as the host's
  }
  return { euid: ids().euid, nproc, zeroNamespaceLimits, nestedUserNamespace };
}

/**
 * /proc/self/ns/user of a process in the host's (initial) user namespace:
 * the kernel gives the initial namespaces fixed inode numbers
 * (PROC_USER_INIT_INO, include/linux/proc_ns.h). A map of "0 0 4294967295"
 * would not tell: root can give a namespace of its own that one.
 */
const INITIAL_USER_NAMESPACE = "user:[4026531837]";

/**
 * What an errno of creating a process (clone3, or a fork or unshare of the
 * setup) means, where the errno's own text says nothing of it:
 *
 * - ENOSPC: a limit on namespaces. User and pid namespaces nest at most 32
 *   deep (the kernel's own bound), and each user namespace, and every one
 *   above it, caps how many of each kind may exist at once
 *   (/proc/sys/user/max_user_namespaces, ...), which a container may set
 *   to 0 to forbid them;
 * - EAGAIN: a limit on processes: the uid's RLIMIT_NPROC (which does not
 *   bind the host's root, but binds uid 0 of a rootless container), a
 *   pids.max of its cgroup or of one above, or the kernel's threads-max or
 *   pid_max;
 * - EMFILE: this process's limit of open files (clone3's pidfd is one),
 *   as for any other fd sbox opens (TOO_MANY_OPEN_FILES_HINT);
 * - ENOSYS: clone3 itself refused, which Docker's default seccomp profile
 *   does (so that glibc falls back to clone); sbox has no fallback, as it
 *   needs CLONE_INTO_CGROUP;
 * - EPERM, of a clone that makes namespaces: a seccomp filter, or a chroot
 *   (the kernel makes no user namespace in one), or a sysctl that forbids
 *   unprivileged user namespaces.
 *
 * `namespaces`: whether the clone made namespaces. Returns "" or " (...)".
 */
export function cloneHint(
  errno: number,
  namespaces: boolean,
  read: () => CloneLimits = readCloneLimits,
): string {
  if (errno === errnoNumber("ENOSPC") && namespaces) {
    const zero = read().zeroNamespaceLimits;
    const here = zero.length === 0
      ? ""
      : `; here ${zero.map((name) => `/proc/sys/user/${name}`).join(" and ")} ${
        zero.length === 1 ? "is" : "are"
      } 0, which forbids them`;
    return " (a limit on namespaces: user and pid namespaces nest at most 32 deep, and " +
      "/proc/sys/user/max_user_namespaces, max_pid_namespaces and the like cap how many may exist at once, " +
      `in this user namespace and in each one above it${here}: raise the limit that is reached ` +
      "(sysctl user.max_user_namespaces=N, in the namespace that set it), or run sbox in fewer nested " +
      "containers)";
  }
  if (errno === errnoNumber("EAGAIN")) {
    const { euid, nproc, nestedUserNamespace } = read();
    // The kernel waives RLIMIT_NPROC only for the host's root (a real uid
    // of kuid 0) and for CAP_SYS_RESOURCE or CAP_SYS_ADMIN in the initial
    // user namespace (copy_process): uid 0 of a rootless container is
    // another user of the host, and bound. (Uid 0 of root's own `unshare -U
    // -r` is the host's root: there the hint names one limit too many, which
    // is better than one too few.)
    const where = nestedUserNamespace ? "in this user namespace" : "on the host";
    const rlimit = (euid === 0 && !nestedUserNamespace) || nproc === -1n
      ? ""
      : `RLIMIT_NPROC (\`ulimit -u\`${nproc === undefined ? "" : `, here ${nproc}`}), which counts every ` +
        `process and thread of uid ${euid} ${where}, sbox's own included; `;
    return ` (a limit on processes is reached: ${rlimit}the pids.max of sbox's cgroup or of one above it; ` +
      "or the kernel's kernel.threads-max or kernel.pid_max: raise the one that is full, or end processes)";
  }
  // clone3's pidfd (CLONE_PIDFD) is a new fd of this process.
  if (errno === errnoNumber("EMFILE")) return TOO_MANY_OPEN_FILES_HINT;
  if (errno === errnoNumber("ENOSYS")) {
    return " (clone3 is refused: a seccomp filter, such as Docker's default profile for a container " +
      "without CAP_SYS_ADMIN, or a kernel older than 5.3; sbox needs clone3: run the outer container with " +
      "`--security-opt seccomp=unconfined`, or with a profile that allows clone3)";
  }
  if (errno === errnoNumber("EPERM") && namespaces) {
    return " (creating namespaces is not permitted here: a seccomp filter (an older Docker's default " +
      "profile), a chroot (the kernel makes no user namespace in one), or a sysctl that forbids user " +
      "namespaces to unprivileged users, such as Debian's kernel.unprivileged_userns_clone=0)";
  }
  return "";
}

/**
 * A pidfd of the process a fork op made, a child of ours (CLONE_PARENT).
 * Should pidfd_open fail (EMFILE: a full fd table), the process is killed
 * and reaped by its pid, which names no other process until then, and the
 * error is thrown: left unreaped, it would keep the container's init from
 * ever ending (the end of a pid namespace waits until every process in it
 * is reaped), and destroy() from returning.
 */
async function adopt(pid: number): Promise<number> {
  const pidfd = tryPidfdOpen(pid);
  if (pidfd >= 0) return pidfd;
  tryKill(pid, SIGKILL);
  // Polled: without a pidfd there is nothing to wait on, and a blocking
  // wait would stall the event loop for as long as the exit takes.
  for (let attempt = 0; !waitPid(pid); attempt++) {
    await new Promise((resolve) => setTimeout(resolve, Math.min(1 + attempt, 20)));
  }
  throw SboxError.fromErrno("pidfd_open", `cannot open a pidfd of process ${pid}, which was killed`, -pidfd);
}

/** How a process ended, for a message: "exited with 3", "was killed by SIGKILL". */
export function describeEnd(result: WaitResult): string {
  return result.exited ? `exited with ${result.status}` : `was killed by ${signalName(result.status)}`;
}

/** Waits for a process to exit, reaps it and closes its pidfd. */
export async function reap(pidfd: number): Promise<WaitResult> {
  try {
    for (;;) {
      const result = waitPidfd(pidfd);
      if (result) return result;
      await reactor().readable(pidfd);
    }
  } finally {
    reactor().close(pidfd);
  }
}
