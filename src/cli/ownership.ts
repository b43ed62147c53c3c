/**
 * Which run a scratch directory or a container cgroup belongs to, and
 * whether that run is still alive: its owner holds an exclusive flock(2) on
 * the directory for as long as the run lasts, and the kernel drops the lock
 * when the owner dies, however it dies. A pid in a name cannot tell that:
 * judge workers in containers run sbox in pid namespaces of their own, each
 * seeing its own pids, while their cgroups (and maybe /dev/shm) are shared.
 *
 * The locks are dir_lock.ts's: the owner makes the directory, then locks
 * it; a sweep (leftovers.ts) that finds it unlocked in between takes the
 * lock and removes it, so the owner checks, once it holds the lock, that
 * its directory is still there, and else makes another. No other user may
 * take part in that: the directory is made 0700, so only its owner (and
 * root) can open it until it is locked (`claimDir`). A cgroup's directory
 * is 0755 otherwise:
 * anyone could lock it the moment it appears (inotify tells when), and
 * make every run give up its cgroup, and fail.
 *
 * @module
 */

import { ids } from "../sys.ts";

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
