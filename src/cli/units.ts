/**
 * Strict parsers for the values of command-line options: sizes (`64M`),
 * durations (`1.5s`), counts and CPU shares. Each returns a number or throws
 * an {@linkcode SboxError} that names the option and the value, so that a typo
 * in a judge's configuration stops the run instead of changing a limit.
 *
 * @module
 */

import { CPU_LIMIT_BOUNDS } from "../cgroup.ts";
import { MAX_TIMER_MS } from "../deadline.ts";
import { SboxError, show } from "../error.ts";

/** Binary multiples: `k` is 1024 bytes, as in the kernel's cgroup files. */
const SIZE_UNITS: Record<string, number> = { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

/** Milliseconds per duration unit. */
const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

function invalid(option: string, value: string, expected: string): SboxError {
  return SboxError.invalidOption(option, `bad value ${show(value)}: expected ${expected}`);
}

/**
 * A size in bytes: a whole number with an optional unit `k`, `M`, `G` or `T`
 * (either case, powers of 1024): `512k`, `64M`, `1G`, `1048576`.
 * `allowZero` admits `0` (e.g. `--swap 0`).
 */
export function parseSize(option: string, value: string, { allowZero = false } = {}): number {
  const expected = "a size such as 512k, 64M, 1G or a number of bytes";
  const bytes = sizeInBytes(value);
  if (bytes === undefined) throw invalid(option, value, expected);
  if (!Number.isSafeInteger(bytes)) throw invalid(option, value, `${expected} (this one is too large)`);
  if (bytes === 0 && !allowZero) throw invalid(option, value, `${expected}, greater than 0`);
  return bytes;
}

/**
 * The bytes of size `value` as {@linkcode parseSize} reads it (`64M`,
 * `4096`), or undefined when it is no size; not checked further (0, or too
 * large to be exact).
 */
export function sizeInBytes(value: string): number | undefined {
  const match = /^(\d+)([kmgt]?)$/i.exec(value);
  return match ? Number(match[1]) * SIZE_UNITS[match[2].toLowerCase()] : undefined;
}

/**
 * A duration in milliseconds: a number with a unit `ms`, `s`, `m` or `h`:
 * `500ms`, `2s`, `1.5s`, `1m`. The unit is required: `2` could mean anything.
 */
export function parseDuration(option: string, value: string, options: { allowZero?: boolean } = {}): number {
  const expected = "a duration such as 500ms, 2s, 1.5s or 1m";
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(value);
  if (!match) throw invalid(option, value, expected);
  const ms = Number(match[1]) * DURATION_UNITS[match[2]];
  if (!(ms > 0 || (options.allowZero && ms === 0)) || !Number.isFinite(ms) || ms > MAX_TIMER_MS) {
    const least = options.allowZero ? "0 or more" : "greater than 0";
    throw invalid(option, value, `${expected}, ${least} and at most ${MAX_TIMER_MS}ms (about 24.8 days)`);
  }
  return ms;
}

/**
 * A whole number from `min` to `max` (e.g. `--pids 64`); `why` explains the
 * bounds in the error.
 */
export function parseCount(option: string, value: string, min: number, max: number, why = ""): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < min || n > max) {
    throw invalid(option, value, `a whole number from ${min} to ${max}${why ? ` (${why})` : ""}`);
  }
  return n;
}

/** Period of the CPU bandwidth limit, in microseconds (the kernel's default). */
export const CPU_PERIOD_USEC = 100_000;

/** The most CPUs `--cpus` takes: the kernel's largest quota per {@linkcode CPU_PERIOD_USEC}. */
const MAX_CPUS: number = Math.floor(CPU_LIMIT_BOUNDS.maxQuotaUsec / CPU_PERIOD_USEC);

/**
 * A number of CPUs, possibly fractional (`0.5`, `2`), as the microseconds of
 * CPU time allowed per {@linkcode CPU_PERIOD_USEC}. The kernel takes 1000 µs
 * to 2^44-1 µs per period, so the values are 0.01 to {@linkcode MAX_CPUS}.
 */
export function parseCpus(option: string, value: string): number {
  const expected = `a number of CPUs such as 0.5, 1 or 2 (0.01 to ${MAX_CPUS})`;
  if (!/^\d+(?:\.\d+)?$/.test(value)) throw invalid(option, value, expected);
  const quotaUsec = Math.round(Number(value) * CPU_PERIOD_USEC);
  if (quotaUsec < CPU_LIMIT_BOUNDS.minUsec || quotaUsec > CPU_LIMIT_BOUNDS.maxQuotaUsec) {
    throw invalid(option, value, expected);
  }
  return quotaUsec;
}
