/**
 * Who the command runs as: the id mapping of the container's user namespace
 * and the user's ids and home directory inside.
 *
 * @module
 */

import { SboxError } from "../error.ts";
import { ids, readTextFile } from "../sys.ts";
import { type IdMapEntry, ProcUserMapper, type UserMapper } from "../user.ts";

/** Container ids 0..65535 are the same host ids: what root can give a container. */
const IDENTITY_MAP: readonly IdMapEntry[] = [{ containerId: 0, hostId: 0, size: 65536 }];

/**
 * Picks the user mapper for this caller. Root maps ids 0-65535 one to one;
 * anyone else gets container root as themselves only (subordinate ids through
 * newuidmap are for a later version).
 */
export function pickUserMapper(): UserMapper {
  if (ids().euid === 0) return new ProcUserMapper({ uidMap: IDENTITY_MAP, gidMap: IDENTITY_MAP });
  return ProcUserMapper.newRoot();
}

/** The process's user inside the container. */
export interface ContainerUser {
  uid: number;
  gid: number;
  /** Home directory, for $HOME. */
  home: string;
}

/**
 * Resolves `-u UID[:GID]` against the image's /etc/passwd (`rootDir` is the
 * host directory that becomes "/"): a missing GID is the user's primary
 * group there, else the UID; HOME is the user's home there, else /root for
 * root and / for others.
 */
export function resolveUser(rootDir: string, user: { uid: number; gid?: number } | undefined): ContainerUser {
  const uid = user?.uid ?? 0;
  const entry = passwdEntry(rootDir, uid);
  return {
    uid,
    gid: user?.gid ?? entry?.gid ?? (user ? uid : 0),
    home: entry?.home || (uid === 0 ? "/root" : "/"),
  };
}

function passwdEntry(rootDir: string, uid: number): { gid: number; home: string } | undefined {
  let text: string;
  try {
    text = readTextFile(`${rootDir === "/" ? "" : rootDir}/etc/passwd`);
  } catch (err) {
    if (err instanceof SboxError) return undefined; // no passwd file: an image without users
    throw err;
  }
  for (const line of text.split("\n")) {
    const fields = line.split(":");
    if (fields.length >= 6 && fields[2] === String(uid) && /^\d+$/.test(fields[3])) {
      return { gid: Number(fields[3]), home: fields[5] };
    }
  }
  return undefined;
}
