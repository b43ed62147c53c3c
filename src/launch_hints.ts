/**
 * What a failed launch means, beyond its errno: the error of a failed op
 * ({@linkcode opFailure}: the op's own `explain`, else a rule of its step
 * and errno) and the hints of a failed clone ({@linkcode cloneHint}), which
 * read the host's limits only once it has failed.
 *
 * @module
 */

import { SboxError, TOO_MANY_OPEN_FILES_HINT } from "./error.ts";
import { describeErrno, errnoName, errnoNumber } from "./errno.ts";
import type { OpName, Program } from "./program.ts";
import { ownLimits, RLIMIT_RESOURCES } from "./security/rlimits.ts";
import { ids, readLink, readTextFile } from "./sys.ts";

/**
 * The error of op `opIndex` of `program`, which the child reports failed
 * with `errno`: what the op does, the errno, and why where the errno alone
 * would not say (the op's `explain`, else {@linkcode hintFor}).
 */
export function opFailure(program: Program, opIndex: number, errno: number): SboxError {
  const { step, what, explain } = program.describe(opIndex);
  const why = explain?.(errnoName(errno));
  const hint = why === undefined ? hintFor(errno, step) : `: ${why}`;
  return new SboxError(`${what}: ${describeErrno(errno)}${hint}`, { step, errno });
}

/**
 * What an errno of `step` means where it is not plain, for an op whose own
 * `explain` says nothing of it: rules of the step and the errno alone, so
 * that no op's hint hangs on the words of its message. An op whose errno
 * means something only there says so itself (MountOpOptions.explain): an
 * overlay's ELOOP (mount.ts, temporary_layers.ts), an IPC sysctl's ENOENT
 * (ipc_limits.ts), the ELOOP of a file written without following links
 * (ProgramBuilder.writeFile).
 *
 * EOVERFLOW: to write in a directory of an overlay, the kernel copies it up
 * with its owner, which must be an id of the container; a host directory of
 * an id outside its map (host root's, under a user's container) cannot be.
 * ELOOP of a mount: the helper refuses a symbolic link at the target of a
 * mount with `targetNoLink` (program.ts: /dev, /proc, /sys and overlays),
 * which an image may well have. EROFS of a mount: an overlay that came out
 * read-only (program.ts, `checkWritable`).
 */
function hintFor(errno: number, step: OpName): string {
  if (step === "fork" || step === "unshare" || step === "net_spawn" || step === "reaper") {
    // Only unshare and net_spawn make namespaces: sbox's one fork op (the
    // exec's, container.ts) clones with CLONE_VM | CLONE_PARENT alone, and
    // the namespaces it enters are joined or made by the ops after it.
    return cloneHint(errno, step === "unshare" || step === "net_spawn");
  }
  if (errno === errnoNumber("ELOOP") && step === "mount") {
    return " (a symbolic link on the way: /dev, /proc, /sys and overlays are mounted only on a path " +
      "of the image, or of a kept upper layer, that has none)";
  }
  if (errno === errnoNumber("EROFS") && step === "mount") {
    return " (the overlay came out read-only: overlayfs could not make its work directory, as when the work " +
      "directory is not writable or the upper layer's file system is out of space or inodes)";
  }
  if (errno !== errnoNumber("EOVERFLOW")) return "";
  return " (a directory on the way belongs to a host id outside the container's id map, so the overlay " +
    "cannot copy it up to write in it: see docs/rootless.md)";
}

/** What {@linkcode cloneHint} reads of the host, only once a clone has failed. */
export interface CloneLimits {
  /** This process's effective uid. */
  euid: number;
  /**
   * Whether this process runs in a user namespace other than the host's
   * (a rootless container, `unshare -U -r`), whose uid 0 RLIMIT_NPROC may
   * bind as any uid. Absent: the host's.
   */
  nestedUserNamespace?: boolean;
  /** The soft RLIMIT_NPROC (`ulimit -u`), or undefined where it cannot be read; `-1n` for unlimited. */
  nproc: bigint | undefined;
  /** The `/proc/sys/user/max_*_namespaces` files whose value is 0 here, by name: "max_user_namespaces". */
  zeroNamespaceLimits: string[];
}

/** The host's {@linkcode CloneLimits}, read as the failure is reported. */
function readCloneLimits(): CloneLimits {
  let nproc: bigint | undefined;
  try {
    const soft = ownLimits("soft")[RLIMIT_RESOURCES.NPROC];
    // ownLimits gives "unlimited" as RLIM_INFINITY, 2^64 - 1.
    nproc = soft === undefined ? undefined : soft === (1n << 64n) - 1n ? -1n : soft;
  } catch {
    nproc = undefined;
  }
  const zeroNamespaceLimits = ["user", "pid", "mnt", "net", "ipc", "uts", "cgroup", "time"]
    .map((kind) => `max_${kind}_namespaces`)
    .filter((name) => {
      try {
        return readTextFile(`/proc/sys/user/${name}`).trim() === "0";
      } catch {
        return false; // a kernel without that namespace
      }
    });
  let nestedUserNamespace: boolean | undefined;
  try {
    nestedUserNamespace = readLink("/proc/self/ns/user") !== INITIAL_USER_NAMESPACE;
  } catch {
    nestedUserNamespace = undefined; // unknown (no /proc): taken as the host's
  }
  return { euid: ids().euid, nproc, zeroNamespaceLimits, nestedUserNamespace };
}

/**
 * /proc/self/ns/user of a process in the host's (initial) user namespace:
 * the kernel gives the initial namespaces fixed inode numbers
 * (PROC_USER_INIT_INO, include/linux/proc_ns.h). A map of "0 0 4294967295"
 * would not tell: root can give a namespace of its own that one.
 */
const INITIAL_USER_NAMESPACE = "user:[4026531837]";

/**
 * What an errno of creating a process (clone3, or a fork or unshare of the
 * setup) means, where the errno's own text says nothing of it:
 *
 * - ENOSPC: a limit on namespaces. User and pid namespaces nest at most 32
 *   deep (the kernel's own bound), and each user namespace, and every one
 *   above it, caps how many of each kind may exist at once
 *   (/proc/sys/user/max_user_namespaces, ...), which a container may set
 *   to 0 to forbid them;
 * - EAGAIN: a limit on processes: the uid's RLIMIT_NPROC (which does not
 *   bind the host's root, but binds uid 0 of a rootless container), a
 *   pids.max of its cgroup or of one above, or the kernel's threads-max or
 *   pid_max;
 * - EMFILE: this process's limit of open files (clone3's pidfd is one),
 *   as for any other fd sbox opens (TOO_MANY_OPEN_FILES_HINT);
 * - ENOSYS: clone3 itself refused, which Docker's default seccomp profile
 *   does (so that glibc falls back to clone); sbox has no fallback, as it
 *   needs CLONE_INTO_CGROUP;
 * - EPERM, of a clone that makes namespaces: a seccomp filter, or a chroot
 *   (the kernel makes no user namespace in one), or a sysctl that forbids
 *   unprivileged user namespaces.
 *
 * `namespaces`: whether the clone made namespaces. Returns "" or " (...)".
 */
export function cloneHint(
  errno: number,
  namespaces: boolean,
  read: () => CloneLimits = readCloneLimits,
): string {
  if (errno === errnoNumber("ENOSPC") && namespaces) {
    const zero = read().zeroNamespaceLimits;
    const here = zero.length === 0
      ? ""
      : `; here ${zero.map((name) => `/proc/sys/user/${name}`).join(" and ")} ${
        zero.length === 1 ? "is" : "are"
      } 0, which forbids them`;
    return " (a limit on namespaces: user and pid namespaces nest at most 32 deep, and " +
      "/proc/sys/user/max_user_namespaces, max_pid_namespaces and the like cap how many may exist at once, " +
      `in this user namespace and in each one above it${here}: raise the limit that is reached ` +
      "(sysctl user.max_user_namespaces=N, in the namespace that set it), or run sbox in fewer nested " +
      "containers)";
  }
  if (errno === errnoNumber("EAGAIN")) {
    const { euid, nproc, nestedUserNamespace } = read();
    // The kernel waives RLIMIT_NPROC only for the host's root (a real uid
    // of kuid 0) and for CAP_SYS_RESOURCE or CAP_SYS_ADMIN in the initial
    // user namespace (copy_process): uid 0 of a rootless container is
    // another user of the host, and bound. (Uid 0 of root's own `unshare -U
    // -r` is the host's root: there the hint names one limit too many, which
    // is better than one too few.)
    const where = nestedUserNamespace ? "in this user namespace" : "on the host";
    const rlimit = (euid === 0 && !nestedUserNamespace) || nproc === -1n
      ? ""
      : `RLIMIT_NPROC (\`ulimit -u\`${nproc === undefined ? "" : `, here ${nproc}`}), which counts every ` +
        `process and thread of uid ${euid} ${where}, sbox's own included; `;
    return ` (a limit on processes is reached: ${rlimit}the pids.max of sbox's cgroup or of one above it; ` +
      "or the kernel's kernel.threads-max or kernel.pid_max: raise the one that is full, or end processes)";
  }
  // clone3's pidfd (CLONE_PIDFD) is a new fd of this process.
  if (errno === errnoNumber("EMFILE")) return TOO_MANY_OPEN_FILES_HINT;
  if (errno === errnoNumber("ENOSYS")) {
    return " (clone3 is refused: a seccomp filter, such as Docker's default profile for a container " +
      "without CAP_SYS_ADMIN, or a kernel older than 5.3; sbox needs clone3: run the outer container with " +
      "`--security-opt seccomp=unconfined`, or with a profile that allows clone3)";
  }
  if (errno === errnoNumber("EPERM") && namespaces) {
    return " (creating namespaces is not permitted here: a seccomp filter (an older Docker's default " +
      "profile), a chroot (the kernel makes no user namespace in one), or a sysctl that forbids user " +
      "namespaces to unprivileged users, such as Debian's kernel.unprivileged_userns_clone=0)";
  }
  return "";
}
