/**
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
    const libc = Deno.dlopen("libc.so.6", {
      signal: { parameters: ["i32", "pointer"], result: "pointer" },
    });
    try {
      const result = libc.symbols.signal(signalNumber("SIGUSR1"), Deno.UnsafePointer.create(SIG_IGN));
      previous = BigInt(Deno.UnsafePointer.value(result));
    } finally {
      libc.close();
    }
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
