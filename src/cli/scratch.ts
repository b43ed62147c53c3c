/**
 * The scratch directory of one `sbox run`, under /dev/shm (or /tmp): it
 * holds the empty directories the container mounts its root and its upper
 * layers' tmpfs on (temporary_layers.ts), in its own mount namespace. Removed
 * afterwards, with anything found in it. The run holds a lock on it while it
 * lasts (ownership.ts), so that another run's sweep of leftovers
 * (leftovers.ts) leaves it alone.
 *
 * The CLI runs with --allow-ffi only, so this uses the helper's syscall
 * wrappers (src/sys.ts) rather than Deno.makeTempDir and Deno.remove.
 *
 * @module
 */

import { SboxError } from "../error.ts";
import { errnoName, errnoNumber } from "../errno.ts";
import { printable } from "../cstring.ts";
import {
  AT_REMOVEDIR,
  check,
  close,
  EEXIST,
  ENOENT,
  mountId,
  O,
  open,
  readDirFd,
  tryMkdir,
  tryOpen,
  tryRmdir,
  tryUnlinkAt,
} from "../sys.ts";
import { claimDir, type DirLock } from "../dir_lock.ts";
import { ownedName } from "./ownership.ts";

const EISDIR = errnoNumber("EISDIR");
const EBUSY = errnoNumber("EBUSY");

/**
 * Where scratch directories go, first choice first. A tmpfs: on a disk, each
 * directory removed may wait for the disk (ext4 mounted with `discard`
 * discards a directory's block synchronously: ~1 ms each). The container
 * never sees either (it gets fresh ones).
 */
export const SCRATCH_PARENTS: readonly string[] = ["/dev/shm", "/tmp"];

/** A private directory `/dev/shm/sbox-<pid>-<random>`; `remove()` deletes it and all below. */
export class ScratchDir {
  /** Absolute path of the directory. */
  readonly path: string;
  readonly #lock: DirLock;

  private constructor(path: string, lock: DirLock) {
    this.path = path;
    this.#lock = lock;
  }

  /** Creates a new, empty scratch directory (mode 0700). */
  static create(): ScratchDir {
    // Why the earlier parents were passed over, for the error of the last.
    const passed: string[] = [];
    for (const [i, parent] of SCRATCH_PARENTS.entries()) {
      for (let attempt = 0;; attempt++) {
        const path = `${parent}/${ownedName()}`;
        // 0700: no other user may open it, nor lock it first (ownership.ts).
        const rc = tryMkdir(path, 0o700);
        if (rc === 0) {
          const lock = claimDir(path);
          if (lock) return new ScratchDir(path, lock);
          // A sweep took it before we locked it (and it is removed): another name.
          if (attempt < 10) continue;
          throw new SboxError(`cannot keep a scratch directory in ${parent}`, { step: "scratch" });
        }
        if (-rc === EEXIST && attempt < 10) continue;
        // No such parent, or not writable: the next one.
        if (i < SCRATCH_PARENTS.length - 1) {
          passed.push(`${parent}: ${errnoName(-rc)}`);
          break;
        }
        const before = passed.length > 0 ? ` (tried first: ${passed.join(", ")})` : "";
        check(rc, "scratch", `cannot create a scratch directory ${path}${before}`);
      }
    }
    throw new SboxError("no scratch directory", { step: "scratch" });
  }

  /** An existing scratch directory whose lock the caller took: one a killed `sbox run` left (leftovers.ts). */
  static adopt(path: string, lock: DirLock): ScratchDir {
    return new ScratchDir(path, lock);
  }

  /** Creates the subdirectory `name` (e.g. "root") and returns its path. */
  mkdir(name: string): string {
    const path = `${this.path}/${name}`;
    check(tryMkdir(path, 0o755), "scratch", `cannot create ${path}`);
    return path;
  }

  /**
   * Deletes the directory and its contents, then drops the lock. Refused
   * where something is mounted below it ({@linkcode removeTree}): the
   * container's mounts live in its own mount namespace, so none should be
   * there; if one were, deleting "its" files would delete the host's.
   */
  remove(): void {
    try {
      removeTree(this.path);
    } finally {
      // Only now: with the lock dropped first, a sweep could remove it too.
      this.#lock.release();
    }
  }
}

/**
 * Deletes `path` and everything below it, without following symbolic links
 * and without crossing into another mount: a directory or file on another
 * mount than `path`'s parent (a mount point, or one reached through a
 * mount made on the way) stops the removal with an error naming it, before
 * anything in it or beside it is deleted. Each directory is checked as it
 * is opened, and its entries before any of them is deleted (their fds'
 * mount ids, statx: no reading of the mount table, which a mount made a
 * moment later would not be in), and its entries are deleted and its
 * subdirectories opened through that fd (unlinkat, and its
 * /proc/self/fd/N/name): a mount made on its path since, or a directory on
 * the way renamed or swapped for a link, does not redirect them.
 * Files may belong to any id the container mapped: this needs a caller who
 * may delete them (root, for now).
 */
function removeTree(path: string): void {
  const parent = path.slice(0, path.lastIndexOf("/")) || "/";
  const parentFd = open(parent, O.PATH | O.DIRECTORY);
  let mount;
  try {
    mount = mountId(parentFd);
  } finally {
    close(parentFd);
  }
  const fd = tryOpen(path, O.RDONLY | O.DIRECTORY | O.NOFOLLOW);
  if (fd === -ENOENT) return;
  check(fd, "scratch", `cannot open ${path}`);
  try {
    removeBelow(fd, path, { top: path, mount });
  } finally {
    close(fd);
  }
  const rc = tryRmdir(path);
  if (rc < 0 && -rc !== ENOENT) check(rc, "scratch", `cannot remove ${path}`);
}

/**
 * Deletes what the directory open as `fd` (at `path`) holds, once it is
 * on `tree.mount`, the mount of the tree `tree.top` being removed. Every
 * entry's mount is checked before any of them is deleted: a file mounted
 * there (a bind of a host file) stops the removal with its siblings still
 * there, as a directory does, and is named, not reported as unlink's
 * EBUSY. A mount made on an entry after that check is named so too.
 */
function removeBelow(fd: number, path: string, tree: { top: string; mount: number }): void {
  if (mountId(fd) !== tree.mount) throw mountedBelow(path, tree);
  const entries = readDirFd(fd, path);
  for (const entry of entries) {
    // O_PATH: neither a FIFO nor a device is opened; O_NOFOLLOW: a link's own mount.
    const entryFd = tryOpen(`/proc/self/fd/${fd}/${entry.name}`, O.PATH | O.NOFOLLOW);
    if (entryFd === -ENOENT) continue;
    check(entryFd, "scratch", `cannot open ${path}/${entry.name}`);
    let onTree;
    try {
      onTree = mountId(entryFd) === tree.mount;
    } finally {
      close(entryFd);
    }
    if (!onTree) throw mountedBelow(`${path}/${entry.name}`, tree);
  }
  for (const entry of entries) {
    const child = `${path}/${entry.name}`;
    // Some file systems do not report entry types: a directory then fails unlink with EISDIR.
    let rc = entry.isDirectory ? -EISDIR : tryUnlinkAt(fd, entry.name);
    if (-rc === EISDIR) {
      // openat(fd, name) by another name: through the open directory, not
      // by the whole path, which a directory renamed or swapped for a link
      // on the way (on the same mount) would lead elsewhere.
      const childFd = tryOpen(`/proc/self/fd/${fd}/${entry.name}`, O.RDONLY | O.DIRECTORY | O.NOFOLLOW);
      if (childFd === -ENOENT) continue;
      check(childFd, "scratch", `cannot open ${child}`);
      try {
        removeBelow(childFd, child, tree);
      } finally {
        close(childFd);
      }
      rc = tryUnlinkAt(fd, entry.name, AT_REMOVEDIR);
    }
    // unlink and rmdir refuse a mount point: one mounted since the check.
    if (-rc === EBUSY) throw mountedBelow(child, tree);
    if (rc < 0 && -rc !== ENOENT) check(rc, "scratch", `cannot remove ${child}`);
  }
}

/** The refusal of removing `tree.top` for a mount on `path` (at or below it). */
function mountedBelow(path: string, tree: { top: string }): SboxError {
  const where = path === tree.top ? "it is a mount point" : `${printable(path)} is mounted below it`;
  return new SboxError(`not removing ${printable(tree.top)}: ${where}`, { step: "scratch" });
}
