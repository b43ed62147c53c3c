#!/usr/bin/env -S deno run --allow-ffi
/**
 * The sbox command line: `deno run --allow-ffi sbox.ts run [OPTIONS] [--] COMMAND [ARG...]`.
 * See `sbox --help` and docs/cli.md.
 *
 * @example Run a command in a container
 * ```sh
 * deno run --allow-ffi sbox.ts run --memory 256M --time 2s --report - -- "$PWD/solution"
 * ```
 *
 * @module
 */

import meta from "./deno.json" with { type: "json" };
// Small on purpose: the rest of sbox loads after it has emptied a stale report.
import { emptyStaleReport } from "./src/cli/stale_report.ts";

/**
 * Runs the sbox command line `argv` (the arguments after the program name)
 * and resolves to the exit status; prints to stdout and stderr. With
 * `fromCommandLine` (`argv` is `Deno.args`), an argument that is not valid
 * UTF-8 on the command line is passed on with its bytes as they are, read
 * from /proc/self/cmdline, instead of with Deno's U+FFFD.
 */
export async function main(argv: string[], version: string, fromCommandLine = false): Promise<number> {
  // Loaded here, not imported above: the graph takes tens of milliseconds
  // to load, in which a signal would leave an earlier run's report as it was.
  const cli = await import("./src/cli/main.ts");
  return await cli.main(argv, version, fromCommandLine);
}

if (import.meta.main) {
  emptyStaleReport(Deno.args);
  const cli = await import("./src/cli/main.ts");
  // The process exits as main returns: the run's signal listeners stay until then.
  Deno.exit(await cli.mainThen(Deno.args, meta.version, true, true));
}
