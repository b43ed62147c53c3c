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
import { check, EEXIST, ENOENT, readDir, tryMkdir, tryRmdir, tryUnlink } from "../sys.ts";
import { type MountEntry, mountTable } from "../mountinfo.ts";
import { isWithin } from "../path.ts";
import { claimDir, type DirLock } from "../dir_lock.ts";
import { ownedName } from "./ownership.ts";

const EISDIR = errnoNumber("EISDIR");

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
   * where `mounts`, this process's mount table read for the operation this
   * call is part of (read anew by default), has a mount below it: it must
   * be read after the container ran, whose mounts it looks for.
   */
  remove(mounts: readonly MountEntry[] = mountTable()): void {
    try {
      refuseMountsBelow(this.path, mounts);
      removeTree(this.path);
    } finally {
      // Only now: with the lock dropped first, a sweep could remove it too.
      this.#lock.release();
    }
  }
}

/**
 * Deletes `path` and everything below it, without following symbolic links.
 * Files may belong to any id the container mapped: this needs a caller who
 * may delete them (root, for now).
 */
export function removeTree(path: string): void {
  for (const entry of readDir(path)) {
    const child = `${path}/${entry.name}`;
    if (entry.isDirectory) {
      removeTree(child);
      continue;
    }
    const rc = tryUnlink(child);
    // Some file systems do not report entry types: a directory then fails here.
    if (-rc === EISDIR) removeTree(child);
    else if (rc < 0 && -rc !== ENOENT) check(rc, "scratch", `cannot remove ${child}`);
  }
  const rc = tryRmdir(path);
  if (rc < 0 && -rc !== ENOENT) check(rc, "scratch", `cannot remove ${path}`);
}

/**
 * The container's mounts live in its own mount namespace, so none should be
 * visible here; if one were, deleting "its" files would delete the host's.
 */
function refuseMountsBelow(path: string, mounts: readonly MountEntry[]): void {
  for (const { path: mountPoint } of mounts) {
    if (isWithin(mountPoint, path)) {
      throw new SboxError(`not removing ${path}: ${printable(mountPoint)} is mounted below it`, {
        step: "scratch",
      });
    }
  }
}
