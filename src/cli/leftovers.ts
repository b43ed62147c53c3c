/**
 * What a `sbox run` that was killed (even by SIGKILL, when nothing of it can
 * clean up) leaves behind: its scratch directory `sbox-<pid>-<random>` (in
 * /dev/shm or /tmp)
 * (empty mount points: the mounts themselves died with the container's mount
 * namespace) and its cgroup `sbox-<pid>-<random>` (empty: the container's
 * processes die with it, PR_SET_PDEATHSIG), and with `--net slirp4netns
 * --publish` the API socket's directory `/tmp/sbox-slirp4netns-<pid>-<random>`
 * (slirp4netns dies with it too, before the socket is removed). The next
 * `sbox run` removes them.
 *
 * Only what is provably abandoned: a run holds a lock on its directory, its
 * cgroup and its slirp4netns API socket's directory for as long as each
 * lasts (dir_lock.ts), which dies with it, so one whose lock can be taken
 * has no owner left, once it was ever locked: a run makes each directory
 * and locks it a moment later. So a directory whose pid names a live
 * process here is passed over too: its run may be in that moment (many runs
 * of one user at once, a judge's load, each sweeping as it starts, took a
 * new directory before its lock often enough to fail a run). A dead pid
 * proves nothing alone: a run in another pid namespace (a judge worker in a
 * container) has a pid that may be free here; the lock still decides. A
 * leftover whose pid was reused stays until that process ends. And a cgroup
 * is only ever rmdir'd, which the kernel refuses while a process is in it:
 * nothing is killed.
 *
 * @module
 */

import type { Cgroup } from "../cgroup.ts";
import { SLIRP4NETNS_SOCKET_DIR, SLIRP4NETNS_SOCKET_NAME } from "../network.ts";
import { EPERM, ids, readDir, stat, tryKill, tryRmdir, tryUnlink } from "../sys.ts";
import { tryLockDir } from "../dir_lock.ts";
import { OWNED_NAME } from "./ownership.ts";
import { SCRATCH_PARENTS, ScratchDir } from "./scratch.ts";

/**
 * Removes the scratch directories and slirp4netns sockets (ours only: owned
 * by our uid) and the cgroups below `parent` of `sbox run`s that are gone.
 * Never fails: a leftover that cannot be removed now stays for a later run
 * (one with something mounted below it too: ScratchDir.remove checks each
 * directory as it gets to it, not by a reading of the mount table, which
 * a mount made a moment later would not be in).
 */
export function removeLeftovers(parent: Cgroup | undefined): void {
  const me = ids();
  for (const parent of SCRATCH_PARENTS) {
    for (const name of ownedNames(parent)) {
      const path = `${parent}/${name}`;
      if (stat(path, false)?.uid !== me.euid || ownerLives(name)) continue;
      try {
        const lock = tryLockDir(path);
        // remove() drops the lock.
        if (lock) ScratchDir.adopt(path, lock).remove();
      } catch {
        // Something is mounted there after all, or it is not ours to remove.
      }
    }
  }
  removeSockets(me.euid);
  if (!parent) return;
  for (const name of ownedNames(parent.path)) {
    if (ownerLives(name)) continue;
    try {
      const lock = tryLockDir(`${parent.path}/${name}`);
      if (!lock) continue;
      try {
        removeEmptyCgroup(`${parent.path}/${name}`);
      } finally {
        lock.release();
      }
    } catch {
      // Not ours to remove.
    }
  }
}

/** Names of the directories in `dir` that sbox made; none if it cannot be read. */
function ownedNames(dir: string): string[] {
  try {
    return readDir(dir).filter((e) => e.isDirectory && OWNED_NAME.test(e.name)).map((e) => e.name);
  } catch {
    return [];
  }
}

/**
 * rmdir of a cgroup and the groups below it (a container may make some),
 * deepest first. A group with a process in it stays (EBUSY), and so do the
 * groups above it.
 */
function removeEmptyCgroup(path: string): void {
  for (const entry of readDir(path)) {
    if (entry.isDirectory) removeEmptyCgroup(`${path}/${entry.name}`);
  }
  tryRmdir(path);
}

/**
 * The directories of slirp4netns API sockets owned by `uid` whose owner is
 * gone: those whose lock (network.ts's `ApiSocket`) can be taken. Whether
 * the socket listens tells nothing: a starting run's slirp4netns binds it
 * some milliseconds after the directory is made, and its run failed when
 * a sweep took the directory in between.
 */
function removeSockets(uid: number): void {
  let entries;
  try {
    entries = readDir(SLIRP4NETNS_SOCKET_DIR);
  } catch {
    return; // Unreadable: nothing to do.
  }
  for (const entry of entries) {
    if (!SLIRP4NETNS_SOCKET_NAME.test(entry.name) || ownerLives(entry.name)) continue;
    const dir = `${SLIRP4NETNS_SOCKET_DIR}/${entry.name}`;
    try {
      const found = stat(dir, false);
      if (found?.uid !== uid || !found.isDirectory) continue;
      const lock = tryLockDir(dir);
      if (!lock) continue;
      try {
        tryUnlink(`${dir}/api.sock`);
        tryRmdir(dir);
      } finally {
        lock.release();
      }
    } catch {
      // Gone meanwhile, or not ours to remove after all.
    }
  }
}

/**
 * Whether the pid in `name` (`sbox-<pid>-<random>`,
 * `sbox-slirp4netns-<pid>-<random>`) is a live process in this pid
 * namespace: its run may not have locked the directory yet (see the module's
 * doc). kill(pid, 0) sends nothing; EPERM is a live process of another user.
 */
function ownerLives(name: string): boolean {
  const pid = Number(/^sbox-(?:slirp4netns-)?(\d+)-/.exec(name)?.[1]);
  // PID_MAX_LIMIT: a larger number names no process (nor fits kill's pid_t).
  if (!Number.isSafeInteger(pid) || pid <= 0 || pid > 4_194_304) return false;
  const rc = tryKill(pid, 0);
  return rc === 0 || rc === -EPERM;
}
