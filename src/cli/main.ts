/**
 * `sbox`'s entry point, apart from sbox.ts so that it can be tested and
 * embedded: parses the command line, shows help or runs, prints each
 * failure as one line `sbox: ...` on stderr and returns the exit status.
 *
 * @module
 */

import { readFile } from "../sys.ts";
import { parseCommandLine, reportPathOf, type RunOptions } from "./args.ts";
import { inexactArgument } from "./argv.ts";
import { mainHelp, runHelp } from "./help.ts";
import { ignoreInspectorSignal } from "./inspector_signal.ts";
import { failedReport, ReportWriter } from "./report.ts";
import { runContainer } from "./run.ts";
import { refuseStdinAsOutput } from "./stdio.ts";

/** sbox's exit status when it fails itself (docker and podman use the same). */
export const SBOX_FAILED = 125;

const NEEDS_FFI = "--allow-ffi is needed (and nothing else): run `deno run --allow-ffi sbox.ts run ...`";

function printError(message: string): void {
  console.error(`sbox: ${message}`);
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Runs the sbox command line `argv` (the arguments after the program name)
 * and resolves to the exit status; prints to stdout and stderr. With
 * `fromCommandLine` (sbox.ts: `argv` is `Deno.args`), an argument that is
 * not valid UTF-8 on the command line is refused instead of passed on
 * changed.
 */
export async function main(argv: string[], version: string, fromCommandLine = false): Promise<number> {
  const ffi = Deno.permissions.querySync({ name: "ffi" }).state === "granted";
  // A judge reads the report, not sbox's stderr: where the command line
  // names a report file, a failure to parse it still writes XX there.
  const failed = (message: string): number => {
    printError(message);
    const path = reportPathOf(argv);
    // U+FFFD: the name is not the one given (see inexactArgument).
    if (ffi && path !== undefined && !path.includes("\ufffd")) {
      try {
        ReportWriter.open(path).write(failedReport());
      } catch (err) {
        printError(`--report: ${messageOf(err)}`);
      }
    }
    return SBOX_FAILED;
  };
  if (fromCommandLine && ffi) {
    const index = inexactArgument(argv, readFile("/proc/self/cmdline"));
    if (index >= 0) {
      return failed(
        `argument ${index + 1} (${JSON.stringify(argv[index])}) is not valid UTF-8: ` +
          "sbox passes arguments and variables on as UTF-8 text",
      );
    }
  }
  let invocation;
  try {
    invocation = parseCommandLine(argv);
  } catch (err) {
    return failed(messageOf(err));
  }
  switch (invocation.kind) {
    case "help":
      console.log(invocation.topic === "run" ? runHelp() : mainHelp(version));
      return 0;
    case "version":
      console.log(`sbox ${version}`);
      return 0;
    case "run":
      return await run(invocation.options);
  }
}

async function run(options: RunOptions): Promise<number> {
  // Without the permission Deno would ask on a terminal, or fail deep inside;
  // say at once what is needed instead.
  if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") {
    printError(NEEDS_FFI);
    return SBOX_FAILED;
  }
  // First, before anything exists: SIGUSR1 would open Deno's inspector.
  try {
    ignoreInspectorSignal();
  } catch (err) {
    printError(messageOf(err));
    return SBOX_FAILED;
  }
  let report: ReportWriter | undefined;
  try {
    // Before the report's open truncates it: it may be the input.
    refuseStdinAsOutput(options.stdin, [["--report", options.report]]);
    if (options.report !== undefined) report = ReportWriter.open(options.report);
  } catch (err) {
    printError(`--report: ${messageOf(err)}`);
    return SBOX_FAILED;
  }
  // SIGXFSZ (sbox run under a file-size rlimit) would kill sbox on its
  // first oversized write, the report's, with the run's clean-up done but no
  // word said; with a listener the write fails with EFBIG and says so. A
  // listener, not SIG_IGN: the command's processes start with it at its default.
  const ignore = () => {};
  Deno.addSignalListener("SIGXFSZ", ignore);
  try {
    const result = await runContainer(options);
    for (const message of result.messages) printError(message);
    try {
      report?.write(result.report);
    } catch (err) {
      printError(messageOf(err));
      return SBOX_FAILED;
    }
    return result.exitStatus;
  } finally {
    Deno.removeSignalListener("SIGXFSZ", ignore);
  }
}
