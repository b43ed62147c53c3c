/**
 * Whether `sbox run` may make the container's cgroup. Root may; a user may
 * below a cgroup delegated to them (owned by them, as systemd's
 * `Delegate=yes` leaves it). Without one, a run without limits goes ahead
 * with no cgroup of its own, and a run with limits stops with one line that
 * says what to delegate.
 *
 * @module
 */

import { Cgroup } from "../cgroup.ts";
import { SboxError } from "../error.ts";
import { ids, stat } from "../sys.ts";
import type { RunOptions } from "./args.ts";

/** The options that need a cgroup of the container's own. */
const NEEDS_CGROUP = [
  { key: "memory", option: "--memory" },
  { key: "swap", option: "--swap" },
  { key: "pids", option: "--pids" },
  { key: "cpuQuotaUsec", option: "--cpus" },
  { key: "cpuTimeMs", option: "--time" },
] as const;

/**
 * Why this process may not create a child cgroup of `parent` and start
 * processes in it, or undefined. `notDelegated`: the group is not the
 * user's, and delegating it is the cure; otherwise `reason` names its own.
 */
function whyNot(parent: Cgroup): { reason: string; notDelegated: boolean } | undefined {
  const { euid } = ids();
  if (euid === 0) return undefined;
  const dir = stat(parent.path);
  const procs = stat(`${parent.path}/cgroup.procs`);
  if (!(dir?.uid === euid && (dir.mode & 0o200) !== 0 && procs?.uid === euid)) {
    return { reason: `uid ${euid} may not create cgroups in ${parent.path}`, notDelegated: true };
  }
  // Starting a process in a cgroup moves it there, which needs write access
  // to cgroup.procs of the common ancestor of where it comes from and where
  // it goes: the delegated group itself only when sbox runs inside it.
  const own = Cgroup.current();
  if (!parent.contains(own)) {
    const reason = `uid ${euid} may create cgroups in ${parent.path}, but not start processes there from ` +
      `sbox's own cgroup ${own.path}, which is outside it (moving a process needs write access to ` +
      `cgroup.procs of both groups' common ancestor): run sbox inside it`;
    return { reason, notDelegated: false };
  }
  return undefined;
}

/**
 * Decides whether the run gets a cgroup below `parent`: true when the user
 * may create one; false when not and nothing needs one; throws naming the
 * option and what to delegate when a limit or `--cgroup` needs one.
 */
export function useCgroup(parent: Cgroup, options: RunOptions): boolean {
  const why = whyNot(parent);
  if (why === undefined) return true;
  const { reason } = why;
  const { euid } = ids();
  const delegate = "chown it and its cgroup.procs, cgroup.subtree_control and cgroup.threads to uid " +
    `${euid}, as systemd's Delegate=yes does`;
  const limit = NEEDS_CGROUP.find((n) => options[n.key] !== undefined);
  if (limit) {
    throw new SboxError(
      `${limit.option} needs a cgroup, but ${reason}: ` +
        `delegate one to the user (${delegate}), run sbox in it, or name it with --cgroup`,
      { step: "cgroup" },
    );
  }
  // A --cgroup named is wanted even without limits: for its accounting, its
  // kill and its own limits, which a run without it would silently lack.
  if (options.cgroup !== undefined) {
    // The reason that is not about delegation says its own cure.
    const cure = why.notDelegated ? `: delegate it to the user (${delegate})` : "";
    throw new SboxError(`--cgroup ${options.cgroup} cannot be used: ${reason}${cure}`, { step: "cgroup" });
  }
  return false;
}
