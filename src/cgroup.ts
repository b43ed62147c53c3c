/**
 * cgroup v2, as files: a {@linkcode Cgroup} is a directory of the cgroup2
 * mount. The mount is found in /proc/self/mountinfo, never assumed to be
 * /sys/fs/cgroup (hybrid hosts mount it elsewhere): cgroup_mount.ts finds
 * it, and cgroup_diagnostics.ts words what is wrong with a group.
 *
 * @module
 */

import { SboxError } from "./error.ts";
import { checkNotFrozen, createRefusedHint, missingControllerError } from "./cgroup_diagnostics.ts";
import {
  type Cgroup2Mount,
  checkOnCgroup2,
  hasControlCharacter,
  ownCgroupPath,
  placeCgroupOrThrow,
  readCgroup2Mounts,
} from "./cgroup_mount.ts";
import { ProcReading } from "./mountinfo.ts";
import { checkBoolean, checkOptionsObject, show } from "./options.ts";
import {
  check,
  EBUSY,
  EEXIST,
  ENOENT,
  O,
  open,
  readDir,
  readTextFile,
  stat,
  tryMkdir,
  tryRmdir,
  writeTextFile,
} from "./sys.ts";

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

function validName(name: string): boolean {
  return typeof name === "string" && !hasControlCharacter(name) &&
    name.split("/").every((part) => part !== "" && part !== "." && part !== "..");
}

/**
 * The group `path` (a cgroup path as /proc/self/cgroup gives it, such as
 * "/judge"), on the cgroup2 mount that shows it (cgroup_mount.ts's
 * placeCgroup). `what` names it (quoted) in an error, an SboxError of step
 * "cgroup": a name sbox does not take, or no mount that shows the group.
 */
export function locateCgroup(
  path: string,
  what: string,
  mounts: readonly Cgroup2Mount[] = readCgroup2Mounts(),
): Cgroup {
  const { mount, name } = placeCgroupOrThrow(path, what, mounts);
  return new Cgroup(mount.point, name);
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
