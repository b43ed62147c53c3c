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
import { dieOf, ignoreInspectorSignal } from "./inspector_signal.ts";
import { failedReport, ReportWriter, type Tampering } from "./report.ts";
import { runContainer, type RunResult } from "./run.ts";
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
  // Set when the helper library cannot be opened: see below.
  let noHelper: string | undefined;
  // A judge reads the report, not sbox's stderr: where the command line
  // names a report file, a failure to parse it still writes XX there.
  const failed = (message: string): number => {
    printError(message);
    const path = reportPathOf(argv);
    // U+FFFD: the name is not the one given (see inexactArgument).
    if (ffi && path !== undefined && !path.includes("\ufffd")) {
      // sbox writes files through the helper: the line above said why not.
      if (noHelper !== undefined) {
        printError(`--report: no report written to ${path}`);
        return SBOX_FAILED;
      }
      try {
        ReportWriter.open(path).write(failedReport());
      } catch (err) {
        printError(`--report: ${messageOf(err)}`);
      }
    }
    return SBOX_FAILED;
  };
  // The check reads through the helper library: where that cannot be
  // opened (not built, from another version), help and version still work,
  // and a run fails with what to do.
  if (fromCommandLine && ffi) {
    let cmdline: Uint8Array | undefined;
    try {
      cmdline = readFile("/proc/self/cmdline");
    } catch (err) {
      noHelper = messageOf(err);
    }
    const index = cmdline ? inexactArgument(argv, cmdline) : -1;
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
      if (noHelper !== undefined) return failed(noHelper);
      try {
        return await run(invocation.options);
      } catch (err) {
        // run() says what failed and returns 125 itself; this is for what
        // it did not foresee, which would otherwise end Deno with a trace.
        return failed(messageOf(err));
      }
  }
}

/**
 * A run whose report file was tampered with (the command can, where the file
 * lies in a read-write --bind): its figures are sbox's own, but a judge or a
 * CI that reads that file must not take the verdict for the command's. So
 * the run is XX, with status 125 and a line that says why.
 */
function distrusted(result: RunResult, path: string, tampering: Tampering): RunResult {
  const what = tampering === "replaced"
    ? "was replaced during the run (unlinked or renamed, and made anew)"
    : "was written to during the run";
  const message = `--report ${path} ${what}, by the command (it can where the file lies in a read-write ` +
    "--bind) or by another process: the run is XX, and sbox writes its report there anew";
  return {
    exitStatus: SBOX_FAILED,
    report: { ...result.report, status: "XX" },
    messages: [...result.messages, message],
  };
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
    let result = await runContainer(options);
    // The container is gone: no process of the run can touch the file now.
    const tampering = report?.tampering();
    if (tampering) result = distrusted(result, options.report!, tampering);
    for (const message of result.messages) printError(message);
    try {
      report?.write(result.report);
    } catch (err) {
      printError(messageOf(err));
      return SBOX_FAILED;
    }
    if (result.reraise) dieOf(result.reraise);
    return result.exitStatus;
  } finally {
    Deno.removeSignalListener("SIGXFSZ", ignore);
  }
}
