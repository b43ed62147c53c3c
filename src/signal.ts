/**
 * Signal names and numbers (the same on x86_64 and aarch64).
 *
 * @module
 */

const NAMES = [
  "",
  "SIGHUP",
  "SIGINT",
  "SIGQUIT",
  "SIGILL",
  "SIGTRAP",
  "SIGABRT",
  "SIGBUS",
  "SIGFPE",
  "SIGKILL",
  "SIGUSR1",
  "SIGSEGV",
  "SIGUSR2",
  "SIGPIPE",
  "SIGALRM",
  "SIGTERM",
  "SIGSTKFLT",
  "SIGCHLD",
  "SIGCONT",
  "SIGSTOP",
  "SIGTSTP",
  "SIGTTIN",
  "SIGTTOU",
  "SIGURG",
  "SIGXCPU",
  "SIGXFSZ",
  "SIGVTALRM",
  "SIGPROF",
  "SIGWINCH",
  "SIGIO",
  "SIGPWR",
  "SIGSYS",
] as const;

/** A signal given by name (`"SIGKILL"`) or number (`9`). */
export type SignalLike = Deno.Signal | number;

/** The number of a signal; throws a RangeError for an unknown one. */
export function signalNumber(signal: SignalLike): number {
  if (typeof signal === "number") {
    if (Number.isInteger(signal) && signal > 0 && signal <= 64) return signal;
  } else {
    const n = NAMES.indexOf(signal as typeof NAMES[number]);
    if (n > 0) return n;
  }
  throw new RangeError(`unknown signal ${signal}`);
}

/** The name of a signal number, e.g. `signalName(9) === "SIGKILL"`. */
export function signalName(signal: number): string {
  return NAMES[signal] ?? `SIGRT${signal}`;
}
