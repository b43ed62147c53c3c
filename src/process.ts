/**
 * Processes created by sbox: their stdio pipes as Web streams, their exit
 * status, and signals. Waiting costs no thread: exits and pipes are watched
 * by the process-wide reactor (reactor.ts).
 *
 * @module
 */

import { SboxError } from "./error.ts";
import { checkOptionsObject, show } from "./options.ts";
import type { Launched, ReaperTime, StatusChannel } from "./launch.ts";
import { reactor, waitExit } from "./reactor.ts";
import { type SignalLike, signalName, signalNumber } from "./signal.ts";
import { type BackgroundClose, closeInBackground } from "./teardown.ts";
import {
  close,
  concatBytes,
  EAGAIN,
  EINTR,
  EINVAL,
  ESRCH,
  monotonicUsec,
  O,
  open,
  pidfdQueueSignal,
  pidfdSignal,
  pidfdSignalGroup,
  pipe,
  setNonblocking,
  tryKill,
  tryRead,
  tryWrite,
} from "./sys.ts";
import type { ProgramBuilder } from "./program.ts";
import { Deadline, MAX_TIMER_MS } from "./deadline.ts";

/**
 * What a process's stdin, stdout or stderr is connected to. A number is an
 * open fd of the caller (a file, a pipe) that the child gets as that stdio
 * stream; the caller keeps it and closes it once `start()`/`exec()` returned.
 */
export type Stdio = "inherit" | "piped" | "null" | number;

/** How a process ended. */
export interface ProcessStatus {
  /** `code === 0` and no signal. */
  success: boolean;
  /** The exit code, or 128 + the signal number when killed. */
  code: number;
  /** The name of the signal that killed it (`"SIGRT34"` for a real-time one; kill() takes each), or null. */
  signal: string | null;
}

/**
 * What a container's command and its descendants used, as the kernel's
 * `getrusage(RUSAGE_CHILDREN)` counts it for pid 1 (a reaper) once the
 * command has ended: see {@linkcode InitProcess.resourceUsage}.
 *
 * It covers the processes that were waited for: the command, every orphan
 * (a process whose parent ended first) that pid 1 reaped before the command
 * ended, and, through each of these, every child it waited for. Not pid 1's
 * own setup, and not a process still running or not yet reaped when the
 * command ended: it dies with the container, and no one waits for it.
 *
 * @example Memory and CPU time of a judged program
 * ```ts
 * import type { InitProcess } from "./process.ts";
 *
 * async function used(init: InitProcess): Promise<string> {
 *   await init.status;
 *   const usage = init.resourceUsage;
 *   if (!usage) return "no figure (killed with pid 1, or started without a reaper)";
 *   const memory = usage.maxRssBytes === null ? "?" : `${usage.maxRssBytes >> 20}`;
 *   return `${memory} MiB, ${(usage.userUsec + usage.systemUsec) / 1000} ms of CPU`;
 * }
 * ```
 */
export interface ResourceUsage {
  /**
   * The largest resident set of any one of those processes, in bytes
   * (`ru_maxrss`, which the kernel keeps in KiB, times 1024): the peak of
   * the biggest, not a sum. Pages of files it mapped count (its program and
   * libraries); page cache it only read, and its writes to a tmpfs, do
   * not. It includes the few hundred KiB of sbox's setup code that the
   * command's process ran before its `execve`. Null unless the start asked
   * for it (`measureMaxRss`), and where pid 1 could not first drop its copy
   * of this process's memory, which the command's process starts from and
   * the kernel would count too: without a `/proc/self/clear_refs`, or with
   * a shadow stack (CET, GCS).
   */
  maxRssBytes: number | null;
  /** Their CPU time in user mode, in microseconds (`ru_utime`). */
  userUsec: number;
  /** Their CPU time in the kernel, in microseconds (`ru_stime`). */
  systemUsec: number;
}

/** Status and captured output of {@linkcode Process.output}. */
export interface ProcessOutput extends ProcessStatus {
  /**
   * Everything written to stdout (empty unless stdout was "piped"). In an
   * ArrayBuffer of its own, as `Deno.Command`'s: a `BlobPart` and a
   * `BufferSource` as it is.
   */
  stdout: Uint8Array<ArrayBuffer>;
  /** Everything written to stderr (empty unless stderr was "piped"); as stdout. */
  stderr: Uint8Array<ArrayBuffer>;
  /**
   * The piped stream that went past {@linkcode OutputOptions.maxBytes}
   * first, for which the process was killed (`signal` is then `"SIGKILL"`,
   * unless it had ended already), or null. That stream holds the first
   * `maxBytes` bytes.
   */
  exceeded: "stdout" | "stderr" | null;
}

/**
 * Options of {@linkcode Process.output}.
 *
 * @example A judge's output limit: 1 MiB of each stream, then the program is killed
 * ```ts
 * import type { Process } from "./process.ts";
 *
 * async function judged(process: Process): Promise<string> {
 *   const result = await process.output({ maxBytes: 1 << 20 });
 *   if (result.exceeded) return "output limit exceeded";
 *   return result.success ? "ok" : "runtime error";
 * }
 * ```
 */
export interface OutputOptions {
  /**
   * The most bytes kept of each piped stream, stdout and stderr each. The
   * first byte past it gets the process killed (SIGKILL) and the stream
   * closed, so that a program that writes without end cannot fill this
   * process's memory: without it, output() keeps everything, as
   * `Deno.Command`'s does. An integer from 0 to 2^53 - 1; default: no limit.
   * SIGKILL ends only this process: a container's init takes every process
   * of the container with it (with `reaper: true` through pid 1, which keeps
   * `resourceUsage`; the stream is closed once that is done), an exec'd
   * process does not. Its children that
   * share the stream that went over get EPIPE once it is closed; one that
   * holds the other stream open keeps output() waiting for it, as without
   * a limit. The process's `signal` option bounds that wait: when it
   * aborts, the process group is killed and output() stops waiting for the
   * pipes (see `ProcessOptions.signal`).
   */
  maxBytes?: number;
}

/** The parent's and the child's ends of the stdio a process asked for. */
export class StdioPlan {
  /** fds the child needs; the parent closes them after clone3. */
  readonly childFds: number[] = [];
  /** Parent ends: stdin (write), stdout and stderr (read). */
  readonly parentFds: [number, number, number] = [-1, -1, -1];
  readonly #dups: [number, number][] = [];

  /** Opens what `modes` (stdin, stdout, stderr) need. */
  constructor(modes: [Stdio, Stdio, Stdio]) {
    try {
      let devNull = -1;
      modes.forEach((mode, target) => {
        if (typeof mode === "number") {
          // The caller's fd: dup'd in the child, never closed here.
          this.#dups.push([mode, target]);
        } else if (mode === "null") {
          if (devNull < 0) {
            devNull = open("/dev/null", O.RDWR);
            this.childFds.push(devNull);
          }
          this.#dups.push([devNull, target]);
        } else if (mode === "piped") {
          const [read, write] = pipe();
          const [child, parent] = target === 0 ? [read, write] : [write, read];
          this.childFds.push(child);
          this.parentFds[target] = parent;
          setNonblocking(parent);
          this.#dups.push([child, target]);
        }
      });
    } catch (err) {
      this.closeAll();
      throw err;
    }
  }

  /** Appends the dup2 ops; "inherit" needs none: fds 0-2 pass through. */
  compile(builder: ProgramBuilder): void {
    for (const [from, to] of this.#dups) builder.dup2(from, to);
  }

  /** Closes both ends (after a failed launch). */
  closeAll(): void {
    for (const fd of [...this.childFds, ...this.parentFds]) close(fd);
  }
}

const SIGKILL = 9;

/**
 * SIGRTMAX: queued with pid 1's kill token as its value, pid 1's request to
 * kill every other process (helper/reaper.zig, `kill_request`); any other
 * SIGRTMAX is forwarded to the command as any other signal.
 */
const KILL_REQUEST_SIGNAL = 64;

/** How long killCommand waits for pid 1 to end before it kills it too. */
const KILL_COMMAND_GRACE_MS = 1000;

/**
 * A process running in a container (sbox's `Process`): created by
 * `Container.exec`. {@linkcode InitProcess} is the container's first process.
 *
 * @example A second process in a running container, as uid 1000
 * ```ts
 * import type { Container } from "./container.ts";
 * import type { InitProcess } from "./process.ts";
 *
 * // uid and gid 1000 must be mapped: `ProcUserMapper.newRoot()` maps only
 * // root; as root, an identity map does (see ProcUserMapper's example).
 * async function whoami(container: Container, init: InitProcess): Promise<string> {
 *   // No "/": looked up in /usr/local/bin, /usr/bin and /bin (busybox has /usr/bin/id).
 *   const process = await container.exec(init, { command: ["id", "-u"], uid: 1000, gid: 1000, stdout: "piped" });
 *   const { stdout } = await process.output();
 *   return new TextDecoder().decode(stdout).trim(); // "1000"
 * }
 * ```
 */
export class Process {
  /** The pid, as seen from the host. */
  readonly pid: number;
  /** Resolves when the process has exited (and has been reaped). */
  readonly status: Promise<ProcessStatus>;
  /**
   * The write end of a piped stdin, else null. It takes Uint8Array chunks,
   * and any other ArrayBufferView (a DataView, a Uint16Array, ...) as the
   * bytes it spans, in memory order; anything else (a string: encode it
   * first) fails the write with a TypeError, which ends the stream. Close
   * it when done: its fd stays open until then, or until destroy().
   */
  readonly stdin: WritableStream<ArrayBufferView> | null;
  /**
   * The read end of a piped stdout, else null. Read it (or use output()):
   * a process whose pipe is full waits for the reader, so one that writes
   * more than the pipe holds (64 KiB) and is never read never ends, as
   * with `Deno.Command`. Its fd stays open until it is read to end-of-file
   * or cancelled, or until destroy(). Cancelling closes the pipe, but the
   * SIGPIPE of a later write does not reach a container's init that is the
   * command itself (pid 1, without `reaper: true`): the kernel drops the
   * signals pid 1 has no handler for, so a writer that ignores EPIPE keeps
   * running. Start it with `reaper: true`, or `kill("SIGKILL")` it (see
   * kill(): it ignores SIGTERM as well).
   */
  readonly stdout: ReadableStream<Uint8Array<ArrayBuffer>> | null;
  /**
   * The read end of a piped stderr, else null; read it, as stdout (and
   * cancelling it does not end an init without `reaper: true` either).
   */
  readonly stderr: ReadableStream<Uint8Array<ArrayBuffer>> | null;
  readonly #pidfd: number;
  #reaped = false;
  /**
   * With `reaper: true` (an InitProcess): the value pid 1's kill request
   * must carry; only pid 1 and this process know it. Set before an abort
   * already there is acted on, so that it too goes through pid 1.
   */
  readonly #killToken: bigint | undefined;
  /**
   * With a signal, the pidfd stays open after the reap, until the process
   * is done: an abort's group kill needs it then (see #abort).
   */
  readonly #pidfdOutlivesReap: boolean;
  #pidfdClosed = false;
  /** Our end of a piped stdin, or -1. */
  readonly #stdinFd: number;
  /**
   * Set once an aborted process is reaped: the read ends no longer wait
   * for more, and end with what their pipes hold (see #stopWaitingForPipes).
   */
  #pipesEnding = false;
  #heldNamespace: number;
  /** The close of the held mount namespace, once the exit was reported (teardown.ts). */
  #release: BackgroundClose | undefined;
  readonly #openFds = new Set<number>();
  readonly #done = Promise.withResolvers<void>();
  /** The result of the first output() call, which every later call returns. */
  #output: Promise<ProcessOutput> | undefined;
  /** @internal Under a reaper: when pid 1 reaped the command (see InitProcess.wallTimeMs). */
  protected exitedAt: ReaperTime | undefined;
  /** @internal Under a reaper: what pid 1's reaped children used (see InitProcess.resourceUsage). */
  protected childrenUsage: ResourceUsage | undefined;

  /**
   * @internal Wraps a launched process, ended when `signal` aborts (see
   * #killOnAbort); use Container.start/exec.
   */
  constructor(
    launched: Launched,
    parentFds: [number, number, number],
    heldNamespace = -1,
    signal?: AbortSignal,
  ) {
    this.#heldNamespace = heldNamespace;
    this.pid = launched.pid;
    this.#pidfd = launched.pidfd;
    this.#killToken = launched.killToken;
    for (const fd of parentFds) if (fd >= 0) this.#openFds.add(fd);
    this.#stdinFd = parentFds[0];
    this.stdin = parentFds[0] >= 0 ? this.#writable(parentFds[0]) : null;
    this.stdout = parentFds[1] >= 0 ? this.#readable(parentFds[1]) : null;
    this.stderr = parentFds[2] >= 0 ? this.#readable(parentFds[2]) : null;
    this.#pidfdOutlivesReap = signal !== undefined;
    this.status = this.#wait(launched.channel);
    if (signal) this.#killOnAbort(signal);
  }

  async #wait(channel: StatusChannel | undefined): Promise<ProcessStatus> {
    // Under a reaper, the command's own end arrives as an `exited` record
    // before the reaper (pid 1) exits; without one, the reaper's own end
    // (killed from the host) is the answer.
    let commandStatus: number | undefined;
    if (channel) {
      const usage: Partial<ResourceUsage> = { maxRssBytes: null };
      for (let record = await channel.reader.next(); record; record = await channel.reader.next()) {
        if (record.kind === "exited") commandStatus = record.waitStatus;
        if (record.kind === "exitedAt") this.exitedAt = { usec: record.usec, seenMs: performance.now() };
        if (record.kind === "maxRss") usage.maxRssBytes = record.kib * 1024;
        if (record.kind === "userTime") usage.userUsec = record.usec;
        if (record.kind === "systemTime") usage.systemUsec = record.usec;
      }
      channel.release();
      this.childrenUsage = completeUsage(usage);
    }
    const result = await waitExit(this.#pidfd, () => {
      // Marked at the reap: from then on the pidfd names no process, and
      // the pid may be another's (#killGroup kills by pid before Linux 6.9).
      this.#reaped = true;
    });
    if (!this.#pidfdOutlivesReap) this.#closePidfd();
    this.#releaseNamespace();
    this.#checkDone();
    if (commandStatus !== undefined) return fromWaitStatus(commandStatus);
    if (result.exited) return { success: result.status === 0, code: result.status, signal: null };
    return { success: false, code: 128 + result.status, signal: signalName(result.status) };
  }

  /**
   * Drops the reference on the init's mount namespace that the container
   * took while the init started (see Container). Its last close unmounts the
   * container's file systems: done once the exit has been reported, on a
   * pool thread (teardown.ts).
   */
  #releaseNamespace(): void {
    const fd = this.#heldNamespace;
    this.#heldNamespace = -1;
    this.#release = closeInBackground(fd);
  }

  /** Whether the process has exited and been reaped. */
  get exited(): boolean {
    return this.#reaped;
  }

  /**
   * @internal Resolves once the process is reaped and no pipe of ours to it
   * is open (each read to end-of-file, cancelled or closed): dispose() has
   * nothing left to do then but wait for the release of a held namespace.
   */
  get done(): Promise<void> {
    return this.#done.promise;
  }

  #checkDone(): void {
    if (!this.#reaped || this.#openFds.size > 0) return;
    this.#closePidfd();
    this.#done.resolve();
  }

  #closePidfd(): void {
    if (this.#pidfdClosed) return;
    this.#pidfdClosed = true;
    reactor().close(this.#pidfd);
  }

  /**
   * Sends a signal (default SIGTERM); does nothing once the process is
   * reaped. A container's init is pid 1 of its pid namespace, and the kernel
   * delivers to it only SIGKILL, SIGSTOP and the signals it has a handler
   * for: most programs ignore this SIGTERM as init. Start with
   * `reaper: true` to have it forwarded to the command (every signal, and
   * a terminal's SIGINT, SIGQUIT, SIGCONT and SIGWINCH to its process group,
   * SIGTSTP as SIGSTOP to that group; to end the command and keep its
   * figures, see `InitProcess.killCommand`), or send SIGKILL.
   */
  kill(signal: SignalLike = "SIGTERM"): void {
    const n = signalNumber(signal);
    if (this.#reaped) return;
    const rc = pidfdSignal(this.#pidfd, n);
    if (rc < 0 && -rc !== ESRCH) throw SboxError.fromErrno("kill", `cannot signal process ${this.pid}`, -rc);
  }

  /**
   * Waits for the exit and collects piped stdout and stderr, each up to
   * `options.maxBytes` (see {@linkcode OutputOptions}). Later calls return
   * the first call's result, whatever their options. Rejects with an
   * {@linkcode SboxError} (step `"output"`) when a reader of
   * {@linkcode stdout} or {@linkcode stderr} holds the stream (what such a
   * reader has already taken is not in the result), or (step `"options"`)
   * for a `maxBytes` that is not an integer from 0 to 2^53 - 1.
   */
  output(options?: OutputOptions): Promise<ProcessOutput> {
    if (this.#output) return this.#output;
    let maxBytes: number;
    try {
      maxBytes = checkOutputOptions(options);
    } catch (err) {
      return Promise.reject(err);
    }
    for (const [name, stream] of [["stdout", this.stdout], ["stderr", this.stderr]] as const) {
      if (stream?.locked) {
        return Promise.reject(
          new SboxError(`output(): ${name} is already being read by a reader of the stream`, {
            step: "output",
          }),
        );
      }
    }
    let exceeded: "stdout" | "stderr" | null = null;
    const overflow = async (name: "stdout" | "stderr") => {
      exceeded ??= name;
      // A kill through pid 1 (under a reaper) takes a moment: the pipe
      // stays open until it is done, or a writer that found it closed
      // first would die of SIGPIPE, not of the limit's SIGKILL.
      await this.killAtLimit(false);
    };
    this.#output = Promise.all([
      collect(this.stdout, maxBytes, () => overflow("stdout")),
      collect(this.stderr, maxBytes, () => overflow("stderr")),
      this.status,
    ]).then(([stdout, stderr, status]) => ({ ...status, stdout, stderr, exceeded }));
    return this.#output;
  }

  /**
   * Ends the process when `signal` aborts (at once if it has), as
   * ProcessOptions.signal describes, until it is done (reaped, and no pipe
   * of ours to it open): then the listener goes, so that one long-lived
   * signal can serve any number of processes.
   */
  #killOnAbort(signal: AbortSignal): void {
    const abort = () => this.#abort();
    if (signal.aborted) return abort();
    signal.addEventListener("abort", abort, { once: true });
    const forget = () => signal.removeEventListener("abort", abort);
    this.done.then(forget, forget);
  }

  /**
   * SIGKILL to the process and to the process group it leads, then, once
   * it is reaped, no more waiting on its pipes: what it started in the
   * background may hold them, and a setsid'd daemon, out of the group's
   * reach, for ever.
   */
  #abort(): void {
    this.killAtLimit(true);
    const stop = () => this.#stopWaitingForPipes();
    this.status.then(stop, stop);
  }

  /**
   * SIGKILL to the process group whose id is this process's pid: with
   * `newSession` (the default) the one it leads, which holds everything it
   * started but what moved to a group or session of its own; without, none
   * unless it made one (ESRCH). Through the pidfd, which reaches the group
   * after the leader's reap too (pidfdSignalGroup). Before Linux 6.9, by
   * number, and only until the reap: until then the number is this
   * process's.
   */
  #killGroup(): void {
    if (this.#pidfdClosed) return;
    const rc = pidfdSignalGroup(this.#pidfd, SIGKILL);
    if (rc === -EINVAL && !this.#reaped) tryKill(-this.pid, SIGKILL);
  }

  /**
   * stdout and stderr end with what their pipes hold when next read, not
   * waiting for more (a read that waits is woken), and stdin is closed
   * (a write that waits for room fails).
   */
  #stopWaitingForPipes(): void {
    this.#pipesEnding = true;
    for (const fd of this.#openFds) {
      if (fd === this.#stdinFd) this.#closeFd(fd);
      else reactor().interrupt(fd);
    }
  }

  /**
   * @internal Kills the process, closes unread pipes and waits until the
   * container's file systems are gone (Container.destroy).
   */
  async dispose(): Promise<void> {
    this.#killUnlessReaped();
    await this.status;
    for (const fd of this.#openFds) this.#closeFd(fd);
    this.#release?.hurry();
    await this.#release?.done;
  }

  /**
   * How a limit ends this process (its `signal`'s abort, output()'s
   * `maxBytes`): SIGKILL to it, and with `group` to the process group it
   * leads. An InitProcess under a reaper goes through pid 1 instead
   * (killThroughPid1), which keeps the command's figures, and returns what
   * ends once the kill is done; an abort already there when the process
   * was made too.
   */
  protected killAtLimit(group: boolean): Promise<unknown> | void {
    if (this.killThroughPid1()) return this.status;
    this.#killUnlessReaped();
    if (group) this.#killGroup();
  }

  /**
   * Under a reaper: asks pid 1 to kill every other process of the container
   * (InitProcess.killCommand), and kills pid 1 too should it not have ended
   * a second later. False, and nothing sent, without a reaper, once reaped,
   * or when the kernel refused the request: EAGAIN when pid 1's queue of
   * pending signals is full (the command can fill it), as a queued signal
   * is refused then, not delivered bare.
   */
  protected killThroughPid1(): boolean {
    const token = this.#killToken;
    if (token === undefined || this.#reaped) return false;
    if (pidfdQueueSignal(this.#pidfd, KILL_REQUEST_SIGNAL, token) < 0) return false;
    const timer = setTimeout(() => this.#killUnlessReaped(), KILL_COMMAND_GRACE_MS);
    const clear = () => clearTimeout(timer);
    this.status.then(clear, clear);
    return true;
  }

  /**
   * SIGKILL through the pidfd, unless the process is reaped: its pidfd is
   * closed then, and the number may name another fd.
   */
  #killUnlessReaped(): void {
    if (!this.#reaped) pidfdSignal(this.#pidfd, SIGKILL);
  }

  #closeFd(fd: number): void {
    if (!this.#openFds.delete(fd)) return;
    reactor().close(fd);
    this.#checkDone();
  }

  #readable(fd: number): ReadableStream<Uint8Array<ArrayBuffer>> {
    // One buffer for every read of the stream (a stream's pulls never
    // overlap), not a new 64 KiB one per chunk: each chunk is a copy of
    // what one read returned.
    const buf = new Uint8Array(65536);
    return new ReadableStream<Uint8Array<ArrayBuffer>>({
      pull: async (controller) => {
        for (;;) {
          if (!this.#openFds.has(fd)) return controller.close();
          const n = tryRead(fd, buf);
          // A copy, not a view of `buf`: each chunk has an ArrayBuffer of its own.
          if (n > 0) return controller.enqueue(buf.slice(0, n));
          if (n === 0) {
            this.#closeFd(fd);
            return controller.close();
          }
          if (-n === EAGAIN) {
            if (!this.#pipesEnding) await reactor().readable(fd);
            else {
              this.#closeFd(fd);
              return controller.close();
            }
          } else if (-n !== EINTR) {
            this.#closeFd(fd);
            return controller.error(SboxError.fromErrno("read", "cannot read from the process", -n));
          }
        }
      },
      cancel: () => this.#closeFd(fd),
    });
  }

  async #writeAll(fd: number, data: Uint8Array<ArrayBuffer>): Promise<void> {
    while (data.length > 0) {
      if (!this.#openFds.has(fd)) throw new SboxError("stdin is closed", { step: "write" });
      const n = tryWrite(fd, data);
      if (n >= 0) data = data.subarray(n);
      else if (-n === EAGAIN) await reactor().writable(fd);
      else if (-n !== EINTR) throw SboxError.fromErrno("write", "cannot write to the process", -n);
    }
  }

  #writable(fd: number): WritableStream<ArrayBufferView> {
    return new WritableStream<ArrayBufferView>({
      write: async (chunk) => {
        try {
          await this.#writeAll(fd, bytesOf(chunk));
        } catch (err) {
          // A sink that throws errors the stream for good: neither close()
          // nor abort() reaches it after that, so the pipe (EPIPE: the
          // process exited without reading; a chunk of the wrong type) would
          // stay open until dispose().
          this.#closeFd(fd);
          throw err;
        }
      },
      close: () => this.#closeFd(fd),
      abort: () => this.#closeFd(fd),
    });
  }
}

/**
 * A container's first process (sbox's `InitProcess`): pid 1 inside.
 *
 * @example Stop it after two seconds of wall time
 * ```ts
 * import type { InitProcess } from "./process.ts";
 *
 * async function withDeadline(init: InitProcess): Promise<string | null> {
 *   const timer = setTimeout(() => init.kill("SIGKILL"), 2000);
 *   const status = await init.status;
 *   clearTimeout(timer);
 *   return status.signal; // "SIGKILL" when the deadline hit
 * }
 * ```
 */
export class InitProcess extends Process {
  /** @internal The pidfd, for joining its namespaces. */
  readonly pidfd: number;
  /**
   * With `reaper: true`: the CPU time in microseconds that pid 1 spent
   * setting the container up before the command started (the mounts, the
   * network namespace, the security step). The container's cgroup counts it
   * too: subtract it from `cgroup.cpuUsage()` for the command's own.
   * Undefined without a reaper.
   */
  readonly setupCpuUsec: number | undefined;

  readonly #startedAt: ReaperTime | undefined;
  #wallTimer: Deadline | undefined;
  /** The limit of the last limitWallTime call, in ms. */
  #wallLimitMs: number | undefined;
  /** Whether limitWallTime's timer sent its kill. */
  #limitKillSent = false;

  /** @internal Use Container.start. */
  constructor(
    launched: Launched,
    parentFds: [number, number, number],
    heldNamespace = -1,
    signal?: AbortSignal,
  ) {
    super(launched, parentFds, heldNamespace, signal);
    this.pidfd = launched.pidfd;
    this.setupCpuUsec = launched.setupCpuUsec;
    this.#startedAt = launched.startedAt;
  }

  /**
   * Kills the command and everything else in the container but pid 1, which
   * with `reaper: true` then reaps the command and reports as after any
   * other end: `status` says SIGKILL, and `wallTimeMs` and `resourceUsage`
   * have their figures. `kill("SIGKILL")` kills pid 1, and with it the whole
   * container at once, which loses them: use this for a time limit whose
   * report needs the peak memory of the program it stopped. Should pid 1
   * not have ended a second later (a host's SIGSTOP, or the container's
   * `cpu.max` holding it), SIGKILL to it ends the container all the same,
   * as it does at once should pid 1's queue of pending signals be full (the
   * command can fill it). The request carries a token only pid 1 and this
   * process know: a signal from inside the container cannot pass for it.
   * Without a reaper, the same as `kill("SIGKILL")`. Does nothing once the
   * process is reaped.
   *
   * @example A time limit that keeps the memory figure
   * ```ts
   * import type { InitProcess } from "./process.ts";
   *
   * async function peakWithin(init: InitProcess, ms: number): Promise<number | null | undefined> {
   *   const timer = setTimeout(() => init.killCommand(), ms);
   *   await init.status;
   *   clearTimeout(timer);
   *   return init.resourceUsage?.maxRssBytes; // with measureMaxRss: true
   * }
   * ```
   */
  killCommand(): void {
    if (!this.killThroughPid1()) this.kill("SIGKILL");
  }

  /**
   * A wall-clock limit for the command: once it has run `ms` milliseconds,
   * never before (by pid 1's clock, which {@linkcode timedOut} reads, with
   * a reaper), {@linkcode killCommand} ends it and `timedOut` becomes true.
   * With `reaper: true` the time counts from the command's `execve` (its own
   * clock reading), as `wallTimeMs` does: the container's setup, and the
   * wait for a launch's turn when hundreds start at once, are not the
   * command's time. A `signal: AbortSignal.timeout(ms)` counts them, from
   * the moment it was made: under load a program that needs a fraction of
   * its limit is stopped. Without a reaper it counts from this call. A
   * later call replaces the limit; nothing happens once the process is
   * reaped. Throws an {@linkcode SboxError} (step `"options"`) for an `ms`
   * that is not a number from 0 to 2147483647 (setTimeout's bound).
   *
   * @example A judge's time limit, with the figures of what it stopped
   * ```ts
   * import type { Container } from "./container.ts";
   *
   * async function judge(container: Container, limitMs: number) {
   *   const init = await container.start({ command: ["/solution"], reaper: true, measureMaxRss: true });
   *   init.limitWallTime(limitMs);
   *   const status = await init.status;
   *   return { timedOut: init.timedOut, status, peak: init.resourceUsage?.maxRssBytes };
   * }
   * ```
   */
  limitWallTime(ms: number): void {
    if (typeof ms !== "number" || !(ms >= 0 && ms <= MAX_TIMER_MS)) {
      throw SboxError.invalidOption(
        "limitWallTime",
        `must be a number of ms from 0 to ${MAX_TIMER_MS}, got ${show(ms)}`,
      );
    }
    this.#wallTimer?.cancel();
    if (this.exited) return;
    this.#wallLimitMs = ms;
    // The kill is decided on the clock `timedOut` reads: pid 1's
    // CLOCK_MONOTONIC, which is ours (the container's time namespace has no
    // offsets: clone3 makes it with pid 1 in it, and they can only be set
    // before), read here before the kill and by pid 1 after the command's
    // end; so a kill of the limit always reads as a time-out. Without a
    // reaper, from this call.
    const calledAt = performance.now();
    const elapsed = () => this.msSinceCommandStart ?? performance.now() - calledAt;
    const timer = new Deadline(ms, elapsed, () => {
      if (this.exited) return;
      this.#limitKillSent = true;
      this.killCommand();
    });
    this.#wallTimer = timer;
    const clear = () => timer.cancel();
    this.status.then(clear, clear);
  }

  /**
   * Whether the command ran past {@linkcode limitWallTime}'s limit. With
   * `reaper: true`, once `status` has resolved, by pid 1's clock
   * (`wallTimeMs` of at least the limit), whoever ended it: a timer of ours
   * that fires late, when the event loop is busy, may send its kill after
   * the command ended on its own in time, and that is no time-out; and one
   * that ended on its own past the limit, before the kill came, timed out.
   * Otherwise (no reaper, pid 1 killed too, or before the end): whether the
   * limit's kill was sent.
   */
  get timedOut(): boolean {
    const limit = this.#wallLimitMs;
    if (limit === undefined) return false;
    const ran = this.wallTimeMs;
    return ran === undefined ? this.#limitKillSent : ran >= limit;
  }

  /**
   * @internal With `reaper: true`: how long ago the command exec'd, in
   * milliseconds, by the clock the command read just before its `execve`.
   * The report of it reaches this process late when pid 1 waits for CPU time
   * (the container's `cpu.max` holds pid 1 too); a timer started on its
   * arrival would run late by as much.
   */
  get msSinceCommandStart(): number | undefined {
    const start = this.#startedAt;
    if (!start) return undefined;
    return unwrappedMs(start, { usec: monotonicUsec(), seenMs: performance.now() });
  }

  /**
   * With `reaper: true`, once `status` has resolved: the command's
   * wall-clock time in milliseconds, from just before its `execve` (its own
   * clock reading) to its end, as pid 1 saw it (this process sees both
   * later, by as long as its event loop takes to read them). Undefined
   * without a reaper, before the end, or when the command was killed with
   * pid 1 (a SIGKILL of the whole container).
   */
  get wallTimeMs(): number | undefined {
    const start = this.#startedAt, end = this.exitedAt;
    if (!start || !end) return undefined;
    return unwrappedMs(start, end);
  }

  /**
   * With `reaper: true`, once `status` has resolved: the largest resident
   * set and the CPU time of the command and of the processes waited for
   * (see {@linkcode ResourceUsage} for which), as pid 1 read them when it
   * reaped the command. Needs no cgroup and no controller, unlike
   * `cgroup.cpuUsage()` and `cgroup.memoryPeak()`, which count every
   * process of the cgroup, pid 1's setup included, waited for or not.
   * Undefined without a reaper, before the end, when the command could not
   * be executed, or when it was killed with pid 1 (a SIGKILL of the whole
   * container: a kill() of this process, `cgroup.kill()`, destroy()), which
   * killCommand() avoids.
   */
  get resourceUsage(): ResourceUsage | undefined {
    return this.childrenUsage;
  }
}

/** The usage if pid 1 sent its times (none when getrusage failed), else undefined. */
function completeUsage(usage: Partial<ResourceUsage>): ResourceUsage | undefined {
  const { maxRssBytes = null, userUsec, systemUsec } = usage;
  if (userUsec === undefined || systemUsec === undefined) return undefined;
  return { maxRssBytes, userUsec, systemUsec };
}

/** Milliseconds from `from` to `to`, readings of a reaper's clock (31 bits of microseconds), less than one wrap apart. */
/**
 * The ms from `from` to `to` by pid 1's clock, which comes in 31 bits of
 * microseconds: the wraps (every ~36 minutes) go back in by this process's
 * own clock, which saw both readings (`seenMs`) later, but by about as much.
 */
function unwrappedMs(from: ReaperTime, to: ReaperTime): number {
  const wrapMs = 2 ** 31 / 1000;
  const ownMs = wrappedMs(from.usec, to.usec);
  const seenMs = to.seenMs - from.seenMs;
  return ownMs + Math.round((seenMs - ownMs) / wrapMs) * wrapMs;
}

function wrappedMs(from: number, to: number): number {
  return ((to - from + 2 ** 31) % 2 ** 31) / 1000;
}

/** The bytes a stdin chunk stands for; see {@linkcode Process.stdin}. */
function bytesOf(chunk: unknown): Uint8Array<ArrayBuffer> {
  if (!ArrayBuffer.isView(chunk)) {
    const kind = chunk === null ? "null" : typeof chunk === "object" ? chunk.constructor?.name : typeof chunk;
    throw new TypeError(`stdin takes a Uint8Array or another ArrayBufferView, got ${kind ?? "an object"}`);
  }
  const { buffer, byteOffset, byteLength } = chunk;
  const bytes = new Uint8Array(buffer, byteOffset, byteLength);
  // A view of shared memory is copied: tryWrite takes bytes of an ArrayBuffer.
  return buffer instanceof ArrayBuffer ? bytes as Uint8Array<ArrayBuffer> : bytes.slice();
}

/** Decodes a raw wait status (exit code in bits 8-15, or a signal in bits 0-6). */
function fromWaitStatus(status: number): ProcessStatus {
  const signal = status & 0x7f;
  if (signal === 0) {
    const code = (status >> 8) & 0xff;
    return { success: code === 0, code, signal: null };
  }
  return { success: false, code: 128 + signal, signal: signalName(signal) };
}

/** Reads `stream` to its end, or to `maxBytes`: then calls `overflow` and closes it. */
async function collect(
  stream: ReadableStream<Uint8Array<ArrayBuffer>> | null,
  maxBytes: number,
  overflow: () => Promise<void>,
): Promise<Uint8Array<ArrayBuffer>> {
  if (!stream) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  let kept = 0;
  const reader = stream.getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    if (value.length > maxBytes - kept) {
      chunks.push(value.subarray(0, maxBytes - kept));
      await overflow();
      // Closes our end: a writer left (an exec'd process's children) gets EPIPE.
      await reader.cancel();
      break;
    }
    chunks.push(value);
    kept += value.length;
  }
  reader.releaseLock();
  return concatBytes(chunks);
}

/** The `maxBytes` of output()'s options (Infinity when not given); throws an SboxError for a bad one. */
function checkOutputOptions(options: OutputOptions | undefined): number {
  const { maxBytes } = checkOptionsObject("output()", options, { maxBytes: true });
  if (maxBytes === undefined) return Infinity;
  if (typeof maxBytes !== "number" || !Number.isSafeInteger(maxBytes) || maxBytes < 0) {
    throw SboxError.invalidOption("maxBytes", `must be an integer from 0 to 2^53 - 1, got ${show(maxBytes)}`);
  }
  return maxBytes;
}
