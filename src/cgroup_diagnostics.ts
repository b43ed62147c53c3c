/**
 * Why a cgroup cannot be used, in words: a frozen group or one of its
 * ancestors ({@linkcode whyFrozen}), a controller missing from a group
 * ({@linkcode missingControllerMessage}), a user's group that was not
 * delegated ({@linkcode delegationText}). Read from the groups' files when
 * something failed or before a start; the library's Cgroup methods
 * (cgroup.ts) and the CLI's limits say them alike.
 *
 * @module
 */

import { errnoNumber } from "./errno.ts";
import { SboxError } from "./error.ts";
import { ids, readTextFile, stat } from "./sys.ts";

const EACCES = errnoNumber("EACCES");

/**
 * A group as these read it: a Cgroup (cgroup.ts) is one. Named by its
 * shape, for cgroup.ts, whose errors these are, not to be imported back.
 */
export interface GroupFiles {
  /** Absolute path of the group's directory. */
  readonly path: string;
  /** Its path below the cgroup2 mount point, "" for the mount's top. */
  readonly name: string;
  /** The group above it (the mount's top is its own). */
  parent(): GroupFiles;
  /** Whether its directory exists. */
  exists(): boolean;
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
function whyFrozen(cgroup: GroupFiles, quick = false): string | undefined {
  if (quick) {
    const events = readIfPossible(`${cgroup.path}/cgroup.events`);
    return events !== undefined && /^frozen 1$/m.test(events) ? "its cgroup.events says frozen 1" : undefined;
  }
  let nearest: GroupFiles | undefined;
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
export function checkNotFrozen(cgroup: GroupFiles, option = "cgroup", quick = false): void {
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
export function frozenStartError(cgroup: GroupFiles): SboxError | undefined {
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
 * import { delegationText } from "./cgroup_diagnostics.ts";
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
export function createRefusedHint(rc: number): string {
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
 * @internal Exported for tests only.
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
export function hasOwnProcesses(group: GroupFiles): boolean {
  if (stat(`${group.path}/cgroup.type`) === undefined) return false;
  return (readIfPossible(`${group.path}/cgroup.procs`) ?? "").trim() !== "";
}

/** {@linkcode missingControllerMessage} for `group`, read from its files and /proc/cgroups. */
export function missingControllerError(group: GroupFiles, controller: string): SboxError {
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
