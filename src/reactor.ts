/**
 * One epoll loop for every container of the process. Waiting for exits
 * (pidfds) and for pipes must not cost an OS thread per container: all
 * interests sit in one epoll set, and at most one nonblocking FFI call
 * (libc's `epoll_wait`, on one of Deno's blocking-pool threads; see libc.ts)
 * waits for all of them. Interests are one-shot: a caller awaits `readable(fd)`, then reads
 * until EAGAIN. Wake-ups may be spurious, so callers always retry the
 * nonblocking operation that told them to wait.
 *
 * @module
 */

import { helper } from "./ffi.ts";
import { blockingLibc, EPOLL_EVENT } from "./libc.ts";
import { check, close, tryRead, waitPidfd, type WaitResult } from "./sys.ts";

const EPOLLIN = 0x001;
const EPOLLOUT = 0x004;
const EPOLLERR = 0x008;
const EPOLLHUP = 0x010;
const EPOLLONESHOT = 1 << 30;
const EPOLL_CTL_ADD = 1;
const EPOLL_CTL_DEL = 2;
const EPOLL_CTL_MOD = 3;
const MAX_EVENTS = 64;

class Reactor {
  readonly #epfd: number;
  readonly #wakeFd: number;
  /** fd → the resolver of the one pending wait on it. */
  readonly #waiters = new Map<number, () => void>();
  /** fds added to the epoll set (armed or not). */
  readonly #registered = new Set<number>();
  /** struct epoll_event[MAX_EVENTS] for libc; the helper's wrapper fills u64 pairs instead. */
  readonly #events = new Uint8Array(16 * MAX_EVENTS);
  readonly #libc = blockingLibc();
  #polling = false;

  constructor() {
    const lib = helper();
    this.#epfd = check(lib.sbox_epoll_create(), "epoll", "cannot create an epoll instance");
    this.#wakeFd = check(lib.sbox_eventfd(), "epoll", "cannot create an eventfd");
    check(
      lib.sbox_epoll_ctl(this.#epfd, EPOLL_CTL_ADD, this.#wakeFd, EPOLLIN, BigInt(this.#wakeFd)),
      "epoll",
      "cannot watch the eventfd",
    );
  }

  /** Resolves once `fd` is readable, hung up or in error. */
  readable(fd: number): Promise<void> {
    return this.#wait(fd, EPOLLIN);
  }

  /** Resolves once `fd` is writable or in error. */
  writable(fd: number): Promise<void> {
    return this.#wait(fd, EPOLLOUT);
  }

  /** Stops watching `fd` and closes it. Always use this for watched fds. */
  close(fd: number): void {
    if (this.#registered.delete(fd)) {
      helper().sbox_epoll_ctl(this.#epfd, EPOLL_CTL_DEL, fd, 0, 0n);
    }
    const waiter = this.#waiters.get(fd);
    this.#waiters.delete(fd);
    close(fd);
    waiter?.();
    this.#wakeIfIdle();
  }

  /**
   * Ends the pending wait on `fd`, if any, as a spurious wake-up would: its
   * caller retries, and decides again whether to wait. The fd stays watched.
   */
  interrupt(fd: number): void {
    const waiter = this.#waiters.get(fd);
    if (!waiter) return;
    this.#waiters.delete(fd);
    waiter();
    this.#wakeIfIdle();
  }

  #wait(fd: number, events: number): Promise<void> {
    if (this.#waiters.has(fd)) throw new Error(`sbox internal error: two waits on fd ${fd}`);
    const { promise, resolve } = Promise.withResolvers<void>();
    const op = this.#registered.has(fd) ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    check(
      helper().sbox_epoll_ctl(this.#epfd, op, fd, events | EPOLLONESHOT, BigInt(fd)),
      "epoll",
      `cannot watch fd ${fd}`,
    );
    this.#registered.add(fd);
    this.#waiters.set(fd, resolve);
    this.#poll();
    return promise;
  }

  #poll(): void {
    if (this.#polling || this.#waiters.size === 0) return;
    this.#polling = true;
    const libc = this.#libc;
    const wait = libc
      ? libc.epoll_wait(this.#epfd, this.#events, MAX_EVENTS, -1)
      : helper().sbox_epoll_wait(this.#epfd, this.#events, MAX_EVENTS, -1);
    wait.then((ret) => {
      this.#polling = false;
      // libc: -1 on EINTR; the helper: a negative errno. Either way, no events.
      const n = Number(ret);
      const view = new DataView(this.#events.buffer);
      const [size, dataOffset] = libc ? [EPOLL_EVENT.size, EPOLL_EVENT.dataOffset] : [16, 8];
      for (let i = 0; i < n; i++) {
        const events = view.getUint32(i * size, true);
        // The data word holds the fd (registered as a u64).
        const fd = view.getUint32(i * size + dataOffset, true);
        if (fd === this.#wakeFd) {
          tryRead(this.#wakeFd, new Uint8Array(8));
          continue;
        }
        const waiter = this.#waiters.get(fd);
        if (waiter && (events & (EPOLLIN | EPOLLOUT | EPOLLERR | EPOLLHUP))) {
          this.#waiters.delete(fd);
          waiter();
        }
      }
      this.#poll();
    });
  }

  /** With nothing left to wait for, end the pending epoll_wait so that the
   * process can exit: an outstanding FFI call keeps Deno's event loop alive. */
  #wakeIfIdle(): void {
    if (this.#polling && this.#waiters.size === 0) {
      const one = new Uint8Array(8);
      one[0] = 1;
      helper().sbox_write(this.#wakeFd, one, 8n);
    }
  }

  /** Number of pending waits (for tests). */
  get pending(): number {
    return this.#waiters.size;
  }
}

let instance: Reactor | undefined;

/** The process-wide reactor. */
export function reactor(): Reactor {
  instance ??= new Reactor();
  return instance;
}

export type { Reactor };

/**
 * Waits until the process of `pidfd`, a child of ours, has exited, reaps
 * it (waitid) and resolves to how it ended. The pidfd stays open: the
 * caller closes it, through {@linkcode Reactor.close} (the reactor watched
 * it), when it no longer names the process for anyone. `reaped` runs in the
 * very turn of the reap, before any other code: from then on the pid may
 * be another process's, which a caller that also signals by pid must know
 * at once, not once this promise's continuation runs.
 *
 * @example How a launched program ended
 * ```ts
 * import type { Launched } from "./launch.ts";
 * import { reactor, waitExit } from "./reactor.ts";
 *
 * async function ended(launched: Launched): Promise<string> {
 *   const { exited, status } = await waitExit(launched.pidfd);
 *   reactor().close(launched.pidfd);
 *   return exited ? `exit ${status}` : `signal ${status}`;
 * }
 * ```
 */
export async function waitExit(pidfd: number, reaped?: (result: WaitResult) => void): Promise<WaitResult> {
  for (;;) {
    const result = waitPidfd(pidfd);
    if (result) {
      reaped?.(result);
      return result;
    }
    await reactor().readable(pidfd);
  }
}
