/**
 * The part that tests/programs/clone_emfile.ts and slirp_emfile.ts share:
 * a start in a fd table filled but for a few slots.
 *
 * @module
 */

import { close, O, tryOpen } from "../../src/sys.ts";

/**
 * Fills this process's fd table with /dev/null but for `free` slots, runs
 * `start` in it, and frees the table once the start has returned (so that
 * waiting for its end has fds again) or failed. Returns "ok", or the
 * start's error message.
 */
export async function startWithFreeFds(
  free: number,
  start: () => Promise<{ status: Promise<unknown> }>,
): Promise<string> {
  const filler: number[] = [];
  for (let fd = tryOpen("/dev/null", O.RDONLY); fd >= 0; fd = tryOpen("/dev/null", O.RDONLY)) filler.push(fd);
  for (const fd of filler.splice(filler.length - free)) close(fd);
  try {
    const init = await start();
    for (const fd of filler.splice(0)) close(fd);
    await init.status;
    return "ok";
  } catch (err) {
    return (err as Error).message;
  } finally {
    for (const fd of filler) close(fd);
  }
}
