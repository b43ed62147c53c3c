/**
 * This process's mount table, /proc/self/mountinfo: its parser, the mount
 * that holds a path ({@linkcode mountAt}), and {@linkcode ProcReading}, one
 * reading of it (and of /proc/self/cgroup) for all the checks of an
 * operation. Each user of the table (cgroup2 mounts, mount refusals, the
 * host's root, the CLI's scratch directory) reads it through here.
 *
 * @module
 */

import { decodeName } from "./cstring.ts";
import { isWithin } from "./path.ts";
import { readFile } from "./sys.ts";

/** A mount of this process's mount namespace, as /proc/self/mountinfo lists it. */
export interface MountEntry {
  /**
   * Mount point, with the kernel's octal escapes (`\040` for a space)
   * undone, and bytes that are not UTF-8 escaped as sys.ts's readDir's
   * names have them (cstring.ts), so that the two compare.
   */
  path: string;
  /** File system type, e.g. "sysfs". */
  fstype: string;
  /** The mount's id. */
  id: number;
  /** The id of the mount it is mounted on (its own id for the namespace's root). */
  parentId: number;
  /** The device of its file system, "MAJOR:MINOR" (st_dev of the files on it), e.g. "0:23". */
  device: string;
  /** The directory of its file system that the mount shows, "/" for the whole of it. */
  root: string;
  /** The mount's own options, e.g. ["rw", "nosuid", "relatime"]. */
  options: string[];
  /**
   * The file system's options as one string, e.g.
   * "lowerdir=/l,upperdir=/u,workdir=/w", as mountinfo has it: a value's
   * escapes (`\054` for a "," in it, `\040` for a space) are kept, for a
   * "," in a value not to be taken for the end of the option
   * ({@linkcode unescapeMountField} undoes them, option by option).
   */
  superOptions: string;
}

/** This process's mounts, in mountinfo's order (a mount after the one it is mounted on). */
export function mountTable(): MountEntry[] {
  // The kernel writes a mount point's bytes as they are (not as text), but
  // for a space, tab, newline and backslash: octal escapes of ASCII alone.
  return parseMountInfo(decodeName(readFile("/proc/self/mountinfo")));
}

/**
 * One reading of this process's mount table (/proc/self/mountinfo) and of
 * its cgroup (/proc/self/cgroup), each file read when first asked for.
 * Taken for one operation (a container's setup, a group's removal) and
 * passed to each of its checks: they agree with each other, and the files
 * are read once, not once a check (~0.5 ms for a cgroup's place). Never
 * kept past the operation: mounts come and go, and a process may be moved
 * to another cgroup. A function that takes one reads anew without it.
 */
export class ProcReading {
  #mounts: MountEntry[] | undefined;
  #cgroup: string | undefined;

  /** This process's mounts ({@linkcode mountTable}). */
  get mounts(): readonly MountEntry[] {
    return this.#mounts ??= mountTable();
  }

  /**
   * The text of /proc/self/cgroup. The kernel writes a group's name as its
   * bytes, as it writes a mount point's: decoded as mountinfo is
   * (cstring.ts's decodeName), a name that is not UTF-8 matches a mount's
   * root and encodes back to the group's directory, where U+FFFD named
   * nothing.
   */
  get cgroup(): string {
    return this.#cgroup ??= decodeName(readFile("/proc/self/cgroup"));
  }
}

/**
 * Undoes mountinfo's octal escapes: `\040` for a space, `\011` a tab,
 * `\012` a newline, `\134` a backslash (and, in super options, `\054` a
 * comma).
 */
export function unescapeMountField(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, oct) => String.fromCharCode(parseInt(oct, 8)));
}

/**
 * The mounts of a mountinfo text: `ID PARENT MAJ:MIN ROOT POINT OPTIONS
 * [TAGS...] - FSTYPE SOURCE SUPEROPTIONS` a line. Read it with
 * cstring.ts's decodeName, as {@linkcode mountTable} does, for paths that
 * are not UTF-8 to compare with sys.ts's readDir's names.
 */
export function parseMountInfo(text: string): MountEntry[] {
  const mounts: MountEntry[] = [];
  for (const line of text.split("\n")) {
    const sep = line.indexOf(" - ");
    if (sep < 0) continue;
    const fields = line.slice(0, sep).split(" ");
    const fs = line.slice(sep + 3).split(" ");
    mounts.push({
      path: unescapeMountField(fields[4]),
      fstype: fs[0],
      id: Number(fields[0]),
      parentId: Number(fields[1]),
      device: fields[2],
      root: unescapeMountField(fields[3]),
      options: (fields[5] ?? "").split(","),
      superOptions: fs[2] ?? "",
    });
  }
  return mounts;
}

/**
 * The mount of `table` that holds `path` (absolute and clean, resolved where
 * links matter), by its text: the deepest mount point on its way, and of
 * several at that point the last listed, which is mounted over the others
 * (the top of a stack). Undefined where none holds it (a table without "/").
 *
 * @example
 * ```ts
 * import { mountAt, parseMountInfo } from "./mountinfo.ts";
 *
 * const table = parseMountInfo(
 *   "1 1 8:1 / / rw - ext4 /dev/sda1 rw\n" +
 *     "2 1 0:30 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
 * );
 * console.log(mountAt("/sys/fs/cgroup/judge", table)?.fstype); // "cgroup2"
 * console.log(mountAt("/sys/fs/cgroupx", table)?.fstype); // "ext4"
 * ```
 */
export function mountAt(path: string, table: readonly MountEntry[]): MountEntry | undefined {
  let best: MountEntry | undefined;
  for (const mount of table) {
    // Later lines are mounted later: on an equal point, over the earlier ones.
    if (isWithin(path, mount.path) && (!best || mount.path.length >= best.path.length)) best = mount;
  }
  return best;
}
