/**
 * The terminal on sbox's stdin, when there is one: its modes, saved before
 * the run and put back after it. A full-screen program in the container
 * (vi, less, top) sets the terminal raw and restores it only when it ends
 * its own way; killed with the container (Ctrl-C passed on, a time limit,
 * SIGTERM to sbox), it left the user's shell without echo or line editing,
 * and sbox, exiting normally, got no repair from that shell either.
 *
 * @module
 */

/** struct termios of glibc is 60 bytes; room to spare. */
const TERMIOS_BYTES = 64;
/** tcsetattr's "now". */
const TCSANOW = 0;

/**
 * Saves the modes of the terminal on fd 0 and returns what puts them back,
 * or undefined where stdin is no terminal (or libc cannot be opened: then
 * the run goes on as before, without the repair).
 *
 * @example
 * ```ts
 * import { saveTerminalModes } from "./terminal.ts";
 *
 * const restore = saveTerminalModes();
 * try {
 *   // ... the run ...
 * } finally {
 *   restore?.();
 * }
 * ```
 */
export function saveTerminalModes(): (() => void) | undefined {
  if (!Deno.stdin.isTerminal()) return undefined;
  let libc;
  try {
    libc = Deno.dlopen(
      "libc.so.6",
      {
        tcgetattr: { parameters: ["i32", "buffer"], result: "i32" },
        tcsetattr: { parameters: ["i32", "i32", "buffer"], result: "i32" },
        tcgetpgrp: { parameters: ["i32"], result: "i32" },
        getpgrp: { parameters: [], result: "i32" },
      } as const,
    );
  } catch {
    return undefined;
  }
  const saved = new Uint8Array(TERMIOS_BYTES);
  if (libc.symbols.tcgetattr(0, saved) !== 0) {
    libc.close();
    return undefined;
  }
  const lib = libc;
  return () => {
    // Only in the foreground: from the background the kernel would stop
    // sbox (SIGTTOU) rather than let it change the terminal.
    if (lib.symbols.tcgetpgrp(0) === lib.symbols.getpgrp()) lib.symbols.tcsetattr(0, TCSANOW, saved);
    lib.close();
  };
}
