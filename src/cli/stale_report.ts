/**
 * The first thing sbox does: empty the `--report` file that an earlier run
 * left, before Deno loads the rest of sbox (tens of milliseconds, more
 * under load). A signal in that time ends sbox with its default action,
 * before any handler of sbox's is set, and a judge that reuses a report
 * path then read the earlier run's verdict (an `OK`) as this one's. Emptied,
 * it reads as `XX` (docs/cli.md). What Deno does before any code of sbox
 * runs is still a window that no code can close: a judge removes the file
 * before each run, or trusts a report only together with sbox's status.
 *
 * @module
 */

import { close, fstat, identityOf, O, readFile, tryOpen } from "../sys.ts";
import { exactArguments } from "./argv.ts";
import { reportPathOf, stdinPathsOf } from "./run_options.ts";

/**
 * Empties the regular file that the `sbox run` command line `argv`
 * (`Deno.args`) names with `--report` (as {@linkcode reportPathOf} finds
 * it), as sbox's own open of it would a moment later; never throws, and
 * does nothing it would not do: nothing without `--allow-ffi` or the helper
 * library, nothing to stderr (`-`), to a name whose bytes are not found
 * (Deno's U+FFFD for bytes that are not UTF-8, which sbox reads from
 * /proc/self/cmdline: see `exactArguments`), to a file that does not exist
 * (no stale report) or is not a regular file (a FIFO's reader would see the
 * end of its input when this open closed), nor to a file given as
 * `--stdin` (sbox refuses that report, and must not empty the input) or
 * the file of sbox's own stdout or stderr (the same).
 */
export function emptyStaleReport(argv: readonly string[]): void {
  if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") return;
  if (reportPathOf(argv) === undefined) return;
  try {
    // Read only where Deno put a U+FFFD: the other arguments are exact.
    const exact = argv.some((arg) => arg.includes("\ufffd"))
      ? exactArguments(argv, readFile("/proc/self/cmdline"))
      : { args: argv, inexact: -1 };
    if (exact.inexact >= 0) return;
    const args = exact.args;
    const path = reportPathOf(args);
    if (path === undefined || path === "-") return;
    // O_PATH: neither a FIFO nor a device is opened, and nothing is created.
    const found = tryOpen(path, O.PATH);
    if (found < 0) return;
    try {
      const stat = fstat(found);
      if (!stat?.isFile) return;
      const identity = stat.identity;
      if (stdinPathsOf(args).some((stdin) => identityOf(stdin) === identity)) return;
      // Nor sbox's own stdout or stderr, which main refuses as the report
      // (`--report /dev/stdout > out`): emptied, it would lose what it held.
      if ([1, 2].some((fd) => fstat(fd)?.identity === identity)) return;
      // The very file looked at, whatever its path leads to now.
      close(tryOpen(`/proc/self/fd/${found}`, O.WRONLY | O.TRUNC | O.NONBLOCK | O.NOCTTY));
    } finally {
      close(found);
    }
  } catch {
    // The helper library does not load: sbox's main says so, and writes no report.
  }
}
