/**
 * The container's cgroup: where it goes (`--cgroup`), the limits written
 * into it (`--memory`, `--swap`, `--pids`, `--cpus`), and what it used.
 *
 * A limit whose controller is missing is an error, never a run without the
 * limit: the parent must offer the controller (cgroup.controllers) and hand
 * it to its children (cgroup.subtree_control, which sbox writes if needed).
 *
 * @module
 */

import { Cgroup, type CpuUsage, findCgroup2Mount } from "../cgroup.ts";
import { SboxError } from "../error.ts";
import { ids } from "../sys.ts";
import type { RunOptions } from "./args.ts";
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
 * The parent cgroup: `--cgroup PATH` (a directory of the cgroup2 mount, or a
 * cgroup path as in /proc/self/cgroup such as `/judge`; absolute and clean,
 * see args.ts), else sbox's own.
 */
export function resolveParentCgroup(spec: string | undefined): Cgroup {
  if (spec === undefined) return Cgroup.current();
  const mount = findCgroup2Mount();
  const name = spec === mount || spec.startsWith(`${mount}/`) ? spec.slice(mount.length) : spec;
  const cgroup = new Cgroup(mount, name);
  if (!cgroup.exists()) throw SboxError.invalidOption("--cgroup", `cgroup ${cgroup.path} does not exist`);
  return cgroup;
}

/**
 * Makes sure `parent` hands every controller the limits need to its
 * children. Throws one line naming the option, the controller and the path.
 */
export function enableControllers(parent: Cgroup, limits: CgroupLimits): void {
  const wanted = LIMITS.filter((l) => limits[l.key] !== undefined);
  if (wanted.length === 0) return;
  const available = parent.controllers();
  const enabled = parent.subtreeControllers();
  for (const { option, controller } of wanted) {
    if (enabled.includes(controller)) continue;
    if (!available.includes(controller)) {
      throw new SboxError(
        `${option}: cgroup controller ${controller} is not available in ${parent.path} ` +
          `(its cgroup.controllers does not list it)`,
        { step: "cgroup" },
      );
    }
    try {
      parent.addSubtreeControllers([controller]);
      enabled.push(controller);
    } catch (err) {
      throw new SboxError(`${option}: ${(err as Error).message}`, { step: "cgroup", cause: err });
    }
  }
}

let cgroupCount = 0;

/** Creates the container's cgroup `sbox-<pid>-<n>` below `parent` and writes the limits into it. */
export async function createContainerCgroup(parent: Cgroup, limits: CgroupLimits): Promise<Cgroup> {
  const cgroup = parent.child(`sbox-${ids().pid}-${cgroupCount++}`);
  cgroup.create();
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
        throw new SboxError(`${option}: ${(err as Error).message}`, { step: "cgroup", cause: err });
      }
    }
  } catch (err) {
    await cgroup.remove();
    throw err;
  }
  return cgroup;
}

/** What the container used, read from its cgroup once its processes are gone. */
export interface Usage {
  /** cpu.stat: all processes of the container, not just the first. */
  cpu: CpuUsage;
  /** memory.peak in bytes, or null without the memory controller. */
  memoryPeakBytes: number | null;
  /** Whether memory.events counted an OOM kill. */
  oomKilled: boolean;
}

/** Reads CPU time, peak memory and OOM kills of `cgroup`. */
export function readUsage(cgroup: Cgroup): Usage {
  const cpu = cgroup.cpuUsage();
  if (!cgroup.controllers().includes("memory")) return { cpu, memoryPeakBytes: null, oomKilled: false };
  let memoryPeakBytes: number | null = null;
  try {
    memoryPeakBytes = cgroup.memoryPeak();
  } catch (err) {
    // memory.peak is new in Linux 5.19: older kernels have no figure to give.
    if (!(err instanceof SboxError)) throw err;
  }
  const events = cgroup.memoryEvents();
  return { cpu, memoryPeakBytes, oomKilled: events.oomKill > 0 || events.oomGroupKill > 0 };
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
