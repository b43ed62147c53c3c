/**
 * The library's errors as `sbox run`'s: the library names its own options
 * (`capAdd`, `seccomp`), which the command line does not have, and a
 * failure of what a flag asked for (opening its file, writing its limit)
 * needs the flag named. Both keep what a program reads besides the message:
 * the errno, and the library's error as the cause.
 *
 * @module
 */

import { errnoNumber } from "../errno.ts";
import { SboxError, type Step } from "../error.ts";
import { stat } from "../sys.ts";
import { messageOf } from "./messages.ts";

/**
 * `err` with the library's option renamed to the command line's flag that
 * `flags` maps it to: `invalid option capAdd: PROBLEM` becomes `invalid
 * option --cap-add: PROBLEM`, and with `subject` (what the flag named, such
 * as a file) `invalid option --seccomp: SUBJECT: PROBLEM`. The errno stays,
 * and `err` is the cause. Any other error (another step, an option `flags`
 * lacks) is `err` itself, to be thrown as it is.
 *
 * @example
 * ```ts
 * import { SboxError } from "../error.ts";
 * import { asCliOption } from "./option_errors.ts";
 *
 * const library = SboxError.invalidOption("seccomp", "rules must be an array");
 * const renamed = asCliOption(library, { seccomp: "--seccomp" }, "policy.json") as SboxError;
 * console.log(renamed.message); // invalid option --seccomp: policy.json: rules must be an array
 * ```
 */
export function asCliOption(
  err: unknown,
  flags: Readonly<Record<string, string>>,
  subject?: string,
): unknown {
  if (!(err instanceof SboxError) || err.option === undefined || !Object.hasOwn(flags, err.option)) {
    return err;
  }
  const problem = subject === undefined ? err.problem! : `${subject}: ${err.problem}`;
  return SboxError.invalidOption(flags[err.option], problem, { errno: err.errnoNumber, cause: err });
}

/**
 * `err`, a failure of what `what` asked for (a flag such as `--stdout`, or
 * one of sbox's own fds), as `WHAT: MESSAGE` of step `step`, with `err`'s
 * errno and `err` as the cause.
 */
export function failureOf(what: string, err: unknown, step: Step): SboxError {
  const message = messageOf(err);
  const errno = err instanceof SboxError ? err.errnoNumber : undefined;
  return new SboxError(`${what}: ${message}`, { step, errno, cause: err });
}

/**
 * `err`, what makes `flag`'s value bad (its file cannot be read, its cgroup
 * is on no cgroup2 mount), as `invalid option FLAG: MESSAGE`, with `err`'s
 * errno and `err` as the cause.
 */
export function invalidFlag(flag: string, err: unknown): SboxError {
  const message = messageOf(err);
  const errno = err instanceof SboxError ? err.errnoNumber : undefined;
  return SboxError.invalidOption(flag, message, { errno, cause: err });
}

/**
 * `err`, the failure of an open of `path` for writing without waiting
 * (O_NONBLOCK: `--stdout`, `--stderr`, `--report`), with what ENXIO means
 * there when `path` is a FIFO: no process has it open for reading. A
 * shell's `> fifo` would wait for one; sbox does not (a wait in open()
 * holds the thread that no signal reaches), and a bare "No such device or
 * address" left the user puzzled. Any other error is `err` itself.
 *
 * @example
 * ```ts
 * import { noReaderExplained } from "./option_errors.ts";
 * import { open, O } from "../sys.ts";
 *
 * try {
 *   open("out.fifo", O.WRONLY | O.NONBLOCK);
 * } catch (err) {
 *   throw noReaderExplained(err, "out.fifo");
 * }
 * ```
 */
export function noReaderExplained(err: unknown, path: string): unknown {
  if (!(err instanceof SboxError) || err.errnoNumber !== errnoNumber("ENXIO")) return err;
  let fifo = false;
  try {
    fifo = ((stat(path)?.mode ?? 0) & 0o170000) === 0o010000; // S_IFIFO
  } catch {
    // the open's error says what there is to say
  }
  if (!fifo) return err;
  return new SboxError(
    `${err.message}: the FIFO has no reader, and sbox does not wait for one: start the reader first, then sbox`,
    { step: err.step, errno: err.errnoNumber, cause: err },
  );
}
