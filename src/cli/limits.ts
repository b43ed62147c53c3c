/**
 * The container's cgroup: where it goes (`--cgroup`), the limits written
 * into it (`--memory`, `--swap`, `--pids`, `--cpus`), and what it used.
 *
 * A limit whose controller is missing is an error, never a run without the
 * limit: the parent must offer the controller (cgroup.controllers) and hand
 * it to its children (cgroup.subtree_control, which sbox writes if needed).
 * The memory controller is handed down whenever the parent offers it, for
 * the report's memoryPeakBytes, limit or not.
 *
 * @module
 */

import { Cgroup, type CpuUsage, locateCgroup } from "../cgroup.ts";
import { checkNotFrozen, hasOwnProcesses, missingControllerError } from "../cgroup_diagnostics.ts";
import { cgroupPathOfDirectory, readCgroup2Mounts } from "../cgroup_mount.ts";
import { SboxError } from "../error.ts";
import { show } from "../options.ts";
import type { ProcReading } from "../mountinfo.ts";
import { readDir } from "../sys.ts";
import type { RunOptions } from "./args.ts";
import { claimDir, type DirLock } from "../dir_lock.ts";
import { ownedName } from "./ownership.ts";
import { failureOf, invalidFlag } from "./option_errors.ts";
import { CPU_PERIOD_USEC } from "./units.ts";

/** The limits of `RunOptions` that need a cgroup controller. */
export type CgroupLimits = Pick<RunOptions, "memory" | "swap" | "pids" | "cpuQuotaUsec">;

/** Which controller each limit needs, and the option that asked for it. */
const LIMITS = [
  { key: "memory", option: "--memory", controller: "memory" },
  { key: "swap", option: "--swap", controller: "memory" },
  { key: "pids", option: "--pids", controller: "pids" },
  { key: "cpuQuotaUsec", option: "--cpus", controller: "cpu" },
] as const;

/**
 * The parent cgroup: `--cgroup PATH` (a directory of a cgroup2 mount, or a
 * cgroup path as in /proc/self/cgroup such as `/judge`; absolute and clean,
 * see args.ts), else sbox's own. A frozen one is refused, before anything
 * is made: the container's processes would wait for a thaw, with no end.
 * Found by `reading`, this process's mounts and cgroup.
 */
export function resolveParentCgroup(spec: string | undefined, reading: ProcReading): Cgroup {
  // sbox's own is not frozen: sbox runs.
  if (spec === undefined) return Cgroup.current(reading);
  const mounts = readCgroup2Mounts(reading);
  // A directory of a mount: its group's cgroup path, by the mount's root.
  const path = cgroupPathOfDirectory(spec, mounts) ?? spec;
  let cgroup: Cgroup;
  try {
    cgroup = locateCgroup(path, `cgroup ${show(path)}`, mounts);
  } catch (err) {
    if (!(err instanceof SboxError)) throw err;
    throw invalidFlag("--cgroup", err);
  }
  if (!cgroup.exists()) throw SboxError.invalidOption("--cgroup", `cgroup ${cgroup.path} does not exist`);
  checkNotFrozen(cgroup, "--cgroup");
  return cgroup;
}

/**
 * The rest of the error for a `parent` with processes of its own: why, and
 * what to do. Where sbox runs in it (its own cgroup, a user's shell in a
 * delegated group), that is to start sbox from a new group below it and
 * name this one with --cgroup: a user may move their shell there, as the
 * two share `parent` as their common ancestor, whose cgroup.procs is theirs.
 * @internal Exported for tests only.
 */
export function ownProcessesCure(parent: Cgroup, own: Cgroup): string {
  const why = "(the kernel allows that only in the root cgroup)";
  if (own.path === parent.path) {
    return `it has processes of its own, sbox among them ${why}: move them into a new cgroup below it and ` +
      `name this one with --cgroup, e.g. from the shell that starts sbox: mkdir ${parent.path}/shell; ` +
      `echo $$ > ${parent.path}/shell/cgroup.procs; sbox run --cgroup ${parent.path} ... ` +
      "(its cgroup.procs lists any others)";
  }
  return `it has processes of its own ${why}: move them into a cgroup below it (its cgroup.procs lists them), ` +
    "or give --cgroup a cgroup without processes";
}

/**
 * Makes sure `parent` hands its children every controller the limits need,
 * and memory whenever it offers it (so that every run reports its peak
 * memory, not only those with --memory). Checks before it changes anything:
 * throws one line naming the option, the controller and the path. Returns
 * the controllers it enabled, for {@linkcode restoreControllers}.
 */
export function enableControllers(parent: Cgroup, limits: CgroupLimits): string[] {
  const available = parent.controllers();
  const enabled = parent.subtreeControllers();
  const needed = new Map<string, string>(); // controller -> the option that needs it
  for (const { key, option, controller } of LIMITS) {
    if (limits[key] === undefined || enabled.includes(controller)) continue;
    if (!available.includes(controller)) {
      throw failureOf(option, missingControllerError(parent, controller), "cgroup");
    }
    if (!needed.has(controller)) needed.set(controller, option);
  }
  const forAccounting = available.includes("memory") && !enabled.includes("memory") &&
    !needed.has("memory");
  if (needed.size === 0 && !forAccounting) return [];
  if (hasOwnProcesses(parent)) {
    const [controller, option] = [...needed][0] ?? [];
    // Memory for the report only: the run goes on without it (memoryPeakBytes null).
    if (controller === undefined) return [];
    throw new SboxError(
      `${option}: cannot hand cgroup controller ${controller} to the children of ${parent.path}: ` +
        ownProcessesCure(parent, Cgroup.current()),
      { step: "cgroup" },
    );
  }
  const added: string[] = [];
  try {
    for (const [controller, option] of needed) {
      try {
        parent.addSubtreeControllers([controller]);
      } catch (err) {
        throw failureOf(option, err, "cgroup");
      }
      added.push(controller);
    }
  } catch (err) {
    restoreControllers(parent, added);
    throw err;
  }
  if (forAccounting) {
    try {
      parent.addSubtreeControllers(["memory"]);
      added.push("memory");
    } catch {
      // A process joined the parent since the check, or this user may not
      // write its cgroup.subtree_control: no peak memory in the report.
    }
  }
  return added;
}

/**
 * Takes back the controllers {@linkcode enableControllers} enabled, when
 * the container could not be started after all: only if `parent` now has
 * processes of its own (one joined it after the check), where they would
 * make every later run fail, and no child group is left that another run
 * may be using them in. Never throws.
 */
export function restoreControllers(parent: Cgroup, added: readonly string[]): void {
  try {
    if (added.length === 0 || !hasOwnProcesses(parent)) return;
    if (readDir(parent.path).some((entry) => entry.isDirectory)) return;
    parent.removeSubtreeControllers([...added]);
  } catch {
    // The parent is gone or not ours to change: nothing to take back.
  }
}

/** The container's cgroup, held as this run's own (ownership.ts). */
export interface ContainerCgroup {
  cgroup: Cgroup;
  /**
   * Removes the cgroup (killing what is left in it), then drops the lock;
   * refused where it holds sbox, by `reading` (Cgroup.remove).
   */
  remove(reading: ProcReading): Promise<void>;
}

/**
 * Creates the container's cgroup `sbox-<pid>-<random>` below `parent`, new
 * (never one that exists: another run's), locks it, and writes the limits
 * into it. `reading`: this process's mounts, which Cgroup.create checks
 * the group's place by.
 */
export async function createContainerCgroup(
  parent: Cgroup,
  limits: CgroupLimits,
  reading: ProcReading,
): Promise<ContainerCgroup> {
  const { cgroup, lock } = newLockedCgroup(parent, reading);
  const owned: ContainerCgroup = {
    cgroup,
    remove: async (reading) => {
      try {
        await cgroup.remove(reading);
      } finally {
        lock.release();
      }
    },
  };
  try {
    for (const { key, option } of LIMITS) {
      const value = limits[key];
      if (value === undefined) continue;
      try {
        if (key === "memory") {
          cgroup.setMemoryLimit(value);
          // Out of memory, the whole container goes, as with a time limit.
          cgroup.setMemoryOomGroup(true);
        } else if (key === "swap") cgroup.setSwapMemoryLimit(value);
        else if (key === "pids") cgroup.setPidsLimit(value);
        else cgroup.setCpuLimit(value, CPU_PERIOD_USEC);
      } catch (err) {
        throw failureOf(option, err, "cgroup");
      }
    }
  } catch (err) {
    await owned.remove(reading);
    throw err;
  }
  return owned;
}

/** A new cgroup below `parent`, of a name no other run has, locked as ours. */
function newLockedCgroup(parent: Cgroup, reading: ProcReading): { cgroup: Cgroup; lock: DirLock } {
  for (let attempt = 0; attempt < 10; attempt++) {
    const cgroup = parent.child(ownedName());
    // 0700 until locked (ownership.ts): no other user may lock it first.
    // Then 0755, whatever the umask: the container's processes of other
    // uids read their limits in it (its cgroup2 mount on /sys/fs/cgroup).
    cgroup.create({ exclusive: true, mode: 0o700 }, reading);
    const lock = claimDir(cgroup.path, 0o755);
    if (lock) return { cgroup, lock };
    // Another run's sweep took it for a leftover in the moment before the
    // lock (and it is removed): another name.
  }
  throw new SboxError(`cannot keep a cgroup in ${parent.path}`, { step: "cgroup" });
}

/** What the container used, read from its cgroup once its processes are gone. */
export interface Usage {
  /** cpu.stat: all processes of the container, not just the first. */
  cpu: CpuUsage;
  /** memory.peak in bytes, or null without the memory controller. */
  memoryPeakBytes: number | null;
  /** Whether memory.events counted an OOM kill. */
  oomKilled: boolean;
  /** Forks refused at pids.max (pids.events "max"); 0 without the pids controller. */
  forksRefused: number;
}

/** Reads CPU time, peak memory, OOM kills and forks refused of `cgroup`. */
export function readUsage(cgroup: Cgroup): Usage {
  const cpu = cgroup.cpuUsage();
  const controllers = cgroup.controllers();
  const forksRefused = controllers.includes("pids") ? cgroup.pidsMaxEvents() : 0;
  if (!controllers.includes("memory")) return { cpu, memoryPeakBytes: null, oomKilled: false, forksRefused };
  let memoryPeakBytes: number | null = null;
  try {
    memoryPeakBytes = cgroup.memoryPeak();
  } catch (err) {
    // memory.peak is new in Linux 5.19: older kernels have no figure to give.
    if (!(err instanceof SboxError)) throw err;
  }
  const events = cgroup.memoryEvents();
  return { cpu, memoryPeakBytes, oomKilled: events.oomKill > 0 || events.oomGroupKill > 0, forksRefused };
}

/**
 * The command's share of the cgroup's CPU time `total`: without the
 * `setupUsec` that pid 1 spent setting the container up. The setup is
 * mostly the kernel's work (mounts, namespaces), so it comes off the system
 * time first.
 */
export function commandCpu(total: CpuUsage, setupUsec: number): CpuUsage {
  const systemUsec = Math.max(0, total.systemUsec - setupUsec);
  const userUsec = Math.max(0, total.userUsec - Math.max(0, setupUsec - total.systemUsec));
  return { usageUsec: Math.max(0, total.usageUsec - setupUsec), userUsec, systemUsec };
}

/** Waits (up to `timeoutMs`) until no process is left in `cgroup`; throws if some stay. */
export async function waitUntilEmpty(cgroup: Cgroup, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (cgroup.populated()) {
    if (Date.now() > deadline) {
      throw new SboxError(`processes of the container are still running in ${cgroup.path}`, {
        step: "cgroup",
      });
    }
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}
