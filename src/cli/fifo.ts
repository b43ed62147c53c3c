/**
 * A FIFO given as `--stdin`: sbox opens it without waiting (O_NONBLOCK: an
 * open that blocks holds the JS thread, where no signal reaches it), and
 * then waits for its writer in the event loop, as a shell's `cmd < fifo`
 * waits in open(). Without the wait, a command that read before the writer
 * had opened the FIFO read end-of-file at once (a read of a FIFO that no
 * writer holds returns 0), and ended `OK` on empty input; the writer, come
 * a moment later, then waited for a reader that was gone.
 *
 * Linux has no event for a writer's open: epoll reports EPOLLIN once
 * something was written and EPOLLHUP once a writer that came after the
 * reader's open has closed again (the reactor waits for these), but
 * nothing for a writer that holds the FIFO open without writing yet (an
 * interactor that waits for the command's first line). tee(2) with
 * SPLICE_F_NONBLOCK tells that one: on an empty FIFO it returns 0 while no
 * writer holds it and fails with EAGAIN while one does, and it takes
 * nothing from the FIFO. Nothing wakes sbox for it, so it asks from a
 * timer, often at first and every quarter of a second at most later on: a
 * timer costs sbox's event loop a wake-up each time (a 20 ms one cost 2% of
 * a CPU), and a writer that has come and written wakes the reactor at once.
 *
 * @module
 */

import { type LibcSymbols, openLibc } from "../libc.ts";
import { reactor } from "../reactor.ts";
import { close, dupCloexec, pipe } from "../sys.ts";

const SPLICE_F_NONBLOCK = 2;

/** How long the wait sleeps between two looks for a silent writer, at first and at most (milliseconds). */
const FIRST_PAUSE_MS = 1;
const LONGEST_PAUSE_MS = 250;

/**
 * Resolves once a writer has opened the FIFO that `fd` reads (opened
 * before it, with or without O_NONBLOCK), or has come and gone, or has
 * written; or once `signal` aborts. Resolves at once where it cannot tell
 * (libc cannot be opened): the command then reads as it would without the
 * wait. Takes nothing from the FIFO.
 */
export async function waitForWriter(fd: number, signal: AbortSignal): Promise<void> {
  let libc: LibcSymbols<"fifo">;
  try {
    libc = openLibc("fifo");
  } catch {
    return;
  }
  // Aborted by `signal`, or once the reactor sees the FIFO readable.
  const woken = new AbortController();
  const wake = AbortSignal.any([signal, woken.signal]);
  // The reactor's own fd of the FIFO, closed through it when done (the
  // command gets `fd`), and tee's other end: a pipe whose read end stays
  // open (tee into a pipe without a reader fails with EPIPE). One byte at
  // most ever lands there.
  let watched = -1;
  let ends: [number, number] | undefined;
  try {
    watched = dupCloexec(fd);
    reactor().readable(watched).then(() => woken.abort());
    ends = pipe();
    let pause = FIRST_PAUSE_MS;
    while (!wake.aborted && !writerHolds(libc, fd, ends[1])) {
      await sleep(pause, wake);
      pause = Math.min(pause * 2, LONGEST_PAUSE_MS);
    }
  } finally {
    if (ends) ends.forEach(close);
    if (watched >= 0) reactor().close(watched);
  }
}

/**
 * Whether a writer holds the FIFO `fd` open, or has written to it (see the
 * module's comment); true too where tee fails otherwise, which no wait
 * would mend.
 */
function writerHolds(libc: LibcSymbols<"fifo">, fd: number, teeTo: number): boolean {
  // 0: empty, and no writer holds it. Else a byte copied (something was
  // written) or a failure: EAGAIN, a writer holds it and has written
  // nothing yet.
  return Number(libc.tee(fd, teeTo, 1n, SPLICE_F_NONBLOCK)) !== 0;
}

/** Resolves after `ms` milliseconds, or at once when `signal` aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done);
  });
}
