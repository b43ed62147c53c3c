/**
 * An exclusive flock(2) on a directory for as long as its owner uses it, so
 * that a sweep of leftovers removes only directories whose owner is gone:
 * the kernel drops the lock when its holder dies, however it dies. The lock
 * is on the open file description of an O_CLOEXEC fd: a program this process
 * starts does not inherit it (every child closes the fds it was not given),
 * so it cannot outlive its owner in another process.
 *
 * The owner makes the directory (mode 0700), then locks it; a sweep that
 * finds it unlocked in between takes the lock and removes it, so the owner
 * checks, once it holds the lock, that its directory is still there, and
 * else makes another ({@linkcode claimDir}). Used by `sbox run`'s scratch
 * directory and cgroup (cli/ownership.ts) and by slirp4netns's API socket
 * directory (network.ts); cli/leftovers.ts sweeps them.
 *
 * @module
 */

import { close, EAGAIN, ENOENT, LOCK, O, stat, tryFchmod, tryFlock, tryOpen, tryRmdir } from "./sys.ts";
import { SboxError } from "./error.ts";

/**
 * An exclusive lock on a directory; `release()` drops it (after the
 * directory is removed). A second `release()` does nothing: the lock's fd
 * number may belong to another file by then.
 */
export interface DirLock {
  release(): void;
}

/**
 * Locks directory `path` without waiting: the lock, or undefined when
 * another process holds it or the directory is gone.
 */
export function tryLockDir(path: string): DirLock | undefined {
  return lockDir(path)?.lock;
}

/** {@linkcode tryLockDir}, with the locked fd. */
function lockDir(path: string): { fd: number; lock: DirLock } | undefined {
  const fd = tryOpen(path, O.RDONLY | O.DIRECTORY);
  if (-fd === ENOENT) return undefined;
  if (fd < 0) throw SboxError.fromErrno("lock", `cannot open ${path}`, -fd);
  const rc = tryFlock(fd, LOCK.EX | LOCK.NB);
  if (rc < 0) {
    close(fd);
    if (-rc === EAGAIN) return undefined;
    throw SboxError.fromErrno("lock", `cannot lock ${path}`, -rc);
  }
  let held = true;
  const lock = {
    release: () => {
      if (held) close(fd);
      held = false;
    },
  };
  return { fd, lock };
}

/**
 * Claims directory `path`, which the caller has just made with mode 0700,
 * so that no other user can open it, let alone lock it (a lock another
 * user took first would make this run give up the directory, and take it
 * for a live run's, which no sweep removes while they hold it): locks it,
 * checks that it is still there, and then gives it `mode`, if given. From
 * then on anyone may open it, but not lock it: this run holds the lock.
 *
 * Undefined when a sweep (this user's or root's: no one else may open the
 * directory) took it first; the caller makes one of another name. The
 * directory is removed then, if still there, rather than left to the
 * sweep: nothing may stay of a run that fails. So too on an error.
 */
export function claimDir(path: string, mode?: number): DirLock | undefined {
  let locked: { fd: number; lock: DirLock } | undefined;
  try {
    locked = lockDir(path);
    if (!locked || !stat(path, false)?.isDirectory) {
      locked?.lock.release();
      tryRmdir(path);
      return undefined;
    }
    if (mode !== undefined) {
      const rc = tryFchmod(locked.fd, mode);
      if (rc < 0) throw SboxError.fromErrno("lock", `cannot chmod ${path}`, -rc);
    }
    return locked.lock;
  } catch (err) {
    tryRmdir(path);
    locked?.lock.release();
    throw err;
  }
}
