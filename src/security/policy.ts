/**
 * Seccomp policies: which system calls a container's processes may make,
 * as data. A policy is a list of rules over syscall names; seccomp.ts
 * compiles it into a BPF filter for one architecture, and `sbox run
 * --seccomp FILE` reads the same shape from JSON.
 *
 * The default profile denies, with EPERM, what container runtimes' default
 * profiles deny to a container without CAP_SYS_ADMIN: the kernel's keyring,
 * BPF, performance events, modules, kexec, tracing other processes, every
 * way to mount or to enter or create namespaces, the clock, swap, reboot,
 * process accounting, vsock sockets (which no network namespace confines),
 * and a few ioctls that reach outside (TIOCSTI types into a terminal). Past
 * those, with EPERM too: clone's CLONE_PARENT (the siblings an exec()'d
 * process made would be children of the Deno process, never reaped), and
 * fscrypt's key ioctls (their keys are claimed by host uid: the host
 * root's, for the container's root under the identity map). The
 * setsockopt options that attach a BPF program to a socket fail with
 * ENOPROTOOPT, as on a kernel without them: each program takes JIT memory
 * from net.core.bpf_jit_limit, one budget for the whole machine that no
 * cgroup charges (docs/security.md). So does fcntl's F_SETLEASE, with
 * EINVAL: a lease on a host file bound in would hold the host's writers
 * of it. clone3 fails with ENOSYS instead,
 * because its flags are in memory a filter cannot read: C libraries then fall back to clone, whose
 * flags it can. Syscalls numbered above every one sbox knows (added by a
 * later kernel) fail with ENOSYS too, so a new kernel does not widen the
 * policy.
 *
 * @module
 */

/**
 * What a matching rule does: `"allow"`; `"errno"` (fail with EPERM) or
 * `{ errno: "ENOSYS" }` (with that errno); `"kill"` (the whole process);
 * `"kill_thread"`; `"trap"` (SIGSYS); `"log"` (allow, and log to the audit log).
 */
export type SeccompAction = "allow" | "errno" | "kill" | "kill_thread" | "trap" | "log" | { errno: string };

/**
 * A condition on argument `arg` (0-5) of the syscall:
 * - `eq` / `ne`: the argument equals / differs from `value`;
 * - `masked_eq`: `arg & mask` equals `value`;
 * - `has_any`: `arg & value` is not zero (any of those flag bits is set).
 *
 * `bits: 32` compares only the low half of the register, for arguments the
 * kernel declares as `int` or `unsigned int` (ioctl's request, unshare's
 * flags): the kernel ignores the high half, so a filter that compared it
 * could be dodged by setting it. Values are numbers, or strings for
 * hexadecimal ("0x5412") and values above 2^53.
 */
export interface SeccompCondition {
  /** Argument index, 0 to 5. */
  arg: number;
  /** Comparison. */
  op: "eq" | "ne" | "masked_eq" | "has_any";
  /** Value to compare with (the flags for `has_any`). */
  value: number | string;
  /** The mask of `masked_eq`. */
  mask?: number | string;
  /** 32 for `int` arguments; default 64. */
  bits?: 32 | 64;
  /** Why: for people reading the policy. */
  comment?: string;
}

/** Rules apply in order: the first whose syscall and conditions match decides. */
export interface SeccompRule {
  /** Syscall names; a name the target architecture lacks is skipped. */
  syscalls: string[];
  /** What to do when the rule matches. */
  action: SeccompAction;
  /** Conditions, all of which must hold; none means always. */
  args?: SeccompCondition[];
  /** Why: for people reading the policy. */
  comment?: string;
}

/**
 * A seccomp policy: rules, a default, and what to do with unknown syscalls.
 *
 * @example Deny one more syscall than the default profile
 * ```ts
 * import { DEFAULT_SECCOMP_POLICY, type SeccompPolicy } from "./policy.ts";
 *
 * const policy: SeccompPolicy = {
 *   ...DEFAULT_SECCOMP_POLICY,
 *   rules: [{ syscalls: ["chroot"], action: "errno" }, ...DEFAULT_SECCOMP_POLICY.rules],
 * };
 * ```
 */
export interface SeccompPolicy {
  /** Why: for people reading the policy. */
  comment?: string;
  /** For syscalls that no rule matches. */
  defaultAction: SeccompAction;
  /** For syscall numbers above every known one (newer kernels); default: `defaultAction`. */
  unknownAction?: SeccompAction;
  /** The rules, first match wins. */
  rules: SeccompRule[];
}

/** Every namespace flag of clone/unshare except CLONE_NEWTIME (0x80), which clone(2) reads as a signal bit. */
const CLONE_NAMESPACES = 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000 |
  0x00020000;
const CLONE_NEWTIME = 0x80;
/** clone(2)'s flag that gives the new process its maker's parent. */
const CLONE_PARENT = 0x8000;
const ENOSYS = { errno: "ENOSYS" } as const;
const ENOPROTOOPT = { errno: "ENOPROTOOPT" } as const;
const EINVAL = { errno: "EINVAL" } as const;
/** fcntl(2)'s command that takes a lease; its `cmd` is an unsigned int. */
const F_SETLEASE = 1024;
/** setsockopt(2)'s level is an int: `bits: 32`, as the kernel ignores the upper half of the register. */
const SOL_SOCKET: SeccompCondition = { arg: 1, op: "eq", value: 1, bits: 32 };
/** The socket options that attach a BPF program (asm-generic/socket.h: x86_64 and aarch64 alike). */
const SO = {
  ATTACH_FILTER: 26,
  ATTACH_BPF: 50,
  ATTACH_REUSEPORT_CBPF: 51,
  ATTACH_REUSEPORT_EBPF: 52,
} as const;
/**
 * fscrypt's key ioctls (linux/fscrypt.h), _IOWR('f', 23..25, ...): the
 * same numbers on x86_64 and aarch64 (asm-generic/ioctl.h). The request is
 * an unsigned int: `bits: 32`. FS_IOC_GET_ENCRYPTION_KEY_STATUS (26) stays
 * allowed, as do the other fscrypt ioctls: it changes nothing, and tells
 * only whether a key is there (and whether the caller's uid claims it), which
 * the listing of a directory that uses it shows anyway (names in clear or
 * encoded).
 */
const FS_IOC = {
  ADD_ENCRYPTION_KEY: "0xc0506617",
  REMOVE_ENCRYPTION_KEY: "0xc0406618",
  REMOVE_ENCRYPTION_KEY_ALL_USERS: "0xc0406619",
} as const;
const SOL_PACKET = 263;
const PACKET_FANOUT_DATA = 22;

/**
 * The default profile. Every rule is a deny with EPERM except where it says
 * otherwise; everything not listed is allowed.
 *
 * @example List what the default profile denies
 * ```ts
 * import { DEFAULT_SECCOMP_POLICY } from "./policy.ts";
 *
 * const denied = DEFAULT_SECCOMP_POLICY.rules.filter((r) => r.action !== "allow").flatMap((r) => r.syscalls);
 * console.log(denied.includes("keyctl")); // true
 * ```
 */
export const DEFAULT_SECCOMP_POLICY: SeccompPolicy = deepFreeze({
  defaultAction: "allow",
  unknownAction: ENOSYS,
  rules: [
    {
      comment: "the kernel keyring is not namespaced: keys of the host's users are reachable",
      syscalls: ["keyctl", "add_key", "request_key"],
      action: "errno",
    },
    {
      comment: "BPF programs, performance events and userfaultfd: kernel attack surface, and side channels",
      syscalls: ["bpf", "perf_event_open", "userfaultfd"],
      action: "errno",
    },
    {
      comment: "kernel modules and kexec replace or extend the host's kernel",
      syscalls: [
        "init_module",
        "finit_module",
        "delete_module",
        "create_module",
        "query_module",
        "get_kernel_syms",
        "kexec_load",
        "kexec_file_load",
      ],
      action: "errno",
    },
    {
      comment: "tracing and reading other processes' memory",
      syscalls: ["ptrace", "process_vm_readv", "process_vm_writev", "process_madvise", "pidfd_getfd", "kcmp"],
      action: "errno",
    },
    {
      comment: "mounting: the container's mount table is set up once, before the command runs",
      syscalls: [
        "mount",
        "umount2",
        "pivot_root",
        "move_mount",
        "open_tree",
        "open_tree_attr",
        "fsopen",
        "fsconfig",
        "fsmount",
        "fspick",
        "mount_setattr",
      ],
      action: "errno",
    },
    {
      comment: "entering other namespaces",
      syscalls: ["setns"],
      action: "errno",
    },
    {
      comment: "creating namespaces: a nested user namespace hands out every capability again",
      syscalls: ["unshare"],
      action: "errno",
      args: [{ arg: 0, op: "has_any", value: CLONE_NAMESPACES | CLONE_NEWTIME, bits: 32 }],
    },
    {
      comment: "clone with a namespace flag, as unshare; or with CLONE_PARENT, which makes the new process " +
        "a sibling of its maker: a process exec() starts is a child of the Deno process, so its " +
        "CLONE_PARENT children would be too, unknown to sbox and never reaped, and their zombies would " +
        "hold the container's init in its exit (destroy() and the init's status never settling)",
      syscalls: ["clone"],
      action: "errno",
      args: [{ arg: 0, op: "has_any", value: CLONE_NAMESPACES | CLONE_PARENT }],
    },
    {
      comment: "clone3 passes its flags in memory that a filter cannot read: ENOSYS makes libcs use clone",
      syscalls: ["clone3"],
      action: ENOSYS,
    },
    {
      comment: "TIOCSTI types into a terminal, TIOCLINUX reaches the console",
      syscalls: ["ioctl"],
      action: "errno",
      args: [{ arg: 1, op: "eq", value: "0x5412", bits: 32 }],
    },
    {
      syscalls: ["ioctl"],
      action: "errno",
      args: [{ arg: 1, op: "eq", value: "0x541c", bits: 32 }],
    },
    {
      comment: "fscrypt's per-filesystem keyring, which the keyring rule above does not reach: keys are " +
        "claimed by kuid, so under the identity map the container's root holds the host root's claims; " +
        "through any fd of an encrypted filesystem (a read-only bind, its stdin) it could remove the " +
        "host's key, locking the host's encrypted directories, or add keys that pin kernel memory and " +
        "root's key quota until the unmount. FS_IOC_ADD_ENCRYPTION_KEY",
      syscalls: ["ioctl"],
      action: "errno",
      args: [{ arg: 1, op: "eq", value: FS_IOC.ADD_ENCRYPTION_KEY, bits: 32 }],
    },
    {
      comment: "FS_IOC_REMOVE_ENCRYPTION_KEY",
      syscalls: ["ioctl"],
      action: "errno",
      args: [{ arg: 1, op: "eq", value: FS_IOC.REMOVE_ENCRYPTION_KEY, bits: 32 }],
    },
    {
      comment: "FS_IOC_REMOVE_ENCRYPTION_KEY_ALL_USERS",
      syscalls: ["ioctl"],
      action: "errno",
      args: [{ arg: 1, op: "eq", value: FS_IOC.REMOVE_ENCRYPTION_KEY_ALL_USERS, bits: 32 }],
    },
    {
      comment: "the host's clock, swap, power, accounting and kernel log",
      syscalls: [
        "settimeofday",
        "clock_settime",
        "clock_adjtime",
        "reboot",
        "swapon",
        "swapoff",
        "acct",
        "syslog",
        "vhangup",
      ],
      action: "errno",
    },
    {
      comment:
        "file handles bypass the mount table (the 'shocker' escape); quotas and fanotify are host-wide",
      syscalls: [
        "open_by_handle_at",
        "quotactl",
        "quotactl_fd",
        "fanotify_init",
        "lookup_dcookie",
        "nfsservctl",
      ],
      action: "errno",
    },
    {
      comment: "io_uring performs syscalls that this filter never sees",
      syscalls: ["io_uring_setup", "io_uring_enter", "io_uring_register"],
      action: "errno",
    },
    {
      comment:
        "AF_VSOCK (40): vsock has no network namespace, so it reaches the host's and the hypervisor's ports",
      syscalls: ["socket"],
      action: "errno",
      args: [{ arg: 0, op: "eq", value: 40, bits: 32 }],
    },
    {
      comment:
        "classic BPF socket filters (SO_ATTACH_FILTER): the kernel JIT-compiles each into memory that " +
        "net.core.bpf_jit_limit bounds for the whole machine and no cgroup charges; a container holding " +
        "thousands used it up, and every later seccomp filter (each container's start) failed with ENOTSUPP. " +
        "ENOPROTOOPT is a kernel's answer to an option it lacks: libpcap then filters in user space",
      syscalls: ["setsockopt"],
      action: ENOPROTOOPT,
      args: [SOL_SOCKET, { arg: 2, op: "eq", value: SO.ATTACH_FILTER, bits: 32 }],
    },
    {
      comment:
        "SO_ATTACH_REUSEPORT_CBPF: a classic BPF program for a SO_REUSEPORT group, the same JIT memory",
      syscalls: ["setsockopt"],
      action: ENOPROTOOPT,
      args: [SOL_SOCKET, { arg: 2, op: "eq", value: SO.ATTACH_REUSEPORT_CBPF, bits: 32 }],
    },
    {
      comment: "SO_ATTACH_BPF, SO_ATTACH_REUSEPORT_EBPF: eBPF programs, which bpf(2) (denied) makes; " +
        "denied too, so that no socket filter at all is attached, whoever made the program",
      syscalls: ["setsockopt"],
      action: ENOPROTOOPT,
      args: [SOL_SOCKET, { arg: 2, op: "eq", value: SO.ATTACH_BPF, bits: 32 }],
    },
    {
      syscalls: ["setsockopt"],
      action: ENOPROTOOPT,
      args: [SOL_SOCKET, { arg: 2, op: "eq", value: SO.ATTACH_REUSEPORT_EBPF, bits: 32 }],
    },
    {
      comment: "PACKET_FANOUT_DATA: the BPF program of a packet socket's fanout group (with CAP_NET_RAW)",
      syscalls: ["setsockopt"],
      action: ENOPROTOOPT,
      args: [
        { arg: 1, op: "eq", value: SOL_PACKET, bits: 32 },
        { arg: 2, op: "eq", value: PACKET_FANOUT_DATA, bits: 32 },
      ],
    },
    {
      comment:
        "F_SETLEASE (1024): a lease on a host file bound in, even read-only, holds every host process " +
        "that opens it for writing for fs.lease-break-time (45 s) per lease, which the holder takes again; " +
        "EINVAL is a kernel's answer with leases off (fs.leases-enable 0)",
      syscalls: ["fcntl"],
      action: EINVAL,
      args: [{ arg: 1, op: "eq", value: F_SETLEASE, bits: 32 }],
    },
    {
      comment: "x86 I/O ports, LDT, and obsolete interfaces",
      syscalls: ["iopl", "ioperm", "modify_ldt", "sysctl", "uselib"],
      action: "errno",
    },
    {
      comment: "personality: only the usual values (Linux, 32-bit Linux, UNAME26, and the query 0xffffffff)",
      syscalls: ["personality"],
      action: "allow",
      args: [{ arg: 0, op: "eq", value: 0, bits: 32 }],
    },
    { syscalls: ["personality"], action: "allow", args: [{ arg: 0, op: "eq", value: 8, bits: 32 }] },
    { syscalls: ["personality"], action: "allow", args: [{ arg: 0, op: "eq", value: "0x20000", bits: 32 }] },
    { syscalls: ["personality"], action: "allow", args: [{ arg: 0, op: "eq", value: "0x20008", bits: 32 }] },
    {
      syscalls: ["personality"],
      action: "allow",
      args: [{ arg: 0, op: "eq", value: "0xffffffff", bits: 32 }],
    },
    { syscalls: ["personality"], action: "errno" },
  ],
});

/** Freezes an object and everything in it: the default policy is shared by every container. */
function deepFreeze<T>(value: T): T {
  if (value && typeof value === "object") {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}
