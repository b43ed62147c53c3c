/**
 * Closing the last reference to a container's mount namespace unmounts all
 * of its file systems, and the kernel waits for an RCU grace period for each
 * batch of unmounts: a few hundred microseconds. This module keeps that
 * work off every path someone waits on:
 *
 * - not on the init's exit path: the container holds a reference to the
 *   mount namespace until the exit has been reported (see InitProcess);
 * - not on the event loop's thread: the close runs on one of Deno's
 *   blocking-pool threads, through libc's close (libc.ts says why libc's);
 * - not in the next container: clone3 copies every open fd into the child,
 *   so if our close came while that child still held its copy, the child's
 *   close at execve would be the last. `launch` brackets each child's life
 *   until execve with {@linkcode beginLaunch} and {@linkcode endLaunch},
 *   and closes wait outside those brackets.
 *
 * At most two closes run at once, so that a burst of exits does not grow
 * Deno's thread pool, and at most {@linkcode MAX_DEFERRED} wait for
 * launches to end.
 *
 * Without libc.so.6 (a musl system) the close happens in a later task of
 * the event loop instead.
 *
 * @module
 */

import { helper } from "./ffi.ts";
import { blockingLibc } from "./libc.ts";
import { close, isOpenFd } from "./sys.ts";

/** At most this many closes run at once: a burst of exits must not grow the pool. */
const MAX_RUNNING = 2;
/**
 * Beyond this many waiting, closes go on even during launches: with starts
 * always under way (many at once, back to back), waiting for a moment
 * without one could hold every finished container's file systems. A child
 * may then do a teardown; that costs it time, nothing else.
 * @internal Exported for tests only.
 */
export const MAX_DEFERRED = 8;
/** fds waiting for a pool thread, and what to call once each is closed. */
const queue: { fd: number; resolve: () => void; urgent: boolean }[] = [];
/** Closes running on pool threads. */
const running = new Set<{ fd: number; done: Promise<unknown> }>();
/** Launches between their clone3 and the child's execve or exit. */
let launching = 0;

/** A close handed to {@linkcode closeInBackground}. */
export interface BackgroundClose {
  /** Settles once the fd is closed (and so the teardown done); never rejects. */
  readonly done: Promise<void>;
  /** Starts the close even while launches are under way (someone waits for it). */
  hurry(): void;
}

/**
 * Closes `fd` off the event loop's thread. Use it for fds whose close may
 * tear down a container.
 */
export function closeInBackground(fd: number): BackgroundClose {
  if (fd < 0) return { done: Promise.resolve(), hurry() {} };
  const { promise, resolve } = Promise.withResolvers<void>();
  if (!blockingLibc()) {
    setTimeout(() => {
      close(fd);
      resolve();
    }, 0);
    return { done: promise, hurry() {} };
  }
  const waiting = { fd, resolve, urgent: false };
  queue.push(waiting);
  pump();
  return {
    done: promise,
    hurry() {
      waiting.urgent = true;
      pump();
    },
  };
}

/**
 * Starts queued closes, unless a launch is under way: its child holds copies
 * of our fds until it execs, and if ours closed first, the child's would be
 * the last close. Urgent ones, and any beyond MAX_DEFERRED, go anyway.
 */
function pump(): void {
  const libc = blockingLibc()!;
  while (running.size < MAX_RUNNING && queue.length > 0) {
    const index = launching === 0 || queue.length > MAX_DEFERRED ? 0 : queue.findIndex((w) => w.urgent);
    if (index < 0) return;
    const [{ fd, resolve }] = queue.splice(index, 1);
    const entry = { fd, done: Promise.resolve() as Promise<unknown> };
    // libc's close bypasses the helper, which records a Worker's fds
    // (helper/janitor.zig): it must not close this number again later.
    helper().sbox_forget(fd);
    entry.done = libc.close(fd).finally(() => {
      running.delete(entry);
      resolve();
      pump();
    });
    running.add(entry);
  }
}

/**
 * Call before clone3; {@linkcode endLaunch} once the child has exec'd or
 * exited. Waits for a running close that has not yet removed its fd (clone3
 * would copy it into the child, which would then do the teardown); rare, as
 * the pool thread starts within microseconds.
 */
export async function beginLaunch(): Promise<void> {
  launching++;
  // EBADF: the close has started and the fd is gone. A valid fd may also be
  // a new file that reused the number: then this waits a little for nothing.
  const open = [...running].filter((entry) => isOpenFd(entry.fd));
  if (open.length > 0) await Promise.all(open.map((entry) => entry.done));
}

/** See {@linkcode beginLaunch}. */
export function endLaunch(): void {
  launching--;
  if (queue.length > 0) pump();
}

/**
 * Closes waiting or running (for tests).
 *
 * @internal Exported for tests only.
 */
export function pendingCloses(): number {
  return queue.length + running.size;
}
