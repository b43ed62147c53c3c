/**
 * Judge-style stdio: the files of `--stdin`, `--stdout` and `--stderr`,
 * opened by sbox on the host before the container starts and handed to the
 * command as its fds 0, 1 and 2.
 *
 * @module
 */

import { SboxError } from "../error.ts";
import { close, O, open, readLink, readTextFile, setNonblocking } from "../sys.ts";
import type { RunOptions } from "./args.ts";

/** The files of --stdin, --stdout and --stderr, opened by sbox on the host. */
export interface OpenStdio {
  /** For each of stdin, stdout, stderr: an open fd, or "inherit". */
  fds: [number | "inherit", number | "inherit", number | "inherit"];
  /** Closes the files (again: harmless). */
  close(): void;
}

/**
 * Opens the files (stdin read-only; stdout and stderr created or truncated,
 * mode 0644). Throws an SboxError naming the option, having closed what it opened.
 */
export function openStdio(options: Pick<RunOptions, "stdin" | "stdout" | "stderr" | "report">): OpenStdio {
  // Open fds by flags and the identity of their file.
  const opened = new Map<string, number>();
  const fds: OpenStdio["fds"] = ["inherit", "inherit", "inherit"];
  const closeAll = () => {
    for (const fd of opened.values()) close(fd);
    opened.clear();
  };
  const openOne = (option: string, path: string | undefined, flags: number): number | "inherit" => {
    if (path === undefined) return "inherit";
    let fd: number;
    try {
      // O_NONBLOCK: a FIFO without a writer (--stdin) opens at once instead
      // of blocking sbox, where no signal reaches the JS thread stuck in the
      // call; one without a reader (--stdout) fails with ENXIO. The command
      // gets a blocking fd, as from a shell's redirection.
      fd = open(path, flags | O.NONBLOCK, 0o644);
      try {
        setNonblocking(fd, false);
      } catch (err) {
        close(fd);
        throw err;
      }
    } catch (err) {
      throw new SboxError(`${option}: ${(err as Error).message}`, { step: "open", cause: err });
    }
    // --stdout and --stderr naming one file share one open file (one
    // offset), as `>f 2>&1` does, however the file is named: "f" and "./f",
    // a link, another hard link. Two opens would each write from offset 0
    // over the other. Truncating it twice is harmless: nothing is written yet.
    let key: string;
    try {
      key = `${flags}:${fileIdentity(fd)}`;
    } catch (err) {
      close(fd);
      throw err;
    }
    const known = opened.get(key);
    if (known !== undefined) {
      close(fd);
      return known;
    }
    opened.set(key, fd);
    return fd;
  };
  try {
    const write = O.WRONLY | O.CREAT | O.TRUNC;
    fds[0] = openOne("--stdin", options.stdin, O.RDONLY);
    fds[1] = openOne("--stdout", options.stdout, write);
    fds[2] = openOne("--stderr", options.stderr, write);
    refuseReportFile(options.report, [["--stdout", fds[1]], ["--stderr", fds[2]]]);
  } catch (err) {
    closeAll();
    throw err;
  }
  return { fds, close: closeAll };
}

/**
 * The report (opened already, by main.ts) must not be a file the command
 * writes to: written at the end from offset 0, it would overwrite the
 * output, and the output's tail would follow it.
 */
function refuseReportFile(report: string | undefined, outputs: [string, number | "inherit"][]): void {
  if (report === undefined || report === "-") return;
  const fd = open(report, O.PATH);
  try {
    const identity = fileIdentity(fd);
    for (const [option, out] of outputs) {
      if (out !== "inherit" && fileIdentity(out) === identity) {
        throw new SboxError(`--report and ${option} name the same file: ${report}`, { step: "options" });
      }
    }
  } finally {
    close(fd);
  }
}

/**
 * The file open as `fd`, as "device:inode": the inode from
 * /proc/self/fdinfo, the device ("major:minor") of the mount it names there
 * from /proc/self/mountinfo (the helper's stat() gives neither). Where
 * fdinfo has no "ino" (older kernels), the path the kernel resolved stands
 * in: it misses hard links only.
 */
function fileIdentity(fd: number): string {
  const info = readTextFile(`/proc/self/fdinfo/${fd}`);
  const mountId = /^mnt_id:\s*(\d+)$/m.exec(info)?.[1];
  const inode = /^ino:\s*(\d+)$/m.exec(info)?.[1];
  const device = readTextFile("/proc/self/mountinfo").split("\n").map((line) => line.split(" "))
    .find((fields) => fields[0] === mountId)?.[2];
  if (inode === undefined || device === undefined) return readLink(`/proc/self/fd/${fd}`);
  return `${device}:${inode}`;
}
