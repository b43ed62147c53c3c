/**
 * sbox's own lines on stderr, `sbox: ...`: a failure, a warning, what
 * `--verbose` says.
 *
 * @module
 */

import { printable } from "../cstring.ts";

/**
 * Prints `sbox: LINE` on stderr. A write that fails (stderr on a full disk
 * or `/dev/full`, over a file-size rlimit) is dropped: the line is for a
 * person, while a judge reads the report and the exit status, which must not
 * change because a line could not be shown. Every line is one line: a
 * control character (a newline in a host path or in an unknown option's
 * name) shows as `ls -b` shows it (`\n`, `\033`), and so do a host path's
 * bytes that are not UTF-8 (`\376`, not U+FFFD): see
 * {@linkcode printable}, which every line passes through here.
 *
 * @example
 * ```ts
 * import { say } from "./messages.ts";
 *
 * say("warning: no subordinate ids"); // "sbox: warning: no subordinate ids", or nothing
 * ```
 */
export function say(line: string): void {
  try {
    console.error(`sbox: ${printable(line)}`);
  } catch {
    // Nowhere left to say it.
  }
}

/**
 * What a caught value says: an Error's message, else the value as a
 * string (a `throw "text"`), for a line of {@linkcode say}'s.
 *
 * @example
 * ```ts
 * import { messageOf } from "./messages.ts";
 *
 * messageOf(new Error("cannot open /x")); // "cannot open /x"
 * messageOf("text"); // "text"
 * ```
 */
export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
