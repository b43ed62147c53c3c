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
 * change because a line could not be shown. A host path's bytes that are
 * not UTF-8 show as `ls -b` shows them (`\376`), not as U+FFFD.
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
