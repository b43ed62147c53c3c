/**
 * What a signal sent to `sbox run` does, from the first listener to the
 * death by a Ctrl-C that sbox passed on: {@linkcode SignalRelay} holds all
 * of that state. With a terminal on sbox's stdin the terminal's keys and
 * job control (Ctrl-C, Ctrl-\, Ctrl-Z, a resized window) are the command's,
 * as in a terminal; with a terminal on sbox's stdout or stderr only (or
 * --stdin given), Ctrl-Z alone; every other stop signal, and those keys
 * without a terminal, kill the container and let the cleanup run.
 *
 * The command runs in a session of its own (security.md), so the terminal
 * delivers its signals to sbox alone; sbox passes them on to the command's
 * process group through pid 1 (`InitProcess.kill`).
 *
 * @module
 */

import { readFile } from "../sys.ts";
import { stopLikeDefault } from "./signal_actions.ts";

/**
 * Signals that make sbox kill the container, clean up, write an XX report
 * and then die of the signal (a shell sees 128+N): every signal whose
 * default is to end a process and that someone sends to stop it (a
 * terminal's SIGINT and SIGQUIT, `kill`, `timeout -s`, a lost session's
 * SIGHUP, a CPU-time rlimit's SIGXCPU, a power failure's SIGPWR), instead
 * of dying on the spot with the container's cgroup and scratch directory
 * left behind; unless sbox was started with one ignored, which then stays
 * so (see {@linkcode HANDLED_SIGNALS}). Not here: SIGUSR1 (ignored, see
 * signal_actions.ts), SIGXFSZ (ignored while main.ts runs, see
 * signal_actions.ts: an oversized write fails with EFBIG instead), SIGPIPE (Deno ignores it: a write fails
 * with EPIPE), SIGKILL and SIGSTOP (cannot be caught), and the signals of a
 * fault of sbox's own (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP,
 * SIGSYS), which must stay fatal rather than let a broken process go on.
 */
const STOP_SIGNALS: readonly Deno.Signal[] = [
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
 * on a terminal SIGTSTP (a Ctrl-Z) and SIGWINCH (a resize, with the
 * terminal on stdin), see
 * {@linkcode SignalRelay}. One that sbox was started with ignored gets no
 * listener: it stays ignored.
 */
export const HANDLED_SIGNALS: readonly Deno.Signal[] = [...STOP_SIGNALS, "SIGTSTP", "SIGWINCH"];

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

/** What a signal can be passed on to: the command's process group, through its pid 1. */
export interface SignalTarget {
  /** Sends `signal` to the command's process group. */
  kill(signal: Deno.Signal): void;
}

/** What a {@linkcode SignalRelay} acts on. */
export interface SignalRelayOptions {
  /**
   * sbox's stdin is a terminal (and no --stdin was given): its keys, its
   * Ctrl-Z and its resizes are the command's.
   */
  onTerminal: boolean;
  /**
   * A Ctrl-Z stops the command's process group with sbox, as a terminal
   * stops a foreground job: where any of sbox's fds 0-2 is a terminal, the
   * one the user types Ctrl-Z at (`--stdin FILE` at a prompt, say), though
   * the keys and resizes stay sbox's without `onTerminal`. Implied by
   * `onTerminal`; false by default.
   */
  jobControl?: boolean;
  /** Kills every process of the container (a no-op until there is one). */
  kill: () => void;
  /**
   * How sbox stops on a Ctrl-Z: with the command's process group when
   * `command` is given ({@linkcode stopWithCommand}), else alone, as the
   * kernel would stop it. Returns once sbox is continued. Tests pass one
   * that does not stop the process.
   */
  stop?: (command?: (signal: Deno.Signal) => void) => void;
}

/** Where a run is, which decides what a signal does: see {@linkcode SignalRelay}'s table. */
type Phase = "setup" | "starting" | "relaying" | "decided";

/**
 * The signal state of one `sbox run`, from its first listener to its end:
 * one object, so that one Ctrl-C can be followed through the whole run.
 *
 * 1. {@linkcode listen} as the run begins: from then on a stop signal
 *    interrupts the run ({@linkcode interrupted}, {@linkcode interruption},
 *    the container killed) rather than ending sbox on the spot.
 * 2. {@linkcode whileStarting} around `container.start()`: the command may
 *    run, and show its prompt, before start() returns and the command is
 *    attached, so the first key typed then is the command's, held for it.
 * 3. {@linkcode attach} once start() returned, which ends the start:
 *    with a terminal, the keys, Ctrl-Z and resizes go to the command from
 *    now on, the held ones first; a signal that came during the start
 *    kills the container again, as that kill may have found no process yet.
 * 4. {@linkcode decide} once the outcome is known (the command ended, a
 *    limit killed it): a signal then finds only the cleanup under way, which
 *    goes on, and the report stays the run's (TO, say), not XX.
 * 5. {@linkcode reraise}: the signal sbox dies of once done.
 *
 * What a signal does in each phase (`key`: SIGINT or SIGQUIT with a
 * terminal on stdin, see {@linkcode TERMINAL_KEYS}; Ctrl-Z with job
 * control, resize with a terminal on stdin):
 *
 * | phase      | a key                           | another stop signal | Ctrl-Z                 | resize    |
 * | ---------- | ------------------------------- | ------------------- | ---------------------- | --------- |
 * | `setup`    | interrupts                      | interrupts          | held                   | held      |
 * | `starting` | the first held, then interrupts | interrupts          | held                   | held      |
 * | `relaying` | passed on                       | interrupts          | stops sbox and command | passed on |
 * | `decided`  | ignored                         | ignored             | stops sbox alone       | ignored   |
 *
 * `setup` is also where a run is after a start that ran no command (its
 * exec failed) and, without job control, while the command runs: there is
 * nothing to pass a signal on to then. Without a terminal on stdin, a key
 * in `relaying` interrupts, as another stop signal does. What is held is passed on when the run
 * enters `relaying`, and dropped if it never does.
 *
 * @example
 * ```ts
 * import { SignalRelay } from "./job_control.ts";
 *
 * const relay = new SignalRelay({ onTerminal: Deno.stdin.isTerminal(), kill: () => {} });
 * const stopListening = relay.listen(new Set());
 * try {
 *   const command = await relay.whileStarting(() => Promise.resolve({ kill: (_: Deno.Signal) => {} }));
 *   relay.attach(command);
 *   // ... wait for the command ...
 *   relay.decide();
 * } finally {
 *   stopListening();
 * }
 * ```
 */
export class SignalRelay {
  /** sbox's stdin is a terminal (and no --stdin was given): its keys are the command's. */
  readonly onTerminal: boolean;
  /** A Ctrl-Z stops the command's process group with sbox (see {@linkcode SignalRelayOptions.jobControl}). */
  readonly jobControl: boolean;
  readonly #kill: () => void;
  readonly #stop: (command?: (signal: Deno.Signal) => void) => void;
  readonly #interruption = new AbortController();
  #phase: Phase = "setup";
  /** The first stop signal sbox received while the run was not yet decided. */
  #interrupted: Deno.Signal | undefined;
  /** In `relaying` with a terminal on stdin: passes a key or a resize on to the command's process group. */
  #command: ((signal: Deno.Signal) => void) | undefined;
  /** In `relaying` with job control: what a Ctrl-Z stops sbox with (the command's process group). */
  #stopTarget: ((signal: Deno.Signal) => void) | undefined;
  /** The last key passed on to the command. */
  #forwarded: Deno.Signal | undefined;
  /** A Ctrl-C or Ctrl-\ that came while the command was starting: passed on once it runs. */
  #heldKey: Deno.Signal | undefined;
  /** A window's resize that came before the command ran: passed on once it runs. */
  #resizeHeld = false;
  /** A Ctrl-Z that came before the command ran: sbox stops with it once it runs. */
  #stopHeld = false;

  /** A relay in phase `setup`, listening for nothing yet (see {@linkcode listen}). */
  constructor(options: SignalRelayOptions) {
    this.onTerminal = options.onTerminal;
    this.jobControl = options.onTerminal || (options.jobControl ?? false);
    this.#kill = options.kill;
    this.#stop = options.stop ??
      ((command) => command ? stopWithCommand(command) : void stopLikeDefault("SIGTSTP"));
  }

  /**
   * The stop signal that interrupted the run (the container was killed for
   * it), if one came before the run was decided.
   */
  get interrupted(): Deno.Signal | undefined {
    return this.#interrupted;
  }

  /** Aborted when the run is interrupted: ends a wait before the command starts (a --stdin FIFO's writer). */
  get interruption(): AbortSignal {
    return this.#interruption.signal;
  }

  /**
   * Listens for {@linkcode STOP_SIGNALS}, with job control for SIGTSTP, and
   * with a terminal on stdin for SIGWINCH, except `ignored`: those sbox was started with ignored
   * (`keepIgnored`: nohup's SIGHUP, the SIGINT and SIGQUIT of a shell's
   * background job), which stay so. Returns what stops listening; from then
   * on Deno's handler, which stays, applies the default action itself (Deno
   * 2.9.6), so a later Ctrl-Z stops sbox as before the run.
   */
  listen(ignored: ReadonlySet<Deno.Signal>): () => void {
    const signals = STOP_SIGNALS.filter((signal) => !ignored.has(signal));
    if (this.jobControl && !ignored.has("SIGTSTP")) signals.push("SIGTSTP");
    if (this.onTerminal && !ignored.has("SIGWINCH")) signals.push("SIGWINCH");
    const handlers = signals.map((signal) => [signal, () => this.receive(signal)] as const);
    for (const [signal, handler] of handlers) Deno.addSignalListener(signal, handler);
    return () => {
      for (const [signal, handler] of handlers.toReversed()) Deno.removeSignalListener(signal, handler);
    };
  }

  /** What sbox does with `signal`, received now (see the class's table); the listeners call it. */
  receive(signal: Deno.Signal): void {
    if (signal === "SIGTSTP") return this.#ctrlZ();
    if (signal === "SIGWINCH") return this.#resize();
    if (this.#phase === "decided") return;
    const key = TERMINAL_KEYS.includes(signal);
    if (key && this.#command) {
      this.#forwarded = signal;
      return this.#command(signal);
    }
    // The command may have run, and shown its prompt, before start()
    // returns: a key typed then is the command's too. A second one while
    // the start still waits (a network that is slow to come up) stops the
    // run, as before the start.
    if (key && this.onTerminal && this.#phase === "starting" && !this.#heldKey) {
      this.#heldKey = signal;
      return;
    }
    this.#interrupted ??= signal;
    this.#interruption.abort();
    this.#kill();
  }

  /**
   * Runs `start` (`container.start()`) in phase `starting`: the first key
   * that comes meanwhile is held for the command. A start that fails goes
   * back to `setup` at once: no command runs to pass a key on to. One that
   * succeeds stays in `starting` until {@linkcode attach}: the command runs
   * already, and a key that comes before the caller gets to attach it is
   * held for it too, not taken for an interrupt.
   */
  async whileStarting<T>(start: () => Promise<T>): Promise<T> {
    this.#phase = "starting";
    try {
      return await start();
    } catch (err) {
      this.#phase = "setup";
      throw err;
    }
  }

  /**
   * The start is over: `command` runs (undefined when none does, its exec
   * having failed). With a terminal, what came during the setup goes to it
   * now: the key held, unless the run was interrupted since; a resize; a
   * Ctrl-Z, with which sbox stops too. Then, if the run was interrupted, the
   * container is killed again: the first kill may have found no process
   * yet. Call it once the time limits run: a held Ctrl-Z stops sbox here,
   * the command's clock going on.
   */
  attach(command: SignalTarget | undefined): void {
    this.#phase = "setup";
    if (command && this.jobControl) {
      const pass = (signal: Deno.Signal) => command.kill(signal);
      this.#stopTarget = pass;
      this.#phase = "relaying";
      if (this.onTerminal) {
        this.#command = pass;
        if (this.#heldKey && !this.#interrupted) {
          this.#forwarded = this.#heldKey;
          pass(this.#heldKey);
        }
        if (this.#resizeHeld) pass("SIGWINCH");
      }
      if (this.#stopHeld) this.#stop(pass);
    }
    if (this.#interrupted) this.#kill();
  }

  /**
   * The run's outcome is known: the command ended, or a limit killed it.
   * A signal from now on finds only the cleanup under way, which goes on;
   * a Ctrl-Z stops sbox alone, the container being dead or about to be.
   */
  decide(): void {
    this.#phase = "decided";
  }

  /**
   * The signal sbox dies of once done (the report written), as a program
   * that cleans up on a signal does: the one that interrupted the run, or
   * the key sbox passed on last if `commandSignal`, the signal the command
   * died of, is that key. A shell running sbox in a loop then stops, as it
   * does for any program (bash goes on after a child that exits 130, and
   * stops after one that dies of SIGINT).
   */
  reraise(commandSignal: string | null): Deno.Signal | undefined {
    if (this.#interrupted) return this.#interrupted;
    return commandSignal !== null && commandSignal === this.#forwarded ? this.#forwarded : undefined;
  }

  /**
   * A Ctrl-Z (SIGTSTP) reaches sbox alone, the command running in a session
   * of its own. Stopping sbox alone left the container running, unwatched
   * by the time limits, and reading the terminal the user's shell had taken
   * back: the keys typed were split between two shells. So the command's
   * process group stops first, then sbox; when sbox is continued (`fg`,
   * `bg`), so is the group (see {@linkcode stopWithCommand}).
   *
   * One during the setup is held until the command runs, a few tens of
   * milliseconds: stopped then, sbox could not stop a command that starts
   * while it is stopped. One that comes with no command run (its exec
   * failed, the setup failed) is dropped: sbox is about to end. Once the run
   * is decided, sbox stops alone: the container is dead or being killed.
   */
  #ctrlZ(): void {
    if (this.#phase === "decided") this.#stop();
    else if (this.#stopTarget) this.#stop(this.#stopTarget);
    else this.#stopHeld = true;
  }

  /**
   * A resized window's SIGWINCH goes to the terminal's foreground process
   * group, sbox's, and not to the command, which runs in a session of its
   * own. Passed on to the command's process group, so that a full-screen
   * program (vi, less, top) redraws for the new size, which it reads from
   * the terminal as before. One that comes before the command runs is
   * passed on once it runs, as a Ctrl-C is: the command may have read the
   * old size already.
   */
  #resize(): void {
    if (this.#phase === "decided") return;
    if (this.#command) this.#command("SIGWINCH");
    else this.#resizeHeld = true;
  }
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
function processIds(
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
 * import { processGroupOrphaned } from "./job_control.ts";
 *
 * if (processGroupOrphaned()) console.log("a terminal's Ctrl-Z would not stop this process");
 * ```
 * @internal Exported for tests only.
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
