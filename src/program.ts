/**
 * The op compiler: turns what the caller asked for into the setup program
 * that the helper's child interprets between clone3 and execve (the format is
 * described in helper/program.zig). The init path (`Container.start`), the
 * exec path (`Container.exec`) and host commands (`newuidmap`, `runAsRoot`)
 * all compile through this one builder and run on the one executor.
 *
 * @module
 */

import { SboxError, show } from "./error.ts";
import { encodeUtf8Into } from "./cstring.ts";
import type { IdMapEntry } from "./user.ts";

/**
 * Op codes: `Code` in helper/program.zig's, which tests/program_test.ts keeps equal.
 *
 * @example
 * ```ts
 * import { OpCode } from "./program.ts";
 *
 * console.log(OpCode.exec); // the number helper/program.zig gives `exec`
 * ```
 */
export const OpCode: {
  readonly wait_parent: 1;
  readonly mount: 2;
  readonly mkdir: 3;
  readonly touch: 4;
  readonly symlink: 5;
  readonly pivot_root: 6;
  readonly sethostname: 7;
  readonly loopback_up: 8;
  readonly dup2: 9;
  readonly close_from: 10;
  readonly chdir: 11;
  readonly setgroups: 12;
  readonly setgid: 13;
  readonly setuid: 14;
  readonly exec: 15;
  readonly setns: 16;
  readonly fork: 17;
  readonly unshare: 18;
  readonly prctl: 19;
  readonly write_file: 20;
  readonly reaper: 21;
  readonly seccomp: 22;
  readonly capbset_drop: 23;
  readonly capset: 24;
  readonly rlimit: 25;
  readonly setsid: 26;
  readonly net_spawn: 27;
  readonly net_join: 28;
  readonly write_existing: 29;
  readonly confine_exec: 30;
  readonly drop_caller_memory: 31;
  readonly sched_setscheduler: 32;
  readonly setpriority: 33;
  readonly ioprio_set: 34;
  readonly setdomainname: 35;
} = {
  wait_parent: 1,
  mount: 2,
  mkdir: 3,
  touch: 4,
  symlink: 5,
  pivot_root: 6,
  sethostname: 7,
  loopback_up: 8,
  dup2: 9,
  close_from: 10,
  chdir: 11,
  setgroups: 12,
  setgid: 13,
  setuid: 14,
  exec: 15,
  setns: 16,
  fork: 17,
  unshare: 18,
  prctl: 19,
  write_file: 20,
  reaper: 21,
  seccomp: 22,
  capbset_drop: 23,
  capset: 24,
  rlimit: 25,
  setsid: 26,
  net_spawn: 27,
  net_join: 28,
  write_existing: 29,
  confine_exec: 30,
  drop_caller_memory: 31,
  sched_setscheduler: 32,
  setpriority: 33,
  ioprio_set: 34,
  setdomainname: 35,
} as const;

/** The name of a setup step, as reported in {@linkcode SboxError.step}. */
export type OpName = keyof typeof OpCode;

const OP_NAMES = Object.fromEntries(Object.entries(OpCode).map(([k, v]) => [v, k])) as Record<number, OpName>;

/**
 * mount(2) flags: `ProgramBuilder.mount`'s `flags`, for a custom `Mount`.
 * On a bind (`BIND` without `REMOUNT`), `RDONLY`, `NOSUID`, `NODEV` and
 * `NOEXEC` take effect from the start, on every mount of the bound tree
 * with `REC`: the helper sets them itself, as mount(2) ignores them on a
 * bind. See {@linkcode ProgramBuilder.mount}.
 */
export const MS = {
  RDONLY: 1,
  NOSUID: 2,
  NODEV: 4,
  NOEXEC: 8,
  REMOUNT: 32,
  BIND: 4096,
  MOVE: 8192,
  REC: 16384,
  PRIVATE: 1 << 18,
} as const;

/** clone3(2) and setns(2) namespace flags. */
export const CLONE = {
  NEWTIME: 0x80n,
  VM: 0x100n,
  PARENT: 0x8000n,
  NEWNS: 0x20000n,
  NEWCGROUP: 0x2000000n,
  NEWUTS: 0x4000000n,
  NEWIPC: 0x8000000n,
  NEWUSER: 0x10000000n,
  NEWPID: 0x20000000n,
  NEWNET: 0x40000000n,
} as const;

/**
 * Every namespace clone3 can make: a container's own (container.ts), and
 * the ones whose limits a failed clone's ENOSPC and EPERM may be about
 * (launch_hints.ts).
 */
export const ALL_NAMESPACES: bigint = CLONE.NEWUSER | CLONE.NEWNS | CLONE.NEWPID | CLONE.NEWNET |
  CLONE.NEWIPC | CLONE.NEWUTS | CLONE.NEWCGROUP | CLONE.NEWTIME;

const HEADER_BYTES = 16;
/** Size of one op record (`Op` in helper/program.zig). */
export const OP_BYTES = 56;
const MAGIC = 0x31584253;
/** The program format version (`version` in helper/program.zig). */
export const PROGRAM_VERSION = 14;
// The flag bits of ops, helper/program.zig's constants of the same names
// (tests/program_test.ts checks that each option sets its bit).
const MOUNT_KEEP_LOCKED_FLAGS = 1;
const MOUNT_IGNORE_MISSING = 2;
const MOUNT_TARGET_NO_LINK = 4;
const MOUNT_HOST_SOURCE = 8;
const MOUNT_SKIP_GONE_LOWER = 16;
const MOUNT_CHECK_WRITABLE = 32;
const MOUNT_HOST_ATIME = 64;
/** S_IFREG and S_IFDIR, the kinds of a planned host source (`mount_host_source` in helper/program.zig). */
const HOST_SOURCE_KIND = { file: 0o100000, directory: 0o040000 } as const;

/** How the helper treats the paths of a {@linkcode ProgramBuilder.mount} op. */
export interface MountOpOptions {
  /**
   * For a remount of a mount inherited from the host: keep the flags the
   * kernel locked (nosuid, nodev, noexec, atime), which an unprivileged
   * remount may not clear. sbox's own mounts do not use it.
   */
  keepLockedFlags?: boolean;
  /**
   * Skip a target the kernel does not have: only one inside a file system
   * this program mounted itself (a proc or sysfs just made); a target missing
   * anywhere else, or a source missing in the image, is still an error, since
   * the op's path then led somewhere else than meant.
   */
  ignoreMissing?: boolean;
  /**
   * Fail with ELOOP where the target is, or goes through, a symbolic link
   * (of the image, or of a kept upper layer) rather than mount where it
   * points: for a file system that later ops find by path again (/dev,
   * /proc and /sys, whose masks follow), where a link through the new mount
   * point could lead them elsewhere; and for every overlay (OverlayMount,
   * TemporaryLayers), whose layer paths overlayfs resolves again itself, as
   * the host would. The helper refuses a link at an overlay's target even
   * without this flag, as a defence; sbox's overlays set it all the same,
   * so that the op says the rule.
   */
  targetNoLink?: boolean;
  /**
   * A bind of a host path planned as this kind of file: opened without
   * following any symbolic link and bound from that fd, and skipped (the op
   * does nothing) when it is gone or no longer of this kind, as a host user
   * who can write where it lies may have made it since the plan.
   */
  hostSource?: "file" | "directory";
  /** An overlay whose lower directory may be gone by now: then it is skipped. */
  skipGoneLower?: boolean;
  /**
   * Fail with EROFS when a mount asked to be writable comes out read-only:
   * overlayfs does that, with only a line in the kernel's log, when it
   * cannot make its work directory (one not writable, or an upper layer's
   * file system out of inodes or space).
   */
  checkWritable?: boolean;
  /**
   * For a new proc or sysfs: mount it with the atime flags (noatime,
   * nodiratime, relatime, strictatime) of the mount at this path as the
   * setup sees it before pivot_root, the host's /proc or /sys. The kernel
   * mounts a proc or sysfs in a user namespace only where one already
   * visible has the same atime flags, which are locked there: a host that
   * mounts its /proc noatime would refuse a relatime one. Not with
   * `hostSource`, which takes the same argument.
   */
  atimeOf?: string;
  /**
   * Says why the op failed with errno `errno` (a name, "EINVAL"), where
   * the kernel's errno alone would not, or undefined: asked only after a
   * failure, so that a check that costs a read of the host's state (its
   * mount table) is paid by the failing start alone. Its text follows the
   * errno in the error's message.
   */
  explain?: (errno: string) => string | undefined;
}
// More flag bits, as MOUNT_KEEP_LOCKED_FLAGS.
const MKDIR_OWNED = 1;
const WRITE_FILE_OPTIONAL = 1;
const WRITE_FILE_NO_LINK = 2;
const CHDIR_NO_MAGIC_LINKS = 1;
const SETUID_KEEP_CAPABILITIES = 1;

/**
 * An id for chown(2) that leaves the owner (or group) as it is.
 *
 * @example A directory whose group is the container's 100, its owner the creator
 * ```ts
 * import { ProgramBuilder, UNCHANGED_ID } from "./program.ts";
 *
 * new ProgramBuilder().mkdir("./srv", 0o2775, { uid: UNCHANGED_ID, gid: 100 });
 * ```
 */
export const UNCHANGED_ID = 0xffffffff;

/** The uid and gid maps of a user namespace (a `UserMapper` has them). */
export interface IdMaps {
  /** The uid map. */
  readonly uidMap: readonly IdMapEntry[];
  /** The gid map. */
  readonly gidMap: readonly IdMapEntry[];
}
/** The kernel's limit on a classic BPF program (BPF_MAXINSNS): `max_filter_len` in helper/program.zig. */
const MAX_FILTER_INSTRUCTIONS = 4096;
/**
 * The helper's limits on a program (`max_ops`, `max_bytes` and
 * `max_array_len` in helper/program.zig), checked here first so that a
 * program past them is an error that says why, before any process exists.
 * `ops` bounds the steps, which `sbox run`'s host root takes about four of
 * for each of the host's mounts (an overlay of each directory beside one):
 * 65536 (3.5 MiB of ops, within `bytes`) leaves room for the 16000 mounts
 * of a busy Kubernetes node, where 4096 stopped at about 1000.
 */
export const PROGRAM_LIMITS = { ops: 65536, bytes: 8 * 1024 * 1024, arrayEntries: 65536 } as const;

type Arg =
  | number
  | bigint
  | null
  | { readonly str: string }
  | { readonly strs: readonly string[] }
  | { readonly u32s: readonly number[] }
  | { readonly bytes: Uint8Array };

interface PendingOp {
  code: number;
  flags: number;
  args: Arg[];
  /** What failed, for the error message: "cannot mount proc on /proc". */
  what: string;
  /** Why it failed, asked after a failure (see {@linkcode MountOpOptions.explain}). */
  explain?: (errno: string) => string | undefined;
}

/** One compiled program, with what each op does for error messages. */
export interface Program {
  /** The encoded program, as helper/program.zig reads it. */
  bytes: Uint8Array<ArrayBuffer>;
  /** Describes op `i` for an error: step name, "cannot ..." text, and what explains its errnos, if anything. */
  describe(index: number): { step: OpName; what: string; explain?: (errno: string) => string | undefined };
  /** Whether it has a `reaper` op, whose pid 1 reports the command's start. */
  hasReaper: boolean;
}

/**
 * Builds a setup program op by op; `build()` encodes it.
 *
 * Relative paths are paths in the container's root (the working directory
 * during the mounts). The child resolves their symbolic links as the
 * container will see them, inside the root (helper/child.zig, `InRoot`): a
 * link in the image or a kept upper layer cannot lead the setup out of it.
 *
 * @example A custom Mount: a read-only tmpfs at /opt/empty
 * ```ts
 * import type { Mount } from "./mount.ts";
 * import { MS, type ProgramBuilder } from "./program.ts";
 *
 * const emptyOpt: Mount = {
 *   target: "/opt/empty",
 *   validate() {},
 *   compile(b: ProgramBuilder) {
 *     // Relative: a path in the container's root, the working directory now.
 *     b.mkdir("./opt").mkdir("./opt/empty");
 *     b.mount("tmpfs", "./opt/empty", "tmpfs", MS.RDONLY | MS.NOSUID | MS.NODEV, "size=4k", "cannot mount /opt/empty");
 *   },
 * };
 * ```
 */
export class ProgramBuilder {
  /**
   * The id maps of the user namespace the program runs in, if it has its
   * own: ops that give a file an owner (mount.ts's `mkdirLike`) translate
   * host ids with them.
   */
  readonly idMaps: IdMaps | undefined;
  readonly #ops: PendingOp[] = [];

  /** An empty program; `idMaps`: see {@linkcode ProgramBuilder.idMaps}. */
  constructor(idMaps?: IdMaps) {
    this.idMaps = idMaps;
  }

  /** Whether a `fork` op was added: a program has at most one. */
  #forked = false;
  /**
   * The network thread of `spawnNetwork`: none yet, running, or joined; or
   * "host" after `keepHostNetwork`, which rules one out.
   */
  #networkThread: "none" | "running" | "joined" | "host" = "none";

  #push(code: number, args: Arg[], what: string, flags = 0, explain?: PendingOp["explain"]): this {
    checkArgs(code, args, what, explain);
    this.#ops.push({ code, flags, args, what, explain });
    return this;
  }

  /** Block on `fd` until the parent has written the id maps; `parentEnd` is closed first. */
  waitParent(fd: number, parentEnd: number): this {
    return this.#push(OpCode.wait_parent, [fd, parentEnd], "cannot wait for the parent");
  }

  /**
   * mount(2), with the helper's checks of its paths (see {@linkcode MountOpOptions}).
   * A bind remount with `MS.REC` sets its flags (read-only, nosuid, nodev,
   * noexec) on every mount of the tree, through mount_setattr: what mount(2)
   * does not, and what a read-only bind of a tree with mounts in it needs. A
   * bind (not a remount) with any of `MS.RDONLY`, `MS.NOSUID`, `MS.NODEV`
   * and `MS.NOEXEC` has them from the start, which mount(2) alone would
   * ignore on a bind: the helper clones the tree, sets the flags and
   * attaches it, all by fd. Other flags of a bind (atime ones) are ignored,
   * as mount(2) does.
   */
  mount(
    source: string | null,
    target: string,
    fstype: string | null,
    flags: number,
    data: string | null,
    what: string,
    options: MountOpOptions = {},
  ): this {
    // sysfs shows the network devices of the mounting process's namespace.
    if (fstype === "sysfs") this.joinNetwork();
    if (options.hostSource !== undefined && options.atimeOf !== undefined) {
      throw new Error("sbox internal error: a mount with both hostSource and atimeOf");
    }
    const last = options.atimeOf !== undefined
      ? s(options.atimeOf)
      : options.hostSource === undefined
      ? 0
      : HOST_SOURCE_KIND[options.hostSource];
    return this.#push(
      OpCode.mount,
      [s(source), { str: target }, s(fstype), flags, s(data), last],
      what,
      (options.keepLockedFlags ? MOUNT_KEEP_LOCKED_FLAGS : 0) |
        (options.ignoreMissing ? MOUNT_IGNORE_MISSING : 0) |
        (options.targetNoLink ? MOUNT_TARGET_NO_LINK : 0) |
        (options.hostSource ? MOUNT_HOST_SOURCE : 0) |
        (options.skipGoneLower ? MOUNT_SKIP_GONE_LOWER : 0) |
        (options.checkWritable ? MOUNT_CHECK_WRITABLE : 0) |
        (options.atimeOf !== undefined ? MOUNT_HOST_ATIME : 0),
      options.explain,
    );
  }

  /**
   * mkdir(2); an existing directory is fine (and left as it is). A new
   * directory gets exactly `mode`: the setup runs with umask 0, whatever
   * the caller's (which the command gets back at its execve). With `owner`
   * (ids in the container; `UNCHANGED_ID` for either leaves it to the
   * creator), it gets that owner too.
   */
  mkdir(path: string, mode = 0o755, owner?: { uid: number; gid: number }): this {
    const what = `cannot create directory ${shown(path)}`;
    if (!owner) return this.#push(OpCode.mkdir, [{ str: path }, mode], what);
    return this.#push(OpCode.mkdir, [{ str: path }, mode, owner.uid, owner.gid], what, MKDIR_OWNED);
  }

  /** Create an empty file to bind-mount onto. */
  touch(path: string, mode = 0o644): this {
    return this.#push(OpCode.touch, [{ str: path }, mode], `cannot create file ${shown(path)}`);
  }

  /** symlink(2); an existing entry is fine. */
  symlink(target: string, path: string): this {
    return this.#push(
      OpCode.symlink,
      [{ str: target }, { str: path }],
      `cannot create symlink ${shown(path)}`,
    );
  }

  /** Make `path` the root and detach the old one. */
  pivotRoot(path: string): this {
    return this.#push(OpCode.pivot_root, [{ str: path }], `cannot pivot_root to ${path}`);
  }

  /** sethostname(2). */
  sethostname(name: string): this {
    return this.#push(OpCode.sethostname, [{ str: name }], `cannot set hostname ${name}`);
  }

  /** setdomainname(2): the NIS domain name of the process's UTS namespace. */
  setdomainname(name: string): this {
    return this.#push(OpCode.setdomainname, [{ str: name }], `cannot set the domain name ${name}`);
  }

  /**
   * sched_setscheduler(2) of this process: `policy` (SCHED_OTHER is 0) at
   * static `priority` (0 for a policy that is not real-time).
   */
  schedSetscheduler(policy: number, priority: number): this {
    return this.#push(
      OpCode.sched_setscheduler,
      [policy, priority],
      `cannot set the scheduling policy ${policy}`,
    );
  }

  /** setpriority(2) of this process: its nice value. */
  setpriority(nice: number): this {
    if (!Number.isInteger(nice) || nice < -20 || nice > 19) {
      throw builderCallError("setpriority", `the nice value must be an integer from -20 to 19, got ${nice}`);
    }
    // A negative one is encoded as a 64-bit two's complement: the kernel reads the low 32 bits as an int.
    return this.#push(OpCode.setpriority, [nice], `cannot set the nice value ${nice}`);
  }

  /** ioprio_set(2) of this process: its I/O priority, class and level as the kernel packs them. */
  ioprioSet(ioprio: number): this {
    return this.#push(OpCode.ioprio_set, [ioprio], `cannot set the I/O priority ${ioprio}`);
  }

  /** Bring `lo` up in the new network namespace. */
  loopbackUp(): this {
    return this.#push(OpCode.loopback_up, [], "cannot bring the loopback interface up");
  }

  /**
   * Make the network namespace on a thread, with `lo` up, while the next
   * ops run; `joinNetwork` moves the process into it. Creating a network
   * namespace costs more than all the other namespaces together (~0.6 ms),
   * and so overlaps the mounts. The builder joins before the first op that
   * needs it: a sysfs mount (see `mount`), `fork` or `reaper` (the thread
   * runs on their stack), `closeFrom` (the thread's namespace fd), and
   * `exec`; and before `setuid`, `capset` and `seccomp`, after which the
   * join's setns may be refused.
   */
  spawnNetwork(): this {
    if (this.#networkThread !== "none") throw new Error("sbox internal error: a second network thread");
    this.#networkThread = "running";
    return this.#push(OpCode.net_spawn, [], "cannot create the network namespace");
  }

  /**
   * Notes that the program stays in the caller's network namespace (a
   * container with `network: "host"`); adds no op. Mounts ask
   * {@linkcode ProgramBuilder.hostNetwork}: a sysfs cannot be mounted then
   * (the kernel wants CAP_SYS_ADMIN over the namespace's owner, the host's
   * user namespace), so `BaseMounts` binds the host's /sys instead.
   */
  keepHostNetwork(): this {
    if (this.#networkThread !== "none") {
      throw new Error("sbox internal error: a network thread and the host's");
    }
    this.#networkThread = "host";
    return this;
  }

  /** Whether `keepHostNetwork` was called: the program has the caller's network namespace. */
  get hostNetwork(): boolean {
    return this.#networkThread === "host";
  }

  /** Wait for the thread of `spawnNetwork` and join its namespace; nothing without one. */
  joinNetwork(): this {
    if (this.#networkThread !== "running") return this;
    this.#networkThread = "joined";
    return this.#push(OpCode.net_join, [], "cannot create the network namespace");
  }

  /** dup2(2); `from === to` only clears close-on-exec. */
  dup2(from: number, to: number): this {
    return this.#push(OpCode.dup2, [from, to], `cannot set up fd ${to}`);
  }

  /**
   * Close every fd from `fd` up but the result pipe, so no host fd reaches
   * the program, nor a path through /proc/self/fd/N before it execs.
   */
  closeFrom(fd: number): this {
    this.joinNetwork(); // the thread leaves its namespace's fd
    return this.#push(OpCode.close_from, [fd], "cannot close inherited fds");
  }

  /**
   * From here on, only files beneath the current root may be executed
   * (Landlock; nothing where the kernel has none): see `confine_exec` in
   * helper/program.zig.
   */
  confineExec(): this {
    return this.#push(OpCode.confine_exec, [], "cannot confine exec to the container's root (Landlock)");
  }

  /**
   * With a copy of this process's memory (a spawn without CLONE_VM): drop
   * all of it the setup does not use and reset the peak resident set, so
   * that a reaper's command starts from little and its `ru_maxrss` is its
   * own (see `drop_caller_memory` in helper/program.zig). Never fails.
   */
  dropCallerMemory(): this {
    return this.#push(OpCode.drop_caller_memory, [], "cannot drop the copy of the caller's memory");
  }

  /**
   * chdir(2). `noMagicLinks`: resolved without magic links such as
   * /proc/self/fd/N, for a path in the container (the command's working
   * directory), where the container may have planted one; the caller's own
   * paths (a rootfs named through /proc/self/root) may use them.
   */
  chdir(path: string, noMagicLinks = false): this {
    return this.#push(
      OpCode.chdir,
      [{ str: path }],
      `cannot change directory to ${path}`,
      noMagicLinks ? CHDIR_NO_MAGIC_LINKS : 0,
    );
  }

  /** setgroups(2). */
  setgroups(groups: readonly number[]): this {
    for (const id of groups) {
      if (!Number.isInteger(id) || id < 0 || id > 0xffffffff) {
        throw builderCallError("setgroups", `a group id must be an integer from 0 to 4294967295, got ${id}`);
      }
    }
    return this.#push(OpCode.setgroups, [groups.length, { u32s: groups }], "cannot set supplementary groups");
  }

  /** setresgid(2). */
  setgid(gid: number): this {
    return this.#push(OpCode.setgid, [gid], `cannot set gid ${gid}`);
  }

  /**
   * setresuid(2). `keepCapabilities`: the capability sets stay as they are
   * (SECBIT_NO_SETUID_FIXUP for the call alone), where the kernel would
   * empty the permitted and effective sets once no uid is 0 any more: for a
   * setup that becomes container root for a few writes and then its own
   * uid again (`asContainerRoot`, src/security/security.ts).
   *
   * @example Root for one write, then uid 1000 again, still with every capability
   * ```ts
   * import { ProgramBuilder } from "./program.ts";
   *
   * new ProgramBuilder().setuid(0, { keepCapabilities: true })
   *   .writeExisting("/proc/sys/kernel/msgmni", "256")
   *   .setuid(1000, { keepCapabilities: true });
   * ```
   */
  setuid(uid: number, options: { keepCapabilities?: boolean } = {}): this {
    this.joinNetwork(); // a uid other than 0 has no CAP_SYS_ADMIN left for setns
    const flags = options.keepCapabilities ? SETUID_KEEP_CAPABILITIES : 0;
    return this.#push(OpCode.setuid, [uid], `cannot set uid ${uid}`, flags);
  }

  /** execve(2), searching `searchPath` (PATH syntax) for a name without a slash. */
  exec(file: string, argv: readonly string[], envp: readonly string[], searchPath: string | null): this {
    this.joinNetwork();
    return this.#push(
      OpCode.exec,
      [{ str: file }, { strs: argv }, { strs: envp }, s(searchPath)],
      `cannot exec ${file}`,
    );
  }

  /** setns(2) into the namespaces `nstype` of the process behind pidfd `fd`. */
  setns(fd: number, nstype: bigint, what: string): this {
    return this.#push(OpCode.setns, [fd, nstype], what);
  }

  /** clone3 again; the new process runs the rest of the program. At most once. */
  fork(flags: bigint, cgroupFd: number): this {
    // helper/program.zig's link() refuses a second: sbox_spawn reserves one
    // fork slot per program (janitor.zig), and would report it as EINVAL.
    if (this.#forked) throw new Error("sbox internal error: a second fork op in one program");
    this.#forked = true;
    this.joinNetwork(); // the network thread runs on the stack of the new process
    return this.#push(OpCode.fork, [flags, BigInt(cgroupFd)], "cannot create the process");
  }

  /** unshare(2). */
  unshare(flags: bigint, what: string): this {
    return this.#push(OpCode.unshare, [flags], what);
  }

  /**
   * Replaces `path` (a file or a link, not followed) with a new file of
   * `mode` holding `text`. A relative path (in the container's root) has its
   * directory resolved inside the root, as for `mkdir`. `optional`: where
   * the process may not write that directory (EACCES, EPERM, EROFS), the
   * file stays as it was, without an error. `noLink`: a relative path's
   * directory reached through a symbolic link fails with ELOOP instead of
   * being followed (a file the setup writes after the user's mounts, which
   * an image's link could send into one of them).
   */
  writeFile(
    path: string,
    text: string,
    mode = 0o644,
    options: { optional?: boolean; noLink?: boolean } = {},
  ): this {
    return this.#push(
      OpCode.write_file,
      [{ str: path }, { str: text }, mode],
      `cannot write ${shown(path)}`,
      (options.optional ? WRITE_FILE_OPTIONAL : 0) | (options.noLink ? WRITE_FILE_NO_LINK : 0),
      // Only `noLink` refuses a link: without it, ELOOP is a loop of links.
      options.noLink ? explainNoLinkWrite : undefined,
    );
  }

  /**
   * Write `text` to the existing file `path` (a sysctl), without creating or
   * truncating it. `explain`: see {@linkcode MountOpOptions.explain}.
   */
  writeExisting(
    path: string,
    text: string,
    options: { explain?: MountOpOptions["explain"] } = {},
  ): this {
    return this.#push(
      OpCode.write_existing,
      [{ str: path }, { str: text }],
      `cannot write ${path}`,
      0,
      options.explain,
    );
  }

  /**
   * Become a minimal pid 1 that runs the rest of the program as its child,
   * forwards signals to it, reaps orphans and reports how it ended.
   */
  reaper(): this {
    this.joinNetwork(); // the network thread runs on the stack of the command
    return this.#push(OpCode.reaper, [], "cannot start the init process");
  }

  /**
   * Install the seccomp filter `filter` (struct sock_filter records, 8 bytes
   * each). Needs no_new_privs first; put it right before `exec`.
   */
  seccomp(filter: Uint8Array): this {
    const count = filter.length / 8;
    if (!Number.isInteger(count) || count === 0 || count > MAX_FILTER_INSTRUCTIONS) {
      throw builderCallError(
        "seccomp",
        `a filter has 1 to ${MAX_FILTER_INSTRUCTIONS} 8-byte instructions, got ${filter.length} bytes`,
      );
    }
    this.joinNetwork(); // the filter may deny setns
    return this.#push(
      OpCode.seccomp,
      [count, { bytes: filter }],
      "cannot install the seccomp filter",
      0,
      explainSeccompFailure,
    );
  }

  /** Drop every capability not in `keep` (a bit mask) from the bounding set. */
  capbsetDrop(keep: bigint): this {
    return this.#push(OpCode.capbset_drop, [keep], "cannot drop capabilities from the bounding set");
  }

  /** Reduce the permitted and effective sets to `keep`, empty the inheritable and ambient sets. */
  capset(keep: bigint): this {
    this.joinNetwork(); // setns needs CAP_SYS_ADMIN, which `keep` may not hold
    return this.#push(OpCode.capset, [keep], "cannot set the capabilities");
  }

  /**
   * prlimit64(2) of resource number `resource`, named `name`; `what` is the
   * message of its failure, before the errno.
   */
  rlimit(
    resource: number,
    soft: bigint,
    hard: bigint,
    name: string,
    what = `cannot set rlimit ${name}`,
  ): this {
    if (soft > hard) {
      throw builderCallError("rlimit", `${name}: the soft limit ${soft} is above the hard limit ${hard}`);
    }
    return this.#push(OpCode.rlimit, [resource, soft, hard], what);
  }

  /** setsid(2): a new session, without a controlling terminal. */
  setsid(): this {
    return this.#push(OpCode.setsid, [], "cannot create a new session");
  }

  /** prctl(2). */
  prctl(option: number, arg2: number, arg3: number, what: string): this {
    return this.#push(OpCode.prctl, [option, arg2, arg3], what);
  }

  /** Encodes the program. */
  build(): Program {
    const ops = this.#ops.slice();
    if (ops.length === 0 || ops[ops.length - 1].code !== OpCode.exec) {
      throw new Error("sbox internal error: a program must end with exec");
    }
    if (ops.length > PROGRAM_LIMITS.ops) throw new TooManyStepsError(ops.length);
    const out = new ProgramWriter(HEADER_BYTES + ops.length * OP_BYTES);
    ops.forEach((op, i) => {
      const at = HEADER_BYTES + i * OP_BYTES;
      out.u32(at, op.code);
      out.u32(at + 4, op.flags);
      op.args.forEach((arg, j) => out.word(at + 8 + 8 * j, out.add(arg)));
    });
    const bytes = out.finish();
    if (bytes.length > PROGRAM_LIMITS.bytes) {
      throw new SboxError(
        `the setup program is ${bytes.length} bytes, at most ${PROGRAM_LIMITS.bytes}: ` +
          "the command, the environment or the paths are too long",
        { step: "options" },
      );
    }
    const view = new DataView(bytes.buffer);
    view.setUint32(0, MAGIC, true);
    view.setUint32(4, PROGRAM_VERSION, true);
    view.setUint32(8, ops.length, true);
    view.setUint32(12, bytes.length, true);
    return {
      bytes,
      hasReaper: ops.some((op) => op.code === OpCode.reaper),
      describe: (index) => {
        const op = ops[index];
        // The helper names an op of this program: anything else means the
        // two sides disagree, which no errno of the step would explain.
        if (op === undefined) {
          throw new Error(`sbox internal error: the helper names op ${index} of ${ops.length}`);
        }
        return { step: OP_NAMES[op.code], what: op.what, explain: op.explain };
      },
    };
  }
}

/** Why a {@linkcode ProgramBuilder.writeFile} with `noLink` failed with ELOOP. */
function explainNoLinkWrite(errno: string): string | undefined {
  if (errno !== "ELOOP") return undefined;
  return "its directory is a symbolic link, which the setup does not follow for this file: it could lead " +
    "into a mount of the caller's";
}

/**
 * Why seccomp(2) refused a filter that the compiler checked. ENOTSUPP (524,
 * an errno of the kernel's own) comes from a kernel built to JIT-compile
 * every BPF program (CONFIG_BPF_JIT_ALWAYS_ON, the common distribution
 * setting) that could not compile this one: nearly always because the JIT
 * memory that net.core.bpf_jit_limit allows, machine-wide, to every process
 * without CAP_BPF in the host's user namespace (a container's setup, here)
 * is used up by other processes' socket and seccomp filters. No cgroup
 * charges it, and the start alone cannot tell whose it is.
 */
function explainSeccompFailure(errno: string): string | undefined {
  if (errno !== "ENOTSUPP") return undefined;
  return "the kernel refused to JIT-compile the filter, which it must here: is net.core.bpf_jit_limit " +
    "used up? It bounds, for the whole machine, the JIT memory of every process without CAP_BPF in the " +
    "host's user namespace, and other processes' BPF socket filters and seccomp filters count against " +
    "it until they close them or exit (docs/security.md, Kernel limits no cgroup bounds)";
}

/**
 * {@linkcode ProgramBuilder.build}'s refusal of a program with more steps
 * than the helper runs, step `"options"`. `problem` says so without the
 * library's advice, for a caller that gives its own: the CLI, whose host
 * root is the usual cause, names its --rootfs.
 */
export class TooManyStepsError extends SboxError {
  /** The refusal alone: "the setup program has N steps, at most M: too many mounts". */
  override readonly problem: string;

  /** The refusal of a program of `steps` steps. */
  constructor(steps: number) {
    const problem = `the setup program has ${steps} steps, at most ${PROGRAM_LIMITS.ops}: too many mounts`;
    super(
      `${problem} (a HostRootMount takes about four steps for each of the host's mounts; an OverlayMount of ` +
        "an image directory as / takes a few)",
      { step: "options" },
    );
    this.problem = problem;
  }
}

/**
 * A {@linkcode ProgramBuilder} method given a value it cannot encode: an
 * `SboxError` (step `"options"`) as for every other bad input, raised before
 * any process exists, naming the method for the author of a custom Mount.
 */
function builderCallError(method: string, problem: string): SboxError {
  return new SboxError(`ProgramBuilder.${method}(): ${problem}`, { step: "options" });
}

/** The builder method of each op code that takes arguments: its name in camel case ("write_file": writeFile). */
const METHOD_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(OpCode).map(([name, code]) => [code, camelCase(name)]),
);

function camelCase(name: string): string {
  return name.replace(/_(.)/g, (_, letter: string) => letter.toUpperCase());
}

/**
 * Refuses the arguments of an op that the program cannot encode, naming
 * the method (`builderCallError`): a caller's custom Mount calls these
 * methods too, and TypeScript does not stop a value built elsewhere. A
 * number must be an integer (a NaN flag failed with a RangeError of
 * BigInt's), a path or text a string (a number failed with "includes is
 * not a function"), an error's text a string and its explain a function.
 * Those of a method that checks its own (setgroups' ids, a filter's bytes)
 * are the method's.
 */
function checkArgs(code: number, args: readonly Arg[], what: unknown, explain: unknown): void {
  for (const arg of args) {
    if (typeof arg === "number") {
      if (!Number.isInteger(arg)) throw badArg(code, `a number must be an integer, got ${show(arg)}`);
    } else if (typeof arg === "object" && arg !== null && "str" in arg) {
      if (typeof arg.str !== "string") {
        throw badArg(code, `a path or text must be a string, got ${show(arg.str)}`);
      }
      if (arg.str.includes("\0")) throw badArg(code, `a path or text contains a NUL byte: ${show(arg.str)}`);
    } else if (typeof arg === "object" && arg !== null && "strs" in arg) {
      // By index: a hole is undefined here, where find() would skip it.
      for (let i = 0; i < arg.strs.length; i++) {
        const str = arg.strs[i];
        if (typeof str !== "string") {
          throw badArg(code, `every text of an array must be a string, got ${show(str)}`);
        }
      }
    } else if (typeof arg !== "bigint" && arg !== null && typeof arg !== "object") {
      throw badArg(code, `an argument must be a number, a string or null, got ${show(arg)}`);
    }
  }
  if (typeof what !== "string") {
    throw badArg(code, `the message of its failure must be a string, got ${show(what)}`);
  }
  if (explain !== undefined && typeof explain !== "function") {
    throw badArg(code, `explain must be a function, got ${show(explain)}`);
  }
}

function badArg(code: number, problem: string): SboxError {
  return builderCallError(METHOD_NAMES[code], problem);
}

/** A path for an error message: one in the container's root ("./etc") as the container sees it ("/etc"). */
function shown(path: string): string {
  // Not a string: checkArgs refuses it, naming the method.
  return typeof path === "string" && path.startsWith("./") ? path.slice(1) : path;
}

function s(value: string | null): Arg {
  return value === null ? null : { str: value };
}

/**
 * Writes the op table and, after it, the data area (strings, arrays) that
 * program.zig expects. One growing buffer: compiling runs on every start.
 */
class ProgramWriter {
  #bytes: Uint8Array<ArrayBuffer>;
  #view: DataView;
  #end: number;

  constructor(dataStart: number) {
    this.#bytes = new Uint8Array(Math.max(4096, dataStart * 2));
    this.#view = new DataView(this.#bytes.buffer);
    this.#end = dataStart;
  }

  u32(at: number, value: number): void {
    this.#view.setUint32(at, value, true);
  }

  /** A u64 argument: numbers below 2^32 (almost all) avoid BigInt. */
  word(at: number, value: number | bigint): void {
    if (typeof value === "number" && value >= 0 && value <= 0xffffffff) {
      this.#view.setUint32(at, value, true);
      this.#view.setUint32(at + 4, 0, true);
    } else {
      this.#view.setBigUint64(at, BigInt.asUintN(64, BigInt(value)), true);
    }
  }

  /** Encodes one argument; returns its word (a value or a data offset). */
  add(arg: Arg): number | bigint {
    if (arg === null) return 0;
    if (typeof arg === "number" || typeof arg === "bigint") return arg;
    if ("str" in arg) return this.#string(arg.str);
    if ("bytes" in arg) {
      const at = this.#reserve(arg.bytes.length, 8);
      this.#bytes.set(arg.bytes, at);
      return at;
    }
    if ("strs" in arg) {
      const array = this.#reserve((arg.strs.length + 1) * 8, 8);
      arg.strs.forEach((str, i) => this.word(array + 8 * i, this.#string(str)));
      this.word(array + 8 * arg.strs.length, 0);
      return array;
    }
    const array = this.#reserve(arg.u32s.length * 4, 8);
    // Each checked by the method that took it (setgroups).
    arg.u32s.forEach((id, i) => this.u32(array + 4 * i, id));
    return array;
  }

  /** The encoded program, trimmed to its length. */
  finish(): Uint8Array<ArrayBuffer> {
    return this.#bytes.slice(0, this.#end);
  }

  #string(str: string): number {
    if (str.includes("\0")) {
      throw new SboxError(`a string contains a NUL byte: ${show(str)}`, { step: "options" });
    }
    const offset = this.#reserve(str.length * 3 + 1, 1);
    const written = encodeUtf8Into(str, this.#bytes, offset);
    this.#bytes[offset + written] = 0;
    this.#end = offset + written + 1;
    return offset;
  }

  /** Reserves `size` bytes at `align`, growing the buffer as needed. */
  #reserve(size: number, align: number): number {
    const offset = Math.ceil(this.#end / align) * align;
    if (offset + size > this.#bytes.length) {
      const grown = new Uint8Array(Math.max(this.#bytes.length * 2, offset + size + 4096));
      grown.set(this.#bytes);
      this.#bytes = grown;
      this.#view = new DataView(grown.buffer);
    }
    // No fill: nothing past #end has been written, so it is still zero.
    this.#end = offset + size;
    return offset;
  }
}
