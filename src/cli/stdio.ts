/**
 * Judge-style stdio: the files of `--stdin`, `--stdout` and `--stderr`,
 * opened by sbox on the host before the container starts and handed to the
 * command as its fds 0, 1 and 2, and sbox's own fds 0-2, which the command
 * inherits where an option is not given.
 *
 * Each is an fd of a host file, in the host's mount tree. A directory or a
 * block device is refused, named or inherited: from a directory's fd `..`
 * climbs to the host's `/`, past any `--rootfs`, and a block device is a
 * host disk.
 *
 * @module
 */

import { SboxError } from "../error.ts";
import { close, type FdStat, fstat, O, open, readLink, readTextFile, setNonblocking, stat } from "../sys.ts";
import type { RunOptions } from "./args.ts";

/** The files of --stdin, --stdout and --stderr, opened by sbox on the host. */
export interface OpenStdio {
  /** For each of stdin, stdout, stderr: an open fd, or "inherit". */
  fds: [number | "inherit", number | "inherit", number | "inherit"];
  /** Closes the files (again: harmless). */
  close(): void;
}

type StdioOptions = Pick<RunOptions, "stdin" | "stdout" | "stderr">;

const OPTIONS = ["--stdin", "--stdout", "--stderr"] as const;
const NAMES = ["stdin", "stdout", "stderr"] as const;

/**
 * Refuses, before anything exists, stdio that is a directory or a block
 * device: a file named by an option (when it exists; {@linkcode openStdio}
 * checks what it opens again) or sbox's own fd 0-2 where the command would
 * inherit it. Throws an SboxError naming the option or the fd.
 */
export function checkStdio(options: StdioOptions): void {
  const paths = [options.stdin, options.stdout, options.stderr];
  paths.forEach((path, fd) => {
    if (path === undefined) {
      refuseInherited(fd, fstat(fd));
      return;
    }
    let found;
    try {
      found = stat(path);
    } catch {
      return; // the open says why
    }
    const refused = found && refusal(found.mode);
    if (refused) throw new SboxError(`${OPTIONS[fd]}: ${path} is ${refused}`, { step: "options" });
  });
}

/**
 * Opens the files (stdin read-only; stdout and stderr created or truncated,
 * mode 0644). Throws an SboxError naming the option, having closed what it opened.
 */
export function openStdio(options: StdioOptions & Pick<RunOptions, "report">): OpenStdio {
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
    const found = fstat(fd)!;
    const refused = refusal(found.mode);
    if (refused) {
      close(fd);
      throw new SboxError(`${option}: ${path} is ${refused}`, { step: "open" });
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
    fds.forEach((fd, i) => {
      if (fd === "inherit") refuseInherited(i, fstat(i));
    });
    refuseReportFile(options.report, [["--stdout", fds[1]], ["--stderr", fds[2]]]);
  } catch (err) {
    closeAll();
    throw err;
  }
  return { fds, close: closeAll };
}

/** Why a file of mode `mode` cannot be stdio, or undefined when it can. */
function refusal(mode: number): string | undefined {
  switch (mode & 0o170000) {
    case 0o040000:
      return "a directory, not a file: as stdio its fd would lead out of the container into the host's files";
    case 0o060000:
      return "a block device: as stdio it would give the command a host disk";
  }
  return undefined;
}

/** Refuses sbox's own fd `fd` (`found` is its fstat) as the command's stdio where {@linkcode refusal} does. */
function refuseInherited(fd: number, found: FdStat | undefined): void {
  const refused = found && refusal(found.mode);
  if (refused) {
    throw new SboxError(
      `sbox's ${NAMES[fd]} (fd ${fd}), which the command would inherit, is ${refused}; ` +
        `give ${OPTIONS[fd]} FILE, or redirect it`,
      { step: "options" },
    );
  }
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
