/**
 * Where cgroup2 is mounted, and which mount shows which group: the cgroup2
 * mounts of this process's mount table (never assumed to be
 * /sys/fs/cgroup: hybrid hosts mount it elsewhere), this process's own
 * group, the mount that shows a group ({@linkcode placeCgroup}), and
 * whether a directory is on cgroup2 at all ({@linkcode checkOnCgroup2}).
 * Paths and names only: the Cgroup class (cgroup.ts) is built on these,
 * and nothing here imports it back.
 *
 * @module
 */

import { SboxError } from "./error.ts";
import { mountAt, type MountEntry, parseMountInfo, ProcReading } from "./mountinfo.ts";
import { show } from "./options.ts";
import { cleanPath, isWithin } from "./path.ts";
import { resolvedPath } from "./sys.ts";

/**
 * A group by where it is, as a Cgroup (cgroup.ts) has it: its cgroup2
 * mount point, its name below that ("" for the mount's top), and the two
 * joined.
 */
export interface CgroupPlace {
  /** The cgroup2 mount point, e.g. `/sys/fs/cgroup`. */
  readonly mountPath: string;
  /** The group's path below the mount, without a leading slash. */
  readonly name: string;
  /** Absolute path of the group's directory. */
  readonly path: string;
}

/** A cgroup2 mount, as /proc/self/mountinfo lists it. */
export interface Cgroup2Mount {
  /** Mount point, the kernel's octal escapes (`\040` for a space) undone. */
  point: string;
  /**
   * The group shown at the mount point, as /proc/self/cgroup names groups
   * (mountinfo's root field, escapes undone): "/" for the whole hierarchy,
   * "/judge" for a bind mount of judge's subtree, "/.." and below for a
   * mount made outside this process's cgroup namespace.
   */
  root: string;
}

/**
 * The cgroup2 mounts of `mountinfo` (the text of /proc/PID/mountinfo), in its order.
 *
 * @internal Exported for tests only.
 */
export function cgroup2Mounts(mountinfo: string): Cgroup2Mount[] {
  return cgroup2MountsOf(parseMountInfo(mountinfo));
}

/** The cgroup2 mounts of a mount table, in its order. */
function cgroup2MountsOf(table: readonly MountEntry[]): Cgroup2Mount[] {
  return table.filter((m) => m.fstype === "cgroup2").map((m) => ({ point: m.path, root: m.root }));
}

/**
 * The path of the cgroup v2 entry ("0::PATH") of `text`, the text of
 * /proc/self/cgroup; undefined without one. The kernel writes it as it is,
 * no escapes (a name may hold a tab or "\040"; not a newline, which mkdir
 * refuses). It marks a group that was removed with " (deleted)" after the
 * path, but the group of a live process cannot be removed: for this
 * process's own entry, such an ending is part of the group's name.
 */
export function ownCgroupPath(text: string): string | undefined {
  return text.split("\n").find((line) => line.startsWith("0::"))?.slice(3);
}

/** Whether `text` has a control character: a newline in a group's name would break the lines of /proc/PID/cgroup. */
export function hasControlCharacter(text: string): boolean {
  return [...text].some((c) => c < " " || c === "\x7f");
}

/** The parts of a cgroup path ("/a/b": ["a", "b"]; "/../a": ["..", "a"]). */
function cgroupPathParts(path: string): string[] {
  return path.split("/").filter((part) => part !== "");
}

/**
 * How far below this process's cgroup namespace root the group of `parts`
 * is (the kernel writes the ".." first): "/" 0, "/a/b" 2, "/.." -1.
 */
function depthOf(parts: string[]): number {
  return parts.reduce((depth, part) => depth + (part === ".." ? -1 : 1), 0);
}

/**
 * The mount of `mounts` that shows the group `path` (a cgroup path as
 * /proc/self/cgroup gives it), and the group's name below its mount
 * point; undefined when none shows it. Of several, the one of the largest
 * subtree (the whole hierarchy, root "/", before a bind mount of a part of
 * it), then the first listed: so that one group always gets one
 * `mountPath`, which `Cgroup.contains` (cgroup.ts) compares.
 * @internal Exported for tests only.
 */
export function placeCgroup(
  mounts: readonly Cgroup2Mount[],
  path: string,
): { mount: Cgroup2Mount; name: string } | undefined {
  const parts = cgroupPathParts(path);
  let best: { mount: Cgroup2Mount; name: string; depth: number } | undefined;
  for (const mount of mounts) {
    const root = cgroupPathParts(mount.root);
    const rest = parts.slice(root.length);
    // Its root is the group or above it, by name: a ".." left below the
    // root would climb out of what the mount shows.
    if (root.some((part, i) => parts[i] !== part) || rest.includes("..")) continue;
    const depth = depthOf(root);
    if (!best || depth < best.depth) best = { mount, name: rest.join("/"), depth };
  }
  return best && { mount: best.mount, name: best.name };
}

/**
 * The cgroup2 mounts of this process's mount namespace, of `reading`;
 * throws (step "cgroup") when there is none.
 */
export function readCgroup2Mounts(reading: ProcReading = new ProcReading()): Cgroup2Mount[] {
  const mounts = cgroup2MountsOf(reading.mounts);
  if (mounts.length === 0) {
    throw new SboxError("no cgroup2 file system is mounted (looked in /proc/self/mountinfo)", {
      step: "cgroup",
    });
  }
  return mounts;
}

/**
 * The mount of `mounts` that shows the group `path` (a cgroup path as
 * /proc/self/cgroup gives it, such as "/judge"), and the group's name
 * below its mount point ({@linkcode placeCgroup}). `what` names the group
 * (quoted) in an error, an SboxError of step "cgroup": a name sbox does not
 * take, or no mount that shows the group. cgroup.ts's `locateCgroup` makes
 * a Cgroup of it.
 */
export function placeCgroupOrThrow(
  path: string,
  what: string,
  mounts: readonly Cgroup2Mount[],
): { mount: Cgroup2Mount; name: string } {
  // Here, where the message can say whose name it is: new Cgroup()'s
  // would be "invalid option cgroup name", an option nobody gave.
  if (hasControlCharacter(path)) {
    throw new SboxError(
      `${what} has a control character in its name, which sbox does not take in cgroup names`,
      { step: "cgroup" },
    );
  }
  const placed = placeCgroup(mounts, path);
  if (placed) return placed;
  const shown = mounts.map((m) => `${m.point} shows ${show(m.root)}`).join(", ");
  const outside = [path, ...mounts.map((m) => m.root)].some((p) => cgroupPathParts(p)[0] === "..")
    ? ': "/.." is above the root of this process\'s cgroup namespace, whose groups a cgroup2 mount made ' +
      "inside the namespace shows"
    : "";
  throw new SboxError(`${what} is on no cgroup2 mount of this mount namespace (${shown})${outside}`, {
    step: "cgroup",
  });
}

/**
 * Finds the cgroup2 mount point in /proc/self/mountinfo: where cgroup2 is
 * mounted more than once, the mount that shows this process's own group,
 * the whole hierarchy (root "/") before a bind mount of a subtree.
 *
 * @example Where the containers' groups can go
 * ```ts
 * import { Cgroup } from "./cgroup.ts";
 * import { findCgroup2Mount } from "./cgroup_mount.ts";
 *
 * const mount = findCgroup2Mount(); // e.g. "/sys/fs/cgroup"
 * const judge = new Cgroup(mount, "judge");
 * ```
 */
export function findCgroup2Mount(): string {
  const reading = new ProcReading();
  const mounts = readCgroup2Mounts(reading);
  const own = ownCgroupPath(reading.cgroup);
  const placed = own === undefined ? undefined : placeCgroup(mounts, own);
  if (placed) return placed.mount.point;
  // None shows this process's group: the one of the largest subtree.
  const depths = mounts.map((m) => depthOf(cgroupPathParts(m.root)));
  return mounts[depths.indexOf(Math.min(...depths))].point;
}

/**
 * Refuses a group that is not on a cgroup2 file system: a plain directory,
 * a v1 hierarchy, or the tmpfs that holds those on a hybrid host. There,
 * create() would make a mere directory, and clone3 fail with EBADF. By the
 * mounts of `reading`.
 */
export function checkOnCgroup2(cgroup: CgroupPlace, reading: ProcReading = new ProcReading()): void {
  // The mount path resolved (it exists; the group may not yet), then the
  // group's name: cgroup2 has no links of its own.
  let mount = cleanPath(cgroup.mountPath);
  try {
    mount = resolvedPath(mount);
  } catch {
    // Missing: mountAt tells on the path as it is.
  }
  const type = mountAt(
    cgroup.name === "" ? mount : cleanPath(`${mount}/${cgroup.name}`),
    reading.mounts,
  )?.fstype;
  if (type === "cgroup2") return;
  let where: string;
  try {
    where = `the cgroup2 mount is ${findCgroup2Mount()}, see findCgroup2Mount()`;
  } catch {
    where = "no cgroup2 file system is mounted";
  }
  throw SboxError.invalidOption(
    "cgroup",
    `${cgroup.path} is not on a cgroup2 file system (it is on ${type ?? "no mount"}; ${where})`,
  );
}

/**
 * The cgroup path (as /proc/self/cgroup names groups) of `dir`, a
 * directory (absolute and clean) of one of `mounts`: by the deepest mount
 * point that holds it (of several at one point, the first listed), the
 * group that mount shows (its root, "/" for a mount of the whole
 * hierarchy), then the rest of `dir` below the point. Undefined where no
 * mount holds `dir`. How `sbox run --cgroup` takes a directory.
 */
export function cgroupPathOfDirectory(dir: string, mounts: readonly Cgroup2Mount[]): string | undefined {
  const at = mounts.filter((m) => isWithin(dir, m.point))
    .sort((a, b) => b.point.length - a.point.length)[0];
  if (at === undefined) return undefined;
  // "" for the mount point itself; a mount point "/" holds every path.
  const rest = at.point === "/" ? dir.slice(1) : dir.slice(at.point.length + 1);
  const root = at.root.replace(/\/$/, "");
  return rest === "" ? root || "/" : `${root}/${rest}`;
}
