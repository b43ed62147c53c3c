/**
 * cgroup v2, as files: a {@linkcode Cgroup} is a directory of the cgroup2
 * mount. The mount is found in /proc/self/mountinfo, never assumed to be
 * /sys/fs/cgroup (hybrid hosts mount it elsewhere).
 *
 * @module
 */

import { errnoNumber } from "./errno.ts";
import { SboxError } from "./error.ts";
import { mountAt, type MountEntry, parseMountInfo, ProcReading } from "./mountinfo.ts";
import { checkBoolean, checkOptionsObject, show } from "./options.ts";
import { cleanPath } from "./path.ts";
import {
  check,
  EBUSY,
  EEXIST,
  ENOENT,
  ids,
  O,
  open,
  readDir,
  readTextFile,
  resolvedPath,
  stat,
  tryMkdir,
  tryRmdir,
  writeTextFile,
} from "./sys.ts";

const EACCES = errnoNumber("EACCES");

/** Counters of `memory.events`. */
export interface MemoryEvents {
  /** Times usage went below memory.low protection while reclaimed. */
  low: number;
  /** Times usage went over memory.high and was throttled. */
  high: number;
  /** Times usage hit memory.max. */
  max: number;
  /** Times the OOM killer was invoked in the group. */
  oom: number;
  /** Processes killed by the OOM killer. */
  oomKill: number;
  /** Times the whole group was killed (memory.oom.group). */
  oomGroupKill: number;
}

/** CPU time from `cpu.stat`, in microseconds. */
export interface CpuUsage {
  /** Total CPU time. */
  usageUsec: number;
  /** CPU time in user mode. */
  userUsec: number;
  /** CPU time in the kernel. */
  systemUsec: number;
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

/** The cgroup2 mounts of `mountinfo` (the text of /proc/PID/mountinfo), in its order. */
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
 * `mountPath`, which {@linkcode Cgroup.contains} compares.
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
 * The group `path` (a cgroup path as /proc/self/cgroup gives it, such as
 * "/judge"), on the cgroup2 mount that shows it ({@linkcode placeCgroup}).
 * `what` names it (quoted) in an error, an SboxError of step "cgroup": a
 * name sbox does not take, or no mount that shows the group.
 */
export function locateCgroup(
  path: string,
  what: string,
  mounts: readonly Cgroup2Mount[] = readCgroup2Mounts(),
): Cgroup {
  // Here, where the message can say whose name it is: new Cgroup()'s
  // would be "invalid option cgroup name", an option nobody gave.
  if (hasControlCharacter(path)) {
    throw new SboxError(
      `${what} has a control character in its name, which sbox does not take in cgroup names`,
      { step: "cgroup" },
    );
  }
  const placed = placeCgroup(mounts, path);
  if (placed) return new Cgroup(placed.mount.point, placed.name);
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
 * import { Cgroup, findCgroup2Mount } from "./cgroup.ts";
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
export function checkOnCgroup2(cgroup: Cgroup, reading: ProcReading = new ProcReading()): void {
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
 * The bounds of cpu.max (kernel/sched/core.c): a period of 1 ms to 1 s
 * (min_cfs_quota_period, max_cfs_quota_period) and a quota of 1 ms up to
 * 2^44-1 µs (max_cfs_runtime, "more than 203 days"). The kernel refuses
 * others with a bare EINVAL.
 */
export const CPU_LIMIT_BOUNDS = {
  minUsec: 1000,
  maxPeriodUsec: 1_000_000,
  maxQuotaUsec: 2 ** 44 - 1,
} as const;

/** The largest pids.max the kernel takes: PID_MAX_LIMIT of 64-bit Linux (4 Mi); more is EINVAL. */
export const PIDS_LIMIT_MAX = 4_194_304;

/**
 * Groups this process killed with {@linkcode Cgroup.kill} and has not
 * removed since: on Linux 6.18 the kernel kills a process cloned into one
 * at once, so a container started there would die during its setup, its
 * start looking like a success and its status SIGKILL.
 */
const killedGroups = new Set<string>();

/**
 * The kernel's interface files ("cgroup.procs", "memory.max") share a
 * group's directory with its child groups: a name of theirs is a file, or
 * would be one once its controller is enabled, never a group.
 */
const INTERFACE_FILE = /^(cgroup|cpu|cpuset|io|memory|pids|hugetlb|rdma|misc|irq)\./;

/** Whether `part` (one component of a group's path) is the name of a cgroup interface file. */
export function isInterfaceFileName(part: string): boolean {
  return INTERFACE_FILE.test(part);
}

function interfaceFileError(part: string): SboxError {
  return SboxError.invalidOption(
    "cgroup",
    `${show(part)} is the name of a cgroup interface file, not a group`,
  );
}

/** Whether `text` has a control character: a newline in a group's name would break the lines of /proc/PID/cgroup. */
export function hasControlCharacter(text: string): boolean {
  return [...text].some((c) => c < " " || c === "\x7f");
}

function validName(name: string): boolean {
  return typeof name === "string" && !hasControlCharacter(name) &&
    name.split("/").every((part) => part !== "" && part !== "." && part !== "..");
}

/** The text of a cgroup file, or undefined where it cannot be read. */
function readIfPossible(path: string): string | undefined {
  try {
    return readTextFile(path);
  } catch {
    // Missing (a group not made yet; the root group, which cannot be
    // frozen; Linux before 5.2, without a freezer) or unreadable: it
    // tells of no freeze.
    return undefined;
  }
}

/**
 * Why a process started in `cgroup` would be frozen, or undefined: a
 * frozen group freezes every group below it, and a process cloned into
 * one never runs its setup, so its start would wait forever. By
 * cgroup.freeze of the group and its ancestors up to the mount's root (a
 * freeze that is still under way is seen too), then by cgroup.events of
 * the nearest that exists, which tells of a freeze from above the mount's
 * root (a bind mount of a subtree, a cgroup namespace). `quick`: by the
 * group's own cgroup.events alone (one read, for each launch): it says
 * frozen 1 once a freeze of the group or of any above it is done, and
 * at once for an empty group; only a freeze still under way is missed.
 */
export function whyFrozen(cgroup: Cgroup, quick = false): string | undefined {
  if (quick) {
    const events = readIfPossible(`${cgroup.path}/cgroup.events`);
    return events !== undefined && /^frozen 1$/m.test(events) ? "its cgroup.events says frozen 1" : undefined;
  }
  let nearest: Cgroup | undefined;
  for (let group = cgroup;; group = group.parent()) {
    if (readIfPossible(`${group.path}/cgroup.freeze`)?.trim() === "1") {
      return group === cgroup ? "its cgroup.freeze is 1" : `cgroup.freeze of ${group.path} is 1`;
    }
    nearest ??= group.exists() ? group : undefined;
    if (group.name === "") break;
  }
  if (nearest && /^frozen 1$/m.test(readIfPossible(`${nearest.path}/cgroup.events`) ?? "")) {
    return `cgroup.events of ${nearest.path} says frozen 1: a group above it is frozen`;
  }
  return undefined;
}

/**
 * Refuses to start processes in a frozen group ({@linkcode whyFrozen}):
 * an SboxError naming `option`, before any process is created. `quick`:
 * as {@linkcode whyFrozen} says.
 */
export function checkNotFrozen(cgroup: Cgroup, option = "cgroup", quick = false): void {
  const why = whyFrozen(cgroup, quick);
  if (why === undefined) return;
  throw SboxError.invalidOption(
    option,
    `${cgroup.path} is frozen (${why}): a process started in it would not run until it is thawed ` +
      "(0 written to that cgroup.freeze)",
  );
}

/**
 * Why a start under way in `cgroup` cannot finish, as an SboxError of step
 * `"cgroup"`, or undefined: by {@linkcode whyFrozen} in full (the group's
 * ancestors too). The checks before a start miss a freeze written after
 * them, one of an ancestor still under way (the quick one), and one during
 * the setup; a process in a frozen group does not run, so such a start
 * would wait for a thaw with no end. Container's launches ask this once one
 * has gone on for a while (`LaunchSpec.stall`), and give up on a frozen one.
 */
export function frozenStartError(cgroup: Cgroup): SboxError | undefined {
  const why = whyFrozen(cgroup);
  if (why === undefined) return undefined;
  return new SboxError(
    `${cgroup.path} was frozen during the start (${why}): a process in it does not run until it is thawed ` +
      "(0 written to that cgroup.freeze), so the start was given up and its processes killed",
    { step: "cgroup" },
  );
}

/**
 * How root delegates a cgroup to `uid`, as systemd's `Delegate=yes` does:
 * the one wording of the library's and the CLI's errors. Creating groups
 * in it needs its directory; moving processes between its groups (and so
 * starting one in a new group) needs its cgroup.procs; handing controllers
 * down needs its cgroup.subtree_control; threads, its cgroup.threads.
 *
 * @example
 * ```ts
 * import { delegationText } from "./cgroup.ts";
 *
 * console.log(`delegate one to the user (${delegationText(1000)})`);
 * ```
 */
export function delegationText(uid: number): string {
  return "chown it and its cgroup.procs, cgroup.subtree_control and cgroup.threads to uid " +
    `${uid}, as systemd's Delegate=yes does`;
}

/**
 * Why a user's mkdir in cgroupfs failed with EACCES (`rc` is the negated
 * errno), as a text to put after the error, or "": only below a cgroup
 * delegated to the user may they create groups ({@linkcode delegationText}).
 */
function createRefusedHint(rc: number): string {
  const { euid } = ids();
  if (-rc !== EACCES || euid === 0) return "";
  return `: uid ${euid} may create cgroups only below one delegated to it (as root, ${
    delegationText(euid)
  }; docs/rootless.md); a Container needs none: without one its processes stay in the caller's cgroup`;
}

/**
 * What {@linkcode missingControllerMessage} reads about a group whose
 * cgroup.controllers does not list a controller; apart so that a test can
 * give each case (one host shows one).
 */
export interface ControllerFacts {
  /** The group. */
  path: string;
  /**
   * The groups above it, nearest first, up to the top of the cgroup2 mount:
   * each path and whether its cgroup.controllers lists the controller.
   */
  ancestors: { path: string; offers: boolean }[];
  /**
   * Whether the last of them (the group itself if none) is the hierarchy's
   * root, not the top of a cgroup namespace or a mount of a subtree.
   */
  topIsRoot: boolean;
  /**
   * Whether the parent (the first of `ancestors`) has processes of its own
   * and is not the root: the kernel then refuses to hand controllers down
   * from it (EBUSY), so its processes must move first.
   */
  parentHasProcesses?: boolean;
  /** The text of /proc/cgroups; undefined where it cannot be read. */
  procCgroups?: string;
}

/**
 * The error text for `controller` missing from a group's cgroup.controllers:
 * "cgroup controller memory is not available in PATH (why; what to do)".
 * Following "enable it in the parent's cgroup.subtree_control" only moves
 * the error up a level where the parent does not offer it either, so this
 * says who does: the parent, a group further up, or none, and then why
 * (bound to a cgroup v1 hierarchy, as on a hybrid host; not delegated; not
 * in the kernel). One wording for the library's Cgroup methods and the CLI's
 * limits.
 */
export function missingControllerMessage(controller: string, facts: ControllerFacts): string {
  const { path, ancestors } = facts;
  const message = (why: string) => `cgroup controller ${controller} is not available in ${path} (${why})`;
  const nearest = ancestors.findIndex((group) => group.offers);
  if (nearest === 0) {
    const file = `${ancestors[0].path.replace(/\/$/, "")}/cgroup.subtree_control`;
    const busy = facts.parentHasProcesses
      ? `, which the kernel refuses while the parent has processes of its own: move them into a cgroup ` +
        `below it first (its cgroup.procs lists them)`
      : "";
    return message(
      `its cgroup.controllers does not list it; its parent offers it: write +${controller} to ${file}${busy}`,
    );
  }
  if (nearest > 0) {
    return message(
      `neither its cgroup.controllers nor its parent's lists it; the nearest group above that does is ` +
        `${
          ancestors[nearest].path
        }: write +${controller} to the cgroup.subtree_control of that group and of ` +
        `each one below it down to ${ancestors[0].path} (where systemd manages them, have it delegate ` +
        `instead: Delegate=${controller})`,
    );
  }
  // /proc/cgroups: "name hierarchy num_cgroups enabled"; a hierarchy other
  // than 0 is a v1 one (cgroup2 is 0), and a controller is bound to one only.
  const row = facts.procCgroups?.split("\n").map((line) => line.split(/\s+/))
    .find((fields) => fields[0] === controller);
  const v2Host =
    "limits need a host with all its controllers on cgroup v2, such as sbox's VM tier (docs/vm.md)";
  if (row?.[1] !== undefined && row[1] !== "0") {
    return message(
      `no group of the cgroup2 hierarchy can have it: the kernel has bound it to a cgroup v1 hierarchy, ` +
        `number ${
          row[1]
        } in /proc/cgroups (/proc/self/mountinfo shows its mount), as on a hybrid host; ${v2Host}`,
    );
  }
  const top = ancestors.at(-1)?.path;
  if (!facts.topIsRoot) {
    const none = top === undefined
      ? "its cgroup.controllers does not list it, and it is the top of the cgroup2 mount"
      : `no group up to ${top}, the top of the cgroup2 mount, lists it in cgroup.controllers`;
    return message(
      `${none}, not the hierarchy's root (a cgroup namespace or a mount of a subtree): ${controller} was not ` +
        `delegated to it, by the host's administrator or by systemd (Delegate=${controller})`,
    );
  }
  const none = top === undefined
    ? "its cgroup.controllers does not list it, and it is the hierarchy's root"
    : `not even the hierarchy's root, ${top}, lists it in cgroup.controllers`;
  if (row?.[3] === "0") {
    return message(
      `${none}: the kernel has it disabled (/proc/cgroups says enabled 0; cgroup_disable= at boot)`,
    );
  }
  if (facts.procCgroups !== undefined && row === undefined) {
    return message(`${none}: the kernel has no ${controller} controller (/proc/cgroups does not list it)`);
  }
  return message(
    `${none}: where the kernel has it, it is bound to a cgroup v1 hierarchy, as on a hybrid host ` +
      `(see /proc/cgroups or /proc/self/mountinfo); ${v2Host}`,
  );
}

/**
 * Whether `group` holds processes of its own and is not the root cgroup,
 * which alone the kernel exempts from the rule that a group handing
 * controllers to its children has none (its name is no sign: in a cgroup
 * namespace, the root of the mount is some other cgroup; the root alone has
 * no cgroup.type). From such a group the kernel refuses to hand memory to
 * the children (EBUSY), and worse, lets it hand pids and cpu (controllers
 * that may be threaded) but then refuses to start any process in a child
 * (clone3: ENOTSUP). False where its cgroup.procs cannot be read.
 */
export function hasOwnProcesses(group: Cgroup): boolean {
  if (stat(`${group.path}/cgroup.type`) === undefined) return false;
  return (readIfPossible(`${group.path}/cgroup.procs`) ?? "").trim() !== "";
}

/** {@linkcode missingControllerMessage} for `group`, read from its files and /proc/cgroups. */
export function missingControllerError(group: Cgroup, controller: string): SboxError {
  const ancestors: ControllerFacts["ancestors"] = [];
  let top = group;
  while (top.name !== "") {
    top = top.parent();
    const listed = readIfPossible(`${top.path}/cgroup.controllers`)?.split(/\s+/) ?? [];
    ancestors.push({ path: top.path, offers: listed.includes(controller) });
  }
  const message = missingControllerMessage(controller, {
    path: group.path,
    ancestors,
    // Only the root has no cgroup.type (the top of a cgroup namespace has one).
    topIsRoot: stat(`${top.path}/cgroup.type`) === undefined,
    parentHasProcesses: group.name !== "" && hasOwnProcesses(group.parent()),
    procCgroups: readIfPossible("/proc/cgroups"),
  });
  return new SboxError(message, { step: "cgroup" });
}

/**
 * A cgroup v2 group: `mountPath` is the cgroup2 mount, `name` the path below
 * it ("" for the root).
 *
 * @example Limits for a group of processes
 * ```ts ignore
 * import { Cgroup } from "./cgroup.ts";
 *
 * const cgroup = Cgroup.current().child("judge-1");
 * cgroup.create();
 * try {
 *   cgroup.setPidsLimit(64); // fails where the pids controller is not enabled
 *   // ... run processes in it ...
 * } finally {
 *   await cgroup.remove();
 * }
 * ```
 */
export class Cgroup {
  /** Where cgroup2 is mounted, e.g. `/sys/fs/cgroup`. */
  readonly mountPath: string;
  /** Path of this group below the mount, without leading slash ("" is the root). */
  readonly name: string;

  /** A handle on the group `name` below `mountPath`; creates nothing. */
  constructor(mountPath: string, name: string) {
    if (typeof mountPath !== "string" || !mountPath.startsWith("/")) {
      throw SboxError.invalidOption("cgroup mountPath", `not absolute: ${show(mountPath)}`);
    }
    // Quoted: a newline in it would break the message's one line.
    const trimmed = typeof name === "string" ? name.replace(/^\/+|\/+$/g, "") : name;
    if (trimmed !== "" && !validName(trimmed)) {
      throw SboxError.invalidOption("cgroup name", `bad name ${show(name)}`);
    }
    this.mountPath = mountPath.replace(/\/+$/, "") || "/";
    this.name = trimmed;
  }

  /** The cgroup of the calling process. */
  static current(): Cgroup;
  /**
   * @internal By `reading`, /proc/self/cgroup and /proc/self/mountinfo as
   * read once for all of an operation (`sbox run`'s setup).
   */
  static current(reading: ProcReading): Cgroup;
  static current(reading: ProcReading = new ProcReading()): Cgroup {
    const path = ownCgroupPath(reading.cgroup);
    if (path === undefined) {
      throw new SboxError("the process has no cgroup v2 entry in /proc/self/cgroup", { step: "cgroup" });
    }
    return locateCgroup(
      path,
      `this process's cgroup ${show(path)} (in /proc/self/cgroup)`,
      readCgroup2Mounts(reading),
    );
  }

  /**
   * Whether `other` is this group or a group below it.
   *
   * @example
   * ```ts ignore
   * import { Cgroup } from "./cgroup.ts";
   *
   * const parent = Cgroup.current();
   * console.assert(parent.contains(parent.child("a/b")));
   * ```
   */
  contains(other: Cgroup): boolean {
    if (!(other instanceof Cgroup)) {
      throw SboxError.invalidOption("Cgroup.contains", `must be given a Cgroup, got ${show(other)}`);
    }
    return other.mountPath === this.mountPath &&
      (this.name === "" || other.name === this.name || other.name.startsWith(`${this.name}/`));
  }

  /** Absolute path of the group's directory. */
  get path(): string {
    return this.name === "" ? this.mountPath : `${this.mountPath}/${this.name}`;
  }

  /** The parent group (the root is its own parent). */
  parent(): Cgroup {
    const slash = this.name.lastIndexOf("/");
    return new Cgroup(this.mountPath, slash < 0 ? "" : this.name.slice(0, slash));
  }

  /**
   * A child group handle (not created). `name` may have several parts
   * ("a/b"); none may be the name of an interface file ("memory.max").
   */
  child(name: string): Cgroup {
    if (!validName(name)) throw SboxError.invalidOption("cgroup", `bad child name ${show(name)}`);
    const file = name.split("/").find(isInterfaceFileName);
    if (file !== undefined) throw interfaceFileError(file);
    return this.#below(name);
  }

  /**
   * The group `name` below this one, unchecked for interface-file names:
   * for groups that exist already, which the kernel may have let someone
   * name so (a "memory.x" where memory is not enabled).
   */
  #below(name: string): Cgroup {
    return new Cgroup(this.mountPath, this.name === "" ? name : `${this.name}/${name}`);
  }

  /** Whether the directory exists. */
  exists(): boolean {
    return stat(this.path)?.isDirectory ?? false;
  }

  /**
   * Creates the group (and missing parents). An existing group is fine,
   * unless `exclusive`: then the group itself must be new (EEXIST), so that
   * a group someone else made is never taken for one's own. Refused
   * (an SboxError naming `cgroup`) unless `mountPath` is a cgroup2 mount.
   * `mode`: the permission bits the group's own directory is made with
   * (0o755 by default; missing parents get 0o755), less the umask, as
   * mkdir(2) does. A 0o700 group cannot be opened by other users, not even
   * for a moment before a chmod: what `sbox run` uses to lock its group
   * before anyone else can.
   */
  create(options?: { exclusive?: boolean; mode?: number }): void;
  /**
   * @internal The check of the mount by `reading`, this process's mounts as
   * read once for all of an operation (`sbox run`'s setup).
   */
  create(options: { exclusive?: boolean; mode?: number } | undefined, reading: ProcReading): void;
  create(options?: { exclusive?: boolean; mode?: number }, reading: ProcReading = new ProcReading()): void {
    options = checkOptionsObject("Cgroup.create", options, { exclusive: true, mode: true });
    checkBoolean("Cgroup.create", options.exclusive, "exclusive");
    const mode = options.mode ?? 0o755;
    if (!Number.isInteger(mode) || mode < 0 || mode > 0o777) {
      throw SboxError.invalidOption(
        "Cgroup.create",
        `mode must be permission bits from 0 to 0o777, got ${show(options.mode)}`,
      );
    }
    checkOnCgroup2(this, reading);
    const parts = this.name.split("/");
    for (let i = 1; i <= parts.length && this.name !== ""; i++) {
      const path = `${this.mountPath}/${parts.slice(0, i).join("/")}`;
      // An existing group of such a name is someone's; a new one is refused.
      if (isInterfaceFileName(parts[i - 1]) && !stat(path)?.isDirectory) {
        throw interfaceFileError(parts[i - 1]);
      }
      const last = i === parts.length;
      const rc = tryMkdir(path, last ? mode : 0o755);
      if (rc === 0) killedGroups.delete(path);
      if (rc < 0 && (-rc !== EEXIST || (last && options.exclusive))) {
        const err = SboxError.fromErrno("cgroup", `cannot create cgroup ${path}`, -rc);
        throw new SboxError(`${err.message}${createRefusedHint(rc)}`, { step: err.step, errno: -rc });
      }
      // EEXIST is an existing group only when it is a directory.
      if (rc < 0 && !stat(path)?.isDirectory) {
        throw SboxError.fromErrno("cgroup", `cannot create cgroup ${path} (a file is in the way)`, EEXIST);
      }
    }
  }

  /**
   * Removes the group and its child groups. Processes left in them are
   * killed first (cgroup.kill) and waited for.
   */
  remove(): Promise<void>;
  /**
   * @internal Whether it holds this process by `reading`, /proc/self/cgroup
   * and /proc/self/mountinfo as read once for all of an operation (`sbox
   * run`'s teardown). Without it, one reading for the whole tree.
   */
  remove(reading: ProcReading): Promise<void>;
  async remove(reading: ProcReading = new ProcReading()): Promise<void> {
    if (!this.exists()) return;
    // It would kill this process (and, for the root, everything).
    if (this.name === "" || this.contains(Cgroup.current(reading))) {
      throw SboxError.invalidOption(
        "cgroup",
        `${this.path} holds this process: it cannot be removed from here`,
      );
    }
    for (const entry of readDir(this.path)) {
      if (entry.isDirectory) await this.#below(entry.name).remove(reading);
    }
    for (let attempt = 0;; attempt++) {
      const rc = tryRmdir(this.path);
      if (rc === 0 || -rc === ENOENT) {
        killedGroups.delete(this.path); // a group made again by that name is a new one
        return;
      }
      if (-rc !== EBUSY || attempt >= 200) check(rc, "cgroup", `cannot remove cgroup ${this.path}`);
      if (attempt === 0) this.#killIfPossible();
      await new Promise((resolve) => setTimeout(resolve, Math.min(1 + attempt, 20)));
    }
  }

  #killIfPossible(): void {
    try {
      this.kill();
    } catch {
      // cgroup.kill needs Linux 5.14; rmdir keeps failing and reports EBUSY.
    }
  }

  /**
   * Kills every process in the group and its descendants (cgroup.kill).
   * On some kernels (Linux 6.18 here), a process cloned into the group
   * afterwards is killed at once, so a container started in it would die
   * with SIGKILL before it runs: starting one there is refused (an
   * SboxError naming `cgroup`) until the group is removed and made anew.
   */
  kill(): void {
    this.#write("cgroup.kill", "1");
    killedGroups.add(this.path);
  }

  /** Moves process `pid` (a host pid) into the group. */
  addProcess(pid: number): void {
    // The kernel's EINVAL for 1.5 or -1 would name neither the pid nor what is wrong with it.
    if (!Number.isSafeInteger(pid) || pid <= 0) {
      throw SboxError.invalidOption("pid", `must be a process id (a positive integer), got ${show(pid)}`);
    }
    this.#write("cgroup.procs", String(pid));
  }

  /** Pids of the processes in the group itself (not its children). */
  procs(): number[] {
    return this.#read("cgroup.procs").split("\n").filter(Boolean).map(Number);
  }

  /** Whether any process is in the group or below (cgroup.events "populated"). */
  populated(): boolean {
    return /^populated 1$/m.test(this.#read("cgroup.events"));
  }

  /** Whether the memory controller accounts (and may limit) this group's memory. */
  accountsMemory(): boolean {
    return stat(`${this.path}/memory.max`) !== undefined;
  }

  /** Controllers available in this group. */
  controllers(): string[] {
    return this.#read("cgroup.controllers").split(/\s+/).filter(Boolean);
  }

  /** Controllers enabled for the children of this group. */
  subtreeControllers(): string[] {
    return this.#read("cgroup.subtree_control").split(/\s+/).filter(Boolean);
  }

  /** Enables controllers for the children, e.g. `["cpu", "memory", "pids"]`. */
  addSubtreeControllers(names: string[]): void {
    checkControllerNames("Cgroup.addSubtreeControllers", names);
    const available = this.controllers();
    const missing = names.filter((n) => !available.includes(n));
    if (missing.length > 0) throw missingControllerError(this, missing[0]);
    this.#write("cgroup.subtree_control", names.map((n) => `+${n}`).join(" "));
  }

  /** Stops handing controllers to the children, e.g. `["pids"]`. */
  removeSubtreeControllers(names: string[]): void {
    checkControllerNames("Cgroup.removeSubtreeControllers", names);
    this.#write("cgroup.subtree_control", names.map((n) => `-${n}`).join(" "));
  }

  /** memory.current in bytes. */
  memoryCurrent(): number {
    return Number(this.#controllerRead("memory", "memory.current"));
  }

  /** memory.peak in bytes. */
  memoryPeak(): number {
    return Number(this.#controllerRead("memory", "memory.peak"));
  }

  /** Counters of memory.events. */
  memoryEvents(): MemoryEvents {
    const fields = keyValues(this.#controllerRead("memory", "memory.events"));
    return {
      low: fields.low ?? 0,
      high: fields.high ?? 0,
      max: fields.max ?? 0,
      oom: fields.oom ?? 0,
      oomKill: fields.oom_kill ?? 0,
      oomGroupKill: fields.oom_group_kill ?? 0,
    };
  }

  /**
   * pids.events "max": how many times a fork or clone in this group (or a
   * group below it) was refused because pids.max was reached.
   */
  pidsMaxEvents(): number {
    return keyValues(this.#controllerRead("pids", "pids.events")).max ?? 0;
  }

  /** memory.max: hard limit in bytes. */
  setMemoryLimit(bytes: number): void {
    this.#controllerWrite("memory", "memory.max", String(limitValue("Cgroup.setMemoryLimit", bytes)));
  }

  /**
   * memory.oom.group: when the OOM killer picks a process of this group, kill
   * every process of it, as one unit (a judge's submission fails as a whole
   * instead of going on without the process that was killed).
   */
  setMemoryOomGroup(enabled: boolean): void {
    // Not by truthiness: "false" would write 1, and no argument 0.
    if (typeof enabled !== "boolean") {
      throw SboxError.invalidOption(
        "Cgroup.setMemoryOomGroup",
        `enabled must be a boolean, got ${show(enabled)}`,
      );
    }
    this.#controllerWrite("memory", "memory.oom.group", enabled ? "1" : "0");
  }

  /** memory.min: guaranteed memory in bytes. */
  setMemoryGuarantee(bytes: number): void {
    this.#controllerWrite("memory", "memory.min", String(limitValue("Cgroup.setMemoryGuarantee", bytes)));
  }

  /** memory.swap.max in bytes. */
  setSwapMemoryLimit(bytes: number): void {
    this.#controllerWrite(
      "memory",
      "memory.swap.max",
      String(limitValue("Cgroup.setSwapMemoryLimit", bytes)),
    );
  }

  /** CPU time from cpu.stat (present without the cpu controller). */
  cpuUsage(): CpuUsage {
    const fields = keyValues(this.#read("cpu.stat"));
    return {
      usageUsec: fields.usage_usec ?? 0,
      userUsec: fields.user_usec ?? 0,
      systemUsec: fields.system_usec ?? 0,
    };
  }

  /**
   * cpu.max: `quotaUsec` of CPU time per `periodUsec` (Infinity: no limit).
   * The kernel takes a period of 1000 to 1000000 µs and a quota from 1000 to
   * 2^44-1 µs ({@linkcode CPU_LIMIT_BOUNDS}); others are refused here.
   */
  setCpuLimit(quotaUsec: number, periodUsec = 100_000): void {
    const { minUsec, maxPeriodUsec, maxQuotaUsec } = CPU_LIMIT_BOUNDS;
    // The period has no "max": only the quota may be unlimited.
    if (!Number.isSafeInteger(periodUsec) || periodUsec < minUsec || periodUsec > maxPeriodUsec) {
      throw SboxError.invalidOption(
        "Cgroup.setCpuLimit",
        `bad CPU period ${show(periodUsec)}: the kernel takes ${minUsec} to ${maxPeriodUsec} µs`,
      );
    }
    const quota = limitValue("Cgroup.setCpuLimit", quotaUsec);
    if (quota !== "max" && (quota < minUsec || quota > maxQuotaUsec)) {
      throw SboxError.invalidOption(
        "Cgroup.setCpuLimit",
        `bad CPU quota ${quota}: the kernel takes ${minUsec} to ${maxQuotaUsec} µs (or Infinity, no limit)`,
      );
    }
    this.#controllerWrite("cpu", "cpu.max", `${quota} ${periodUsec}`);
  }

  /** pids.max: at most {@linkcode PIDS_LIMIT_MAX}, or Infinity (no limit). */
  setPidsLimit(n: number): void {
    const limit = limitValue("Cgroup.setPidsLimit", n);
    if (limit !== "max" && limit > PIDS_LIMIT_MAX) {
      throw SboxError.invalidOption(
        "Cgroup.setPidsLimit",
        `bad value ${limit}: the kernel takes at most ${PIDS_LIMIT_MAX} (or Infinity, no limit)`,
      );
    }
    this.#controllerWrite("pids", "pids.max", String(limit));
  }

  /**
   * Opens the directory for CLONE_INTO_CGROUP; the caller closes the fd.
   * Refused (an SboxError naming `cgroup`) for a group killed with
   * {@linkcode kill} and for a frozen one, where the process would not run.
   */
  openDirectory(): number {
    // Here, where a process is about to be cloned into the group.
    for (
      let path = this.path;
      path.length >= this.mountPath.length;
      path = path.slice(0, path.lastIndexOf("/"))
    ) {
      if (!killedGroups.has(path)) continue;
      throw SboxError.invalidOption(
        "cgroup",
        `${this.path} is in a group killed with kill() (${path}): a process started there afterwards is ` +
          "killed at once, before it runs (Linux 6.18); start it in a new group",
      );
    }
    // A clone into a frozen group would wait for a thaw, with no end.
    // Quick: this is on every start's path; Container.create and sbox run
    // looked at the whole tree already, and a launch still waiting after a
    // while looks again (frozenStartError) for what this misses.
    checkNotFrozen(this, "cgroup", true);
    return open(this.path, O.RDONLY | O.DIRECTORY);
  }

  #read(file: string): string {
    return readTextFile(`${this.path}/${file}`);
  }

  #write(file: string, text: string): void {
    writeTextFile(`${this.path}/${file}`, text);
  }

  #controllerRead(controller: string, file: string): string {
    return this.#ofController(controller, () => this.#read(file));
  }

  #controllerWrite(controller: string, file: string, text: string): void {
    this.#ofController(controller, () => this.#write(file, text));
  }

  /** Runs `access`; a file missing from a group that exists means its controller is not enabled. */
  #ofController<T>(controller: string, access: () => T): T {
    try {
      return access();
    } catch (err) {
      // With the controller there, the kernel lacks the file (memory.peak
      // before Linux 5.19): the error as it is names it.
      if (
        err instanceof SboxError && err.errnoNumber === ENOENT && this.exists() &&
        !this.controllers().includes(controller)
      ) {
        throw missingControllerError(this, controller);
      }
      throw err;
    }
  }
}

/** A controller's name as the kernel spells them: "cpu", "memory", "perf_event". */
const CONTROLLER_NAME = /^[a-z_]+$/;

/**
 * Refuses anything but an array of controller names. The kernel reads
 * cgroup.subtree_control as words with a sign each: the name "cpu +memory"
 * would make a remove enable memory, and a bad name gets a bare EINVAL.
 */
function checkControllerNames(method: string, names: unknown): void {
  if (!Array.isArray(names)) {
    throw SboxError.invalidOption(
      method,
      `names must be an array such as ["cpu", "memory"], got ${show(names)}`,
    );
  }
  const bad = names.findIndex((name) => typeof name !== "string" || !CONTROLLER_NAME.test(name));
  if (bad >= 0) {
    throw SboxError.invalidOption(
      method,
      `not a controller name: ${show(names[bad])} (lowercase letters and "_" only)`,
    );
  }
}

/** A limit for `method` ("Cgroup.setMemoryLimit"): a whole number, or "max" for Infinity. */
function limitValue(method: string, n: number): number | "max" {
  if (n === Infinity) return "max";
  if (!Number.isSafeInteger(n) || n < 0) throw SboxError.invalidOption(method, `bad value ${show(n)}`);
  return n;
}

function keyValues(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of text.split("\n")) {
    const [key, value] = line.split(" ");
    if (key && value !== undefined) out[key] = Number(value);
  }
  return out;
}
