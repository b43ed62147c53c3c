/**
 * Long-running programs on the host, such as the network daemons
 * slirp4netns and pasta: started through the library's own launch sequence
 * (FFI only, no Deno.Command), with chosen fds passed at chosen numbers,
 * their stderr kept for error messages, and a handle to stop and reap them.
 *
 * A daemon gets SIGKILL when the thread that started it ends (PR_SET_PDEATHSIG),
 * so even a crashed or killed Deno process leaves none behind.
 *
 * A daemon does not take the caller's scheduling rank (a real-time policy,
 * a negative nice value, the realtime I/O class), and one that serves a
 * container ({@linkcode HostDaemonSpec.servesContainer}) not its OOM
 * protection either: as the container's own processes (security/neutral.ts).
 *
 * @module
 */

import { SboxError, type Step } from "./error.ts";
import { describeEnd, launch } from "./launch.ts";
import { CLONE, type ProgramBuilder } from "./program.ts";
import { reactor, waitExit } from "./reactor.ts";
import { ownLimits, RLIMIT_RESOURCES } from "./security/rlimits.ts";
import {
  close,
  EAGAIN,
  EINTR,
  EMFILE,
  O,
  open,
  pidfdSignal,
  pipe,
  setNonblocking,
  tryRead,
  type WaitResult,
} from "./sys.ts";

const SIGKILL = 9;
/** How much of a daemon's stderr is kept for an error message. */
const STDERR_KEPT = 4096;

/** What to start: `argv[0]` absolute; `fds[i]` becomes fd `3 + i` in the program. */
export interface HostDaemonSpec {
  argv: string[];
  /** fds of this process that the daemon gets as 3, 4, ...; closed here once it started. */
  passFds?: number[];
  /**
   * The step its failure to start is reported as (`"network"`): never
   * `"exec"`, which names the container's command not starting.
   */
  step: Step;
  /**
   * Whether it runs as long as a container and handles what the container
   * sends (a network daemon): its oom_score_adj is then reset as the
   * container's processes' is (security/neutral.ts), or a flood of the
   * untrusted container's traffic would be relayed by a process the OOM
   * killer passes over. Such a reset costs a copy of this process's memory
   * (no CLONE_VM), so a short helper that ends before the container runs
   * (newuidmap) keeps the caller's. Its scheduling is reset either way.
   */
  servesContainer?: boolean;
}

/** A running host program; {@linkcode stop} kills and reaps it. */
export class HostDaemon {
  /** Its pid. */
  readonly pid: number;
  /** Resolves when it has exited and been reaped. */
  readonly exited: Promise<WaitResult>;
  /** Its program, for messages. */
  readonly program: string;
  /** -1 once reaped: the number may then name any newer fd, another container's pidfd even. */
  #pidfd: number;
  readonly #stderr: Promise<string>;
  /** The first stop(): every later call returns it. */
  #stopping: Promise<void> | undefined;

  private constructor(program: string, pid: number, pidfd: number, stderrRead: number) {
    this.program = program;
    this.pid = pid;
    this.#pidfd = pidfd;
    this.exited = this.#reap();
    this.#stderr = keepTail(stderrRead);
  }

  /** Starts `spec.argv` with stdin and stdout on /dev/null and stderr kept. */
  static async start(spec: HostDaemonSpec): Promise<HostDaemon> {
    const passFds = spec.passFds ?? [];
    let devNull = -1, stderrRead = -1, stderrWrite = -1;
    try {
      devNull = open("/dev/null", O.RDWR);
      [stderrRead, stderrWrite] = pipe();
      setNonblocking(stderrRead);
    } catch (err) {
      for (const fd of [devNull, stderrRead, stderrWrite, ...passFds]) close(fd);
      throw err;
    }
    const sources = [devNull, devNull, stderrWrite, ...passFds];
    let launched;
    try {
      launched = await launch({
        // Its memory is ours until it execs (unless its oom_score_adj needs
        // a reset: launch() copies it then).
        flags: CLONE.VM,
        cgroupFd: -1,
        // After launch()'s parent-death signal: a caller that died before
        // the prctl is seen at the wait (end of file), not missed.
        sync: true,
        keepOomScoreAdj: !spec.servesContainer,
        childFds: [devNull, stderrWrite, ...passFds],
        // Compiled once launch has opened its pipes: the staging fds must
        // miss the result pipe's write end (placeFds).
        compile: (b, sync, resultFd) => {
          // Closes both ends of the sync pipe in the child, before placeFds.
          b.waitParent(sync.read, sync.write);
          placeFds(b, sources, resultFd, spec.step, spec.argv[0]);
          b.closeFrom(sources.length);
          b.exec(spec.argv[0], spec.argv, [], null);
        },
      });
    } catch (err) {
      close(stderrRead);
      if (!(err instanceof SboxError) || err.step !== "exec") throw err;
      throw new SboxError(err.message, { step: spec.step, errno: err.errnoNumber, cause: err });
    }
    return new HostDaemon(spec.argv[0], launched.pid, launched.pidfd, stderrRead);
  }

  /**
   * Why it ended, with the last line it wrote on stderr: for error messages.
   * `shown` names it there (default: its program).
   */
  async describeExit(shown: string = this.program): Promise<string> {
    const how = describeEnd(await this.exited);
    const said = (await this.#stderr).trim().split("\n").filter(Boolean).at(-1);
    return said ? `${shown} ${how}: ${said}` : `${shown} ${how}`;
  }

  /**
   * Kills it (SIGKILL) unless it has been reaped, and waits until it is.
   * Later calls return the first call's promise and signal nothing.
   */
  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      if (this.#pidfd >= 0) pidfdSignal(this.#pidfd, SIGKILL);
      await this.exited;
      await this.#stderr;
    })();
    return this.#stopping;
  }

  /** Waits for the exit, then forgets the pidfd before closing it (see #pidfd). */
  async #reap(): Promise<WaitResult> {
    try {
      return await waitExit(this.#pidfd);
    } finally {
      const pidfd = this.#pidfd;
      this.#pidfd = -1;
      reactor().close(pidfd);
    }
  }
}

/**
 * dup2s `sources[i]` to fd `i` without clobbering a source before it is
 * used: every source first goes to a staging fd above all of them and above
 * `resultFd`, the child's end of launch's result pipe. Those are all the
 * child still needs when the dup2s run: its sync pipe's ends are closed
 * (wait_parent comes first), and its every other fd is a copy of one of this
 * process's, which the child may close (close_from closes them all after).
 * A staging fd must never be the result pipe: dup2 onto it would close it,
 * the parent would take the end-of-file for a successful exec and free the
 * child's stack while the child still runs on it (SIGSEGV).
 *
 * Not above every fd open in this process: a high fd it inherited (a CI
 * harness's fd 251) under a low `ulimit -n` (128) would put the staging fds
 * past the limit, and every start of newuidmap fail with EMFILE.
 */
function placeFds(
  b: ProgramBuilder,
  sources: number[],
  resultFd: number,
  step: Step,
  program: string,
): void {
  const staging = Math.max(...sources, sources.length, resultFd) + 1;
  // dup2 onto an fd at or above the limit fails (EBADF, "cannot set up fd
  // N" from the child, which named no cause): the daemon's fds or the
  // result pipe are so near the limit that no room is left above them.
  if (staging + sources.length > openFileLimit()) {
    throw SboxError.fromErrno(step, `cannot hand ${program} its fds`, EMFILE);
  }
  sources.forEach((fd, i) => b.dup2(fd, staging + i));
  sources.forEach((_, i) => b.dup2(staging + i, i));
}

/** The soft RLIMIT_NOFILE of this process (from /proc/self/limits); Infinity when unlimited or unknown. */
function openFileLimit(): number {
  const limit = Number(ownLimits("soft")[RLIMIT_RESOURCES.NOFILE] ?? Infinity);
  return Number.isSafeInteger(limit) ? limit : Infinity;
}

/** Reads `fd` to end-of-file, keeping the last bytes; closes it. */
async function keepTail(fd: number): Promise<string> {
  const buf = new Uint8Array(4096);
  let kept = new Uint8Array(0);
  try {
    for (;;) {
      const n = tryRead(fd, buf);
      if (n === 0) break;
      if (n > 0) {
        const joined = new Uint8Array(kept.length + n);
        joined.set(kept);
        joined.set(buf.subarray(0, n), kept.length);
        kept = joined.slice(Math.max(0, joined.length - STDERR_KEPT));
      } else if (-n === EAGAIN) await reactor().readable(fd);
      else if (-n !== EINTR) break;
    }
  } finally {
    reactor().close(fd);
  }
  return new TextDecoder().decode(kept);
}

/**
 * Waits until `fd` (nonblocking, the read end of a pipe the daemon writes
 * when it is ready) has data: "ready"; end-of-file first (the daemon is
 * gone): "exited"; neither within `timeoutMs`: "timeout". Closes it.
 */
export async function waitReady(fd: number, timeoutMs: number): Promise<"ready" | "exited" | "timeout"> {
  const buf = new Uint8Array(64);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), timeoutMs);
  });
  try {
    for (;;) {
      const n = tryRead(fd, buf);
      if (n > 0) return "ready";
      if (n === 0) return "exited";
      if (-n === EAGAIN) {
        // On "timeout" the wait stays registered: the close below ends it.
        if (await Promise.race([reactor().readable(fd), expired]) === "timeout") return "timeout";
      } else if (-n !== EINTR) return "exited";
    }
  } finally {
    clearTimeout(timer);
    reactor().close(fd);
  }
}
