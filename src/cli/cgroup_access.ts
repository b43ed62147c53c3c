/**
 * Whether `sbox run` may make the container's cgroup. Root may; a user may
 * where the kernel lets them (see {@linkcode whyNoCgroup}): below a cgroup
 * delegated to them (owned by them, as systemd's `Delegate=yes` leaves it),
 * with sbox started from where a process may be moved into it. Without
 * that, a run without limits goes ahead with no cgroup of its own, and a
 * run with limits or `--cgroup` stops with one line that says what to do.
 *
 * @module
 */

import { Cgroup } from "../cgroup.ts";
import { delegationText } from "../cgroup_diagnostics.ts";
import { SboxError } from "../error.ts";
import type { ProcReading } from "../mountinfo.ts";
import { ACCESS, ENOSYS, EPERM, ids, tryAccess } from "../sys.ts";
import type { RunOptions } from "./args.ts";

/** The options that need a cgroup of the container's own. */
const NEEDS_CGROUP = [
  { key: "memory", option: "--memory" },
  { key: "swap", option: "--swap" },
  { key: "pids", option: "--pids" },
  { key: "cpuQuotaUsec", option: "--cpus" },
  { key: "cpuTimeMs", option: "--time" },
] as const;

/** Who asks: its uid, and what the kernel lets it write. */
export interface Asker {
  /** Its effective uid, which the messages name. 0 may anything (CAP_DAC_OVERRIDE). */
  uid: number;
  /** Whether it may write `path` (and, with `search`, search it: a directory). */
  mayWrite(path: string, search: boolean): boolean;
}

/**
 * This process as an {@linkcode Asker}: the kernel answers, by the check
 * its mkdir and its move into a cgroup make (faccessat2 with AT_EACCESS:
 * the effective ids, the supplementary groups, the capabilities). A kernel
 * or a seccomp filter that has no faccessat2 (ENOSYS, EPERM) tells nothing:
 * then the operation itself is tried, and its own error says why.
 */
function thisProcess(): Asker {
  return {
    uid: ids().euid,
    mayWrite(path, search) {
      const rc = tryAccess(path, ACCESS.W | (search ? ACCESS.X : 0));
      return rc === 0 || rc === -ENOSYS || rc === -EPERM;
    },
  };
}

/** The nearest group that holds both `a` and `b` (the root at the least). */
function commonAncestor(a: Cgroup, b: Cgroup): Cgroup {
  const aParts = a.name.split("/").filter(Boolean), bParts = b.name.split("/").filter(Boolean);
  let n = 0;
  while (n < aParts.length && n < bParts.length && aParts[n] === bParts[n]) n++;
  return new Cgroup(b.mountPath, aParts.slice(0, n).join("/"));
}

/** Why a user may not use a parent cgroup, and what to do about it. */
export interface CgroupRefusal {
  /** What the kernel would refuse, e.g. "uid 1000 may not create cgroups in /sys/fs/cgroup/unified". */
  reason: string;
  /**
   * What to do, for `--cgroup` named (`named`) or for a limit with sbox's
   * own cgroup as the parent (`own`): the two differ where a cgroup has to
   * be found first.
   */
  cure: { named: string; own: string };
}

/**
 * Why `who` may not create a child cgroup of `parent` and start a process
 * in it from `own` (sbox's cgroup), by the kernel's rules, or undefined:
 * - creating it needs write and search access to `parent`'s directory
 *   (the new group and its files then belong to the user);
 * - starting a process in it moves the process from `own` (clone3's
 *   CLONE_INTO_CGROUP, as writing cgroup.procs does), which needs write
 *   access to cgroup.procs of the two groups' common ancestor
 *   (`cgroup_procs_write_permission` in kernel/cgroup/cgroup.c): `parent`
 *   itself when sbox runs in it or below it, else a group above both.
 * `who` asks (a test gives its own).
 * @internal Exported for tests only.
 */
export function whyNoCgroup(
  parent: Cgroup,
  own: Cgroup,
  who: Asker = thisProcess(),
): CgroupRefusal | undefined {
  if (who.uid === 0) return undefined;
  const delegate = delegationText(who.uid);
  if (!who.mayWrite(parent.path, true)) {
    return {
      reason: `uid ${who.uid} may not create cgroups in ${parent.path}`,
      cure: {
        named:
          `delegate it to the user (${delegate}), then start sbox from a cgroup below it (docs/rootless.md)`,
        own: `delegate a cgroup to the user (${delegate}), start sbox from a cgroup below it and name the ` +
          "delegated one with --cgroup (docs/rootless.md)",
      },
    };
  }
  const common = commonAncestor(own, parent);
  if (who.mayWrite(`${common.path}/cgroup.procs`, false)) return undefined;
  if (common.path === parent.path) {
    // sbox runs in it or below it: only its cgroup.procs is missing.
    const cure = `delegate it to the user in full (${delegate})`;
    return {
      reason: `uid ${who.uid} may create cgroups in ${parent.path}, but not start processes in them, ` +
        `which moves them from sbox's own cgroup ${own.path} and needs write access to cgroup.procs of ` +
        parent.path,
      cure: { named: cure, own: cure },
    };
  }
  const cure =
    `start sbox from a cgroup below ${parent.path}, where root (or systemd) puts the user's shell ` +
    `(as root: mkdir ${parent.path}/shell; echo PID > ${parent.path}/shell/cgroup.procs; docs/rootless.md)`;
  return {
    reason: `uid ${who.uid} may create cgroups in ${parent.path}, but not start processes in them from ` +
      `sbox's own cgroup ${own.path}, which is not below it: the kernel moves a process only for a user ` +
      `who may write cgroup.procs of both groups' common ancestor, ${common.path}`,
    cure: { named: cure, own: cure },
  };
}

/**
 * Decides whether the run gets a cgroup below `parent`: undefined when the
 * user may create one and start the container in it; why not, when not and
 * nothing needs one (the run goes on without); throws naming the option,
 * why and what to do when a limit or `--cgroup` needs one. `reading`: this
 * process's mounts and cgroup, which sbox's own cgroup is found by.
 */
export function whyWithoutCgroup(
  parent: Cgroup,
  options: RunOptions,
  reading: ProcReading,
): string | undefined {
  // Root may (whyNoCgroup), and pays nothing to be told so: no read of
  // sbox's own cgroup (mountinfo) or of its groups (/proc/self/status).
  if (ids().euid === 0) return undefined;
  // Without --cgroup the parent is sbox's own (resolveParentCgroup).
  const own = options.cgroup === undefined ? parent : Cgroup.current(reading);
  const why = whyNoCgroup(parent, own);
  if (why === undefined) return undefined;
  const { reason, cure } = why;
  const limit = NEEDS_CGROUP.find((n) => options[n.key] !== undefined);
  if (limit) {
    const named = options.cgroup !== undefined;
    throw new SboxError(`${limit.option} needs a cgroup, but ${reason}: ${named ? cure.named : cure.own}`, {
      step: "cgroup",
    });
  }
  // A --cgroup named is wanted even without limits: for its accounting, its
  // kill and its own limits, which a run without it would silently lack.
  if (options.cgroup !== undefined) {
    throw new SboxError(`--cgroup ${options.cgroup} cannot be used: ${reason}: ${cure.named}`, {
      step: "cgroup",
    });
  }
  return reason;
}
