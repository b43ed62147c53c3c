/**
 * What a `sbox run` that was killed (even by SIGKILL, when nothing of it can
 * clean up) leaves behind: its scratch directory `sbox-<pid>-<random>` (in
 * /dev/shm or /tmp)
 * (empty mount points: the mounts themselves died with the container's mount
 * namespace) and its cgroup `sbox-<pid>-<n>` (empty: the container's
 * processes die with it, PR_SET_PDEATHSIG), and with `--net slirp4netns
 * --publish` the API socket `/tmp/sbox-slirp4netns-<pid>-<random>.sock`
 * (slirp4netns dies with it too, before it can remove the socket). The next
 * `sbox run` removes those of processes that are gone.
 *
 * @module
 */

import type { Cgroup } from "../cgroup.ts";
import { SLIRP4NETNS_SOCKET_DIR, SLIRP4NETNS_SOCKET_NAME } from "../network.ts";
import { ids, readDir, stat, tryUnlink } from "../sys.ts";
import { SCRATCH_PARENTS, ScratchDir } from "./scratch.ts";

/** Names as scratch.ts and limits.ts make them; nothing else is touched. */
const SCRATCH_NAME = /^sbox-(\d+)-[0-9a-f]{8}$/;
const CGROUP_NAME = /^sbox-(\d+)-\d+$/;

/** The pid in a leftover's name when that process is gone, else undefined. */
function deadOwner(name: string, pattern: RegExp): number | undefined {
  const match = pattern.exec(name);
  if (!match) return undefined;
  const pid = Number(match[1]);
  // A live process of that pid (a reused pid included) keeps it: when in
  // doubt, leave it.
  return stat(`/proc/${pid}`) === undefined ? pid : undefined;
}

/**
 * Removes the scratch directories and slirp4netns sockets (ours only: owned
 * by our uid) and the cgroups below `parent` of `sbox run`s that are gone.
 * Never fails: a leftover that cannot be removed now stays for a later run.
 */
export async function removeLeftovers(parent: Cgroup | undefined): Promise<void> {
  const me = ids();
  for (const parent of SCRATCH_PARENTS) {
    try {
      for (const entry of readDir(parent)) {
        if (!entry.isDirectory || deadOwner(entry.name, SCRATCH_NAME) === undefined) continue;
        const path = `${parent}/${entry.name}`;
        if (stat(path, false)?.uid !== me.euid) continue;
        try {
          ScratchDir.adopt(path).remove();
        } catch {
          // Something is mounted there after all, or it is not ours to remove.
        }
      }
    } catch {
      // Missing or unreadable: nothing to do.
    }
  }
  removeSockets(me.euid);
  if (!parent) return;
  try {
    for (const entry of readDir(parent.path)) {
      if (!entry.isDirectory || deadOwner(entry.name, CGROUP_NAME) === undefined) continue;
      await parent.child(entry.name).remove().catch(() => {});
    }
  } catch {
    // The parent cgroup is not readable: nothing to do.
  }
}

/** The slirp4netns API sockets owned by `uid` whose sbox process is gone. */
function removeSockets(uid: number): void {
  try {
    for (const entry of readDir(SLIRP4NETNS_SOCKET_DIR)) {
      if (deadOwner(entry.name, SLIRP4NETNS_SOCKET_NAME) === undefined) continue;
      const path = `${SLIRP4NETNS_SOCKET_DIR}/${entry.name}`;
      const found = stat(path, false);
      const S_IFSOCK = 0o140000;
      if (found?.uid === uid && (found.mode & 0o170000) === S_IFSOCK) tryUnlink(path);
    }
  } catch {
    // Unreadable: nothing to do.
  }
}
