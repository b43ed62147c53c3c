/**
 * The JSON report of `sbox run --report FILE|-`: how the command ended and
 * what the container used, in one object a judge can file. The fields are
 * documented in docs/cli.md.
 *
 * @module
 */

import type { CpuUsage } from "../cgroup.ts";
import { describeErrno } from "../errno.ts";
import { SboxError } from "../error.ts";
import { noReaderExplained } from "./option_errors.ts";
import {
  close,
  ENOENT,
  fstat,
  identityOf,
  O,
  open,
  setNonblocking,
  tryOpen,
  tryUnlink,
  writeAll,
} from "../sys.ts";

/**
 * How a run ended, judge style: `OK` exit 0, `RE` non-zero exit (also when
 * the command could not be found or executed), `SG` killed by a signal, `TO`
 * over a time limit, `ML` killed for memory (an OOM kill in the container's
 * cgroup), `XX` sbox itself failed or was interrupted.
 */
export type Status = "OK" | "RE" | "SG" | "TO" | "ML" | "XX";

/**
 * The report, field for field as it is written. Fields are only added,
 * never renamed or removed (docs/cli.md, "The report").
 */
export interface Report {
  status: Status;
  /** The command's exit code; null when it was killed by a signal or never ran. */
  exitCode: number | null;
  /** Name of the signal that killed the command (`"SIGKILL"`), else null. */
  signal: string | null;
  /** Wall-clock time of the run in milliseconds. */
  wallTimeMs: number;
  /**
   * CPU time in microseconds: of every process of the container (its
   * cgroup's cpu.stat, less the setup's), or without a cgroup of the command
   * and the processes waited for (getrusage, see `maxRssBytes`).
   */
  cpu: CpuUsage;
  /** Peak memory of the container in bytes; null without the memory controller. */
  memoryPeakBytes: number | null;
  /**
   * The largest resident set, in bytes, of the command or of any process
   * that was waited for (`ru_maxrss` of pid 1's RUSAGE_CHILDREN: the
   * command, the orphans pid 1 reaped, and the processes these waited
   * for); null when pid 1 did not report it (killed with the command, the
   * command never ran).
   */
  maxRssBytes: number | null;
  /** Whether the kernel killed a process of the container for lack of memory. */
  oomKilled: boolean;
  /** Whether a time limit was exceeded (the container was then killed). */
  timedOut: boolean;
}

/** What decides the status, most important first. */
export interface Outcome {
  failed: boolean;
  timedOut: boolean;
  oomKilled: boolean;
  signal: string | null;
  exitCode: number | null;
}

/** The status of an outcome: XX, then TO, ML, SG, RE, OK. */
export function statusOf(outcome: Outcome): Status {
  if (outcome.failed) return "XX";
  if (outcome.timedOut) return "TO";
  if (outcome.oomKilled) return "ML";
  if (outcome.signal !== null) return "SG";
  return outcome.exitCode === 0 ? "OK" : "RE";
}

/** The report of a run that failed before its command started: XX, nothing used. */
export function failedReport(): Report {
  return {
    status: "XX",
    exitCode: null,
    signal: null,
    wallTimeMs: 0,
    cpu: { usageUsec: 0, userUsec: 0, systemUsec: 0 },
    memoryPeakBytes: null,
    maxRssBytes: null,
    oomKilled: false,
    timedOut: false,
  };
}

/**
 * The report as one line of JSON, fields in the documented order.
 *
 * @internal Exported for tests only.
 */
export function formatReport(report: Report): string {
  const ordered: Report = {
    status: report.status,
    exitCode: report.exitCode,
    signal: report.signal,
    wallTimeMs: report.wallTimeMs,
    cpu: {
      usageUsec: report.cpu.usageUsec,
      userUsec: report.cpu.userUsec,
      systemUsec: report.cpu.systemUsec,
    },
    memoryPeakBytes: report.memoryPeakBytes,
    maxRssBytes: report.maxRssBytes,
    oomKilled: report.oomKilled,
    timedOut: report.timedOut,
  };
  return `${JSON.stringify(ordered)}\n`;
}

const STDERR = 2;

/**
 * How the report file was tampered with while the run went on: `replaced`,
 * its path leads to another file now (unlinked or renamed, and made anew);
 * `written`, something wrote into it (sbox truncated it and writes it only
 * at the end). The command can do either where the file lies in a
 * read-write `--bind`.
 */
export type Tampering = "replaced" | "written";

/** A regular report file, as opened: which file it is, and the directory its name is in. */
interface ReportFile {
  /** Which file was opened: its device and inode (`fstat(fd).identity`). */
  identity: string;
  /** An O_PATH fd of its directory, opened with it: where to put the report back. */
  dir: number;
  /** Its name in that directory. */
  name: string;
}

/**
 * Where the report goes, opened before the run so that a bad path fails
 * before anything runs: a file (created or truncated) or, for "-", stderr.
 */
export class ReportWriter {
  readonly #fd: number;
  readonly #path: string;
  readonly #file: ReportFile | undefined;
  #tampering: Tampering | undefined;
  #closed = false;

  private constructor(fd: number, path: string, file?: ReportFile) {
    this.#fd = fd;
    this.#path = path;
    this.#file = file;
  }

  /**
   * Opens `path` ("-" for stderr), as --stdout opens its file: O_NONBLOCK,
   * so that a FIFO without a reader fails at once (ENXIO) instead of
   * blocking sbox where no signal reaches it; then a blocking fd, so that
   * the report is written whole. A regular file's directory is opened too,
   * by the path as it is now: should the command replace the file, the
   * report is put back there, not where a link it made in between leads.
   */
  static open(path: string): ReportWriter {
    if (path === "-") return new ReportWriter(STDERR, path);
    let fd;
    try {
      fd = open(path, O.WRONLY | O.CREAT | O.TRUNC | O.NONBLOCK, 0o644);
    } catch (err) {
      throw noReaderExplained(err, path);
    }
    try {
      setNonblocking(fd, false);
      const found = fstat(fd)!;
      if (!found.isFile) return new ReportWriter(fd, path);
      const slash = path.lastIndexOf("/");
      const dir = open(slash < 0 ? "." : path.slice(0, slash) || "/", O.PATH | O.DIRECTORY);
      return new ReportWriter(fd, path, { identity: found.identity, dir, name: path.slice(slash + 1) });
    } catch (err) {
      close(fd);
      throw err;
    }
  }

  /**
   * Whether the report file was tampered with during the run (see
   * {@linkcode Tampering}); undefined for stderr, a FIFO or a device. Ask
   * once no process of the run is left: {@linkcode write} then puts a
   * replaced report back.
   */
  tampering(): Tampering | undefined {
    if (!this.#file) return undefined;
    if (identityOf(this.#path) !== this.#file.identity) this.#tampering = "replaced";
    else if (fstat(this.#fd)!.size !== 0) this.#tampering = "written";
    return this.#tampering;
  }

  /**
   * Writes the report and closes the file. A regular file is written anew
   * from empty; one that {@linkcode tampering} found replaced is also put
   * back at its path, a file of sbox's own in place of the command's, and
   * throws an SboxError if that cannot be done.
   */
  write(report: Report): void {
    const text = new TextEncoder().encode(formatReport(report));
    try {
      this.#writeOver(text);
      if (this.#tampering === "replaced") this.#putBack(text);
    } finally {
      this.close();
    }
  }

  /**
   * Writes `text` to the file opened, from its start and alone: through a
   * new open of it with O_TRUNC where it is a regular file (whatever was
   * written into it goes), else through the fd itself.
   */
  #writeOver(text: Uint8Array<ArrayBuffer>): void {
    const what = `cannot write the report ${this.#path}`;
    const fresh = this.#file ? tryOpen(`/proc/self/fd/${this.#fd}`, O.WRONLY | O.TRUNC | O.NOCTTY) : -1;
    if (fresh < 0) return writeAll(this.#fd, text, what);
    try {
      writeAll(fresh, text, what);
    } finally {
      close(fresh);
    }
  }

  /**
   * Replaces whatever the report's name holds in its directory (opened at
   * the start) with a new file holding `text`, then checks that the path
   * leads to it: the command may have moved or replaced the directory
   * itself, and a path of its making is not followed for a write.
   */
  #putBack(text: Uint8Array<ArrayBuffer>): void {
    const { dir, name } = this.#file!;
    const inDir = `/proc/self/fd/${dir}/${name}`;
    const fail = (why: string): never => {
      throw new SboxError(
        `cannot put the report back at ${this.#path} (${why}): the file there is not sbox's, do not read it`,
        { step: "report" },
      );
    };
    const unlinked = tryUnlink(inDir);
    if (unlinked < 0 && unlinked !== -ENOENT) {
      fail(`cannot remove what is there: ${describeErrno(-unlinked)}`);
    }
    const fd = tryOpen(inDir, O.WRONLY | O.CREAT | O.EXCL | O.NOFOLLOW | O.NOCTTY, 0o644);
    if (fd < 0) fail(`cannot create it: ${describeErrno(-fd)}`);
    try {
      writeAll(fd, text, `cannot write the report ${this.#path}`);
      if (identityOf(this.#path) !== fstat(fd)!.identity) fail("its directory was moved or replaced");
    } finally {
      close(fd);
    }
  }

  /** Closes the file without writing (stderr stays open). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#fd !== STDERR) close(this.#fd);
    if (this.#file) close(this.#file.dir);
  }
}
