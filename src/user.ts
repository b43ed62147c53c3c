/**
 * User namespaces: who a container's ids are on the host. A mapper writes
 * the uid and gid maps of a child that waits in its new user namespace
 * (between clone3 and the release byte, see launch.ts).
 *
 * - {@linkcode ProcUserMapper} writes /proc/PID/{uid_map,setgroups,gid_map}
 *   itself: root can map anything, a user only its own uid and gid.
 * - {@linkcode BinNewIdMapper} runs the setuid `newuidmap`/`newgidmap`
 *   (Debian's `uidmap`), which map the ranges of /etc/subuid and /etc/subgid.
 *
 * @module
 */

import { SboxError } from "./error.ts";
import { checkCommand, checkId, checkKnownKeys, isRecord, type KnownKeys, show } from "./options.ts";
import { HostDaemon } from "./host.ts";
import { describeEnd, launch } from "./launch.ts";
import { Process } from "./process.ts";
import { CLONE } from "./program.ts";
import { dieWithParent } from "./security/security.ts";
import { environment, type FileStat, ids, readTextFile, stat, writeTextFile } from "./sys.ts";

/** One line of a uid or gid map: `size` ids from `containerId` are `hostId...` on the host. */
export interface IdMapEntry {
  /** First id inside the container. */
  containerId: number;
  /** First id on the host. */
  hostId: number;
  /** Number of consecutive ids. */
  size: number;
}

/** Writes the id maps of new user namespaces. */
export interface UserMapper {
  /** The uid map written for every container. */
  readonly uidMap: readonly IdMapEntry[];
  /** The gid map written for every container. */
  readonly gidMap: readonly IdMapEntry[];
  /** Whether processes may call setgroups(2) (false when "deny" is written). */
  readonly setgroupsAllowed: boolean;
  /** Writes the maps of process `pid`, which waits in a new user namespace. */
  map(pid: number): Promise<void> | void;
}

/**
 * Refuses a `userMapper` without the maps and the map() that a launch
 * uses: else a TypeError, or a map() call that fails with the child waiting.
 * Its maps are checked as the constructors of sbox's mappers check them
 * (entries of integer ids in range, no overlap, within the kernel's
 * limits), as they are now: a mapper of the caller's own is checked
 * nowhere else, and the entries of sbox's may have been changed since
 * (they are read-only to TypeScript alone). A bad entry failed with a
 * TypeError, a uid "not mapped", or the kernel's EINVAL in the child.
 */
export function checkUserMapper(mapper: unknown): asserts mapper is UserMapper {
  const m = mapper as Partial<Record<keyof UserMapper, unknown>> | null | undefined;
  if (!m || typeof m.map !== "function" || !Array.isArray(m.uidMap) || !Array.isArray(m.gidMap)) {
    throw SboxError.invalidOption(
      "userMapper",
      "must be a ProcUserMapper, a BinNewIdMapper or another UserMapper",
    );
  }
  validateMap("userMapper", "uidMap", m.uidMap);
  validateMap("userMapper", "gidMap", m.gidMap);
}

/** Whether `id` inside the container is mapped by `map`. */
export function isMapped(map: readonly IdMapEntry[], id: number): boolean {
  return map.some((e) => id >= e.containerId && id < e.containerId + e.size);
}

/** The container id of host id `id` under `map`, or undefined when unmapped. */
export function containerId(map: readonly IdMapEntry[], id: number): number | undefined {
  const entry = map.find((e) => id >= e.hostId && id < e.hostId + e.size);
  return entry === undefined ? undefined : entry.containerId + (id - entry.hostId);
}

/** The host id of container id `id` under `map`, or undefined when unmapped. */
export function hostId(map: readonly IdMapEntry[], id: number): number | undefined {
  const entry = map.find((e) => id >= e.containerId && id < e.containerId + e.size);
  return entry === undefined ? undefined : entry.hostId + (id - entry.containerId);
}

/**
 * The container ids that the setup of a container's init takes once its
 * maps are written, each undefined where it keeps the one it has. After
 * clone3 the child holds every capability in its new user namespace, but
 * its ids are still the caller's host ids seen through the maps: container
 * root when the caller is mapped to it (sbox run as root, `newRoot`,
 * `newRootSubid`), else another id (keep-id maps), or none (the overflow
 * id). Wherever the caller is mapped, the setup keeps the caller's ids, so
 * that on the host it is exactly the caller with the namespace's
 * capabilities, whatever the maps:
 * - the host paths it mounts (bind sources, overlay layers, the host's
 *   root) were planned as the caller, who may reach some that another id
 *   may not: an ACL such as udisks2's on `/media/$USER` names the user, and
 *   the capabilities count only on inodes of mapped ids. Keep-id maps'
 *   container root is a subordinate id, which failed there with EACCES;
 * - the directories and files it makes in the caller's binds (a missing
 *   `-w`, mount points) belong to the caller: under keep-id maps, the
 *   command itself. As container root they were the subordinate id's,
 *   which neither the command nor the caller could write or remove.
 * The one step that needs the namespace's root itself, which no capability
 * replaces, the IPC sysctls, takes it for those writes alone
 * ({@linkcode setupUidBesideRoot}). Where the caller is not mapped, the setup
 * takes the lowest id the maps have: a file system mounted in the container
 * refuses to create a file for an id it cannot store (EOVERFLOW).
 *
 * @example A keep-id map with subordinate ids: the setup keeps the caller's ids
 * ```ts
 * import { setupIds } from "./user.ts";
 *
 * const map = [{ containerId: 0, hostId: 100000, size: 1000 }, { containerId: 1000, hostId: 1000, size: 1 }];
 * setupIds({ uidMap: map, gidMap: map }, { euid: 1000, egid: 1000 }); // { uid: undefined, gid: undefined }
 * setupIds({ uidMap: map, gidMap: map }, { euid: 0, egid: 0 }); // { uid: 0, gid: 0 }: root is not mapped
 * ```
 */
export function setupIds(
  maps: { readonly uidMap: readonly IdMapEntry[]; readonly gidMap: readonly IdMapEntry[] },
  me: { euid: number; egid: number } = ids(),
): { uid: number | undefined; gid: number | undefined } {
  const setupId = (map: readonly IdMapEntry[], own: number) =>
    containerId(map, own) !== undefined ? undefined : Math.min(...map.map((e) => e.containerId));
  return { uid: setupId(maps.uidMap, me.euid), gid: setupId(maps.gidMap, me.egid) };
}

/**
 * The setup's uid in the container where the maps have a container root
 * but the setup runs as another id ({@linkcode setupIds}; keep-id maps with
 * subordinate ids). Only the namespace's root may write its IPC sysctls (a
 * capability does not count: `ipc_permissions` in the kernel's
 * `ipc/ipc_sysctl.c`), so the setup becomes container root for those
 * writes and this uid again right after (`asContainerRoot`,
 * src/security/security.ts). Undefined where the setup is container root
 * already, and where the maps have no root (then nothing can write them,
 * and the kernel's defaults stay).
 *
 * @example Keep-id maps with subordinate ids: uid 1000 around the writes as root
 * ```ts
 * import { setupUidBesideRoot } from "./user.ts";
 *
 * const map = [{ containerId: 0, hostId: 100000, size: 1000 }, { containerId: 1000, hostId: 1000, size: 1 }];
 * setupUidBesideRoot({ uidMap: map, gidMap: map }, { euid: 1000, egid: 1000 }); // 1000
 * ```
 */
export function setupUidBesideRoot(
  maps: { readonly uidMap: readonly IdMapEntry[]; readonly gidMap: readonly IdMapEntry[] },
  me: { euid: number; egid: number } = ids(),
): number | undefined {
  if (!isMapped(maps.uidMap, 0)) return undefined;
  const uid = setupIds(maps, me).uid ?? containerId(maps.uidMap, me.euid);
  return uid === 0 ? undefined : uid;
}

/** A uid_map or gid_map write must be shorter than a page (4096 bytes on the architectures sbox builds for). */
const MAP_TEXT_MAX = 4096;

const ENTRY_KEYS: KnownKeys<IdMapEntry> = { containerId: true, hostId: true, size: true };

/** The maps of a mapper's `options`, checked; `within` names the mapper. */
function validateMaps(
  within: string,
  options: { uidMap: readonly IdMapEntry[]; gidMap: readonly IdMapEntry[] },
): { uidMap: IdMapEntry[]; gidMap: IdMapEntry[] } {
  // A misspelled gidMap would read as an empty map, which names only gidMap.
  if (!isRecord(options)) {
    throw SboxError.invalidOption(within, `options must be { uidMap, gidMap }, got ${show(options)}`);
  }
  checkKnownKeys(options, { uidMap: true, gidMap: true }, within);
  return {
    uidMap: validateMap(undefined, "uidMap", options.uidMap),
    gidMap: validateMap(undefined, "gidMap", options.gidMap),
  };
}

/**
 * Checks id map `map` (`kind`: "uidMap" or "gidMap") and returns a copy
 * of its entries. Errors name `option` with the map's kind in the problem
 * (`userMapper`: "uidMap: ..."), or the map itself without an option.
 */
function validateMap(option: string | undefined, kind: string, map: readonly IdMapEntry[]): IdMapEntry[] {
  const refuse = (problem: string) =>
    option === undefined
      ? SboxError.invalidOption(kind, problem)
      : SboxError.invalidOption(option, `${kind}: ${problem}`);
  if (!Array.isArray(map) || map.length === 0) throw refuse("the map is empty");
  if (map.length > 340) throw refuse("more than 340 entries");
  const entries: IdMapEntry[] = [];
  // By index: `map` skips a hole, which would come out as an entry of undefined.
  for (let i = 0; i < map.length; i++) {
    const e: unknown = map[i];
    if (!isRecord(e)) throw refuse(`an entry must be { containerId, hostId, size }, got ${show(e)}`);
    if (option === undefined) checkKnownKeys(e, ENTRY_KEYS, kind);
    const { containerId, hostId, size } = e as IdMapEntry;
    entries.push({ containerId, hostId, size });
  }
  for (const e of entries) {
    for (const [field, value] of Object.entries(e)) {
      if (typeof value !== "number" || !Number.isInteger(value) || value < 0 || value > 0xfffffffe) {
        throw refuse(`${field} must be an integer id, got ${show(value)}`);
      }
    }
    if (e.size < 1) throw refuse("size must be at least 1");
    // The kernel's ids are 32-bit, and 4294967295 is the invalid id.
    for (const side of ["containerId", "hostId"] as const) {
      if (e[side] + e.size > 0xffffffff) {
        throw refuse(`${side} ${e[side]} + size ${e.size} goes past the last id, 4294967294`);
      }
    }
  }
  // The kernel takes a map in one write of less than a page.
  const bytes = mapText(entries).length;
  if (bytes >= MAP_TEXT_MAX) {
    throw refuse(`${bytes} bytes as text, and the kernel takes at most ${MAP_TEXT_MAX - 1}`);
  }
  // The kernel refuses overlaps on either side.
  for (const side of ["containerId", "hostId"] as const) {
    const sorted = [...entries].sort((a, b) => a[side] - b[side]);
    for (let i = 1; i < sorted.length; i++) {
      if (sorted[i][side] < sorted[i - 1][side] + sorted[i - 1].size) {
        const where = side === "containerId" ? "container" : "host";
        throw refuse(`entries overlap at ${where} id ${sorted[i][side]}`);
      }
    }
  }
  return entries;
}

function mapText(map: readonly IdMapEntry[]): string {
  return map.map((e) => `${e.containerId} ${e.hostId} ${e.size}\n`).join("");
}

/** The maps of both mappers' `newRoot`: container root (0) is host `uid`/`gid` (default: the caller's), alone. */
function rootOnlyMaps(uid?: number, gid?: number): { uidMap: IdMapEntry[]; gidMap: IdMapEntry[] } {
  const me = ids();
  return {
    uidMap: [{ containerId: 0, hostId: uid ?? me.euid, size: 1 }],
    gidMap: [{ containerId: 0, hostId: gid ?? me.gid, size: 1 }],
  };
}

/**
 * Writes /proc/PID/uid_map, setgroups and gid_map directly. As root any map
 * works; as a user only your own uid and gid, and setgroups is denied.
 *
 * @example Container root as host uid 1000, as the caller; an identity map (as root)
 * ```ts
 * import { ProcUserMapper } from "./user.ts";
 *
 * // Root in the container is host uid and gid 1000 (another user's ids: as root only).
 * const thousand = ProcUserMapper.newRoot(1000, 1000);
 * // Root in the container is the calling user, the one id any user may map.
 * const caller = ProcUserMapper.newRoot();
 * // As root: container ids 0-65535 are the same host ids, so `uid: 1000` exists in the container.
 * const identity = new ProcUserMapper({
 *   uidMap: [{ containerId: 0, hostId: 0, size: 65536 }],
 *   gidMap: [{ containerId: 0, hostId: 0, size: 65536 }],
 * });
 * console.log(thousand.uidMap, caller.uidMap.length, identity.uidMap[0].size); // [ { containerId: 0, hostId: 1000, size: 1 } ] 1 65536
 * ```
 */
export class ProcUserMapper implements UserMapper {
  readonly uidMap: readonly IdMapEntry[];
  readonly gidMap: readonly IdMapEntry[];
  readonly setgroupsAllowed: boolean;

  /** A mapper for the given maps, validated now. */
  constructor(options: { uidMap: readonly IdMapEntry[]; gidMap: readonly IdMapEntry[] }) {
    ({ uidMap: this.uidMap, gidMap: this.gidMap } = validateMaps("ProcUserMapper", options));
    // Writing a gid map without CAP_SETGID on the host needs setgroups
    // "deny" first, so that a process cannot drop groups that deny it access.
    this.setgroupsAllowed = ids().euid === 0;
  }

  /** Maps container root (0) to host `uid`/`gid` (default: the caller's). */
  static newRoot(uid?: number, gid?: number): ProcUserMapper {
    return new ProcUserMapper(rootOnlyMaps(uid, gid));
  }

  /**
   * The user's own uid and gid (default: the caller's) are the same ids in
   * the container, and no other id exists: what a user without subordinate
   * ids can map to run as themselves, not as root (`sbox run --keep-id`).
   * The container has no root, so the setup skips what only the namespace's
   * root may do: the IPC limits (security.md).
   */
  static keepId(uid?: number, gid?: number): ProcUserMapper {
    const me = ids();
    const hostUid = uid ?? me.euid, hostGid = gid ?? me.gid;
    return new ProcUserMapper({
      uidMap: [{ containerId: hostUid, hostId: hostUid, size: 1 }],
      gidMap: [{ containerId: hostGid, hostId: hostGid, size: 1 }],
    });
  }

  /** Writes the maps of `pid`. */
  map(pid: number): void {
    try {
      writeTextFile(`/proc/${pid}/uid_map`, mapText(this.uidMap));
      if (!this.setgroupsAllowed) writeTextFile(`/proc/${pid}/setgroups`, "deny");
      writeTextFile(`/proc/${pid}/gid_map`, mapText(this.gidMap));
    } catch (err) {
      throw explainMapFailure(err, this.uidMap, this.gidMap);
    }
  }
}

/**
 * How a user gets ids besides their own: the one wording of the library's
 * errors and `sbox run`'s.
 */
export const MORE_IDS_HINT =
  "give the user /etc/subuid and /etc/subgid entries for more ids (docs/rootless.md)";

/**
 * A failed write of an id map, with its likely cause where this process
 * can tell it: a read-only /proc (EROFS), a user namespace of its own that
 * does not map the host ids the maps name (EPERM: `unshare -U -r`, a
 * container that maps only a few ids), or (EPERM) a user, not root, who
 * named ids other than their own uid and gid, which is all the kernel lets
 * a user map this way. Anything else as it was. `readOwnMap` reads this
 * process's own map ("uid_map", "gid_map"); `me`, its effective ids.
 * @internal Exported for tests only.
 */
export function explainMapFailure(
  err: unknown,
  uidMap: readonly IdMapEntry[],
  gidMap: readonly IdMapEntry[],
  readOwnMap: (file: "uid_map" | "gid_map") => string = (file) => readTextFile(`/proc/self/${file}`),
  me: { euid: number; egid: number } = ids(),
): unknown {
  if (!(err instanceof SboxError)) return err;
  let why: string | undefined;
  if (err.errno === "EROFS") {
    why = "/proc is mounted read-only here, and a container's id maps are written through it: run sbox " +
      "where /proc is writable (a container that runs sbox must not mount its /proc read-only)";
  } else if (err.errno === "EPERM") {
    for (const [file, map, kind] of [["uid_map", uidMap, "uids"], ["gid_map", gidMap, "gids"]] as const) {
      let own: string;
      try {
        own = readOwnMap(file);
      } catch {
        continue;
      }
      const ranges = own.trim().split("\n").map((line) => line.trim().split(/\s+/).map(Number));
      const missing = map.find((entry) => !coveredBy(entry.hostId, entry.size, ranges));
      if (!missing) continue;
      const shown = ranges.map(([inside, , count]) =>
        count === 1 ? `${inside}` : `${inside}-${inside + count - 1}`
      );
      why = `this process runs in a user namespace that maps only ${kind} ${shown.join(", ")} ` +
        `(/proc/self/${file}), and a container can be given only ids mapped there, not ` +
        `${missing.size === 1 ? missing.hostId : `${missing.hostId}-${missing.hostId + missing.size - 1}`}` +
        (ids().euid === 0
          ? ": as root, sbox maps container ids 0-65535 to the same ids; run it where those are mapped " +
            "(a user namespace of 65536 ids or more), or, from the library, give a ProcUserMapper of ids " +
            "that are"
          : "");
      break;
    }
    // The kernel's rule for a writer without CAP_SETUID/CAP_SETGID over the
    // host's ids (new_idmap_permitted): one line, of one id, its own.
    const onlyOwn = (map: readonly IdMapEntry[], own: number) =>
      map.length === 1 && map[0].size === 1 && map[0].hostId === own;
    if (why === undefined && me.euid !== 0) {
      const other = !onlyOwn(uidMap, me.euid)
        ? { kind: "uids", map: uidMap }
        : !onlyOwn(gidMap, me.egid)
        ? { kind: "gids", map: gidMap }
        : undefined;
      if (other) {
        const hostIds = other.map.map((e) =>
          e.size === 1 ? `${e.hostId}` : `${e.hostId}-${e.hostId + e.size - 1}`
        );
        why = `a user may map only their own uid and gid this way, one id each (here uid ${me.euid}, gid ` +
          `${me.egid}), not host ${other.kind} ${hostIds.join(", ")}: ${MORE_IDS_HINT}, and map them with ` +
          "BinNewIdMapper, which runs newuidmap and newgidmap";
      }
    }
  }
  if (why === undefined) return err;
  return new SboxError(`${err.message}: ${why}`, { step: err.step, errno: err.errnoNumber, cause: err });
}

/**
 * Whether ids `id` to `id + size - 1` are all mapped by `ranges` (the lines
 * of an id map: `inside outside count`), together: an entry may span two
 * adjacent lines (`0 0 1000` and `1000 1000 64536` map 0-65535).
 */
function coveredBy(id: number, size: number, ranges: readonly number[][]): boolean {
  const sorted = [...ranges].sort((a, b) => a[0] - b[0]);
  let next = id; // the first id not yet seen mapped
  for (const [inside, , count] of sorted) {
    if (inside > next) break; // a gap (sorted: no later line starts lower)
    next = Math.max(next, inside + count);
    if (next >= id + size) return true;
  }
  return next >= id + size;
}

/**
 * Finds a program in the host's PATH (from /proc/self/environ) or the usual
 * places; the error names the Debian package that has it.
 */
export function findHostProgram(name: string, debianPackage = "uidmap"): string {
  const dirs = (environment().PATH ?? "").split(":").filter(Boolean);
  for (const dir of [...dirs, "/usr/bin", "/bin", "/usr/sbin", "/sbin"]) {
    const path = `${dir}/${name}`;
    let found: FileStat | undefined;
    try {
      found = stat(path);
    } catch {
      // As execvp does: a directory this user may not search (EACCES, such
      // as root's ~/go/bin in an inherited PATH), an entry that is no
      // directory (ENOTDIR) or a loop of links is skipped, not fatal.
      continue;
    }
    // As execvp: a file no one may execute is passed over, not chosen.
    if (found?.isFile && (found.mode & 0o111) !== 0) return path;
  }
  throw new SboxError(`${name} not found in PATH (install Debian's ${debianPackage} package)`, {
    step: debianPackage === "uidmap" ? "user" : "network",
  });
}

/** A user's name from /etc/passwd, or undefined. */
function userName(uid: number): string | undefined {
  for (const line of readTextFile("/etc/passwd").split("\n")) {
    const fields = line.split(":");
    if (fields.length > 2 && Number(fields[2]) === uid && fields[2] !== "") return fields[0];
  }
  return undefined;
}

/** A range of subordinate ids: host ids `start` to `start + count - 1`. */
export interface SubordinateRange {
  start: number;
  count: number;
}

/**
 * The kernel takes at most this many lines in a uid_map or gid_map
 * (UID_GID_MAP_MAX_EXTENTS); one is the user's own id.
 */
const MAX_SUBORDINATE_RANGES = 339;

/**
 * The ranges of /etc/subuid or /etc/subgid for a user (by name or id), in
 * the file's order. Read as newuidmap reads it: `OWNER:START:COUNT`, each
 * number as C's `strtoul` with base 0 reads it ({@linkcode parseSubordinateId}),
 * so that `0100000` is octal (32768) and `0x10000` hexadecimal (65536), as
 * shadow-utils takes them; a line that is not so is skipped, as newuidmap
 * skips it (taking it would pick a range that newuidmap then refuses). Which
 * of them a map can use is for {@linkcode rootAndSubordinateMaps} to say.
 */
export function subordinateRanges(file: string, id: number): SubordinateRange[] {
  const name = userName(id);
  let text = "";
  try {
    text = readTextFile(file);
  } catch (err) {
    // A missing file is the same as no entry. One we may not read is not:
    // newuidmap (set-uid root) may well read it, so saying "no entry" would
    // send the user looking in the wrong place.
    if (!(err instanceof SboxError) || err.errno !== "ENOENT") {
      const why = err instanceof SboxError ? err.message : String(err);
      throw new SboxError(`${why}, so the subordinate ids of ${name ?? id} are unknown`, {
        step: "user",
        errno: err instanceof SboxError ? err.errnoNumber : undefined,
        cause: err,
      });
    }
  }
  const ranges: SubordinateRange[] = [];
  for (const line of text.split("\n")) {
    const fields = line.split(":");
    if (fields.length !== 3) continue;
    const [owner, startText, countText] = fields;
    const start = parseSubordinateId(startText), count = parseSubordinateId(countText);
    if (start === undefined || count === undefined) continue;
    if ((owner === name || owner === String(id)) && count > 0) ranges.push({ start, count });
  }
  if (ranges.length === 0) {
    throw new SboxError(`no subordinate ids for ${name ?? id} in ${file}`, { step: "user" });
  }
  return ranges;
}

/** Past any id (ids are 32 bits); a bigger number is read as this, and its range refused. */
const BEYOND_IDS = 2 ** 32;

/**
 * A number of an /etc/subuid or /etc/subgid line as newuidmap and
 * newgidmap read it (shadow-utils: `getulong`, later `str2ul`, both C's
 * `strtoul` with base 0, the whole field): optional leading white space
 * and `+`, then `0x` or `0X` and hexadecimal digits, `0` and octal
 * digits, or decimal digits. `0100000` is 32768 to them, not 100000, and
 * `0x10000` is 65536: read otherwise, sbox would ask newuidmap for ids
 * that it refuses, or miss ids it grants. Undefined for a field it does
 * not take, which makes it skip the line: an empty one, other characters
 * (`0100009`, `1e5`, trailing white space), and a `-` sign, which older
 * shadow-utils wrapped around to a huge number and newer refuses. A number
 * past 2^32 - 1 comes back as 2^32, beyond any id, and leaves its range
 * out of a map.
 *
 * @example
 * ```ts
 * import { parseSubordinateId } from "./user.ts";
 *
 * console.log(parseSubordinateId("100000")); // 100000
 * console.log(parseSubordinateId("0100000")); // 32768
 * console.log(parseSubordinateId("0x10000")); // 65536
 * console.log(parseSubordinateId("100000 ")); // undefined
 * ```
 * @internal Exported for tests only.
 */
export function parseSubordinateId(field: string): number | undefined {
  const match = /^[ \t\n\v\f\r]*\+?(?:(0[xX])([0-9a-fA-F]+)|(0[0-7]*)|([1-9][0-9]*))$/.exec(field);
  if (!match) return undefined;
  const [, hexPrefix, hex, octal, decimal] = match;
  const value = hexPrefix !== undefined
    ? parseInt(hex, 16)
    : octal !== undefined
    ? parseInt(octal, 8)
    : parseInt(decimal, 10);
  return value >= BEYOND_IDS ? BEYOND_IDS : value;
}

/**
 * The maps of a rootless container with subordinate ids: container root is
 * `root`, container ids 1.. are the ranges, one after another in the given
 * order (podman maps them so too). A range the kernel would refuse is left
 * out: one that holds `root`'s own id (a host id mapped twice), overlaps an
 * earlier range, or goes past the last id; so are ranges past the kernel's
 * limits of 340 lines and one page of text. Throws if no range is left.
 */
export function rootAndSubordinateMaps(
  root: { uid: number; gid: number },
  subuids: readonly SubordinateRange[],
  subgids: readonly SubordinateRange[],
): { uidMap: IdMapEntry[]; gidMap: IdMapEntry[] } {
  const own = (id: number) => ({ entry: { containerId: 0, hostId: id, size: 1 }, role: "container root" });
  return {
    uidMap: mapAround("uid", own(root.uid), 1, subuids),
    gidMap: mapAround("gid", own(root.gid), 1, subgids),
  };
}

/**
 * The maps of podman's `--userns=keep-id`: the user's own uid and gid are the
 * same ids in the container, and the subordinate ranges fill the other ids
 * from 0 on, one after another in the given order, around the user's own id.
 * For uid 1000 and `100000:65536`: container 0-999 are 100000-100999, 1000
 * is 1000, 1001-65536 are 101000-165535. Ranges are left out as
 * {@linkcode rootAndSubordinateMaps} leaves them out; throws if none is left.
 *
 * @example
 * ```ts
 * import { keepIdMaps } from "./user.ts";
 *
 * const { uidMap } = keepIdMaps({ uid: 1000, gid: 1000 }, [{ start: 100000, count: 65536 }], [
 *   { start: 100000, count: 65536 },
 * ]);
 * // [{ containerId: 0, hostId: 100000, size: 1000 }, { containerId: 1000, hostId: 1000, size: 1 },
 * //  { containerId: 1001, hostId: 101000, size: 64536 }]
 * ```
 */
export function keepIdMaps(
  own: { uid: number; gid: number },
  subuids: readonly SubordinateRange[],
  subgids: readonly SubordinateRange[],
): { uidMap: IdMapEntry[]; gidMap: IdMapEntry[] } {
  const same = (id: number) => ({
    entry: { containerId: id, hostId: id, size: 1 },
    role: "the same id inside",
  });
  return {
    uidMap: mapAround("uid", same(own.uid), 0, subuids),
    gidMap: mapAround("gid", same(own.gid), 0, subgids),
  };
}

/**
 * A map of the user's own id (`own.entry`, one id) and the subordinate
 * `ranges`, laid out one after another from container id `from` on; a range
 * that reaches the own entry's container id is split around it. Ranges the
 * kernel would refuse are left out (see rootAndSubordinateMaps). Sorted by
 * container id. `own.role` says what the own id is, for the error.
 */
function mapAround(
  kind: "uid" | "gid",
  own: { entry: IdMapEntry; role: string },
  from: number,
  ranges: readonly SubordinateRange[],
): IdMapEntry[] {
  const map: IdMapEntry[] = [own.entry];
  const skipped = own.entry.containerId;
  let next = from;
  let bytes = mapText(map).length;
  for (const { start, count } of ranges) {
    // The container ids the range takes, one more when it goes around the own id.
    const around = next <= skipped && skipped < next + count ? 1 : 0;
    // 4294967295 is the invalid id, on either side.
    if (start + count > 0xffffffff || next + count + around > 0xffffffff) continue;
    if (map.some((e) => start < e.hostId + e.size && e.hostId < start + count)) continue;
    const pieces = around
      ? [
        { containerId: next, hostId: start, size: skipped - next },
        { containerId: skipped + 1, hostId: start + skipped - next, size: next + count - skipped },
      ].filter((e) => e.size > 0)
      : [{ containerId: next, hostId: start, size: count }];
    if (map.length + pieces.length > MAX_SUBORDINATE_RANGES + 1) break;
    bytes += mapText(pieces).length;
    if (bytes >= MAP_TEXT_MAX) break;
    map.push(...pieces);
    next += count + around;
  }
  if (map.length === 1) {
    const first = ranges[0];
    throw new SboxError(
      first
        ? `no subordinate ${kind} range can be mapped: each holds ${kind} ${own.entry.hostId} (${own.role} ` +
          `already), overlaps another or goes past the last id (the first: ${first.start}-` +
          `${first.start + first.count - 1})`
        : `no subordinate ${kind} ranges`,
      { step: "user" },
    );
  }
  return map.sort((a, b) => a.containerId - b.containerId);
}

/**
 * Maps through the setuid helpers `newuidmap` and `newgidmap`, which allow
 * an unprivileged user the ranges listed in /etc/subuid and /etc/subgid.
 *
 * @example Root and 65536 more ids for a rootless container
 * ```ts ignore
 * import { BinNewIdMapper } from "./user.ts";
 *
 * const mapper = BinNewIdMapper.newRootSubid(1000, 1000);
 * // container 0 = host 1000, container 1.. = the /etc/subuid ranges, one after another
 * ```
 */
export class BinNewIdMapper implements UserMapper {
  readonly uidMap: readonly IdMapEntry[];
  readonly gidMap: readonly IdMapEntry[];
  /**
   * newgidmap writes "deny" to /proc/PID/setgroups when the gid map holds
   * nothing but the caller's own gid (the one mapping that needs no
   * /etc/subgid entry); then processes may not call setgroups(2).
   */
  readonly setgroupsAllowed: boolean;
  readonly #newuidmap: string;
  readonly #newgidmap: string;

  /** A mapper for the given maps; finds newuidmap and newgidmap now. */
  constructor(options: { uidMap: readonly IdMapEntry[]; gidMap: readonly IdMapEntry[] }) {
    ({ uidMap: this.uidMap, gidMap: this.gidMap } = validateMaps("BinNewIdMapper", options));
    this.#newuidmap = findHostProgram("newuidmap");
    this.#newgidmap = findHostProgram("newgidmap");
    const me = ids();
    this.setgroupsAllowed = this.gidMap.some((e) => e.size !== 1 || e.hostId !== me.gid);
  }

  /** Container root (0) is host `uid`/`gid` (default: the caller's). */
  static newRoot(uid?: number, gid?: number): BinNewIdMapper {
    return new BinNewIdMapper(rootOnlyMaps(uid, gid));
  }

  /**
   * Container root is `uid`/`gid`; ids 1.. are the user's subordinate
   * ranges of /etc/subuid and /etc/subgid, one after another in the files'
   * order (`rootAndSubordinateMaps`).
   */
  static newRootSubid(uid?: number, gid?: number): BinNewIdMapper {
    return BinNewIdMapper.#withSubordinateIds(rootAndSubordinateMaps, uid, gid);
  }

  /**
   * podman's `--userns=keep-id`: `uid`/`gid` (default: the caller's) are the
   * same ids in the container, and the user's subordinate ranges fill the
   * others from container root on (`keepIdMaps`).
   */
  static keepIdSubid(uid?: number, gid?: number): BinNewIdMapper {
    return BinNewIdMapper.#withSubordinateIds(keepIdMaps, uid, gid);
  }

  /** The maps `layout` makes of `uid`/`gid` (default: the caller's) and their /etc/subuid and /etc/subgid ranges. */
  static #withSubordinateIds(layout: typeof keepIdMaps, uid?: number, gid?: number): BinNewIdMapper {
    const me = ids();
    const hostUid = uid ?? me.euid, hostGid = gid ?? me.gid;
    return new BinNewIdMapper(
      layout(
        { uid: hostUid, gid: hostGid },
        subordinateRanges("/etc/subuid", hostUid),
        subordinateRanges("/etc/subgid", hostUid),
      ),
    );
  }

  /** Runs newuidmap and newgidmap for `pid`. */
  async map(pid: number): Promise<void> {
    for (const [program, map] of [[this.#newuidmap, this.uidMap], [this.#newgidmap, this.gidMap]] as const) {
      const argv = [
        program,
        String(pid),
        ...map.flatMap((e) => [e.containerId, e.hostId, e.size].map(String)),
      ];
      // Its stderr is kept: why it refused ("uid range [0-1) -> [1002-1003)
      // not allowed") belongs in the error, not on the caller's terminal.
      const run = await HostDaemon.start({ argv, step: "user" });
      try {
        const result = await run.exited;
        if (!result.exited || result.status !== 0) {
          throw new SboxError(await run.describeExit(argv.join(" ")), { step: "user" });
        }
      } finally {
        await run.stop();
      }
    }
    const setgroups = readTextFile(`/proc/${pid}/setgroups`).trim();
    if ((setgroups === "allow") !== this.setgroupsAllowed) {
      throw new SboxError(
        `newgidmap left /proc/${pid}/setgroups at "${setgroups}", but the mapper expected ` +
          `"${this.setgroupsAllowed ? "allow" : "deny"}"`,
        { step: "user" },
      );
    }
  }
}

/**
 * The supplementary groups a process of container uid `uid` is given with
 * setgroups(2), or undefined where it keeps the ones it has: the caller's,
 * which it inherits (host gids the maps lack show as 65534, `nogroup`).
 * `groups` is what was asked for; without it:
 * - sbox runs as root: none. Root's groups are root's, and a judged
 *   program (`-u 1000`) must not hold them; a run has the groups it is given.
 * - a user, for a process that is the user on the host (container root of
 *   `newRoot` maps, the user's own uid of keep-id maps): it keeps the user's
 *   groups, so that it reaches what the user reaches, a directory shared by
 *   group included. Without subordinate gids the kernel allows nothing else
 *   (setgroups is denied), so with them it is the same.
 * - a user, for any other process (a subordinate id, `-u 1000`): none. It is
 *   another user, not the caller, and holds none of the caller's rights.
 * Where the mapper denies setgroups nothing can change them: they are kept,
 * and asking for groups is refused (`Container`, "groups").
 *
 * @example
 * ```ts
 * import { supplementaryGroups } from "./user.ts";
 *
 * const map = [{ containerId: 0, hostId: 1000, size: 1 }, { containerId: 1, hostId: 100000, size: 65536 }];
 * const mapper = { uidMap: map, gidMap: map, setgroupsAllowed: true, map() {} };
 * supplementaryGroups(mapper, 0, undefined, { euid: 1000 }); // undefined: container root is the caller
 * supplementaryGroups(mapper, 1000, undefined, { euid: 1000 }); // []: uid 1000 inside is host 100999
 * supplementaryGroups(mapper, 0, undefined, { euid: 0 }); // []: sbox runs as root
 * ```
 */
export function supplementaryGroups(
  mapper: UserMapper,
  uid: number,
  groups: readonly number[] | undefined,
  me: { euid: number } = ids(),
): readonly number[] | undefined {
  if (!mapper.setgroupsAllowed) return undefined;
  if (groups !== undefined) return groups;
  return me.euid !== 0 && hostId(mapper.uidMap, uid) === me.euid ? undefined : [];
}

/** Debian's PATH for root: runAsUser's command gets it, and so does `sbox run`'s by default. */
export const ROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/**
 * Runs `command` on the host's file system in a new user namespace as
 * container `uid`/`gid`, e.g. to unpack or remove a root file system whose
 * files belong to subordinate ids. Throws if it does not exit with 0.
 *
 * The command runs in a pid namespace of its own, as pid 2 under a small
 * pid 1 that passes every signal on to it: the command and all it starts
 * end with the caller, even one killed with SIGKILL (pid 1 has a
 * parent-death signal, and its end ends the namespace). It does not take
 * the caller's rank (a negative oom_score_adj or nice value, a real-time
 * policy), as a container's processes do not (docs/security.md).
 *
 * @example Remove a root file system owned by subordinate ids
 * ```ts ignore
 * import { BinNewIdMapper, runAsUser } from "./user.ts";
 *
 * await runAsUser(BinNewIdMapper.newRootSubid(), 0, 0, ["rm", "-rf", "/home/me/rootfs"]);
 * ```
 */
export async function runAsUser(
  mapper: UserMapper,
  uid: number,
  gid: number,
  command: string[],
): Promise<void> {
  checkUserMapper(mapper);
  checkCommand(command);
  checkId("uid", uid, 0);
  checkId("gid", gid, 0);
  if (!isMapped(mapper.uidMap, uid)) {
    throw SboxError.invalidOption("uid", `${uid} is not mapped by the user mapper`);
  }
  if (!isMapped(mapper.gidMap, gid)) {
    throw SboxError.invalidOption("gid", `${gid} is not mapped by the user mapper`);
  }
  const launched = await launch({
    // Its memory is ours until it execs (unless its oom_score_adj needs a
    // reset: launch() copies it then). It does not take the caller's rank,
    // as a container's processes do not: it may run for long (the removal
    // of a large tree).
    flags: CLONE.NEWUSER | CLONE.NEWPID | CLONE.VM,
    cgroupFd: -1,
    sync: true,
    childFds: [],
    beforeStart: (pid) => mapper.map(pid),
    compile: (b, sync) => {
      // pid 1 dies with the caller, as every process sbox makes (launch()'s
      // first op), and its end ends the namespace, and so the command and
      // all it started. pid 1 is the helper's reaper, which passes every
      // signal on to the command: a command that were pid 1 itself would
      // not die of the signals it does not handle (Ctrl-C, SIGTERM).
      b.waitParent(sync.read, sync.write).closeFrom(3).reaper();
      const groups = supplementaryGroups(mapper, uid, undefined);
      if (groups) b.setgroups(groups);
      b.setgid(gid).setuid(uid);
      // The change of ids cleared it.
      dieWithParent(b);
      b.exec(command[0], command, [`PATH=${ROOT_PATH}`], ROOT_PATH);
    },
  });
  const status = await new Process(launched, [-1, -1, -1]).status;
  if (!status.success) {
    throw new SboxError(`${command.join(" ")} ${describeEnd(status)}`, { step: "run" });
  }
}

/**
 * {@linkcode runAsUser} as container root (0:0).
 *
 * @example Remove a kept upper layer whose files belong to subordinate ids
 * ```ts ignore
 * import { BinNewIdMapper, runAsRoot } from "./user.ts";
 *
 * await runAsRoot(BinNewIdMapper.newRootSubid(), ["/bin/rm", "-rf", "/home/me/layers/upper"]);
 * ```
 */
export function runAsRoot(mapper: UserMapper, command: string[]): Promise<void> {
  return runAsUser(mapper, 0, 0, command);
}
