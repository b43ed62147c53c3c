/**
 * Who the command runs as: the id mapping of the container's user namespace
 * and the user's ids and home directory inside.
 *
 * @module
 */

import { SboxError } from "../error.ts";
import { ids } from "../sys.ts";
import type { RunOptions } from "./args.ts";
import { readEtcFile } from "./etc.ts";
import {
  BinNewIdMapper,
  findHostProgram,
  type IdMapEntry,
  isMapped,
  keepIdMaps,
  MORE_IDS_HINT,
  ProcUserMapper,
  rootAndSubordinateMaps,
  subordinateRanges,
  type UserMapper,
} from "../user.ts";

/** Container ids 0..65535 are the same host ids: what root can give a container. */
const IDENTITY_MAP: readonly IdMapEntry[] = [{ containerId: 0, hostId: 0, size: 65536 }];

/** The user mapper `sbox run` uses, and why, for `--verbose`. */
export interface PickedMapper {
  mapper: UserMapper;
  /**
   * One line: which mapper and which ids, e.g. "newuidmap/newgidmap: container
   * root is uid 1000 gid 1000; uids 1-65536 are 100000-165535, gids ...".
   */
  description: string;
  /**
   * Set when the user has subordinate ids that cannot be used (an entry that
   * newuidmap would refuse, an unreadable file, no newuidmap): they asked for
   * more than root only, so `sbox run` says so even without --verbose.
   */
  warning?: string;
}

/**
 * Picks the user mapper for this caller:
 * - root: container ids 0-65535 are the same host ids;
 * - a user with /etc/subuid and /etc/subgid entries and newuidmap/newgidmap:
 *   container root is the user, ids 1.. the subordinate ranges, one after
 *   another; with `keepId`, the user's uid and gid are the same ids in the
 *   container, and the ranges fill the others from 0 on (`keepIdMaps`);
 * - any other user: container root is the user, and no other id exists;
 *   with `keepId`, the user's own ids are the only ones, and there is no
 *   container root.
 * `keepId` is for a user only: {@linkcode requestedUser} refuses it for root.
 */
export function pickUserMapper(
  me: { euid: number; gid: number } = ids(),
  files: { subuid: string; subgid: string } = { subuid: "/etc/subuid", subgid: "/etc/subgid" },
  keepId = false,
): PickedMapper {
  if (me.euid === 0) {
    return {
      mapper: new ProcUserMapper({ uidMap: IDENTITY_MAP, gidMap: IDENTITY_MAP }),
      description: "root: container ids 0-65535 are the same host ids (written to /proc/PID/uid_map)",
    };
  }
  let reason: string;
  // What would give more ids, for the step that failed.
  let hint = MORE_IDS_HINT;
  // Whether the user has an /etc/subuid entry (or may have: the file is unreadable).
  let hasEntry = false;
  try {
    const subuids = subordinateRanges(files.subuid, me.euid);
    hasEntry = true;
    const subgids = subordinateRanges(files.subgid, me.euid);
    hint =
      "install newuidmap and newgidmap (Debian's package uidmap) for the ids of /etc/subuid and /etc/subgid";
    findHostProgram("newuidmap");
    findHostProgram("newgidmap");
    hint = "check the entries of /etc/subuid and /etc/subgid";
    const own = { uid: me.euid, gid: me.gid };
    const mapper = new BinNewIdMapper(
      keepId ? keepIdMaps(own, subuids, subgids) : rootAndSubordinateMaps(own, subuids, subgids),
    );
    const ranges = `uids ${describeRanges(mapper.uidMap, me.euid)}, gids ${
      describeRanges(mapper.gidMap, me.gid)
    }`;
    return {
      mapper,
      description: keepId
        ? `newuidmap/newgidmap, keep-id: uid ${me.euid} gid ${me.gid} are the same ids inside; ${ranges}`
        : `newuidmap/newgidmap: container root is uid ${me.euid} gid ${me.gid}; ${ranges}`,
    };
  } catch (err) {
    if (!(err instanceof SboxError)) throw err;
    reason = err.message;
    // No entry at all (no errno: the file was read) is the common case of a
    // user who never asked for subordinate ids; an unreadable file may hold one.
    if (err.errno !== undefined && !hasEntry) {
      hasEntry = true;
      hint = "make /etc/subuid and /etc/subgid readable to all (0644), as Debian has them";
    }
  }
  const description = keepId
    ? `only uid ${me.euid} gid ${me.gid}, the same ids inside, and no container root, so the kernel's IPC ` +
      `limits stay (${reason}); ${hint}`
    : `only container root, as uid ${me.euid} gid ${me.gid} (${reason}); ${hint}`;
  return {
    mapper: keepId ? ProcUserMapper.keepId(me.euid, me.gid) : ProcUserMapper.newRoot(me.euid, me.gid),
    description,
    warning: hasEntry ? `the subordinate ids cannot be used, so ${description}` : undefined,
  };
}

/**
 * The subordinate part of a map, all but the user's own id `own`:
 * "1-65536 are 100000-165535, 65537-... are ...".
 */
function describeRanges(map: readonly IdMapEntry[], own: number): string {
  return map.filter((e) => e.hostId !== own).map((e) =>
    `${e.containerId}-${e.containerId + e.size - 1} are ${e.hostId}-${e.hostId + e.size - 1}`
  ).join(", ");
}

/**
 * The ids asked for: `-u`, or with `--keep-id` the caller's own uid (and
 * gid, unless `-u UID:GID` names another). Throws, naming the option, for a
 * `--keep-id` that cannot be: sbox run as root, whose container has the
 * host's ids as they are already, or a `-u` of another uid.
 */
export function requestedUser(
  options: Pick<RunOptions, "user" | "keepId">,
  me: { euid: number; gid: number } = ids(),
): { uid: number; gid?: number } | undefined {
  if (!options.keepId) return options.user;
  if (me.euid === 0) {
    throw SboxError.invalidOption(
      "--keep-id",
      "sbox runs as root, whose containers have the host's ids 0-65535 as they are: run as a user with " +
        "-u UID[:GID] instead (e.g. -u 1000:1000 owns the files of host uid 1000)",
    );
  }
  if (options.user && options.user.uid !== me.euid) {
    throw SboxError.invalidOption(
      "--user",
      `uid ${options.user.uid} with --keep-id, which runs the command as your own uid ${me.euid}: ` +
        `leave -u out (or give ${me.euid}:GID), or leave --keep-id out to run as another id`,
    );
  }
  return { uid: me.euid, gid: options.user?.gid ?? me.gid };
}

/** The process's user inside the container. */
export interface ContainerUser {
  uid: number;
  gid: number;
  /** Home directory, for $HOME. */
  home: string;
  /**
   * Where a gid that `-u` did not give came from, for a message: "the
   * primary group of uid 1000 in /img/etc/passwd", "uid 1000's own number,
   * as there is no /img/etc/passwd".
   */
  gidSource?: string;
}

/**
 * Resolves `-u UID[:GID]` against the image's /etc/passwd (`rootDir` is the
 * host directory that becomes "/"): a missing GID is the user's primary
 * group there, else the UID; HOME is the user's home there, else /root for
 * root and / for others.
 */
export function resolveUser(rootDir: string, user: { uid: number; gid?: number } | undefined): ContainerUser {
  const uid = user?.uid ?? 0;
  const file = `${rootDir === "/" ? "" : rootDir}/etc/passwd`;
  const text = readPasswd(rootDir);
  const entry = text === undefined ? undefined : passwdEntry(text, uid);
  const resolved: ContainerUser = {
    uid,
    gid: user?.gid ?? entry?.gid ?? (user ? uid : 0),
    home: entry?.home || (uid === 0 ? "/root" : "/"),
  };
  if (user && user.gid === undefined) {
    resolved.gidSource = entry
      ? `the primary group of uid ${uid} in ${file}`
      : `uid ${uid}'s own number, as ${
        text === undefined ? `there is no ${file}` : `${file} has no entry for it`
      }`;
  }
  return resolved;
}

/**
 * Throws an error naming `--user` unless the container has `user`'s ids:
 * the library would refuse them when the command starts, naming its own
 * fields; here nothing exists yet.
 */
export function checkUserMapped(user: ContainerUser, mapper: UserMapper): void {
  for (
    const [kind, id, map] of [["uid", user.uid, mapper.uidMap], ["gid", user.gid, mapper.gidMap]] as const
  ) {
    if (!isMapped(map, id)) {
      const source = kind === "gid" && user.gidSource !== undefined ? ` (${user.gidSource})` : "";
      throw SboxError.invalidOption(
        "--user",
        `${kind} ${id}${source} is not mapped into the container, whose ids are ${describeIds(map)}: ` +
          unmappedRemedy(kind, map, source !== ""),
      );
    }
  }
}

/**
 * What to do about an id of `-u` that the container lacks: with one id only
 * (a user without subordinate ids), get some; else pick one it has.
 */
function unmappedRemedy(kind: "uid" | "gid", map: readonly IdMapEntry[], derived: boolean): string {
  const count = map.reduce((sum, e) => sum + e.size, 0);
  if (count === 1) {
    const keepId = map[0].containerId === 0 ? ", or run the command as yourself with --keep-id" : "";
    return `a user without /etc/subuid and /etc/subgid entries has this one id only: ${MORE_IDS_HINT}${keepId}`;
  }
  return derived ? "give a group of the container's with -u UID:GID" : `give a ${kind} of the container's`;
}

/** The container ids of an id map, adjacent ranges joined: "0-65535". */
function describeIds(map: readonly IdMapEntry[]): string {
  const ranges: [number, number][] = [];
  for (const { containerId, size } of [...map].sort((a, b) => a.containerId - b.containerId)) {
    const last = ranges.at(-1);
    if (last && last[1] + 1 === containerId) last[1] += size;
    else ranges.push([containerId, containerId + size - 1]);
  }
  return ranges.map(([first, end]) => (first === end ? `${first}` : `${first}-${end}`)).join(", ");
}

/** The entry of `uid` in the text of a passwd file, or undefined. */
function passwdEntry(text: string, uid: number): { gid: number; home: string } | undefined {
  for (const line of text.split("\n")) {
    const fields = line.split(":");
    if (fields.length >= 6 && fields[2] === String(uid) && /^\d+$/.test(fields[3])) {
      return { gid: Number(fields[3]), home: fields[5] };
    }
  }
  return undefined;
}

/** More than any real passwd file holds; a bigger one is refused, not read into memory. */
const PASSWD_MAX_BYTES = 4 << 20;

/**
 * `rootDir`/etc/passwd, read without trusting the image (see
 * {@linkcode readEtcFile}); a file past {@linkcode PASSWD_MAX_BYTES} is an
 * error. Undefined when there is no such regular file.
 */
function readPasswd(rootDir: string): string | undefined {
  const bytes = readEtcFile(rootDir, "passwd", PASSWD_MAX_BYTES);
  if (!(bytes instanceof Uint8Array)) return undefined;
  if (bytes.length > PASSWD_MAX_BYTES) {
    throw SboxError.invalidOption(
      "--rootfs",
      `${rootDir}/etc/passwd is larger than ${PASSWD_MAX_BYTES} bytes`,
    );
  }
  return new TextDecoder().decode(bytes);
}
