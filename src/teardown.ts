/**
 * Closing the last reference to a container's mount namespace unmounts all
 * of its file systems, and the kernel waits for an RCU grace period for each
 * batch of unmounts: a few hundred microseconds. This module keeps that
 * work off every path someone waits on:
 *
 * - not on the init's exit path: the container holds a reference to the
 *   mount namespace until the exit has been reported (see InitProcess);
 * - not on the event loop's thread: the close runs on one of Deno's
 *   blocking-pool threads, through libc's close. libc stays loaded for the
 *   life of the process, unlike the helper library, which Deno unloads with
 *   the Worker that opened it, even under a call still running;
 * - not in the next container: clone3 copies every open fd into the child,
 *   so a reference still open then would be dropped by that child, at its
 *   execve. {@linkcode settleCloses} lets `launch` wait for a close that
 *   has not started yet (rare: the pool thread starts within microseconds).
 *
 * Without libc.so.6 (a musl system) the close happens in a later task of
 * the event loop instead.
 *
 * @module
 */

import { helper } from "./ffi.ts";
import { close } from "./sys.ts";

const LIBC_SYMBOLS = {
  close: { parameters: ["i32"], result: "i32", nonblocking: true },
} as const satisfies Deno.ForeignLibraryInterface;

type Libc = Deno.DynamicLibrary<typeof LIBC_SYMBOLS>["symbols"];

let libc: Libc | null | undefined;

function openLibc(): Libc | null {
  try {
    return Deno.dlopen("libc.so.6", LIBC_SYMBOLS).symbols;
  } catch {
    return null;
  }
}

/** Closes that have been handed to a pool thread and not yet finished. */
const inFlight = new Set<{ fd: number; done: Promise<unknown> }>();

/**
 * Closes `fd` off the event loop's thread. Use it for fds whose close may
 * tear down a container.
 */
export function closeInBackground(fd: number): void {
  if (fd < 0) return;
  libc ??= openLibc();
  if (!libc) {
    setTimeout(() => close(fd), 0);
    return;
  }
  const entry = { fd, done: Promise.resolve() as Promise<unknown> };
  entry.done = libc.close(fd).finally(() => inFlight.delete(entry));
  inFlight.add(entry);
}

/**
 * A promise for the background closes that have not yet removed their fd
 * (which a clone3 now would copy into its child), or `undefined` when
 * there are none: the usual case, which costs no await.
 */
export function settleCloses(): Promise<unknown> | undefined {
  if (inFlight.size === 0) return undefined;
  const F_GETFD = 1;
  // EBADF: the close has started and the fd is gone. A valid fd may also be
  // a new file that reused the number: then this waits a little for nothing.
  const open = [...inFlight].filter((entry) => Number(helper().sbox_fcntl(entry.fd, F_GETFD, 0n)) >= 0);
  return open.length === 0 ? undefined : Promise.all(open.map((entry) => entry.done));
}
