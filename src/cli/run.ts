/**
 * `sbox run`: one command in a new container, start to finish.
 *
 * 1. check what can be checked before anything exists: the image, the
 *    --seccomp policy, the user's ids against the id map, the parent cgroup and its controllers
 *    (enabling them for its children), the --stdin/--stdout/--stderr files;
 * 2. create the container's cgroup with its limits, the scratch directory,
 *    the mounts and the container;
 * 3. start the command, then watch its time limits (from its start), wait for it;
 * 4. kill what is left, read what the cgroup used, remove everything.
 *
 * Every resource is released on every path, failures included.
 *
 * @module
 */

import type { Cgroup } from "../cgroup.ts";
import { Container } from "../container.ts";
import { SboxError } from "../error.ts";
import type { InitProcess, ProcessStatus, ResourceUsage } from "../process.ts";
import { TooManyStepsError } from "../program.ts";
import { signalNumber } from "../signal.ts";
import { ROOT_PATH } from "../user.ts";
import { ProcReading } from "../mountinfo.ts";
import { environment, readFile } from "../sys.ts";
import type { RunOptions } from "./args.ts";
import { whyWithoutCgroup } from "./cgroup_access.ts";
import { commandEnvironment } from "./environment.ts";
import { execFailureMessage } from "./exec_failure.ts";
import { checkUserMapped, pickUserMapper, requestedUser, resolveUser } from "./identity.ts";
import { stopLikeDefault } from "./inspector_signal.ts";
import { say } from "./messages.ts";
import {
  commandCpu,
  createContainerCgroup,
  enableControllers,
  readUsage,
  resolveParentCgroup,
  restoreControllers,
  type Usage,
  waitUntilEmpty,
} from "./limits.ts";
import { TemporaryLayers } from "../temporary_layers.ts";
import { containerMounts, imageDir } from "./mounts.ts";
import { describeNetwork, networkManager } from "./network.ts";
import { type Report, statusOf } from "./report.ts";
import { ScratchDir } from "./scratch.ts";
import { removeLeftovers } from "./leftovers.ts";
import { securityOptions } from "./security.ts";
import { checkStdioFiles, openStdio } from "./stdio.ts";
import { saveCallerStdio } from "./terminal.ts";
import { Watchdog } from "./watchdog.ts";

/**
 * Signals that make sbox kill the container, clean up, write an XX report
 * and then die of the signal (a shell sees 128+N): every signal whose
 * default is to end a process and that someone sends to stop it (a
 * terminal's SIGINT and SIGQUIT, `kill`, `timeout -s`, a lost session's
 * SIGHUP, a CPU-time rlimit's SIGXCPU, a power failure's SIGPWR), instead
 * of dying on the spot with the container's cgroup and scratch directory
 * left behind; unless sbox was started with one ignored, which then stays
 * so (see {@linkcode HANDLED_SIGNALS}). Not here: SIGUSR1 (ignored, see inspector_signal.ts), SIGXFSZ (a no-op
 * listener in main.ts: an oversized write fails with EFBIG instead), SIGPIPE
 * (Deno ignores it: a write fails with EPIPE), SIGKILL and SIGSTOP (cannot
 * be caught), and the signals of a fault of sbox's own (SIGSEGV, SIGBUS,
 * SIGILL, SIGFPE, SIGABRT, SIGTRAP, SIGSYS), which must stay fatal rather
 * than let a broken process go on.
 */
export const STOP_SIGNALS: readonly Deno.Signal[] = [
  "SIGHUP",
  "SIGINT",
  "SIGQUIT",
  "SIGUSR2",
  "SIGALRM",
  "SIGTERM",
  "SIGSTKFLT",
  "SIGXCPU",
  "SIGVTALRM",
  "SIGPROF",
  "SIGIO",
  "SIGPWR",
];

/**
 * Every signal sbox listens for during a run: {@linkcode STOP_SIGNALS}, and
 * on a terminal SIGTSTP (`onCtrlZ`) and SIGWINCH (`onResize`). One that sbox
 * was started with ignored gets no listener: it stays ignored.
 */
export const HANDLED_SIGNALS: readonly Deno.Signal[] = [...STOP_SIGNALS, "SIGTSTP", "SIGWINCH"];

/** How a run ended: sbox's exit status, the report, and the lines to print on stderr. */
export interface RunResult {
  /** The command's status; 128+N for signal N; 126/127 for exec failures; 125 if sbox failed. */
  exitStatus: number;
  /** The report (written only with --report). */
  report: Report;
  /** Why the run failed or was cut short (a failure of sbox, an exec failure, a limit), for stderr. */
  messages: string[];
  /**
   * The signal sbox dies of once done (the report written), as a program
   * that cleans up on a signal does: the signal that interrupted sbox, or
   * the terminal's Ctrl-C or Ctrl-\ that sbox passed on to the command, of
   * which the command died. A shell running sbox in a loop then stops, as
   * it does for any program (bash goes on after a child that exits 130, and
   * stops after one that dies of SIGINT), and whoever waits for sbox sees a
   * death by that signal; a shell's `$?` is 128+N either way.
   */
  reraise?: Deno.Signal;
}

/** What a run found out, filled in as it goes. */
interface RunState {
  /** How the command's first process ended. */
  status?: ProcessStatus;
  /** Why the command could not be executed (step "exec"). */
  execError?: SboxError;
  usage: Usage;
  /** The command's peak resident set (InitProcess.resourceUsage), if pid 1 reported one. */
  maxRssBytes: number | null;
  wallTimeMs: number;
  /** The time limit that was exceeded, if any. */
  exceeded?: "--time" | "--wall-time";
  /** A signal that sbox itself received, while the run was not yet decided. */
  interrupted?: Deno.Signal;
  /**
   * The run's outcome is known: the command ended, or a limit killed it. A
   * signal from then on finds only the cleanup under way, which goes on.
   */
  decided?: boolean;
  /**
   * The watchdog tried to kill the container for a time limit (a command
   * that killed itself was not); the command may have exited just before.
   */
  killedForTime?: boolean;
  /** A failure of sbox. */
  error?: unknown;
  /** Lines for stderr about what went wrong without failing the run (a replaced --stdout). */
  warnings: string[];
  /** Kills every process of the container (a no-op until there is one). */
  kill: () => void;
  /** Aborted when sbox is interrupted: ends a wait before the command starts (a --stdin FIFO's writer). */
  interruption: AbortController;
  /**
   * With a terminal on stdin, once the command runs: passes the terminal's
   * SIGINT or SIGQUIT on to the command's process group (see
   * {@linkcode TERMINAL_KEYS}), SIGTSTP and SIGCONT (see `onCtrlZ`), and
   * SIGWINCH (see `onResize`).
   */
  forward?: (signal: Deno.Signal) => void;
  /** The last signal `forward` passed on. */
  forwarded?: Deno.Signal;
  /** A window's resize that came before the command ran: passed on once it runs. */
  resizePending?: boolean;
  /** A Ctrl-Z that came before the command ran: sbox stops with it once it runs. */
  stopPending?: boolean;
  /** sbox's stdin is a terminal (and no --stdin was given): its keys are the command's. */
  onTerminal: boolean;
  /** container.start() is under way: the command may run already. */
  starting?: boolean;
  /** A Ctrl-C or Ctrl-\ that came while the command was starting: passed on once it runs. */
  heldKey?: Deno.Signal;
}

/**
 * The signals a terminal's keys send (Ctrl-C, Ctrl-\). With the terminal on
 * sbox's stdin (an interactive `sbox run -- sh`), they go to the command's
 * process group, as they would in the terminal: the running program is
 * interrupted, an interactive shell prints a new prompt, and the container
 * and its writes stay. The terminal delivers them to sbox alone: the
 * command runs in a session of its own (security.md). Without a terminal on
 * stdin they stop the run, as the other signals of STOP_SIGNALS do.
 */
const TERMINAL_KEYS: readonly Deno.Signal[] = ["SIGINT", "SIGQUIT"];

const NO_USAGE: Usage = {
  cpu: { usageUsec: 0, userUsec: 0, systemUsec: 0 },
  memoryPeakBytes: null,
  oomKilled: false,
  forksRefused: 0,
};

/**
 * Runs `options.command` in a new container; never throws for a failure of
 * the run itself. `ignored`: those of {@linkcode HANDLED_SIGNALS} that sbox
 * was started with ignored (`keepIgnored`), which it does not listen for.
 */
export async function runContainer(
  options: RunOptions,
  ignored: ReadonlySet<Deno.Signal> = new Set(),
): Promise<RunResult> {
  const onTerminal = options.stdin === undefined && Deno.stdin.isTerminal();
  const state: RunState = {
    usage: NO_USAGE,
    maxRssBytes: null,
    wallTimeMs: 0,
    kill: () => {},
    interruption: new AbortController(),
    onTerminal,
    warnings: [],
  };
  const resources = new AsyncDisposableStack();
  // Put back last, once the container and what ran in it are gone.
  resources.defer(saveCallerStdio());
  // From here on an interrupt kills the container (once there is one) and
  // lets the cleanup run, rather than ending sbox on the spot. A signal sbox
  // was started with ignored (nohup's SIGHUP, the SIGINT and SIGQUIT of a
  // shell's background job) stays ignored: no listener for it.
  resources.defer(onStopSignals(STOP_SIGNALS.filter((signal) => !ignored.has(signal)), (signal) => {
    // Once decided, the report stays the run's (TO, say), not XX.
    if (state.decided) return;
    if (state.forward && TERMINAL_KEYS.includes(signal)) {
      state.forwarded = signal;
      return state.forward(signal);
    }
    // The command may have run, and shown its prompt, before start()
    // returns: a key typed then is the command's too. A second one while
    // the start still waits (a network that is slow to come up) stops the
    // run, as before the start.
    if (state.onTerminal && state.starting && !state.heldKey && TERMINAL_KEYS.includes(signal)) {
      state.heldKey = signal;
      return;
    }
    state.interrupted ??= signal;
    state.interruption.abort();
    state.kill();
  }));
  // The same condition as state.forward's, less the running command.
  if (onTerminal) {
    if (!ignored.has("SIGTSTP")) resources.defer(onCtrlZ(state));
    if (!ignored.has("SIGWINCH")) resources.defer(onResize(state));
  }
  try {
    await execute(options, state, resources);
  } catch (err) {
    state.error = err;
  }
  try {
    await resources.disposeAsync();
  } catch (err) {
    state.error ??= err instanceof SuppressedError ? err.error : err;
  }
  return summarize(options, state);
}

/** Sets up, runs and tears down the container; `resources` release what it created. */
async function execute(
  options: RunOptions,
  state: RunState,
  resources: AsyncDisposableStack,
): Promise<void> {
  // --keep-id as root, or with another -u, before anything else.
  const requested = requestedUser(options);
  // sbox's mounts and cgroup, read once for the whole setup: sbox mounts
  // nothing in its own mount namespace (the container's mounts are the
  // container's), so the table stays true until the container exists.
  const reading = new ProcReading();
  const image = options.rootfs === undefined ? undefined : imageDir(options.rootfs, reading);
  const user = resolveUser(image ?? "/", requested);
  // -e NAME reads sbox's own environment: refused, if it must be, before anything exists.
  const env = commandEnvironment(
    { PATH: ROOT_PATH, HOME: user.home, ...terminalType(state.onTerminal) },
    options.env,
  );
  // The --seccomp file is read and checked before anything exists.
  const security = securityOptions(options);
  checkStdioFiles(options);
  const picked = pickUserMapper(undefined, undefined, options.keepId);
  checkUserMapped(user, picked.mapper);
  const parent = resolveParentCgroup(options.cgroup, reading);
  const withoutCgroup = whyWithoutCgroup(parent, options, reading);
  const withCgroup = withoutCgroup === undefined;
  // What earlier runs that were killed left (a scratch dir, an empty cgroup).
  removeLeftovers(withCgroup ? parent : undefined, reading);
  const enabled = withCgroup ? enableControllers(parent, options) : [];
  // Runs last, once the container's cgroup is gone: if the container could
  // not be started in it, the controllers enabled for it may have to go.
  let commandStarted = false;
  resources.defer(() => {
    if (!commandStarted) restoreControllers(parent, enabled);
  });
  const stdio = openStdio(options, picked.mapper);
  // The outputs get their owners back only once no process of the container
  // can hold them (stdio.ts): not after a destroy() that failed.
  let containerExists = false;
  resources.defer(() => {
    stdio.close();
    if (!containerExists) stdio.restoreOwners();
  });
  const owned = withCgroup ? await createContainerCgroup(parent, options, reading) : undefined;
  // The teardown reads anew, once for both removals: what their checks look
  // for comes during the run (a mount below the scratch directory, sbox
  // moved into the container's cgroup), after the setup's reading.
  let ending: ProcReading | undefined;
  const atEnd = () => ending ??= new ProcReading();
  resources.defer(() => owned?.remove(atEnd()));
  const cgroup = owned?.cgroup;
  const scratch = ScratchDir.create();
  resources.defer(() => scratch.remove(atEnd().mounts));

  const layers = new TemporaryLayers(scratch.mkdir("layers"), options.writeLimit);
  if (picked.warning) say(`warning: ${picked.warning}`);
  if (options.verbose) {
    say(`user mapper: ${picked.description}`);
    say(`cgroup: ${cgroup ? cgroup.path : `none (${withoutCgroup})`}`);
    say(`network: ${describeNetwork(options)}`);
  }
  const network = networkManager(options);
  const hostname = options.hostname ?? "sbox";
  const container = await Container.create({
    rootfs: scratch.mkdir("root"),
    cgroup,
    userMapper: picked.mapper,
    network,
    mounts: containerMounts(image, options.mounts, layers, {
      cwd: options.cwd,
      hostname,
      onSkipped: (source) => {
        if (options.verbose) say(`bind: ${source} does not exist: skipped (:try)`);
      },
      reading,
    }),
    hostname,
    ...security,
  }, reading);
  containerExists = true;
  resources.defer(async () => {
    await container.destroy();
    containerExists = false;
  });

  let init: InitProcess | undefined;
  state.kill = () => killContainer(cgroup, init);
  // Without a cgroup there is no --time (whyWithoutCgroup refused it): the watchdog never reads it.
  const watchdog = new Watchdog(cgroup ?? parent, options, () => {
    state.decided = true;
    state.killedForTime = true;
    // Through pid 1, which then reports the command's figures (maxRssBytes,
    // its wall time): a judge shows the memory of a run stopped at its limit.
    if (init) init.killCommand();
    else state.kill();
  });
  resources.defer(() => watchdog.stop());

  // A FIFO as --stdin: the command starts once its writer has opened it,
  // as `cmd < fifo` in a shell does, not on an end-of-file that only says
  // the writer is not there yet. The time limits count from the start: the
  // wait is not the command's time. A signal ends it, as any part of the setup.
  await stdio.stdinWriter(state.interruption.signal);
  if (state.interrupted) return; // do not even start
  state.starting = true;
  try {
    init = await container.start({
      command: options.command,
      env,
      cwd: options.cwd ?? "/",
      uid: user.uid,
      gid: user.gid,
      stdin: stdio.fds[0],
      stdout: stdio.fds[1],
      stderr: stdio.fds[2],
      // pid 1 is the helper's reaper, so the command dies of its own signals
      // (abort(), kill -9 $$) and the report says so.
      reaper: true,
      // The report's maxRssBytes; the copy it takes is of a small heap.
      measureMaxRss: true,
      rlimits: options.rlimits,
    });
  } catch (err) {
    if (err instanceof SboxError && err.step === "reaper" && cgroup && readUsage(cgroup).oomKilled) {
      // The setup (mounts, namespaces) needs memory too: a limit below it
      // kills pid 1 before the command runs, which is no ML of the command's.
      const limit = options.memory === undefined
        ? "the memory limit of a parent cgroup"
        : `--memory ${options.memory} bytes`;
      throw new SboxError(
        `the container ran out of memory before the command started: ${limit} is less than its setup needs`,
        { step: "run", cause: err },
      );
    }
    if (err instanceof TooManyStepsError && image === undefined) {
      // The host's mounts are the usual cause: an image has none of them.
      throw new SboxError(
        `${err.problem} (sbox run's host root takes about four for each of the host's mounts: run an image ` +
          "with --rootfs instead)",
        { step: "options", cause: err },
      );
    }
    if (!(err instanceof SboxError && err.step === "exec")) throw err;
    state.execError = err;
  } finally {
    state.starting = false;
    stdio.close(); // the command has its own copies now
  }
  // The command's times count from its execve: the setup is sbox's time
  // (7-40 ms of wall time with a network, 3-6 ms of CPU), and a judge's
  // limits are the command's. The news of the execve may come late (pid 1
  // shares the container's cpu.max): the command's own clock reading says
  // how late.
  const sinceStartMs = init?.msSinceCommandStart ?? 0;
  const started = performance.now() - sinceStartMs;
  commandStarted = true; // in its cgroup: the command ran, or its exec failed
  const setupCpuUsec = init?.setupCpuUsec ?? 0;
  // pid 1's clock where there is one: the report's wall time is read off it.
  if (init) watchdog.start(setupCpuUsec, () => init?.msSinceCommandStart ?? performance.now() - started);
  const running = init;
  if (running && state.onTerminal) {
    state.forward = (signal) => running.kill(signal);
    if (state.heldKey && !state.interrupted) {
      state.forwarded = state.heldKey;
      state.forward(state.heldKey);
    }
    if (state.resizePending) state.forward("SIGWINCH");
    if (state.stopPending) stopWithCommand(state.forward);
  }
  // A signal that came while the command was starting: the kill may have
  // found no process yet.
  if (state.interrupted) state.kill();
  if (init) state.status = await init.status;
  state.decided = true;
  // pid 1's figure where it has one: this process sees the start and the
  // end later, by as long as its event loop takes to read them.
  const exactWallTimeMs = init?.wallTimeMs;
  state.wallTimeMs = init ? exactWallTimeMs ?? performance.now() - started : 0;
  watchdog.stop();

  // Whatever the first process left behind goes now; then the cgroup's
  // figures are final.
  await container.destroy();
  state.warnings.push(...stdio.replacedOutputs());
  const waited = init?.resourceUsage;
  state.maxRssBytes = waited?.maxRssBytes ?? null;
  if (cgroup) {
    await waitUntilEmpty(cgroup);
    const usage = readUsage(cgroup);
    // A command that never ran (its exec failed) used nothing.
    const cpu = init ? commandCpu(usage.cpu, setupCpuUsec) : NO_USAGE.cpu;
    state.usage = { ...usage, cpu };
  } else if (waited) {
    // No cpu.stat to read (a rootless user without a cgroup of its own):
    // what pid 1 reaped used, which leaves out processes still running at
    // the command's end.
    state.usage = { ...NO_USAGE, cpu: waitedCpu(waited) };
  }
  watchdog.settle(state.usage.cpu.usageUsec, state.wallTimeMs, exactWallTimeMs !== undefined);
  state.exceeded = watchdog.exceeded;
  if (watchdog.failure) throw watchdog.failure;
}

/** The report, the exit status and the messages of a finished run. */
function summarize(options: RunOptions, state: RunState): RunResult {
  const { status, execError, usage, exceeded, interrupted } = state;
  const error = interrupted
    ? new SboxError(`interrupted by ${interrupted}: the container was killed`, { step: "run" })
    : state.error;
  const exitCode = status
    ? (status.signal === null ? status.code : null)
    : execError
    ? execStatus(execError)
    : null;
  const signal = status?.signal ?? null;
  const report: Report = {
    status: statusOf({
      failed: error !== undefined,
      timedOut: !!exceeded,
      oomKilled: usage.oomKilled,
      signal,
      exitCode,
    }),
    exitCode,
    signal,
    wallTimeMs: Math.round(state.wallTimeMs * 1000) / 1000,
    cpu: usage.cpu,
    memoryPeakBytes: usage.memoryPeakBytes,
    maxRssBytes: state.maxRssBytes,
    oomKilled: usage.oomKilled,
    timedOut: !!exceeded,
  };

  const messages: string[] = [...state.warnings];
  if (execError) messages.push(execFailureMessage(options, execError));
  if (exceeded) {
    const limit = exceeded === "--time"
      ? `CPU-time limit of ${options.cpuTimeMs}ms`
      : `wall-clock limit of ${options.wallTimeMs}ms`;
    // The kill may come too late: the command ended between two checks of
    // --time, or during a start that took longer than the limit, or within
    // --extra-time, or just before a timer that fired late (sbox's event
    // loop busy, sbox stopped). It is TO all the same (it used more than
    // allowed), with its own exit status. What is said follows how the
    // command ended, not whether a kill was tried: one that exited was not
    // killed.
    const killed = state.killedForTime && (status === undefined || status.signal !== null);
    const outcome = killed
      ? "the container was killed"
      : options.extraTimeMs
      ? `the command ended within --extra-time ${options.extraTimeMs}ms`
      : "the command ended before it could be killed";
    messages.push(`${limit} exceeded (${exceeded}): ${outcome}`);
  }
  if (usage.oomKilled) messages.push("out of memory: the kernel killed a process of the container");
  // The report has no field for it (its format is fixed); a program that
  // cannot fork fails its own way ("can't fork", Go's "failed to create new
  // OS thread"), which a judge should not read as the program's fault alone.
  if (usage.forksRefused > 0) {
    const limit = options.pids === undefined
      ? "the process limit of a parent cgroup"
      : `--pids ${options.pids}`;
    const times = usage.forksRefused === 1 ? "once" : `${usage.forksRefused} times`;
    messages.push(`process limit reached (${limit}): a fork or a new thread was refused ${times}`);
  }
  if (error !== undefined) messages.push(describe(error));

  let exitStatus: number;
  if (interrupted) exitStatus = 128 + signalNumber(interrupted);
  else if (error !== undefined) exitStatus = 125;
  else if (execError) exitStatus = execStatus(execError);
  else exitStatus = status!.code;
  const reraise = interrupted ??
    (status?.signal && status.signal === state.forwarded ? state.forwarded : undefined);
  return { exitStatus, report, messages, reraise };
}

/** The report's cpu figures from getrusage's: user and kernel time, and their sum. */
function waitedCpu(usage: ResourceUsage): Usage["cpu"] {
  return {
    usageUsec: usage.userUsec + usage.systemUsec,
    userUsec: usage.userUsec,
    systemUsec: usage.systemUsec,
  };
}

/** 127 when the command was not found, 126 when it could not be executed, as in shells. */
function execStatus(err: SboxError): number {
  return err.errno === "ENOENT" ? 127 : 126;
}

function describe(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

/** Kills every process of the container: through its cgroup, else by killing its pid 1. */
function killContainer(cgroup: Cgroup | undefined, init: InitProcess | undefined): void {
  try {
    if (cgroup) return cgroup.kill();
  } catch {
    // cgroup.kill needs Linux 5.14; killing pid 1 below ends its pid namespace.
  }
  try {
    init?.kill("SIGKILL");
  } catch {
    // already gone
  }
}

/**
 * `TERM` from sbox's environment when the terminal is on sbox's stdin (and
 * so the command's): full-screen programs (`clear`, `less`, `vim`, `top`)
 * need it, as `docker run -t` sets it. Nothing otherwise: the environment is
 * the run's own, not the host's. `-e TERM=...` overrides it.
 */
function terminalType(onTerminal: boolean): { TERM?: string } {
  const term = onTerminal ? environment().TERM : undefined;
  return term ? { TERM: term } : {};
}

/**
 * With the terminal on sbox's stdin: the terminal's Ctrl-Z (SIGTSTP) reaches
 * sbox alone, the command running in a session of its own. Stopping sbox
 * alone left the container running, unwatched by the time limits, and
 * reading the terminal the user's shell had taken back: the keys typed were
 * split between two shells. So the command's process group stops first,
 * then sbox; when sbox is continued (`fg`, `bg`), so is the group (see
 * {@linkcode stopWithCommand}).
 *
 * A Ctrl-Z during the setup waits for the command to run, a few tens of
 * milliseconds: stopped then, sbox could not stop a command that starts
 * while it is stopped. One that comes with no command run (its exec failed,
 * the setup failed) is dropped: sbox is about to end. Once the run is
 * decided, sbox stops alone: the container is dead or being killed.
 * Returns what stops listening; from then on Deno's handler, which stays,
 * applies the default action itself (Deno 2.9.6), so a later Ctrl-Z stops
 * sbox as before the run.
 */
function onCtrlZ(state: RunState): () => void {
  const listener = () => {
    if (state.decided) stopLikeDefault("SIGTSTP");
    else if (state.forward) stopWithCommand(state.forward);
    else state.stopPending = true;
  };
  Deno.addSignalListener("SIGTSTP", listener);
  return () => Deno.removeSignalListener("SIGTSTP", listener);
}

/**
 * With the terminal on sbox's stdin: a resized window's SIGWINCH goes to the
 * terminal's foreground process group, sbox's, and not to the command, which
 * runs in a session of its own. Passed on to the command's process group, so
 * that a full-screen program (vi, less, top) redraws for the new size, which
 * it reads from the terminal as before. One that comes before the command
 * runs is passed on once it runs, as a Ctrl-C is: the command may have read
 * the old size already. Returns what stops listening.
 */
function onResize(state: RunState): () => void {
  const listener = () => {
    if (state.decided) return;
    if (state.forward) state.forward("SIGWINCH");
    else state.resizePending = true;
  };
  Deno.addSignalListener("SIGWINCH", listener);
  return () => Deno.removeSignalListener("SIGWINCH", listener);
}

/**
 * Passes SIGTSTP on to the command (pid 1 stops its process group), stops
 * sbox as the kernel would, and once sbox is continued passes SIGCONT on.
 * Where the kernel would discard the stop (sbox's process group is orphaned
 * when sbox was exec'd by the terminal's session leader: no shell is there
 * to continue it), neither the command nor sbox stops.
 */
function stopWithCommand(forward: (signal: Deno.Signal) => void): void {
  // The kernel would discard this stop, so sbox does nothing at all: were
  // it to pass SIGTSTP and then SIGCONT on at once, pid 1 could take both
  // from its signalfd together, which gives them by number, SIGCONT (18)
  // before SIGTSTP (20), and the command would stay stopped.
  if (processGroupOrphaned()) return;
  const pass = (signal: Deno.Signal) => {
    try {
      forward(signal);
    } catch {
      // a failed signal keeps sbox neither from stopping nor from going on
    }
  };
  pass("SIGTSTP");
  stopLikeDefault("SIGTSTP");
  pass("SIGCONT");
}

/** Parent pid, process group and session of a process, from /proc/PID/stat; undefined if gone. */
export function processIds(
  pid: number | "self",
): { ppid: number; pgrp: number; session: number } | undefined {
  let stat: string;
  try {
    // Through the helper: sbox has no read permission of Deno's.
    stat = new TextDecoder().decode(readFile(`/proc/${pid}/stat`));
  } catch {
    return undefined;
  }
  // After the command's name, which may hold spaces and parentheses: state ppid pgrp session.
  const [, ppid, pgrp, session] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return { ppid: Number(ppid), pgrp: Number(pgrp), session: Number(session) };
}

/**
 * Whether sbox's process group is orphaned, where the kernel discards a
 * terminal's stop: no shell of the session outside the group is there to
 * continue it (sbox exec'd by the session's leader, say). Follows sbox's
 * ancestors while they are in its group; the group's other members (the
 * rest of a pipeline) are not looked at. `lookup` reads a process's ids.
 *
 * @example
 * ```ts
 * import { processGroupOrphaned } from "./run.ts";
 *
 * if (processGroupOrphaned()) console.log("a terminal's Ctrl-Z would not stop this process");
 * ```
 */
export function processGroupOrphaned(lookup: typeof processIds = processIds): boolean {
  const self = lookup("self");
  if (!self) return false;
  let ids = self;
  for (let depth = 0; depth < 64; depth++) {
    // A parent that cannot be seen (in a pid namespace above: ppid 0; or
    // behind hidepid) says nothing: stop, as before this check.
    const parent = ids.ppid > 0 ? lookup(ids.ppid) : undefined;
    if (!parent) return false;
    if (parent.session !== self.session) return true;
    if (parent.pgrp !== self.pgrp) return false;
    ids = parent;
  }
  return false;
}

/** Calls `onSignal` on each of `signals`; returns the function that stops listening. */
function onStopSignals(signals: readonly Deno.Signal[], onSignal: (signal: Deno.Signal) => void): () => void {
  const handlers = signals.map((signal) => [signal, () => onSignal(signal)] as const);
  for (const [signal, handler] of handlers) Deno.addSignalListener(signal, handler);
  return () => {
    for (const [signal, handler] of handlers) Deno.removeSignalListener(signal, handler);
  };
}
