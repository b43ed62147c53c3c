/**
 * `sbox run`: one command in a new container, start to finish. `execute`
 * reads top-down, one step a function:
 *
 * 1. `prepare`: check what can be checked before anything exists: the
 *    image, the --seccomp policy, the user's ids against the id map, the
 *    parent cgroup, the --stdin/--stdout/--stderr files;
 * 2. `createContainer`: enable the parent cgroup's controllers for its
 *    children, create the container's cgroup with its limits, the scratch
 *    directory, the mounts and the container;
 * 3. `startCommand`, then `awaitCommand`: start the command, watch its time
 *    limits (from its start), pass the terminal's signals on, wait for it;
 * 4. `collectUsage`: kill what is left, read what the cgroup used; then the
 *    time limits are settled on the final figures.
 *
 * Every resource is released on every path, failures included: each step
 * hands what it makes to the run's `resources` as soon as it exists. What a
 * signal does meanwhile is job_control.ts's `SignalRelay`.
 *
 * @module
 */

import type { Cgroup } from "../cgroup.ts";
import { Container } from "../container.ts";
import { SboxError } from "../error.ts";
import { FreshHostRoot } from "../host_root.ts";
import type { InitProcess, ProcessStatus, ResourceUsage } from "../process.ts";
import { TooManyStepsError } from "../program.ts";
import { ProcReading } from "../mountinfo.ts";
import { signalNumber } from "../signal.ts";
import { environment } from "../sys.ts";
import { TemporaryLayers } from "../temporary_layers.ts";
import { ROOT_PATH } from "../user.ts";
import type { RunOptions } from "./args.ts";
import { whyWithoutCgroup } from "./cgroup_access.ts";
import { commandEnvironment } from "./environment.ts";
import { execFailureMessage } from "./exec_failure.ts";
import {
  checkUserMapped,
  type ContainerUser,
  type PickedMapper,
  pickUserMapper,
  requestedUser,
  resolveUser,
} from "./identity.ts";
import { SignalRelay } from "./job_control.ts";
import { removeLeftovers } from "./leftovers.ts";
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
import { messageOf, say } from "./messages.ts";
import { containerMounts, imageDir } from "./mounts.ts";
import { describeNetwork, networkManager } from "./network.ts";
import { type Report, statusOf } from "./report.ts";
import { ScratchDir } from "./scratch.ts";
import { type SecurityOptions, securityOptions } from "./security.ts";
import { checkStdioFiles, type OpenStdio, openStdio } from "./stdio.ts";
import { saveCallerStdio } from "./terminal.ts";
import { Watchdog } from "./watchdog.ts";

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

/** What a run found out, filled in as it goes; what signals did is its {@linkcode SignalRelay}'s. */
interface RunState {
  /** How the command's first process ended. */
  status?: ProcessStatus;
  /** Why the command could not be executed (step "exec"). */
  execError?: SboxError;
  /**
   * The command was started in its cgroup: it ran, or its exec failed. The
   * controllers enabled for it then stay (see createContainer).
   */
  commandStarted?: boolean;
  usage: Usage;
  /** The command's peak resident set (InitProcess.resourceUsage), if pid 1 reported one. */
  maxRssBytes: number | null;
  wallTimeMs: number;
  /** `wallTimeMs` is pid 1's own figure (InitProcess.wallTimeMs), not this process's later view. */
  exactWallTime: boolean;
  /** The time limit that was exceeded, if any. */
  exceeded?: "--time" | "--wall-time";
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
}

/** What every step of a run works with. */
interface Run {
  options: RunOptions;
  state: RunState;
  /** What a signal sbox receives does, at each point of the run. */
  relay: SignalRelay;
  /** Releases what the steps made, the last made first, on every path (runContainer disposes it). */
  resources: AsyncDisposableStack;
}

/** What {@linkcode prepare} found: the run's inputs, checked, before anything exists. */
interface Plan {
  /**
   * sbox's mounts and cgroup, read once for the setup's checks: sbox
   * mounts nothing in its own mount namespace (the container's mounts are
   * the container's). Not the host's root's plan: others mount on the host
   * at any moment, and each start plans it from a reading of its own
   * (FreshHostRoot, host_root.ts).
   */
  reading: ProcReading;
  /** The --rootfs image's directory; undefined for the host's root. */
  image: string | undefined;
  user: ContainerUser;
  env: Record<string, string>;
  security: SecurityOptions;
  picked: PickedMapper;
  /** The cgroup the container's goes below: --cgroup's, else sbox's own. */
  parent: Cgroup;
  /** Why the run has no cgroup of its own (it goes on without); undefined when it has one. */
  withoutCgroup: string | undefined;
}

/** What {@linkcode createContainer} made; the run's `resources` release it. */
interface Made {
  container: Container;
  /** The host's root, planned by each start; undefined with --rootfs. */
  hostRoot: FreshHostRoot | undefined;
  /** The container's own cgroup; undefined without one (Plan.withoutCgroup). */
  cgroup: Cgroup | undefined;
  stdio: OpenStdio;
}

const NO_USAGE: Usage = {
  cpu: { usageUsec: 0, userUsec: 0, systemUsec: 0 },
  memoryPeakBytes: null,
  oomKilled: false,
  forksRefused: 0,
};

/**
 * Runs `options.command` in a new container; never throws for a failure of
 * the run itself. `ignored`: those of `HANDLED_SIGNALS` (job_control.ts)
 * that sbox was started with ignored (`keepIgnored`), which it does not
 * listen for. `listening`: where given, the run's signal listeners are
 * removed only when the caller disposes it, not as the run returns; a stop
 * signal that comes after the run's end is ignored meanwhile. main.ts keeps
 * them until the report and the last line are written: without a listener
 * Deno's handler ends the process by the signal's default action (see
 * `SignalRelay.listen`), and a signal just after the run would leave an
 * empty report, no line, and 128+N for a run that ended OK.
 */
export async function runContainer(
  options: RunOptions,
  ignored: ReadonlySet<Deno.Signal> = new Set(),
  listening?: DisposableStack,
): Promise<RunResult> {
  const state: RunState = {
    usage: NO_USAGE,
    maxRssBytes: null,
    wallTimeMs: 0,
    exactWallTime: false,
    kill: () => {},
    warnings: [],
  };
  const relay = new SignalRelay({
    onTerminal: options.stdin === undefined && Deno.stdin.isTerminal(),
    // The terminal the user types Ctrl-Z at, whatever --stdin is: stopped
    // alone, sbox left the container running on, writing to that terminal,
    // its time limits unwatched until `fg`.
    jobControl: Deno.stdin.isTerminal() || Deno.stdout.isTerminal() || Deno.stderr.isTerminal(),
    // The container, once there is one (execute sets state.kill).
    kill: () => state.kill(),
  });
  const resources = new AsyncDisposableStack();
  // Put back last, once the container and what ran in it are gone.
  resources.defer(saveCallerStdio());
  // From here on an interrupt kills the container (once there is one) and
  // lets the cleanup run, rather than ending sbox on the spot. A signal sbox
  // was started with ignored (nohup's SIGHUP, the SIGINT and SIGQUIT of a
  // shell's background job) stays ignored: no listener for it.
  const stopListening = relay.listen(ignored);
  if (listening) listening.defer(stopListening);
  else resources.defer(stopListening);
  try {
    await execute({ options, state, relay, resources });
  } catch (err) {
    state.error = err;
  }
  try {
    await resources.disposeAsync();
  } catch (err) {
    state.error ??= err instanceof SuppressedError ? err.error : err;
  }
  // The container is gone: a signal that comes from now on (while the
  // caller writes the report) finds nothing left to interrupt.
  relay.decide();
  return summarize(options, state, relay);
}

/** Sets up, runs and tears down the container, one step after another; `run.resources` release what they made. */
async function execute(run: Run): Promise<void> {
  const { state, relay } = run;
  // Every check that can refuse the run comes first, while nothing exists
  // that would have to be undone.
  const plan = prepare(run.options, relay.onTerminal);
  // Then what the command runs in, each piece handed to `resources` as
  // soon as it exists.
  const made = await createContainer(run, plan);
  // A FIFO as --stdin: the command starts once its writer has opened it,
  // as `cmd < fifo` in a shell does, not on an end-of-file that only says
  // the writer is not there yet. Before the start: the time limits count
  // from the start, and the wait is not the command's time. A signal ends
  // it, as any part of the setup.
  await made.stdio.stdinWriter(relay.interruption);
  if (relay.interrupted) return; // do not even start
  const init = await startCommand(run, plan, made);
  // Through pid 1 too from now on, where there is no cgroup to kill (a
  // signal that came during the start kills again once it is attached).
  state.kill = () => killContainer(made.cgroup, init);
  // In its cgroup: the command ran, or its exec failed.
  state.commandStarted = true;
  const watchdog = await awaitCommand(run, plan, made, init);
  // Once the command ended: the cgroup's figures are final only once the
  // container is gone.
  await collectUsage(state, made, init);
  // Last, on the final figures: a run that used more than a limit is over
  // it, even if it ended between two of the watchdog's polls.
  watchdog.settle(state.usage.cpu.usageUsec, state.wallTimeMs, state.exactWallTime);
  state.exceeded = watchdog.exceeded;
  if (watchdog.failure) throw watchdog.failure;
}

/**
 * Checks what can be checked before anything exists, and reads what the
 * setup needs: the user, the image, the environment, --seccomp, the stdio
 * files, the id map, the parent cgroup. Throws for a refused run, which
 * then leaves nothing behind.
 */
function prepare(options: RunOptions, onTerminal: boolean): Plan {
  // --keep-id as root, or with another -u, before anything else.
  const requested = requestedUser(options);
  const reading = new ProcReading();
  const image = options.rootfs === undefined ? undefined : imageDir(options.rootfs, reading);
  const user = resolveUser(image ?? "/", requested);
  // -e NAME reads sbox's own environment: refused, if it must be, before anything exists.
  const env = commandEnvironment(
    { PATH: ROOT_PATH, HOME: user.home, ...terminalType(onTerminal) },
    options.env,
  );
  // The --seccomp file is read and checked before anything exists.
  const security = securityOptions(options);
  checkStdioFiles(options);
  const picked = pickUserMapper(undefined, undefined, options.keepId);
  checkUserMapped(user, picked.mapper);
  const parent = resolveParentCgroup(options.cgroup, reading);
  const withoutCgroup = whyWithoutCgroup(parent, options, reading);
  return { reading, image, user, env, security, picked, parent, withoutCgroup };
}

/**
 * Makes what the command runs in: the parent cgroup's controllers enabled,
 * the stdio files opened, the container's cgroup, the scratch directory,
 * the container. Each release is registered as soon as its piece exists,
 * so that a failure of the next one releases it; they run the other way
 * round.
 */
async function createContainer(run: Run, plan: Plan): Promise<Made> {
  const { options, state, resources } = run;
  const { reading, parent, withoutCgroup, picked } = plan;
  const withCgroup = withoutCgroup === undefined;
  // What earlier runs that were killed left (a scratch dir, an empty cgroup).
  removeLeftovers(withCgroup ? parent : undefined);
  const enabled = withCgroup ? enableControllers(parent, options) : [];
  // Runs last, once the container's cgroup is gone: if the container could
  // not be started in it, the controllers enabled for it may have to go.
  resources.defer(() => {
    if (!state.commandStarted) restoreControllers(parent, enabled);
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
  // The teardown reads anew: what the cgroup's removal checks for comes
  // during the run (sbox moved into the container's cgroup), after the
  // setup's reading. The scratch directory's removal reads no table: it
  // checks each directory's mount as it gets to it (scratch.ts).
  resources.defer(() => owned?.remove(new ProcReading()));
  const cgroup = owned?.cgroup;
  const scratch = ScratchDir.create();
  resources.defer(() => scratch.remove());

  const layers = new TemporaryLayers(scratch.mkdir("layers"), options.writeLimit);
  if (picked.warning) say(`warning: ${picked.warning}`);
  if (options.verbose) {
    say(`user mapper: ${picked.description}`);
    say(`cgroup: ${cgroup ? cgroup.path : `none (${withoutCgroup})`}`);
    say(`network: ${describeNetwork(options)}`);
  }
  const network = networkManager(options);
  const mounts = containerMounts(plan.image, options.mounts, layers, {
    cwd: options.cwd,
    hostname: options.hostname,
    onSkipped: (source) => {
      if (options.verbose) say(`bind: ${source} does not exist: skipped (:try)`);
    },
  });
  const container = await Container.create({
    rootfs: scratch.mkdir("root"),
    cgroup,
    userMapper: picked.mapper,
    network,
    mounts,
    hostname: options.hostname,
    ...plan.security,
  }, reading);
  containerExists = true;
  resources.defer(async () => {
    await container.destroy();
    containerExists = false;
  });
  // From now on an interrupt kills the container: through its cgroup, as
  // there is no pid 1 yet (execute adds it once the command started).
  state.kill = () => killContainer(cgroup, undefined);
  const hostRoot = mounts.find((m) => m instanceof FreshHostRoot);
  return { container, hostRoot, cgroup, stdio };
}

/**
 * Starts the command in the container. Returns its pid 1; undefined when
 * the command could not be executed (`state.execError` says why: the
 * command's failure, not sbox's). Throws for any other failure, explained.
 * The start runs under `relay.whileStarting`: the command may run, and read
 * a key, before it returns.
 */
async function startCommand(run: Run, plan: Plan, made: Made): Promise<InitProcess | undefined> {
  const { options, state, relay } = run;
  try {
    return await relay.whileStarting(() =>
      startOnFreshPlans(made.hostRoot, relay, options.verbose, () =>
        made.container.start({
          command: options.command,
          env: plan.env,
          cwd: options.cwd,
          uid: plan.user.uid,
          gid: plan.user.gid,
          stdin: made.stdio.fds[0],
          stdout: made.stdio.fds[1],
          stderr: made.stdio.fds[2],
          // pid 1 is the helper's reaper, so the command dies of its own signals
          // (abort(), kill -9 $$) and the report says so.
          reaper: true,
          // The report's maxRssBytes; the copy it takes is of a small heap.
          measureMaxRss: true,
          rlimits: options.rlimits,
        }))
    );
  } catch (err) {
    if (
      err instanceof SboxError && err.step === "reaper" && made.cgroup && readUsage(made.cgroup).oomKilled
    ) {
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
    if (err instanceof TooManyStepsError && plan.image === undefined) {
      // The host's mounts are the usual cause: an image has none of them.
      throw new SboxError(
        `${err.problem} (sbox run's host root takes about four for each of the host's mounts: run an image ` +
          "with --rootfs instead)",
        { step: "options", cause: err },
      );
    }
    if (!(err instanceof SboxError && err.step === "exec")) throw err;
    state.execError = err;
    return undefined;
  } finally {
    made.stdio.close(); // the command has its own copies now
  }
}

/**
 * How many times a run on the host's root starts its container, at most,
 * while each start fails for the host's mounts changing between its plan
 * and the container's copy of them (`FreshHostRoot.planWentStale`,
 * host_root.ts). A mount made in that moment, a few milliseconds, fails a
 * start: about one in six, on a host that mounts and unmounts below /var
 * without pause (cli_test's racer). Each start plans anew, and one that
 * fails costs its setup alone (~30 ms), so a run fails only where eight
 * in a row do: a host whose mounts change all the time.
 * @internal Exported for tests only.
 */
export const HOST_ROOT_TRIES = 8;

/**
 * Runs `start` (the container's start, on the host's root `hostRoot` or
 * an image) until it succeeds, fails for anything but a plan of
 * `hostRoot` gone stale, or has failed {@linkcode HOST_ROOT_TRIES} times;
 * then its error says how many. A failed start leaves nothing behind
 * (Container.start), and each start of a {@linkcode FreshHostRoot} plans
 * anew. Not once the run was interrupted (a Ctrl-C).
 */
async function startOnFreshPlans<T>(
  hostRoot: FreshHostRoot | undefined,
  relay: SignalRelay,
  verbose: boolean,
  start: () => Promise<T>,
): Promise<T> {
  for (let tries = 1;; tries++) {
    try {
      return await start();
    } catch (err) {
      // planWentStale is the last plan's: a start that failed before it
      // compiled its mounts (with no mount's error) made none, and the
      // one before's would stand.
      const stale = err instanceof SboxError && err.step === "mount" && hostRoot?.planWentStale === true;
      if (!stale || relay.interrupted) throw err;
      if (tries === HOST_ROOT_TRIES) {
        throw new SboxError(
          `${err.message} (sbox run tried ${tries} times, reading the host's mounts anew each time)`,
          { step: err.step, errno: err.errnoNumber, cause: err },
        );
      }
      if (verbose) say(`host root: ${err.message}: trying again`);
    }
  }
}

/**
 * From the command's start to its end: watches its time limits, hands it
 * the terminal's signals, waits for it, and decides the run. `init`:
 * undefined when the command could not be executed, which the run waits
 * for no longer. Returns the watchdog, to settle once the figures are in.
 */
async function awaitCommand(
  run: Run,
  plan: Plan,
  made: Made,
  init: InitProcess | undefined,
): Promise<Watchdog> {
  const { options, state, relay, resources } = run;
  // Without a cgroup there is no --time (whyWithoutCgroup refused it): the watchdog never reads it.
  const watchdog = new Watchdog(made.cgroup ?? plan.parent, options, () => {
    relay.decide();
    state.killedForTime = true;
    // Through pid 1, which then reports the command's figures (maxRssBytes,
    // its wall time): a judge shows the memory of a run stopped at its limit.
    if (init) init.killCommand();
    else state.kill();
  });
  resources.defer(() => watchdog.stop());
  // The command's times count from its execve: the setup is sbox's time
  // (7-40 ms of wall time with a network, 3-6 ms of CPU), and a judge's
  // limits are the command's. The news of the execve may come late (pid 1
  // shares the container's cpu.max): the command's own clock reading says
  // how late.
  const sinceStartMs = init?.msSinceCommandStart ?? 0;
  const started = performance.now() - sinceStartMs;
  // pid 1's clock where there is one: the report's wall time is read off it.
  if (init) {
    watchdog.start(init.setupCpuUsec ?? 0, () => init?.msSinceCommandStart ?? performance.now() - started);
  }
  // Once the limits run: a Ctrl-Z held since the setup stops sbox here, and
  // the command's time goes on meanwhile.
  relay.attach(init);
  if (init) state.status = await init.status;
  relay.decide();
  // pid 1's figure where it has one: this process sees the start and the
  // end later, by as long as its event loop takes to read them.
  const exactWallTimeMs = init?.wallTimeMs;
  state.exactWallTime = exactWallTimeMs !== undefined;
  state.wallTimeMs = init ? exactWallTimeMs ?? performance.now() - started : 0;
  watchdog.stop();
  return watchdog;
}

/**
 * Once the command ended: removes the container (whatever the first
 * process left behind goes with it), then reads what the run used. The
 * cgroup's figures are final only once it is empty.
 */
async function collectUsage(state: RunState, made: Made, init: InitProcess | undefined): Promise<void> {
  await made.container.destroy();
  state.warnings.push(...made.stdio.replacedOutputs());
  const waited = init?.resourceUsage;
  state.maxRssBytes = waited?.maxRssBytes ?? null;
  if (made.cgroup) {
    await waitUntilEmpty(made.cgroup);
    const usage = readUsage(made.cgroup);
    // A command that never ran (its exec failed) used nothing.
    const cpu = init ? commandCpu(usage.cpu, init.setupCpuUsec ?? 0) : NO_USAGE.cpu;
    state.usage = { ...usage, cpu };
  } else if (waited) {
    // No cpu.stat to read (a rootless user without a cgroup of its own):
    // what pid 1 reaped used, which leaves out processes still running at
    // the command's end.
    state.usage = { ...NO_USAGE, cpu: waitedCpu(waited) };
  }
}

/** The report, the exit status and the messages of a finished run. */
function summarize(options: RunOptions, state: RunState, relay: SignalRelay): RunResult {
  const { status, execError, usage, exceeded } = state;
  const interrupted = relay.interrupted;
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
  // The report has no field for it (one may be added: docs/cli.md, "The report"); a program that
  // cannot fork fails its own way ("can't fork", Go's "failed to create new
  // OS thread"), which a judge should not read as the program's fault alone.
  if (usage.forksRefused > 0) {
    const limit = options.pids === undefined
      ? "the process limit of a parent cgroup"
      : `--pids ${options.pids}`;
    const times = usage.forksRefused === 1 ? "once" : `${usage.forksRefused} times`;
    messages.push(`process limit reached (${limit}): a fork or a new thread was refused ${times}`);
  }
  if (error !== undefined) messages.push(messageOf(error));

  let exitStatus: number;
  if (interrupted) exitStatus = 128 + signalNumber(interrupted);
  else if (error !== undefined) exitStatus = 125;
  else if (execError) exitStatus = execStatus(execError);
  else exitStatus = status!.code;
  return { exitStatus, report, messages, reraise: relay.reraise(status?.signal ?? null) };
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
