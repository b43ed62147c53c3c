/**
 * The security step of a container's processes, in one place: which ops go
 * where in the setup program, and why in that order.
 *
 * The first op of every container program is `dieWithParent` (the process
 * dies with the thread that created it). The tail of every process, after
 * its stdio and working directory, is compiled by {@linkcode compileSecurity}:
 *
 * 1. setsid: a new session, without the caller's controlling terminal;
 * 2. rlimits (CORE=0 by default);
 * 3. drop the capability bounding set, while CAP_SETPCAP is still held
 *    (a container's init does it before its mounts instead, see
 *    {@linkcode dropBoundingSet});
 * 4. setgroups/setgid/setuid (the caller's), which need CAP_SETGID/SETUID;
 * 5. reduce permitted/effective, empty inheritable and ambient;
 * 6. PR_SET_PDEATHSIG again: a change of credentials clears it;
 * 7. no_new_privs, then the seccomp filter: last, so that the setup itself
 *    is not filtered, and right before execve.
 *
 * @module
 */

import { checkBoolean } from "../options.ts";
import type { ProgramBuilder } from "../program.ts";
import { capabilityMask } from "./capabilities.ts";
import { DEFAULT_SECCOMP_POLICY, type SeccompPolicy } from "./policy.ts";
import { type CheckedRlimit, checkRlimits, compileRlimits } from "./rlimits.ts";
import { DEFAULT_FILTER_BASE64 } from "./default_filter.ts";
import { compileSeccomp, hostArch } from "./seccomp.ts";

const PR_SET_DUMPABLE = 4;
const PR_SET_PDEATHSIG = 1;
const PR_SET_NO_NEW_PRIVS = 38;
const SIGKILL = 9;

/** Container-wide security options, checked. */
export interface ContainerSecurity {
  /** Capabilities kept, as a bit mask. */
  capabilities: bigint;
  /** The compiled seccomp filter, or null for "unconfined". */
  seccompFilter: Uint8Array | null;
}

/** Per-process security options, checked. */
export interface ProcessSecurity {
  rlimits: CheckedRlimit[];
  newSession: boolean;
}

/** Checks `capAdd`, `capDrop` and `seccomp`, and compiles the filter once. */
export function checkContainerSecurity(
  options: { capAdd?: unknown; capDrop?: unknown; seccomp?: unknown },
): ContainerSecurity {
  const capabilities = capabilityMask(options.capAdd, options.capDrop);
  const seccomp = options.seccomp ?? DEFAULT_SECCOMP_POLICY;
  const seccompFilter = seccomp === "unconfined" ? null : compiledFilter(seccomp as SeccompPolicy);
  return { capabilities, seccompFilter };
}

/**
 * Filters already compiled, by policy object: most containers share the
 * default policy, and compiling it is a fair part of creating a container.
 * A policy is data, so one compiled once stays right unless it is mutated
 * afterwards, which the docs of `seccomp` forbid. The default policy comes
 * compiled with sbox (default_filter.ts): the first compile in a process
 * takes milliseconds, which every `sbox run` would pay.
 */
const compiledFilters = new WeakMap<SeccompPolicy, ReturnType<typeof compileSeccomp>>();

function compiledFilter(policy: SeccompPolicy): ReturnType<typeof compileSeccomp> {
  let filter = compiledFilters.get(policy);
  if (!filter) {
    filter = policy === DEFAULT_SECCOMP_POLICY
      ? Uint8Array.from(atob(DEFAULT_FILTER_BASE64[hostArch()]), (c) => c.charCodeAt(0))
      : compileSeccomp(policy);
    compiledFilters.set(policy, filter);
  }
  return filter;
}

/** Checks `rlimits` and `newSession`. */
export function checkProcessSecurity(options: { rlimits?: unknown; newSession?: unknown }): ProcessSecurity {
  checkBoolean("newSession", options.newSession);
  return { rlimits: checkRlimits(options.rlimits), newSession: options.newSession ?? true };
}

/**
 * SIGKILL when the thread that created this process ends. The first op of a
 * container's program, so that a Deno process killed even by SIGKILL takes
 * its containers along: the init's death ends its pid namespace, which kills
 * every process in it.
 */
export function dieWithParent(b: ProgramBuilder): void {
  b.prctl(PR_SET_PDEATHSIG, SIGKILL, 0, "cannot set the parent-death signal");
}

/**
 * Makes the process's memory not dumpable, until its execve (which makes the
 * command's memory dumpable again, as usual). For the exec path's first
 * process, a copy of this Deno process's memory and fds: the process it
 * forks into the container's pid namespace shares that memory and runs
 * there as the container's root until its execve. Dumpable, it would be open
 * to the container's root through /proc/PID/mem, environ and fd: our heap,
 * our environment, and every fd we hold (a cgroup's directory fd leads to
 * the host's "/"). Not dumpable, those need CAP_SYS_PTRACE in the host's
 * user namespace. Never on the init path: with CLONE_VM the memory is ours.
 */
export function hideFromContainer(b: ProgramBuilder): void {
  b.prctl(PR_SET_DUMPABLE, 0, 0, "cannot make the process not dumpable");
}

/**
 * Takes the ids a container's setup runs as (`setupIds`, src/user.ts), where
 * the caller is not mapped: setresgid, then setresuid; nothing where both
 * stay. Then {@linkcode afterIdChange}.
 */
export function takeSetupIds(
  b: ProgramBuilder,
  ids: { uid: number | undefined; gid: number | undefined },
): void {
  if (ids.uid === undefined && ids.gid === undefined) return;
  if (ids.gid !== undefined) b.setgid(ids.gid);
  if (ids.uid !== undefined) b.setuid(ids.uid);
  afterIdChange(b);
}

/**
 * Runs `steps` as container root, then as uid `back` again: in a setup
 * that runs as another id than root (the caller's own, under keep-id maps:
 * `setupUidBesideRoot`, src/user.ts), for the writes that only the
 * namespace's root may do, the IPC sysctls. The rest of the setup stays the
 * caller: its mounts look host paths up, and make directories in the
 * caller's binds, as the caller. Both changes keep the capability sets as
 * they are (`setuid`'s `keepCapabilities`): on the way back from uid 0 the
 * kernel would empty them, and the mounts after need them. The gid stays:
 * the sysctls' owner bits go by the effective uid alone. The parent-death
 * signal is set again at once (while root too), and dumpable once back:
 * {@linkcode afterIdChange}.
 */
export function asContainerRoot(b: ProgramBuilder, back: number, steps: () => void): void {
  b.setuid(0, { keepCapabilities: true });
  dieWithParent(b);
  steps();
  b.setuid(back, { keepCapabilities: true });
  afterIdChange(b);
}

/**
 * A change of ids makes the kernel clear the parent-death signal and mark
 * the process not dumpable, so both are set again. Not dumpable, the
 * process's /proc files would be closed to the caller, who owns the
 * container's user namespace: start() opens the init's mount namespace
 * there once it runs, to hold it past the init's exit. The memory is the
 * init's own copy by then, never the caller's (Container's
 * `#mayShareMemory`), and no other process of the container exists yet.
 */
function afterIdChange(b: ProgramBuilder): void {
  b.prctl(PR_SET_DUMPABLE, 1, 0, "cannot make the process dumpable again");
  dieWithParent(b);
}

/**
 * Drops from the bounding set every capability the container does not keep.
 * It needs CAP_SETPCAP and leaves the permitted and effective sets as they
 * are, so the setup's mounts can follow. A container's init does it before
 * them: a reaper (pid 1), which execs its supervisor before the command's
 * security step, then holds no capability the command could not get.
 */
export function dropBoundingSet(b: ProgramBuilder, container: ContainerSecurity): void {
  b.capbsetDrop(container.capabilities);
}

/**
 * Appends the security ops around `setIds` (setgroups, setgid, setuid); see
 * the module documentation. `boundingSetDropped`: by
 * {@linkcode dropBoundingSet}, earlier in the program.
 */
export function compileSecurity(
  b: ProgramBuilder,
  container: ContainerSecurity,
  process: ProcessSecurity,
  setIds: () => void,
  boundingSetDropped = false,
): void {
  if (process.newSession) b.setsid();
  compileRlimits(b, process.rlimits);
  if (!boundingSetDropped) dropBoundingSet(b, container);
  setIds();
  b.capset(container.capabilities);
  dieWithParent(b);
  b.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, "cannot set no_new_privs");
  if (container.seccompFilter) b.seccomp(container.seccompFilter);
}
