/**
 * Which run a scratch directory or a container cgroup belongs to, and
 * whether that run is still alive: its owner holds an exclusive flock(2) on
 * the directory for as long as the run lasts, and the kernel drops the lock
 * when the owner dies, however it dies. A pid in a name cannot tell that:
 * judge workers in containers run sbox in pid namespaces of their own, each
 * seeing its own pids, while their cgroups (and maybe /dev/shm) are shared.
 *
 * The owner makes the directory, then locks it; a sweep (leftovers.ts) that
 * finds it unlocked in between takes the lock and removes it, so the owner
 * checks, once it holds the lock, that its directory is still there, and
 * else makes another. No other user may take part in that: the directory
 * is made 0700, so only its owner (and root) can open it until it is
 * locked ({@linkcode claimDir}). A cgroup's directory is 0755 otherwise:
 * anyone could lock it the moment it appears (inotify tells when), and
 * make every run give up its cgroup, and fail.
 *
 * @module
 */

import { close, EAGAIN, ENOENT, ids, LOCK, O, stat, tryFchmod, tryFlock, tryOpen, tryRmdir } from "../sys.ts";
import { SboxError } from "../error.ts";

/**
 * A new name `sbox-<pid>-<8 hex digits>` for a scratch directory or a
 * cgroup. The pid says whose it is to a reader in the same pid namespace;
 * the random part keeps apart two runs whose pids are the same number in
 * different pid namespaces.
 */
export function ownedName(): string {
  const random = [...crypto.getRandomValues(new Uint8Array(4))].map((b) => b.toString(16).padStart(2, "0"));
  return `sbox-${ids().pid}-${random.join("")}`;
}

/** Names {@linkcode ownedName} makes, the only ones leftovers.ts touches. */
export const OWNED_NAME: RegExp = /^sbox-\d+-[0-9a-f]{8}$/;

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
