/**
 * The one error type of sbox: every failure, from bad options to a failed
 * mount inside the child, is an {@linkcode SboxError}.
 *
 * @module
 */

import { describeErrno, errnoName, errnoNumber } from "./errno.ts";
import type { OpName } from "./program.ts";

/**
 * What an EMFILE means for sbox, appended to its message wherever it comes
 * from (a pipe, an open, clone3's pidfd): many containers at once run into
 * it, and "Too many open files" alone says neither whose limit it is nor
 * what counts. The counts are of this process's fds, as measured: a
 * running init holds its pidfd and the fd of its mount namespace, with a
 * reaper its status pipe, and one pipe end per piped stdio stream; an
 * exec'd process its pidfd and its pipe ends (until they are read to the
 * end or closed); a launch under way its stdio pipes' both ends, a cgroup
 * fd, its result and sync pipes and a pidfd: 12 at most.
 */
export const TOO_MANY_OPEN_FILES_HINT: string = " (this process's limit of open files, RLIMIT_NOFILE, " +
  "`ulimit -n`, is reached: a running container holds 2 to 6 fds, 2 and 1 more with a reaper and 1 per piped " +
  "stdin, stdout or stderr; each process exec'd into it 1 to 4 more; a start or exec under way up to 12 while " +
  "it lasts)";

/**
 * What failed, as {@linkcode SboxError.step} names it: an op of the setup
 * program that failed in the child (an {@linkcode OpName}: `"exec"`,
 * `"mount"`, ...), or one of the other values, each listed with its meaning
 * in README.md ("The library", below the table of exports). Some are syscall
 * names (`"open"`, `"read"`, ...): the low-level calls of sbox's own process.
 *
 * @example Switching on the step, with the compiler checking each name
 * ```ts
 * import type { Step } from "./error.ts";
 *
 * function kind(step: Step): string {
 *   switch (step) {
 *     case "options":
 *       return "a bad option, refused before any process existed";
 *     case "exec":
 *       return "the command could not be executed";
 *     default:
 *       return "the setup failed";
 *   }
 * }
 * ```
 */
export type Step =
  | OpName
  | "options"
  | "destroyed"
  | "clone"
  | "cgroup"
  | "network"
  | "user"
  | "output"
  | "ffi"
  | "result"
  | "run"
  | "scratch"
  | "report"
  | "cleanup"
  | "signal"
  | "lock"
  | "open"
  | "read"
  | "write"
  | "stat"
  | "readlink"
  | "getdents"
  | "fcntl"
  | "pipe"
  | "epoll"
  | "kill"
  | "waitid"
  | "pidfd_open"
  | "chown"
  | "chmod"
  | "open_tree"
  | "mount_setattr";

/** Options of {@linkcode SboxError}. */
export interface SboxErrorOptions {
  /** The setup step or operation that failed, e.g. `"exec"`, `"mount"`, `"options"`. */
  step: Step;
  /** The errno number, when the kernel reported the failure. */
  errno?: number;
  /** The underlying error, if any. */
  cause?: unknown;
  /**
   * The option refused, for an error of step `"options"`: see
   * {@linkcode SboxError.option}. {@linkcode SboxError.invalidOption} sets
   * it, with `problem`, and the message from both.
   */
  option?: string;
  /** What was wrong with `option`: see {@linkcode SboxError.problem}. */
  problem?: string;
}

/**
 * An error raised by sbox. `step` names what failed; `errno` is the errno
 * name (`"ENOENT"`) when the kernel reported it, and `errnoNumber` its value.
 *
 * @example Telling a missing program from other failures
 * ```ts
 * import { SboxError } from "./error.ts";
 *
 * function describe(err: unknown): string {
 *   if (err instanceof SboxError && err.step === "exec" && err.errno === "ENOENT") {
 *     return "command not found";
 *   }
 *   return String(err);
 * }
 * ```
 */
export class SboxError extends Error {
  /** The setup step or operation that failed: see {@linkcode Step}. */
  readonly step: Step;
  /** The errno name, e.g. `"ENOENT"`, or `undefined` when no syscall failed. */
  readonly errno: string | undefined;
  /** The errno number, or `undefined`. */
  readonly errnoNumber: number | undefined;
  /**
   * The option an error of step `"options"` refused, as the caller named it
   * (`"capAdd"`, `"mounts[2]"`, `"BindMount"`), or `undefined`: an error of
   * another step, or one of the errors of `"options"` that name no one
   * option (too many steps of a setup program, a command line's usage).
   * A caller that has options of its own reads this and
   * {@linkcode SboxError.problem}, not the message, to name its own: `sbox
   * run` says `--cap-add` where the library says `capAdd`.
   */
  readonly option: string | undefined;
  /**
   * What was wrong with {@linkcode SboxError.option}: the message's part
   * after `invalid option <option>: `. `undefined` where `option` is, but
   * in a `TooManyStepsError`: its refusal without the library's advice.
   */
  readonly problem: string | undefined;

  /** Creates an error; `message` should name the thing that failed. */
  constructor(message: string, options: SboxErrorOptions) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "SboxError";
    this.step = options.step;
    this.errnoNumber = options.errno;
    this.errno = options.errno === undefined ? undefined : errnoName(options.errno);
    this.option = options.option;
    this.problem = options.problem;
  }

  /**
   * An error for a failed syscall: `"<what>: ENOENT (No such file or
   * directory)"`. EMFILE says which limit: many containers at once run into
   * it, and "Too many open files" alone does not say that it is this
   * process's, nor what counts.
   */
  static fromErrno(step: Step, what: string, errno: number): SboxError {
    const hint = errno === errnoNumber("EMFILE") ? TOO_MANY_OPEN_FILES_HINT : "";
    return new SboxError(`${what}: ${describeErrno(errno)}${hint}`, { step, errno });
  }

  /**
   * An error for an invalid option, raised before any process exists:
   * `"invalid option <option>: <problem>"`, step `"options"`, with
   * {@linkcode SboxError.option} and {@linkcode SboxError.problem} set.
   * `errno` and `cause` where a failure of its own made the option bad (a
   * file that cannot be read), or a renamed error had them.
   *
   * @example Naming an option of one's own for a library's refusal
   * ```ts
   * import { SboxError } from "./error.ts";
   *
   * const refused = SboxError.invalidOption("capAdd", 'unknown capability "NET_RAWW"');
   * const renamed = SboxError.invalidOption(`--cap-add`, refused.problem!, { cause: refused });
   * console.log(renamed.message); // invalid option --cap-add: unknown capability "NET_RAWW"
   * ```
   */
  static invalidOption(
    option: string,
    problem: string,
    options: { errno?: number; cause?: unknown } = {},
  ): SboxError {
    return new SboxError(`invalid option ${option}: ${problem}`, {
      ...options,
      step: "options",
      option,
      problem,
    });
  }
}

/**
 * The most characters of a value that {@linkcode show} puts in a message.
 * A message names what was wrong, and the start of a value shows which it
 * was: a message of a megabyte, for a megabyte of rootfs or an array of
 * 100,000 ids, would reach a log whole, or a terminal.
 */
export const SHOWN_LENGTH = 200;

/**
 * A caller's value for a message: JSON where that shows it (a string
 * quoted, so that a newline in it stays on the message's one line), else
 * what JSON would hide or throw on: NaN and Infinity (JSON's null), a
 * BigInt as `1n` (JSON.stringify throws "Do not know how to serialize a
 * BigInt", and that TypeError would be the caller's error instead of the
 * one naming the option), a symbol, a function, undefined. At most
 * {@linkcode SHOWN_LENGTH} characters of it, then how long it was:
 * `"aaaa... (a string of 1000000 characters)`,
 * `["x","x",... (an array of 100000 entries)`.
 */
export function show(value: unknown): string {
  if (typeof value === "number") return String(value);
  if (typeof value === "function") return "a function";
  if (typeof value === "string") {
    // Only the start is turned into JSON: not all of a long string.
    const json = JSON.stringify(value.length > SHOWN_LENGTH ? value.slice(0, SHOWN_LENGTH) : value);
    if (value.length <= SHOWN_LENGTH && json.length <= SHOWN_LENGTH + 2) return json;
    // Without the closing quote: the string goes on.
    return `${startOf(json.slice(0, -1), SHOWN_LENGTH + 1)}... (a string of ${value.length} characters)`;
  }
  let text: string | undefined;
  let what: string | undefined;
  if (typeof value === "bigint") {
    text = `${value}n`;
    what = `a BigInt of ${String(value < 0n ? -value : value).length} digits`;
  } else {
    try {
      text = JSON.stringify(value);
      what = `${text?.length} characters as JSON`;
    } catch {
      // A BigInt inside an object, or a cycle: String() below.
    }
    if (text === undefined) {
      try {
        text = String(value);
        what = `${text.length} characters`;
      } catch {
        return "an object"; // no toString: one without a prototype
      }
    }
    if (Array.isArray(value)) what = `an array of ${value.length} entries`;
  }
  return text.length <= SHOWN_LENGTH ? text : `${startOf(text, SHOWN_LENGTH)}... (${what})`;
}

/**
 * The start of `text` (a value as {@linkcode show} shows it), at most
 * `length` characters long. The cut splits neither a UTF-16 pair nor a
 * JSON escape (`\n`, `\u00e9`), which would show as another character.
 */
function startOf(text: string, length: number): string {
  let end = Math.min(text.length, length);
  // The last backslash before the cut starts an escape where the run of
  // backslashes it ends is odd (two are one escaped backslash); an escape
  // is at most 6 characters long (\uXXXX).
  for (let i = end - 1; i >= Math.max(0, end - 6); i--) {
    if (text[i] !== "\\") continue;
    let run = 1;
    while (i - run >= 0 && text[i - run] === "\\") run++;
    if (run % 2 === 1 && i + (text[i + 1] === "u" ? 6 : 2) > end) end = i;
    break;
  }
  const last = text.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end--;
  return text.slice(0, end);
}
