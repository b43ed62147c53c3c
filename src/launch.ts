/**
 * The launch sequence shared by every process sbox creates (a container's
 * init, a process exec'd into it, a host helper such as newuidmap):
 *
 * 1. pipes: the result pipe (child → parent) and, when the parent has work to
 *    do before the child may go on, the sync pipe (parent → child);
 * 2. compile the program with those fd numbers and clone3 it (helper). Every
 *    program begins with what no process sbox makes inherits from the
 *    caller, whoever launches it (security/neutral.ts,
 *    `compileNoInheritance`): it dies with the thread that made it, starts
 *    at the neutral scheduling rank, and at a neutral oom_score_adj, for
 *    which it may have to be cloned without CLONE_VM;
 * 3. close the child's ends here, so that end-of-file means what it should;
 * 4. `beforeStart(pid)`: write the id maps while the child waits (after the
 *    child's neutral oom_score_adj, where this process writes it);
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
import { SboxError } from "./error.ts";
import { describeErrno } from "./errno.ts";
import { cloneHint, opFailure } from "./launch_hints.ts";
import { ALL_NAMESPACES, CLONE, type IdMaps, type Program, ProgramBuilder } from "./program.ts";
import { type ChildRecord, RecordReader } from "./protocol.ts";
import { reactor, waitExit } from "./reactor.ts";
import { compileNoInheritance, type NeutralStart } from "./security/neutral.ts";
import type { ProcessStatus } from "./process.ts";
import { signalName } from "./signal.ts";
import { beginLaunch, endLaunch } from "./teardown.ts";
import {
  close,
  EAGAIN,
  EINTR,
  num,
  pidfdSignal,
  pipe,
  setNonblocking,
  tryKill,
  tryPidfdOpen,
  tryRead,
  waitPid,
  type WaitResult,
  writeAll,
} from "./sys.ts";

/** What to launch. */
export interface LaunchSpec {
  /**
   * clone3 flags (namespaces, CLONE_VM). CLONE_VM is left out where the
   * child's oom_score_adj needs a reset (see the module documentation).
   */
  flags: bigint;
  /** cgroup directory fd for CLONE_INTO_CGROUP, or -1. */
  cgroupFd: number;
  /**
   * Compiles the program into `b`, which holds its first ops already (see
   * the module documentation); `sync` holds the pipe ends for `waitParent`,
   * or -1s; `resultFd` is the child's end of the result pipe (its
   * Context.result_fd), which it writes until its exec: a dup2 onto that
   * number before then would close it.
   */
  compile: (b: ProgramBuilder, sync: SyncPipe, resultFd: number) => void;
  /** The builder's {@linkcode ProgramBuilder.idMaps}: those of the user namespace the program runs in. */
  idMaps?: IdMaps;
  /**
   * Keep the caller's oom_score_adj, even a negative one: for a short
   * helper that ends before the container runs (newuidmap), which a reset
   * would cost a copy of this process's memory. Its scheduling is reset
   * all the same.
   */
  keepOomScoreAdj?: boolean;
  /** Whether the child must wait for `beforeStart`. */
  sync: boolean;
  /** fds that only the child needs (stdio ends): closed here after clone3. */
  childFds: number[];
  /**
   * Runs while the child waits, e.g. writing its id maps; after the write
   * of its neutral oom_score_adj, which must come before its setup changes
   * ids (its /proc file is ours until then).
   */
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
  /** What is left to do for its neutral oom_score_adj. */
  neutral: NeutralStart;
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
  let neutral: NeutralStart;
  try {
    [resultRead, resultWrite] = pipe();
    opened.push(resultRead, resultWrite);
    setNonblocking(resultRead);
    if (spec.sync) {
      [syncRead, syncWrite] = pipe();
      opened.push(syncRead, syncWrite);
    }
    const b = new ProgramBuilder(spec.idMaps);
    // First, whoever launches: what no process of ours inherits.
    neutral = compileNoInheritance(b, { waits: spec.sync, keepOomScoreAdj: spec.keepOomScoreAdj });
    spec.compile(b, { read: syncRead, write: syncWrite }, resultWrite);
    program = b.build();
  } catch (err) {
    for (const fd of [...opened, ...spec.childFds]) close(fd);
    throw err;
  }

  // A write of the child's oom_score_adj would be ours too.
  const flags = neutral.mayShareMemory ? spec.flags : spec.flags & ~CLONE.VM;
  const out = new BigInt64Array(2);
  const outBytes = new Uint8Array(out.buffer);
  const rc = num(
    lib.sbox_spawn(
      program.bytes,
      BigInt(program.bytes.length),
      flags,
      spec.cgroupFd,
      resultWrite,
      outBytes,
    ),
  );
  for (const fd of [resultWrite, syncRead, ...spec.childFds]) close(fd);
  if (rc < 0) {
    close(resultRead);
    close(syncWrite);
    const hint = cloneHint(-rc, (flags & ALL_NAMESPACES) !== 0n);
    throw new SboxError(`cannot create the process (clone3): ${describeErrno(-rc)}${hint}`, {
      step: "clone",
      errno: -rc,
    });
  }
  const pid = Number(out[0] & 0xffffffffn);
  const pidfd = Number(out[0] >> 32n);
  return { pid, pidfd, stack: BigInt.asUintN(64, out[1]), program, resultRead, syncWrite, neutral };
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

/**
 * A launch in its turn: the child made ({@linkcode spawn}) and released
 * ({@linkcode releaseChild}), its records read until they tell the outcome
 * ({@linkcode readUntilOutcome}), which {@linkcode finish} turns into the
 * launched process or the error. A failure before the outcome is known
 * gives the child up ({@linkcode abandon}).
 */
async function launchChild(spec: LaunchSpec): Promise<Launched> {
  // Not awaited when there is no wait: a launch alone goes on in the same task.
  const turn = turnWait();
  if (turn) await turn;
  let spawned;
  try {
    spawned = spawn(spec);
  } finally {
    passTurn(turn !== undefined);
  }
  const child = watchChild(spawned);
  const stall = watchStall(spec.stall, child.kill);
  let outcome: Outcome;
  try {
    await releaseChild(spec, spawned);
    outcome = await readUntilOutcome(child, stall, spawned.program);
  } catch (err) {
    // Before any reap: a kill after it could reach whatever reuses the
    // pidfd's number or the forked pid.
    stall.stop();
    await abandon(child);
    // The stall's kill is what made the step fail (a map of a dead process).
    throw stall.error ?? err;
  }
  stall.stop();
  return await finish(child, outcome);
}

/**
 * A child of {@linkcode spawn} as the rest of its launch handles it: its
 * records as read so far, and the means to end it.
 */
interface WatchedChild {
  pid: number;
  pidfd: number;
  reader: RecordReader;
  /** Every record read, in order: `kill` finds the forked pids there. */
  records: ChildRecord[];
  /** SIGKILL to the child and to every process it forked: before any reap (see `launchChild`). */
  kill(): void;
  /**
   * Closes the result pipe and frees the child stack: only after
   * end-of-file. `keepStack`: the stack stays mapped (a leak), where
   * end-of-file cannot be told and a process may still run on it.
   */
  release(options?: { keepStack?: boolean }): void;
}

function watchChild({ pid, pidfd, stack, resultRead }: Spawned): WatchedChild {
  const records: ChildRecord[] = [];
  return {
    pid,
    pidfd,
    reader: new RecordReader(resultRead),
    records,
    // A forked process is a child of ours (CLONE_PARENT) until adopt(): its
    // pid names it alone. It holds the result pipe open as the child does.
    kill: () => {
      pidfdSignal(pidfd, SIGKILL);
      for (const record of records) if (record.kind === "forked") tryKill(record.pid, SIGKILL);
    },
    // Only once every process that runs on the child stack has exec'd or
    // exited may it be freed: that is when the result pipe reaches end-of-file.
    release: (options) => {
      reactor().close(resultRead);
      if (!options?.keepStack) helper().sbox_stack_free(stack);
    },
  };
}

/**
 * Steps 4 and 5: while the child waits, its neutral oom_score_adj, then
 * `beforeStart`; then its release and `afterRelease`. A child that must not
 * be released (a failure, a cancel) is killed, the sync pipe closed either way.
 */
async function releaseChild(spec: LaunchSpec, { pid, pidfd, neutral, syncWrite }: Spawned): Promise<void> {
  try {
    // Before anything of the launcher's own: the child's /proc file is
    // ours until its setup changes ids.
    neutral.reset(pid);
    if (spec.beforeStart) {
      await unlessAbandoned(spec.beforeStart(pid), spec.cancel);
      // Cancelled meanwhile: no release, so nothing of the command runs.
      if (spec.cancel?.signal.aborted) {
        throw new SboxError("the launch was cancelled before its process was released", {
          step: "destroyed",
          cause: spec.cancel.signal.reason,
        });
      }
    }
    if (syncWrite >= 0) writeAll(syncWrite, new Uint8Array(1), "cannot release the child");
  } catch (err) {
    // The child sees end-of-file on the sync pipe and exits; kill it anyway.
    close(syncWrite);
    pidfdSignal(pidfd, SIGKILL);
    throw err;
  }
  if (syncWrite < 0) return;
  close(syncWrite);
  spec.afterRelease?.(pid);
}

/**
 * How a launch ended, as its records tell ({@linkcode readUntilOutcome});
 * {@linkcode finish} does what each leaves to do.
 */
type Outcome =
  /** End-of-file, nothing failed: the child exec'd. */
  | { kind: "execd" }
  /** End-of-file, nothing failed: the process a fork op made (`pid`) exec'd; the child, its go-between, exits. */
  | { kind: "forked"; pid: number }
  /** pid 1 (a `reaper` op) reported the command's start; the result pipe stays open for its later records. */
  | { kind: "started"; setupCpuUsec?: number; startedAt?: ReaperTime; killToken?: bigint }
  /** End-of-file of a reaper's program before `started`, with no failure to tell: pid 1 was killed. */
  | { kind: "reaperEnded" }
  /** An op failed, or the stall check gave its error; `forked`: the pid of what a fork op made first, if it did. */
  | { kind: "failed"; error: SboxError; forked?: number };

/**
 * Step 6: reads the child's records (each into `child.records`) until the
 * outcome is known: end-of-file, or a reaper's `started`. Once the stall
 * check has killed the child, its error is the outcome, and what the child
 * forked meanwhile is killed too, or the pipe would stay open.
 */
async function readUntilOutcome(child: WatchedChild, stall: StallWatch, program: Program): Promise<Outcome> {
  const { reader, records } = child;
  const started: Extract<Outcome, { kind: "started" }> = { kind: "started" };
  for (let record = await reader.next(); record; record = await reader.next()) {
    records.push(record);
    if (stall.error) child.kill();
    if (record.kind === "setupCpu") started.setupCpuUsec = record.usec;
    if (record.kind === "startedAt") started.startedAt = { usec: record.usec, seenMs: performance.now() };
    if (record.kind === "killToken") started.killToken = record.token;
    // A reaper keeps the pipe open for the container's life; one killed
    // for a stall closes it.
    if (record.kind === "started" && !stall.error) return started;
  }
  const forked = records.find((r) => r.kind === "forked")?.pid;
  const failed = records.find((r) => r.kind === "failed");
  // A failed op after the stall's kill is of the kill: the stall is the error.
  const error = stall.error ?? (failed && opFailure(program, failed.opIndex, failed.errno));
  if (error) return { kind: "failed", error, forked };
  if (forked !== undefined) return { kind: "forked", pid: forked };
  return program.hasReaper ? { kind: "reaperEnded" } : { kind: "execd" };
}

/**
 * What `outcome` leaves to do: the result pipe closed and the child stack
 * freed (but a reaper's, whose pipe goes on), every process that ended
 * reaped; then the launched process, or the launch's error.
 */
async function finish(child: WatchedChild, outcome: Outcome): Promise<Launched> {
  const { pid, pidfd } = child;
  if (outcome.kind === "started") {
    const { setupCpuUsec, startedAt, killToken } = outcome;
    return {
      pid,
      pidfd,
      channel: { reader: child.reader, release: child.release },
      setupCpuUsec,
      startedAt,
      killToken,
    };
  }
  child.release();
  switch (outcome.kind) {
    case "execd":
      return { pid, pidfd };
    case "forked":
      // The go-between of a fork op exits at once.
      await reap(pidfd);
      return { pid: outcome.pid, pidfd: await adopt(outcome.pid) };
    case "reaperEnded": {
      // pid 1 reports the command's start; it ended before, with no failure
      // to tell: killed (a memory limit the setup hit, a kill from outside).
      const how = describeEnd(await reap(pidfd));
      throw new SboxError(`the container's pid 1 ${how} before the command started`, { step: "reaper" });
    }
    case "failed":
      await reap(pidfd);
      // The failure is the one to report; adopt() reaps the process either way.
      if (outcome.forked !== undefined) await adopt(outcome.forked).then(reap, () => undefined);
      throw outcome.error;
  }
}

/**
 * A launch that failed before its outcome was known (`beforeStart`, its
 * release, a read of its records): the child and what it forked are killed,
 * the pipe read to end-of-file ({@linkcode drainToEnd}: a fork seen only
 * then is killed too) and released, and each process reaped. A
 * forked process is a child of ours: unreaped, it stays a zombie, and the
 * container's end (that of its pid namespace) waits for it.
 */
async function abandon(child: WatchedChild): Promise<void> {
  child.kill();
  if (await drainToEnd(child)) child.release();
  else child.release({ keepStack: true });
  await reap(child.pidfd);
  for (const record of child.records) {
    if (record.kind === "forked") await adopt(record.pid).then(reap, () => undefined);
  }
}

/**
 * {@linkcode abandon}'s read of the result pipe to end-of-file, which comes
 * once every process that runs on the child stack has exited (or exec'd).
 * Each record goes into `child.records`; a `forked` one (a fork that raced
 * the kill) has its process killed at once, and reaped by `abandon`. A
 * record that cannot be read leaves the reader throwing again and again:
 * the rest of the pipe is read as bytes. False if even that failed, so that
 * end-of-file cannot be told (no known cause: a pipe read fails only on a
 * bad fd or buffer).
 */
async function drainToEnd(child: WatchedChild): Promise<boolean> {
  for (;;) {
    let record;
    try {
      record = await child.reader.next();
    } catch {
      break;
    }
    if (!record) return true;
    child.records.push(record);
    if (record.kind === "forked") tryKill(record.pid, SIGKILL);
  }
  const { fd } = child.reader;
  const buf = new Uint8Array(256);
  for (;;) {
    const n = tryRead(fd, buf);
    if (n === 0) return true;
    if (n === -EAGAIN) await reactor().readable(fd);
    else if (n !== -EINTR && n < 0) return false;
  }
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

/**
 * How a process ended, for a message: "exited with 3", "was killed by
 * SIGKILL"; from its waitid result or from its {@linkcode ProcessStatus}.
 */
export function describeEnd(end: WaitResult | ProcessStatus): string {
  const [code, signal] = "exited" in end
    ? [end.status, end.exited ? null : signalName(end.status)]
    : [end.code, end.signal];
  return signal === null ? `exited with ${code}` : `was killed by ${signal}`;
}

/** Waits for a process to exit, reaps it and closes its pidfd. */
export async function reap(pidfd: number): Promise<WaitResult> {
  try {
    return await waitExit(pidfd);
  } finally {
    reactor().close(pidfd);
  }
}
