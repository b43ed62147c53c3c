/**
 * Limits of the container's own IPC namespace. A new IPC namespace starts
 * with the kernel's defaults, which bound nothing that matters: SysV shared
 * memory up to 2^64 bytes (`shmmax`, `shmall`), 32000 semaphore sets of
 * 32000 semaphores each, 32000 message queues. That memory is the kernel's,
 * counted by no rlimit and, without a memory controller, by nothing at all;
 * the OOM killer does not see it in any process (a segment nobody maps), and
 * semaphores and queued messages cannot be reclaimed: one container could
 * take gigabytes from the host and keep them until it ends. So the init
 * sets the namespace's limits before anything runs in it, as the
 * namespace's own root may (they are its sysctls, not the host's), and
 * `/proc/sys` is read-only for the command afterwards.
 *
 * @module
 */

import type { ProgramBuilder } from "../program.ts";
import { stat } from "../sys.ts";

/**
 * The sysctls of the container's IPC namespace and their values: SysV
 * shared memory as large in all as the default `/dev/shm` (64 MiB), the
 * semaphore limits Linux had before 3.19 (at most 32000 semaphores in 128
 * sets), and 256 message queues of the default 16 KiB (4 MiB).
 * @internal Exported for tests only.
 */
export const IPC_LIMITS: Readonly<Record<string, string>> = {
  "kernel/shmmax": String(64 * 1024 * 1024),
  // In pages of 4 KiB.
  "kernel/shmall": String((64 * 1024 * 1024) / 4096),
  "kernel/sem": "250 32000 32 128",
  "kernel/msgmni": "256",
};

/**
 * Appends the writes of {@linkcode IPC_LIMITS}. They go through the
 * host's `/proc` as the setup sees it, before `pivot_root`: an IPC sysctl
 * is always the writing process's own namespace's, and that needs no
 * `/proc` of the container's.
 */
export function compileIpcLimits(b: ProgramBuilder): void {
  for (const [name, value] of Object.entries(IPC_LIMITS)) {
    b.writeExisting(`/proc/sys/${name}`, value, { explain: explainIpcLimitFailure });
  }
}

/**
 * Why an IPC sysctl could not be written: ENOENT where sbox's own /proc,
 * which the writes go through, has no /proc/sys at all. Read only after the
 * failure.
 */
function explainIpcLimitFailure(errno: string): string | undefined {
  if (errno !== "ENOENT" || stat("/proc/sys") !== undefined) return undefined;
  return "sbox's /proc has no /proc/sys: it is a proc mounted with subset=pid, which shows processes only, " +
    "as some containers have it; run sbox where /proc is a whole one";
}
