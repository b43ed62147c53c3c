/**
 * `sbox`'s entry point, apart from sbox.ts so that it can be tested and
 * embedded: parses the command line, shows help or runs, prints each
 * failure as one line `sbox: ...` on stderr and returns the exit status.
 *
 * @module
 */

import { readFile } from "../sys.ts";
import { parseCommandLine, reportPathOf, type RunOptions } from "./args.ts";
import { exactArguments } from "./argv.ts";
import { mainHelp, runHelp } from "./help.ts";
import { HANDLED_SIGNALS } from "./job_control.ts";
import { messageOf, say } from "./messages.ts";
import { failedReport, ReportWriter, type Tampering } from "./report.ts";
import { runContainer, type RunResult } from "./run.ts";
import { dieOf, ignoreFileSizeSignal, ignoreInspectorSignal, keepIgnored } from "./signal_actions.ts";
import { refuseReportAsOwnOutput, refuseStdinAsOutput } from "./stdio.ts";

/** sbox's exit status when it fails itself (docker and podman use the same). */
const SBOX_FAILED = 125;

const NEEDS_FFI = "--allow-ffi is needed (and nothing else): run `deno run --allow-ffi sbox.ts run ...`";

/**
 * Writes a report with `write` and says `lines`, then why the report could
 * not be written, if it could not (`prefix` and the error); returns whether
 * it was written. The report comes first, as a judge reads it: a line may
 * fail to be written (dropped, see {@linkcode say}) or wait on a full pipe.
 * On stderr (`--report -`) it comes after the lines, as cli.md says, so that
 * it is the last line there.
 */
function reportAndSay(toStderr: boolean, write: () => void, lines: readonly string[], prefix = ""): boolean {
  if (toStderr) lines.forEach(say);
  let failure: string | undefined;
  try {
    write();
  } catch (err) {
    failure = prefix + messageOf(err);
  }
  if (!toStderr) lines.forEach(say);
  if (failure !== undefined) say(failure);
  return failure === undefined;
}

/** Prints `text` on stdout; 0, or 125 when it cannot be written (stdout on a full disk). */
function print(text: string): number {
  try {
    console.log(text);
    return 0;
  } catch (err) {
    say(`cannot write to stdout: ${messageOf(err)}`);
    return SBOX_FAILED;
  }
}

/**
 * Runs the sbox command line `argv` (the arguments after the program name)
 * and resolves to the exit status; prints to stdout and stderr. With
 * `fromCommandLine` (sbox.ts: `argv` is `Deno.args`), an argument that is
 * not valid UTF-8 on the command line is taken from /proc/self/cmdline, its
 * bytes as they are (see `exactArguments`), instead of with Deno's U+FFFD.
 */
export async function main(argv: string[], version: string, fromCommandLine = false): Promise<number> {
  return await mainThen(argv, version, fromCommandLine, false);
}

/**
 * {@linkcode main}, for a process that exits as soon as it returns when
 * `exits` (sbox.ts's command line): the run's signal listeners then stay
 * until that exit, where a signal would otherwise end the process by its
 * default action, with the run's exit status lost. A program that embeds
 * main (`exits` false) gets them removed as main returns, and the signals'
 * actions as they were before.
 *
 * @internal For sbox.ts.
 */
export async function mainThen(
  argv: string[],
  version: string,
  fromCommandLine: boolean,
  exits: boolean,
): Promise<number> {
  // Asked once (querySync never prompts): without FFI there is no run, and
  // Deno would ask for the permission on a terminal at its first use.
  const ffi = Deno.permissions.querySync({ name: "ffi" }).state === "granted";
  // First, before any signal listener: which signals sbox was started with
  // ignored, which it then leaves ignored (see keepIgnored).
  const ignored = ffi ? keepIgnored(HANDLED_SIGNALS) : new Set<Deno.Signal>();
  // SIGXFSZ (sbox under a file-size rlimit) would kill sbox on its first
  // write past the limit, to a report or to stderr (a large log it appends
  // to), before the report is written or the status returned; ignored, the
  // write fails with EFBIG instead. Before anything is written; put back
  // only after the last line (see ignoreFileSizeSignal).
  const restoreFileSizeSignal = ignoreFileSizeSignal(ffi);
  // A run's signal listeners, kept until its report and last line are
  // written and its exit status decided (see runContainer).
  const listening = new DisposableStack();
  try {
    return await dispatch(argv, version, fromCommandLine, ffi, ignored, listening);
  } finally {
    if (!exits) listening.dispose();
    restoreFileSizeSignal();
  }
}

async function dispatch(
  givenArgv: string[],
  version: string,
  fromCommandLine: boolean,
  ffi: boolean,
  ignored: ReadonlySet<Deno.Signal>,
  listening: DisposableStack,
): Promise<number> {
  let argv = givenArgv;
  // Set when the helper library cannot be opened: see below.
  let noHelper: string | undefined;
  // A judge reads the report, not sbox's stderr: where the command line
  // names a report file, a failure to parse it still writes XX there.
  const failed = (message: string): number => {
    const path = reportPathOf(argv);
    // U+FFFD: the name may not be the one given (see exactArguments).
    if (!ffi || path === undefined || path.includes("\ufffd")) {
      say(message);
    } else if (noHelper !== undefined) {
      // sbox writes files through the helper: the first line says why not.
      say(message);
      say(`--report: no report written to ${path}`);
    } else {
      reportAndSay(
        path === "-",
        () => ReportWriter.open(path).write(failedReport()),
        [message],
        "--report: ",
      );
    }
    return SBOX_FAILED;
  };
  // The command line is read through the helper library: where that cannot
  // be opened (not built, from another version), help and version still
  // work, and a run fails with what to do.
  if (fromCommandLine && ffi) {
    let cmdline: Uint8Array | undefined;
    try {
      cmdline = readFile("/proc/self/cmdline");
    } catch (err) {
      noHelper = messageOf(err);
    }
    if (cmdline) {
      const exact = exactArguments(argv, cmdline);
      if (exact.inexact >= 0) {
        return failed(
          `argument ${exact.inexact + 1} (${JSON.stringify(argv[exact.inexact])}) is not valid UTF-8, ` +
            "and sbox cannot find its bytes in /proc/self/cmdline to pass them on unchanged",
        );
      }
      argv = exact.args;
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
      return print(invocation.topic === "run" ? runHelp() : mainHelp(version));
    case "version":
      return print(`sbox ${version}`);
    case "run":
      if (noHelper !== undefined) return failed(noHelper);
      try {
        return await run(invocation.options, ffi, ignored, listening);
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

async function run(
  options: RunOptions,
  ffi: boolean,
  ignored: ReadonlySet<Deno.Signal>,
  listening: DisposableStack,
): Promise<number> {
  // Without the permission Deno would ask on a terminal, or fail deep inside;
  // say at once what is needed instead.
  if (!ffi) {
    say(NEEDS_FFI);
    return SBOX_FAILED;
  }
  // First, before anything exists: SIGUSR1 would open Deno's inspector.
  try {
    ignoreInspectorSignal();
  } catch (err) {
    say(messageOf(err));
    return SBOX_FAILED;
  }
  let report: ReportWriter | undefined;
  try {
    // Before the report's open truncates it: it may be the input.
    refuseStdinAsOutput(options.stdin, [["--report", options.report]]);
    refuseReportAsOwnOutput(options.report, options.stdout);
    if (options.report !== undefined) report = ReportWriter.open(options.report);
  } catch (err) {
    say(`--report: ${messageOf(err)}`);
    return SBOX_FAILED;
  }
  // The listeners stay while the report is written and the lines said: a
  // signal then (a second Ctrl-C, a timeout's just after the command's end)
  // must not end sbox by its default action, the report empty and the
  // status 128+N for a run that was decided (cli.md, Exit status).
  let result = await runContainer(options, ignored, listening);
  // The container is gone: no process of the run can touch the file now.
  const tampering = report?.tampering();
  if (tampering) result = distrusted(result, options.report!, tampering);
  const written = reportAndSay(options.report === "-", () => report?.write(result.report), result.messages);
  if (!written) return SBOX_FAILED;
  if (result.reraise) dieOf(result.reraise);
  return result.exitStatus;
}
