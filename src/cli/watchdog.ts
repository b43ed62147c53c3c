/**
 * The time limits of a run: `--time` (CPU time of the whole container) and
 * `--wall-time`. When one is exceeded the whole container is killed, every
 * process in its cgroup, not only the first one.
 *
 * Both count from the command's start: the container's setup is sbox's
 * time, not the command's. CPU time comes from the cgroup's cpu.stat, which
 * the kernel keeps even without the cpu controller, less the setup's share
 * (pid 1 reports it). Nothing tells us when it crosses a value, so it is
 * polled: a program may overrun `--time` by about one poll interval.
 * `--extra-time` lets the container run that much longer than either limit
 * before it is killed, as isolate's does, so that a judge sees how far over
 * a program went; the run is over a limit all the same.
 *
 * @module
 */

import type { Cgroup } from "../cgroup.ts";
import { Deadline } from "../deadline.ts";

/** How often cpu.stat is read while a CPU-time limit is set. */
const CPU_POLL_MS = 10;

/** Limits in milliseconds; unset ones are not enforced. */
export interface TimeLimitOptions {
  cpuTimeMs?: number;
  wallTimeMs?: number;
  /** How much longer than either limit the container runs before the kill. */
  extraTimeMs?: number;
}

/** Enforces the time limits of one run: `start()`, then `stop()` once the command ended. */
export class Watchdog {
  /** Whether a limit was exceeded and the container killed for it. */
  timedOut = false;
  /** Which limit was exceeded first, for the message. */
  exceeded: "--time" | "--wall-time" | undefined = undefined;
  /** An error met while polling (the container is killed then, too). */
  failure: unknown = undefined;
  readonly #cgroup: Cgroup;
  readonly #limits: TimeLimitOptions;
  readonly #kill: () => void;
  #cpuPoll: ReturnType<typeof setInterval> | undefined;
  #wallDeadline: Deadline | undefined;
  /** CPU time of the cgroup that is not the command's: the container's setup. */
  #setupCpuUsec = 0;

  /** Watches `cgroup`; `kill` kills every process of the container. */
  constructor(cgroup: Cgroup, limits: TimeLimitOptions, kill: () => void) {
    this.#cgroup = cgroup;
    this.#limits = limits;
    this.#kill = kill;
  }

  /**
   * Starts the wall-clock timer and the CPU-time polling, once the command
   * has started; `setupCpuUsec` of the cgroup's CPU time was the setup's,
   * not the command's; `sinceStartMs()`: how long ago the command started
   * (the news of it may come late), by a clock that cannot run ahead of
   * the one `settle()` is given the run's wall time by (pid 1's): the kill
   * comes only once that one is past the limit too, or settle() would call
   * the command it killed one that ended in time.
   */
  start(setupCpuUsec = 0, sinceStartMs: () => number = () => 0): void {
    this.#setupCpuUsec = setupCpuUsec;
    const { cpuTimeMs, wallTimeMs, extraTimeMs = 0 } = this.#limits;
    if (wallTimeMs !== undefined) {
      // Past the limit, not at it: settle() counts a run over it only then.
      const expire = () => this.#expire("--wall-time");
      this.#wallDeadline = new Deadline(wallTimeMs + extraTimeMs, sinceStartMs, expire, { strictly: true });
    }
    if (cpuTimeMs !== undefined) this.#cpuPoll = setInterval(() => this.#checkCpu(), CPU_POLL_MS);
  }

  /** Stops watching. */
  stop(): void {
    this.#wallDeadline?.cancel();
    this.#wallDeadline = undefined;
    clearInterval(this.#cpuPoll);
    this.#cpuPoll = undefined;
  }

  /**
   * Final account once the container is gone: a run that used more than a
   * limit is over it, even if it ended between two polls.
   */
  settle(cpuUsageUsec: number, wallTimeMs: number, exactWallTime = false): void {
    const { cpuTimeMs, wallTimeMs: wallLimitMs } = this.#limits;
    // The timer fired, but pid 1 saw the command end in time: sbox's event
    // loop only read that late (a loaded machine). Its kill found nothing
    // of the command left to kill.
    if (this.exceeded === "--wall-time" && exactWallTime && wallTimeMs <= wallLimitMs!) {
      this.exceeded = undefined;
    }
    if (cpuTimeMs !== undefined && cpuUsageUsec > cpuTimeMs * 1000) this.exceeded ??= "--time";
    if (wallLimitMs !== undefined && wallTimeMs > wallLimitMs) this.exceeded ??= "--wall-time";
    this.timedOut = this.exceeded !== undefined;
  }

  #checkCpu(): void {
    try {
      const usageUsec = this.#cgroup.cpuUsage().usageUsec - this.#setupCpuUsec;
      const { cpuTimeMs, extraTimeMs = 0 } = this.#limits;
      if (usageUsec > (cpuTimeMs! + extraTimeMs) * 1000) this.#expire("--time");
    } catch (err) {
      this.failure ??= err;
      this.stop();
      this.#kill();
    }
  }

  #expire(limit: "--time" | "--wall-time"): void {
    this.exceeded ??= limit;
    this.timedOut = true;
    this.stop();
    this.#kill();
  }
}
