/**
 * Signal actions set through libc, past Deno's signal registry: SIGUSR1
 * ignored, SIGXFSZ ignored while sbox runs (`ignoreFileSizeSignal`), the
 * signals ignored at start kept so (`keepIgnored`), a signal's
 * default action put back for sbox to die of it (`dieOf`) or to stop on it
 * (`stopLikeDefault`). When each is used is decided by their callers:
 * main.ts at sbox's start and end, job_control.ts on a Ctrl-Z.
 *
 * SIGUSR1, ignored. Since 2.9.2 Deno opens its inspector on
 * 127.0.0.1:9229 when it gets SIGUSR1, as Node does, without any
 * authentication: whoever connects runs code in sbox, which holds FFI and
 * often runs as root. No flag or variable turns that off, and a listener of
 * our own does not either (Deno calls every listener of a signal), so sbox
 * has the kernel discard the signal.
 *
 * @module
 */

import { SboxError } from "../error.ts";
import { type LibcSymbols, openLibc } from "../libc.ts";
import { signalNumber } from "../signal.ts";

/** SIG_IGN of <signal.h>. */
const SIG_IGN = 1n;
/** SIG_ERR of <signal.h>, (void *) -1, as an unsigned address. */
const SIG_ERR = 0xffff_ffff_ffff_ffffn;

/**
 * Room for a struct sigaction: glibc's is 152 bytes on x86_64 and aarch64
 * (handler 8, mask 128, flags 4 and 4 of padding, restorer 8).
 */
const SIGACTION_BYTES = 256;

/** RLIMIT_CORE of <sys/resource.h>. */
const RLIMIT_CORE = 4;

type LibcSignal = LibcSymbols<"signal">;

/** Runs `use` with libc's signal(), sigaction() and raise(); throws where libc cannot be opened. */
function withLibcSignal<T>(use: (libc: LibcSignal) => T): T {
  // Opened once (libc.ts): sbox's start reads and sets several signals'
  // actions, and dieOf may need them again at its end.
  return use(openLibc("signal"));
}

/**
 * Sets `signals` to SIG_IGN for the whole process, past Deno's signal
 * registry; returns those signal() took.
 *
 * Deno's registry installs Deno's handler for a signal when a listener is
 * first added for it, and calls sigaction() only for a signal it does not
 * handle yet. It takes some signals for itself too (Deno 2.9.6): SIGHUP,
 * SIGINT and SIGTERM at its first use or half a second after start,
 * whichever comes first, and SIGUSR1 at that half second. SIG_IGN set
 * before would simply be replaced. Adding a listener first makes
 * the registry take the signal now, so the SIG_IGN set after it stays; the
 * listeners go once the kernel discards the signals (removing one leaves
 * the action as it is). Until then a signal reaches a listener that does
 * nothing, not Deno's default action.
 */
function ignoreSignals(libc: LibcSignal, signals: readonly Deno.Signal[]): Deno.Signal[] {
  const noop = () => {};
  for (const signal of signals) Deno.addSignalListener(signal, noop);
  try {
    return signals.filter((signal) => {
      const previous = libc.signal(signalNumber(signal), Deno.UnsafePointer.create(SIG_IGN));
      return BigInt(Deno.UnsafePointer.value(previous)) !== SIG_ERR;
    });
  } finally {
    for (const signal of signals) Deno.removeSignalListener(signal, noop);
  }
}

/**
 * Sets SIGUSR1 to SIG_IGN for the whole process. Throws an SboxError when it
 * cannot, so that sbox never runs with the inspector one signal away. The
 * container's processes do not inherit it: the helper resets every signal to
 * its default before it runs them.
 */
export function ignoreInspectorSignal(): void {
  let ignored: boolean;
  try {
    ignored = withLibcSignal((libc) => ignoreSignals(libc, ["SIGUSR1"]).length === 1);
  } catch (err) {
    throw new SboxError(`cannot ignore SIGUSR1, on which Deno opens its inspector: ${err}`, {
      step: "signal",
      cause: err,
    });
  }
  if (!ignored) {
    throw new SboxError("cannot ignore SIGUSR1, on which Deno opens its inspector: signal() failed", {
      step: "signal",
    });
  }
}

/**
 * Sets SIGXFSZ to SIG_IGN for the whole process, so that a write of sbox's
 * past a file-size rlimit (its stderr appending to a large log, a report)
 * fails with EFBIG instead of ending sbox; returns a function that puts
 * back the action it replaced (Deno's handler). The container's processes
 * do not inherit it: the helper resets every signal to its default before
 * it runs them.
 *
 * SIG_IGN, not only a listener: the kernel then discards the signal as the
 * write fails. Deno passes a signal that reaches its handler on to the
 * listeners later, from another thread, and where none is left by then it
 * ends the process by the signal's default action: a no-op listener
 * removed as sbox's main returned let a SIGXFSZ of sbox's last line end the
 * process (now and then; always where that thread got its turn only after
 * the removal). So the listener here only makes Deno's registry take the
 * signal (see {@linkcode ignoreSignals}) and goes once SIG_IGN is set,
 * before anything is written. Without --allow-ffi (`ffi` false, as sbox's
 * main found it: sbox writes a line or two and no run starts) or where
 * libc cannot be opened, the no-op listener stays instead, for the rest of
 * the process: removed, it would leave that window open.
 */
export function ignoreFileSizeSignal(ffi: boolean): () => void {
  const noop = () => {};
  Deno.addSignalListener("SIGXFSZ", noop);
  // Without the permission Deno.dlopen would ask for it on a terminal.
  const restore = ffi ? setIgnored(signalNumber("SIGXFSZ")) : undefined;
  if (restore === undefined) return () => {}; // the listener stays
  Deno.removeSignalListener("SIGXFSZ", noop);
  return restore;
}

/**
 * Sets signal `number` to SIG_IGN with sigaction(); returns a function that
 * puts the whole previous action back (Deno's handler has flags that
 * signal() would lose), or undefined where libc or sigaction() fails.
 */
function setIgnored(number: number): (() => void) | undefined {
  try {
    return withLibcSignal((libc) => {
      const ignore = new Uint8Array(SIGACTION_BYTES);
      // sa_handler comes first in the struct; an empty mask, no flags.
      new BigUint64Array(ignore.buffer, 0, 1)[0] = SIG_IGN;
      const previous = new Uint8Array(SIGACTION_BYTES);
      if (libc.sigaction(number, ignore, previous) !== 0) return undefined;
      return () => void libc.sigaction(number, previous, null);
    });
  } catch {
    return undefined; // no libc
  }
}

/**
 * Those of `signals` that this process ignores (SIG_IGN), which stay
 * ignored: a program started with a signal ignored (`nohup`'s SIGHUP, the
 * SIGINT and SIGQUIT of a shell's background job) should not be ended by
 * it, so one that listens for signals leaves such a one alone, as shells
 * and timeout(1) do. Call it first, before any signal listener is added:
 * Deno's registry replaces the action of a signal that gets one, and of
 * others (see {@linkcode ignoreSignals}), and would then end the process on
 * them. So every action is read first, and each signal found ignored is
 * then handed to the registry and set to SIG_IGN again. None where libc
 * cannot be opened.
 *
 * @example
 * ```ts
 * import { keepIgnored } from "./signal_actions.ts";
 *
 * const ignored = keepIgnored(["SIGHUP", "SIGINT"]);
 * if (!ignored.has("SIGINT")) Deno.addSignalListener("SIGINT", () => console.log("interrupted"));
 * ```
 */
export function keepIgnored(signals: readonly Deno.Signal[]): Set<Deno.Signal> {
  try {
    return withLibcSignal((libc) => {
      const action = new Uint8Array(SIGACTION_BYTES);
      const ignored = signals.filter((signal) =>
        // sa_handler comes first in the struct.
        libc.sigaction(signalNumber(signal), null, action) === 0 &&
        new BigUint64Array(action.buffer, 0, 1)[0] === SIG_IGN
      );
      return new Set(ignoreSignals(libc, ignored));
    });
  } catch {
    return new Set(); // no libc: every signal is listened for, as before
  }
}

/**
 * Ends this process by `signal`, once sbox has cleaned up: a shell then
 * sees sbox die of a Ctrl-C (the terminal's, passed on to the command, or
 * its own) and stops a loop, as for any program. The signal's action goes
 * back to the default first: Deno's handler stays installed once a listener
 * was bound, listeners gone or not, and would drop it. No core file, where
 * the default action would write one (SIGQUIT, SIGXCPU): a dump of Deno, a
 * few hundred MiB, would tell nothing of a sbox that did what it should.
 * Returns should that fail; the exit status says the same then.
 */
export function dieOf(signal: Deno.Signal): void {
  try {
    withLibcSignal((libc) => {
      // struct rlimit: soft and hard limits, zero.
      libc.setrlimit(RLIMIT_CORE, new BigUint64Array(2));
      libc.signal(signalNumber(signal), null); // SIG_DFL
      libc.raise(signalNumber(signal));
    });
  } catch {
    // no libc: the exit status tells the same
  }
}

/**
 * Stops this process by `signal` (SIGTSTP) as the kernel would without a
 * handler, and returns once it is continued (`fg`, `bg`, any SIGCONT), with
 * Deno's handler back in place. Returns at once when the kernel discards
 * the stop: in an orphaned process group (sbox exec'd by the shell that
 * leads the terminal's session) nobody would continue it. Returns false,
 * without stopping, where libc cannot be opened or the action not set.
 *
 * The action is saved and put back whole with sigaction(): Deno's handler
 * is installed with flags (SA_SIGINFO and SA_RESTART in Deno 2.9.6) that
 * signal() would lose.
 *
 * @example
 * ```ts
 * import { stopLikeDefault } from "./signal_actions.ts";
 *
 * Deno.addSignalListener("SIGTSTP", () => {
 *   // ... stop what this process runs ...
 *   stopLikeDefault("SIGTSTP");
 *   // ... continue it ...
 * });
 * ```
 */
export function stopLikeDefault(signal: Deno.Signal): boolean {
  const number = signalNumber(signal);
  try {
    return withLibcSignal((libc) => {
      const previous = new Uint8Array(SIGACTION_BYTES);
      // All zero: SIG_DFL, an empty mask, no flags.
      if (libc.sigaction(number, new Uint8Array(SIGACTION_BYTES), previous) !== 0) return false;
      try {
        libc.raise(number);
      } finally {
        libc.sigaction(number, previous, null);
      }
      return true;
    });
  } catch {
    return false; // no libc
  }
}
