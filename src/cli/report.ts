/**
 * The JSON report of `sbox run --report FILE|-`: how the command ended and
 * what the container used, in one object a judge can file. The fields are
 * documented in docs/cli.md.
 *
 * @module
 */

import type { CpuUsage } from "../cgroup.ts";
import { close, O, open, setNonblocking, writeAll } from "../sys.ts";

/**
 * How a run ended, judge style: `OK` exit 0, `RE` non-zero exit (also when
 * the command could not be found or executed), `SG` killed by a signal, `TO`
 * over a time limit, `ML` killed for memory (an OOM kill in the container's
 * cgroup), `XX` sbox itself failed or was interrupted.
 */
export type Status = "OK" | "RE" | "SG" | "TO" | "ML" | "XX";

/** The report, field for field as it is written. */
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

/** The report as one line of JSON, fields in the documented order. */
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
 * Where the report goes, opened before the run so that a bad path fails
 * before anything runs: a file (created or truncated) or, for "-", stderr.
 */
export class ReportWriter {
  readonly #fd: number;
  readonly #path: string;
  #closed = false;

  private constructor(fd: number, path: string) {
    this.#fd = fd;
    this.#path = path;
  }

  /**
   * Opens `path` ("-" for stderr), as --stdout opens its file: O_NONBLOCK,
   * so that a FIFO without a reader fails at once (ENXIO) instead of
   * blocking sbox where no signal reaches it; then a blocking fd, so that
   * the report is written whole.
   */
  static open(path: string): ReportWriter {
    if (path === "-") return new ReportWriter(STDERR, path);
    const fd = open(path, O.WRONLY | O.CREAT | O.TRUNC | O.NONBLOCK, 0o644);
    try {
      setNonblocking(fd, false);
    } catch (err) {
      close(fd);
      throw err;
    }
    return new ReportWriter(fd, path);
  }

  /** Writes the report and closes the file. */
  write(report: Report): void {
    try {
      writeAll(
        this.#fd,
        new TextEncoder().encode(formatReport(report)),
        `cannot write the report ${this.#path}`,
      );
    } finally {
      this.close();
    }
  }

  /** Closes the file without writing (stderr stays open). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#fd !== STDERR) close(this.#fd);
  }
}
