/**
 * Signal names and numbers (the same on x86_64 and aarch64).
 *
 * @module
 */

import { SboxError } from "./error.ts";
import { show } from "./options.ts";

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

/**
 * Other names of the signals above: Deno.Signal has SIGPOLL and SIGUNUSED,
 * and glibc SIGIOT too.
 */
const ALIASES: Readonly<Record<string, number>> = { SIGIOT: 6, SIGPOLL: 29, SIGUNUSED: 31 };
/** The real-time signals: {@linkcode signalName} names them `SIGRT32` to `SIGRT64`. */
const RT_MIN = 32, RT_MAX = 64;

/**
 * A signal given by name (`"SIGKILL"`, or `"SIGRT34"` as a status names a
 * real-time signal) or number (`9`).
 */
export type SignalLike = Deno.Signal | "SIGIOT" | `SIGRT${number}` | number;

/**
 * The number of a signal: a number from 1 to 64, or a Linux signal's name,
 * every name {@linkcode signalName} gives included. Throws an SboxError
 * naming anything else, e.g. Deno.Signal's "SIGEMT", which Linux has not.
 */
export function signalNumber(signal: SignalLike): number {
  if (typeof signal === "number") {
    if (Number.isInteger(signal) && signal > 0 && signal <= RT_MAX) return signal;
  } else if (typeof signal === "string") {
    const n = NAMES.indexOf(signal as typeof NAMES[number]);
    if (n > 0) return n;
    if (Object.hasOwn(ALIASES, signal)) return ALIASES[signal];
    const rt = Number(/^SIGRT(\d+)$/.exec(signal)?.[1]);
    // Exactly as signalName writes it: no "SIGRT034".
    if (rt >= RT_MIN && rt <= RT_MAX && signalName(rt) === signal) return rt;
  }
  throw SboxError.invalidOption(
    "signal",
    `must be a Linux signal's name ("SIGTERM", "SIGRT34") or number (1 to 64), got ${show(signal)}`,
  );
}

/** The name of a signal number, e.g. `signalName(9) === "SIGKILL"`, `signalName(34) === "SIGRT34"`. */
export function signalName(signal: number): string {
  return NAMES[signal] ?? `SIGRT${signal}`;
}
