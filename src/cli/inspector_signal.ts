/**
 * Signal actions set through libc, past Deno's signal registry: SIGUSR1
 * ignored, a signal's default action put back for sbox to die of it
 * (`dieOf`) or to stop on it (`stopLikeDefault`).
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

const LIBC_SIGNAL = {
  signal: { parameters: ["i32", "pointer"], result: "pointer" },
  sigaction: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  raise: { parameters: ["i32"], result: "i32" },
} as const;

/** Runs `use` with libc's signal(), sigaction() and raise(); throws where libc cannot be opened. */
function withLibcSignal<T>(use: (libc: Deno.DynamicLibrary<typeof LIBC_SIGNAL>["symbols"]) => T): T {
  const libc = Deno.dlopen("libc.so.6", LIBC_SIGNAL);
  try {
    return use(libc.symbols);
  } finally {
    libc.close();
  }
}

/**
 * Sets SIGUSR1 to SIG_IGN for the whole process. Throws an SboxError when it
 * cannot, so that sbox never runs with the inspector one signal away.
 *
 * Deno installs its own handler through its signal registry 500 ms after
 * start, and the registry calls sigaction() only for a signal it does not
 * handle yet: SIG_IGN set before that would simply be replaced. Adding a
 * listener first makes the registry take SIGUSR1 now, so the SIG_IGN set
 * after it stays. The container's processes do not inherit it: the helper
 * resets every signal to its default before it runs them.
 */
export function ignoreInspectorSignal(): void {
  const noop = () => {};
  Deno.addSignalListener("SIGUSR1", noop);
  Deno.removeSignalListener("SIGUSR1", noop);
  let previous: bigint;
  try {
    previous = withLibcSignal((libc) =>
      BigInt(
        Deno.UnsafePointer.value(libc.signal(signalNumber("SIGUSR1"), Deno.UnsafePointer.create(SIG_IGN))),
      )
    );
  } catch (err) {
    throw new SboxError(`cannot ignore SIGUSR1, on which Deno opens its inspector: ${err}`, {
      step: "signal",
      cause: err,
    });
  }
  if (previous === SIG_ERR) {
    throw new SboxError("cannot ignore SIGUSR1, on which Deno opens its inspector: signal() failed", {
      step: "signal",
    });
  }
}

/**
 * Ends this process by `signal`: a shell then sees sbox die of the
 * terminal's Ctrl-C as its command did, and stops a loop. The signal's
 * action goes back to the default first: Deno's handler stays installed
 * once a listener was bound, listeners gone or not, and would drop it.
 * Returns should that fail; the exit status says the same then.
 */
export function dieOf(signal: Deno.Signal): void {
  try {
    withLibcSignal((libc) => {
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
 * import { stopLikeDefault } from "./inspector_signal.ts";
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
