/**
 * A time limit's timer that never fires before the limit, by the clock the
 * limit is judged by. setTimeout takes whole milliseconds (a WebIDL
 * `long`) and drops a delay's fraction, so a timer may fire up to ~1 ms
 * early (10.9 ms fired after 10.18); and a judge's verdict is read off a
 * clock other than the timer's (pid 1's, `wallTimeMs`): a kill sent a
 * moment early reads as a command killed within its limit, not as a
 * time-out. So delays are rounded up, and each firing reads the clock
 * again and re-arms for what is left while the limit is not reached.
 *
 * @module
 */

/** What a {@linkcode Deadline} arms its timer with: `setTimeout` and `clearTimeout` by default. */
export interface DeadlineTimers {
  set(callback: () => void, delayMs: number): unknown;
  clear(timer: unknown): void;
}

/** Options of {@linkcode Deadline}. */
export interface DeadlineOptions {
  /**
   * Expire only once the elapsed time is past the limit, not when it is
   * equal to it (a limit that is over only when exceeded, as `sbox run`'s
   * `--wall-time`). Default: false, expire at the limit.
   */
  strictly?: boolean;
  /** The timers to use (tests inject ones that fire early). */
  timers?: DeadlineTimers;
}

/**
 * setTimeout's largest delay (a WebIDL `long`): a longer one fires at once.
 * The bound of every time limit sbox arms a timer for.
 */
export const MAX_TIMER_MS: number = 2 ** 31 - 1;

const GLOBAL_TIMERS: DeadlineTimers = {
  set: (callback, delayMs) => setTimeout(callback, delayMs),
  clear: (timer) => clearTimeout(timer as ReturnType<typeof setTimeout>),
};

/**
 * Calls `expire` once `elapsedMs()` has reached `limitMs` (passed it, with
 * `strictly`), never before, from a timer: not from the constructor, even
 * for a limit reached already. `elapsedMs` must be a clock that can only
 * under-estimate the one the limit is judged by, read after it: then the
 * judge's clock has reached the limit too when `expire` runs.
 */
export class Deadline {
  readonly #limitMs: number;
  readonly #elapsedMs: () => number;
  readonly #expire: () => void;
  readonly #strictly: boolean;
  readonly #timers: DeadlineTimers;
  #timer: unknown;
  #over = false;

  /** Arms the timer for what is left of `limitMs` by `elapsedMs()`. */
  constructor(limitMs: number, elapsedMs: () => number, expire: () => void, options: DeadlineOptions = {}) {
    this.#limitMs = limitMs;
    this.#elapsedMs = elapsedMs;
    this.#expire = expire;
    this.#strictly = options.strictly ?? false;
    this.#timers = options.timers ?? GLOBAL_TIMERS;
    this.#arm(this.#leftMs(), 0);
  }

  /** Stops the timer; `expire` is not called after this. */
  cancel(): void {
    this.#over = true;
    if (this.#timer !== undefined) this.#timers.clear(this.#timer);
    this.#timer = undefined;
  }

  /** What is left of the limit; <= 0 once it is reached (< 0 once passed). */
  #leftMs(): number {
    return this.#limitMs - this.#elapsedMs();
  }

  /**
   * A whole number of ms, rounded up (setTimeout would drop the fraction).
   * `leastMs`: 1 on a re-arm, so that a clock that has not yet
   * moved past the limit (`strictly`, to the microsecond) is not read in a
   * loop of zero-delay timers.
   */
  #arm(leftMs: number, leastMs: number): void {
    const delay = Math.min(MAX_TIMER_MS, Math.max(leastMs, Math.ceil(leftMs)));
    this.#timer = this.#timers.set(() => this.#fire(), delay);
  }

  #fire(): void {
    this.#timer = undefined;
    if (this.#over) return;
    const left = this.#leftMs();
    if (left > 0 || (left === 0 && this.#strictly)) return this.#arm(left, 1);
    this.#over = true;
    this.#expire();
  }
}
