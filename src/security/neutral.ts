/**
 * What a container's processes do not take over from the caller: the
 * attributes a clone3 copies that rank a process above others, its OOM
 * score adjustment, nice value, real-time (or deadline) scheduling policy
 * and realtime I/O class. A judge service protected from the OOM killer
 * (systemd's `OOMScoreAdjust=-900`), or run at a negative nice or a
 * real-time policy, would otherwise pass that rank on to the untrusted code
 * it runs: a submission the OOM killer passes over while it kills host
 * services instead, or a real-time CPU hog. The same holds for the host
 * programs that serve a container, above all its network daemon
 * (slirp4netns, pasta), which relays everything the container sends (a
 * flood of packets would keep a real-time daemon spinning), and for
 * runAsUser's command: they start from neutral too. Every program that
 * launch() (src/launch.ts) runs begins so, whoever launches it
 * ({@linkcode compileNoInheritance}). Only newuidmap and newgidmap, which
 * end before the container runs, keep the caller's oom_score_adj (a reset
 * would cost them a copy of this process's memory: `keepOomScoreAdj`).
 * Each is brought back to neutral
 * (Docker's default: an `oom_score_adj` of 0, the nice value 0,
 * SCHED_OTHER), but only downwards: a value the caller set below neutral (a
 * positive `oom_score_adj`, a positive nice value, SCHED_BATCH or
 * SCHED_IDLE, the idle I/O class) is kept. Raising any of them back to
 * neutral would need privilege the caller may not have (CAP_SYS_RESOURCE,
 * CAP_SYS_NICE), and a lower rank is the caller's choice for its own work.
 *
 * Policy here, mechanism in the helper: the caller's settings are read
 * here, and only what needs a reset becomes ops of the setup program (the
 * fast path of a start gets none).
 *
 * - Scheduling (nice, policy, I/O priority) belongs to a thread: the child
 *   takes it from the thread that calls clone3, which is the one compiling
 *   the program. It is read on every start through the helper (three
 *   syscalls, no file), as it can change at any time (`renice`, `chrt -p`),
 *   and the process resets its own before anything else of its setup.
 * - `oom_score_adj` belongs to a process, and only /proc tells it: read
 *   once, at the first start. A negative value is read again on each start
 *   (such starts pay a copy of the memory anyway, below: the read is small
 *   beside it); a process that lowers its own below 0 only after its first
 *   start keeps it for its containers.
 *
 * The kernel carries a write of `oom_score_adj` over to every process that
 * shares the target's memory (fs/proc/base.c, `__set_oom_adj`): one written
 * for an init that shares this process's memory (CLONE_VM, the fast path
 * of Container.start) would be this process's own as well. So a process
 * whose oom_score_adj needs a reset is cloned with a copy of the memory
 * instead (launch() leaves CLONE_VM out), and this process writes its
 * /proc/PID/oom_score_adj while it waits for its parent (an init: for its
 * id maps). That copy costs: 3-6 ms more per start on a 2-core VM (about
 * 65%), and as much again for a network daemon, which is reset and so
 * copied too (docs/performance.md). A caller whose containers have a
 * memory cgroup copies the init anyway, and pays nothing more for it. The
 * first process of an exec() has a copy already, waits for no one, and is
 * not in the container's user namespace yet: it writes its own
 * ({@linkcode compileNeutralOomScoreAdj}).
 *
 * The kernel's floor: raising `oom_score_adj` needs no privilege; lowering
 * it below the floor (`oom_score_adj_min`, which a privileged writer sets
 * with the value) needs CAP_SYS_RESOURCE in the host's user namespace.
 * Written by a caller that has it (root), the 0 is the floor too; by one
 * that does not (rootless), the floor stays the caller's, and the
 * container's processes may lower their own back down to it
 * (docs/security.md).
 *
 * @module
 */

import { helper } from "../ffi.ts";
import type { ProgramBuilder } from "../program.ts";
import { check, close, O, readTextFile, tryOpen, tryWrite } from "../sys.ts";
import { dieWithParent } from "./security.ts";

/** sched_setscheduler(2)'s policies. */
const SCHED = { OTHER: 0, FIFO: 1, RR: 2, DEADLINE: 6 } as const;
/** A flag sched_getscheduler(2) adds to the policy. */
const SCHED_RESET_ON_FORK = 0x40000000;
/** ioprio(2): the class is the bits above the 13 of the level. */
const IOPRIO_CLASS_SHIFT = 13;
const IOPRIO_CLASS_RT = 1;
/** Class "none", level 0: the kernel's default, a best-effort priority derived from the nice value. */
const IOPRIO_DEFAULT = 0;

/** The scheduling a clone3 from the calling thread passes on; undefined where it could not be read. */
export interface CallerScheduling {
  /** The nice value, -20 to 19. */
  nice: number | undefined;
  /** The policy (SCHED_OTHER is 0), without SCHED_RESET_ON_FORK. */
  policy: number | undefined;
  /** The I/O priority, class and level as ioprio_get(2) packs them. */
  ioprio: number | undefined;
}

const state = new BigInt64Array(3);
const stateBytes = new Uint8Array(state.buffer);

/** The calling thread's {@linkcode CallerScheduling}, from the helper (three syscalls). */
function callerScheduling(): CallerScheduling {
  helper().sbox_sched_state(stateBytes);
  const [priority, policy, ioprio] = Array.from(state, Number);
  return {
    // getpriority(2) returns 20 minus the nice value, so that it is never negative.
    nice: priority < 0 ? undefined : 20 - priority,
    policy: policy < 0 ? undefined : policy & ~SCHED_RESET_ON_FORK,
    ioprio: ioprio < 0 ? undefined : ioprio,
  };
}

/**
 * The ops that bring the process's scheduling from `caller` back to
 * neutral where it is above (see the module documentation): none when it
 * is not. A real-time or deadline policy becomes SCHED_OTHER, a negative
 * nice value 0, a realtime I/O class the default. None of these needs a
 * privilege. (Under SCHED_RESET_ON_FORK the kernel has reset the first two
 * in the child already; again does nothing.)
 * @internal Exported for tests only.
 */
export function compileNeutralScheduling(
  b: ProgramBuilder,
  caller: CallerScheduling = callerScheduling(),
): void {
  const { nice, policy, ioprio } = caller;
  if (policy === SCHED.FIFO || policy === SCHED.RR || policy === SCHED.DEADLINE) {
    b.schedSetscheduler(SCHED.OTHER, 0);
  }
  if (nice !== undefined && nice < 0) b.setpriority(0);
  if (ioprio !== undefined && ioprio >> IOPRIO_CLASS_SHIFT === IOPRIO_CLASS_RT) b.ioprioSet(IOPRIO_DEFAULT);
}

const OWN_OOM_SCORE_ADJ = "/proc/self/oom_score_adj";

/** This process's oom_score_adj, or undefined where /proc does not tell. */
function readOwnOomScoreAdj(): number | undefined {
  try {
    const value = Number(readTextFile(OWN_OOM_SCORE_ADJ).trim());
    return Number.isInteger(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

let readOomScoreAdj: () => number | undefined = readOwnOomScoreAdj;
/** The value read at the first start (null: not read yet). */
let callerOomScoreAdj: number | undefined | null = null;

/**
 * Replaces how this process's oom_score_adj is read (`read`), or restores
 * the reading of /proc/self/oom_score_adj (no argument), and forgets the
 * value read. For tests: a kernel lets only a process with
 * CAP_SYS_RESOURCE set a negative value, which a test host may not give.
 * @internal Exported for tests only.
 */
export function setOomScoreAdjReader(read?: () => number | undefined): void {
  readOomScoreAdj = read ?? readOwnOomScoreAdj;
  callerOomScoreAdj = null;
}

/**
 * The `oom_score_adj` a container's new process must get, or undefined
 * where it may keep what it inherits: 0 where this process's is negative
 * (see the module documentation).
 * @internal Exported for tests only.
 */
export function neutralOomScoreAdj(): number | undefined {
  if (callerOomScoreAdj === null) callerOomScoreAdj = readOomScoreAdj();
  // Read again when negative: this process may have raised its own since.
  else if (callerOomScoreAdj !== undefined && callerOomScoreAdj < 0) callerOomScoreAdj = readOomScoreAdj();
  return callerOomScoreAdj !== undefined && callerOomScoreAdj < 0 ? 0 : undefined;
}

/**
 * What {@linkcode compileNoInheritance} leaves to launch(): how the new
 * process leaves this process's oom_score_adj behind.
 */
export interface NeutralStart {
  /**
   * Whether the process may share this process's memory (CLONE_VM): not
   * when its oom_score_adj needs a reset, which the kernel would carry over
   * to this process (see the module documentation).
   */
  readonly mayShareMemory: boolean;
  /**
   * Gives process `pid` its neutral oom_score_adj where this process must
   * write it (else does nothing): for launch(), while the process waits,
   * before it changes ids or execs (its /proc file is this uid's until
   * then), with this process's privileges (a root caller's write sets the
   * kernel's floor too).
   */
  reset(pid: number): void;
}

/** Nothing to reset: the fast path. */
const NOTHING_TO_RESET: NeutralStart = { mayShareMemory: true, reset() {} };
/** Reset by the process itself (an op), in its own copy of this process's memory. */
const RESET_BY_ITSELF: NeutralStart = { mayShareMemory: false, reset() {} };

/**
 * The start of every program that launch() (src/launch.ts) runs, before
 * any op of its launcher's own, and the rest of the rule "a process sbox
 * makes inherits neither the caller's rank nor a life of its own", which
 * launch() carries out (see the module documentation):
 *
 * 1. the parent-death signal (dieWithParent), first: a parent that died
 *    before it is seen at the wait for the parent;
 * 2. the neutral scheduling ({@linkcode compileNeutralScheduling});
 * 3. the neutral oom_score_adj, where the caller's is negative
 *    ({@linkcode neutralOomScoreAdj}), unless `keepOomScoreAdj` (a short
 *    helper that ends before the container runs: newuidmap). The process
 *    then gets a copy of this process's memory (`mayShareMemory` false:
 *    launch() leaves CLONE_VM out), a few milliseconds more per start
 *    (docs/performance.md). One that `waits` for its parent has it written
 *    by this process, while it waits (`reset`, before the launcher's
 *    `beforeStart`); one that does not writes its own, here
 *    ({@linkcode compileNeutralOomScoreAdj}): the exec path's first
 *    process, which has this process's privileges still (it joins the
 *    container's user namespace later).
 *
 * Read on each start: the caller's scheduling and oom_score_adj may change.
 */
export function compileNoInheritance(
  b: ProgramBuilder,
  options: { waits: boolean; keepOomScoreAdj?: boolean },
): NeutralStart {
  dieWithParent(b);
  compileNeutralScheduling(b);
  const value = options.keepOomScoreAdj ? undefined : neutralOomScoreAdj();
  if (value === undefined) return NOTHING_TO_RESET;
  if (!options.waits) {
    compileNeutralOomScoreAdj(b, value);
    return RESET_BY_ITSELF;
  }
  return { mayShareMemory: false, reset: (pid) => resetOomScoreAdj(pid, value) };
}

/**
 * Sets the oom_score_adj of process `pid`, a child of this process that
 * does not share its memory (see the module documentation), to `value`.
 * @internal Exported for tests only.
 */
export function resetOomScoreAdj(pid: number, value: number): void {
  const path = `/proc/${pid}/oom_score_adj`;
  const fd = check(tryOpen(path, O.WRONLY), "write_existing", `cannot open ${path}`);
  try {
    check(tryWrite(fd, new TextEncoder().encode(String(value))), "write_existing", `cannot write ${path}`);
  } finally {
    close(fd);
  }
}

/**
 * The op that sets the process's own oom_score_adj to `value`: for the
 * first process of an exec(), which has a copy of this process's memory,
 * its /proc and its privileges still (a root caller's write sets the
 * kernel's floor too).
 * @internal Exported for tests only.
 */
export function compileNeutralOomScoreAdj(b: ProgramBuilder, value: number): void {
  b.writeExisting(OWN_OOM_SCORE_ADJ, String(value));
}
