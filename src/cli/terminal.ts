/**
 * What the container may change of the stdio it shares with sbox's caller,
 * saved before the run and put back after it. The container's stdio are
 * sbox's own fds: the same open files as the shell's, and, on a terminal,
 * the same terminal. A full-screen program in the container (vi, less, top)
 * sets the terminal raw and restores it only when it ends its own way;
 * killed with the container (Ctrl-C passed on, a time limit, SIGTERM to
 * sbox), it left the user's shell without echo or line editing, and sbox,
 * exiting normally, got no repair from that shell either. An untrusted
 * command may do worse on purpose: set O_NONBLOCK on the shared open file
 * (the shell's next reader gets EAGAIN), make the terminal exclusive
 * (TIOCEXCL: no one else may open it), stop its output (Ctrl-S's
 * TCOOFF), or give it another line discipline (TIOCSETD, which asks for no
 * privilege: N_NULL leaves a terminal that shows nothing and reads nothing,
 * which `stty sane` typed into it cannot repair).
 *
 * @module
 */

import { type LibcSymbols, openLibc } from "../libc.ts";
import { fdFlags, O, setFdFlags } from "../sys.ts";

/** struct termios of glibc is 60 bytes; room to spare. */
const TERMIOS_BYTES = 64;
/** tcsetattr's "now". */
const TCSANOW = 0;
/** tcflow's "restart output". */
const TCOON = 1;
/** ioctl requests: whether the terminal is exclusive, and make it not. */
const TIOCGEXCL = 0x80045440;
const TIOCNXCL = 0x540d;
/** pthread_sigmask's "add these" and "set this" ({@linkcode withSigttouBlocked}). */
const SIG_BLOCK = 0;
const SIG_SETMASK = 2;
/** SIGTTOU's number, the same on x86-64 and aarch64. */
const SIGTTOU = 22;
/** glibc's sigset_t: 1024 bits. */
const SIGSET_BYTES = 128;
/** ioctl requests: the terminal's line discipline, and set it. */
const TIOCGETD = 0x5424;
const TIOCSETD = 0x5423;
/** The status flags a command could change on an open file it shares, that a program would notice. */
const SHARED_FLAGS = O.NONBLOCK | O.APPEND;

/**
 * Saves the status flags of fds 0-2 (O_NONBLOCK, O_APPEND) and, where one of
 * them is a terminal, its line discipline, modes and exclusive mode; returns what puts them
 * back. The terminal's part is left out where libc cannot be opened; the
 * run goes on without it.
 *
 * @example
 * ```ts
 * import { saveCallerStdio } from "./terminal.ts";
 *
 * const restore = saveCallerStdio();
 * try {
 *   // ... the run ...
 * } finally {
 *   restore();
 * }
 * ```
 */
export function saveCallerStdio(): () => void {
  const flags = [0, 1, 2].map((fd) => {
    try {
      return fdFlags(fd) & SHARED_FLAGS;
    } catch {
      return undefined; // closed
    }
  });
  const restoreTerminal = saveTerminal();
  return () => {
    flags.forEach((saved, fd) => {
      if (saved === undefined) return;
      try {
        const now = fdFlags(fd);
        if ((now & SHARED_FLAGS) !== saved) {
          setFdFlags(fd, (now & ~SHARED_FLAGS) | saved);
        }
      } catch {
        // closed meanwhile: nothing to put back
      }
    });
    restoreTerminal?.();
  };
}

/** The terminal part of {@linkcode saveCallerStdio}: undefined where none of fds 0-2 is a terminal. */
function saveTerminal(): (() => void) | undefined {
  const fd = [Deno.stdin, Deno.stdout, Deno.stderr].findIndex((file) => file.isTerminal());
  if (fd < 0) return undefined;
  let lib: LibcSymbols<"terminal">;
  try {
    lib = openLibc("terminal");
  } catch {
    return undefined;
  }
  const saved = new Uint8Array(TERMIOS_BYTES);
  const exclusive = new Int32Array(1);
  const discipline = new Int32Array(1);
  if (
    lib.tcgetattr(fd, saved) !== 0 || lib.ioctl(fd, BigInt(TIOCGETD), new Uint8Array(discipline.buffer)) !== 0
  ) {
    return undefined;
  }
  const wasExclusive = lib.ioctl(fd, BigInt(TIOCGEXCL), new Uint8Array(exclusive.buffer)) === 0 &&
    exclusive[0] !== 0;
  return () => {
    // First: a new line discipline starts from the terminal's modes as they
    // are, which the tcsetattr below then sets.
    // From the background too, unlike the modes: a line discipline the
    // container changed (N_NULL) leaves a terminal that no one can repair.
    const now = new Int32Array(1);
    if (lib.ioctl(fd, BigInt(TIOCGETD), new Uint8Array(now.buffer)) === 0 && now[0] !== discipline[0]) {
      withSigttouBlocked(lib, () => lib.ioctl(fd, BigInt(TIOCSETD), new Uint8Array(discipline.buffer)));
    }
    // Only in the foreground: from the background the kernel would stop
    // sbox (SIGTTOU) rather than let it change the terminal.
    if (lib.tcgetpgrp(fd) === lib.getpgrp()) {
      lib.tcsetattr(fd, TCSANOW, saved);
      lib.tcflow(fd, TCOON);
    }
    // Anyone may clear the exclusive mode of a terminal they hold.
    if (!wasExclusive) lib.ioctl(fd, BigInt(TIOCNXCL), null);
  };
}

/**
 * Runs `change` (a change of the terminal) with SIGTTOU blocked on this
 * thread: from a background process group the kernel then makes the change
 * rather than stop sbox with SIGTTOU (tty_check_change lets a process that
 * blocks or ignores it through), which would leave a background run stopped
 * at its end until the user's `fg`.
 */
function withSigttouBlocked(
  lib: LibcSymbols<"terminal">,
  change: () => void,
): void {
  const block = new Uint8Array(SIGSET_BYTES);
  block[(SIGTTOU - 1) >> 3] |= 1 << ((SIGTTOU - 1) & 7);
  const old = new Uint8Array(SIGSET_BYTES);
  if (lib.pthread_sigmask(SIG_BLOCK, block, old) !== 0) return;
  try {
    change();
  } finally {
    lib.pthread_sigmask(SIG_SETMASK, old, null);
  }
}
