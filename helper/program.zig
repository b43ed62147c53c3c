//! The setup program: the byte buffer that TypeScript compiles (src/program.ts)
//! and the child interprets after clone3 (child.zig).
//!
//! Layout, all integers little-endian native words:
//!
//!   Header   magic, version, op_count, byte_len
//!   Op[op_count]   fixed 56-byte records: code, flags, six u64 arguments
//!   data area      NUL-terminated strings and offset arrays
//!
//! String and array arguments are written as byte offsets from the start of
//! the buffer (0 means "none"). `link` runs in the parent, before clone3: it
//! checks every offset against the buffer and rewrites it in place into an
//! absolute address, so the child only dereferences pointers that were
//! already validated. The child never parses, allocates or fails on format.
//!
//! The child runs its ops with umask 0: the modes that ops give (mkdir,
//! touch, write_file) are exactly the modes made, whatever the caller's
//! umask. It gets the caller's umask back for the programs it starts: the
//! command (exec, or from the seccomp op on), and pid 1 of a `reaper`.

const std = @import("std");
const linux = std.os.linux;
const sys = @import("sys.zig");

pub const magic: u32 = 0x31584253; // "SBX1"
pub const version: u32 = 14; // 2: security ops; 3: the library's calls through sbox_call; 4: network thread; 5: setup_cpu, started_at, exited_at records; 6: close_from, confine_exec, mount_target_no_link; 7: mount_check_writable, Context.fork_pid_slot; 8: write_file resolves relative paths in the root, write_file_optional; 9: drop_caller_memory, max_rss, user_time, system_time records; 10: setuid_keep_capabilities; 11: write_file_no_link; 12: kill_token record; 13: sched_setscheduler, setpriority, ioprio_set, setdomainname; 14: mount_host_atime

/// Explicit limits. The compiler checks them first (PROGRAM_LIMITS in
/// src/program.ts, which a test keeps equal) and says which was passed.
pub const max_ops: u32 = 65536;
pub const max_bytes: usize = 8 * 1024 * 1024;
pub const max_array_len: usize = 65536;

pub const Header = extern struct {
    magic: u32,
    version: u32,
    op_count: u32,
    byte_len: u32,
};

/// One step of the setup state machine. The numbers are shared with
/// src/program.ts (`OpCode`), which tests/program_test.ts keeps equal.
pub const Code = enum(u32) {
    /// Block until the parent writes one byte on fd args[0] (id maps
    /// written); args[1] is the parent's end, which the child closes first.
    wait_parent = 1,
    /// mount(args[0] source, args[1] target, args[2] fstype, args[3] flags, args[4] data).
    /// A bind remount with MS_REC sets its flags on every mount of the tree
    /// (mount_setattr), which mount(2) cannot. A bind (not a remount) with
    /// any of MS_RDONLY, MS_NOSUID, MS_NODEV and MS_NOEXEC is attached with
    /// them (open_tree, mount_setattr, move_mount): mount(2) ignores them on
    /// a bind.
    /// Flags field bits 0-6: `mount_keep_locked_flags`, `mount_ignore_missing`,
    /// `mount_target_no_link`, `mount_host_source`, `mount_skip_gone_lower`,
    /// `mount_check_writable`, `mount_host_atime`.
    mount = 2,
    /// mkdir(args[0] path, args[1] mode); an existing directory is fine.
    /// flags field bit 0 (`mkdir_owned`): a new directory gets that mode
    /// after a chown (which clears set-id bits) to owner args[2]:args[3] (0xffffffff: unchanged).
    mkdir = 3,
    /// Create an empty file args[0] with mode args[1] (a bind-mount target).
    touch = 4,
    /// symlink(args[0] target, args[1] link path); an existing entry is fine.
    symlink = 5,
    /// Make args[0] the new root and detach the old one.
    pivot_root = 6,
    /// sethostname(args[0]).
    sethostname = 7,
    /// Bring the loopback interface up.
    loopback_up = 8,
    /// dup2(args[0], args[1]); equal fds only clear close-on-exec.
    dup2 = 9,
    /// Close every fd >= args[0] but the result pipe (close-on-exec
    /// already). Closed, not marked close-on-exec: until execve a path
    /// through /proc/self/fd/N would lead to what they are (a host
    /// directory such as the container's cgroup), past the container's root.
    close_from = 10,
    /// chdir(args[0]). flags field bit 0 (`chdir_no_magic_links`): resolved
    /// without magic links (/proc/self/fd/N, /proc/self/cwd...), which lead
    /// out of the container's root: for the command's working directory, a
    /// path the container may have planted, not the caller's rootfs.
    chdir = 11,
    /// setgroups(args[0] count, args[1] array of u32 ids).
    setgroups = 12,
    /// setresgid(args[0]).
    setgid = 13,
    /// setresuid(args[0]). flags field bit 0 (`setuid_keep_capabilities`):
    /// the capability sets stay as they are.
    setuid = 14,
    /// execve(args[0] file, args[1] argv, args[2] envp), searching args[3]
    /// (a PATH-style list) when the file has no slash. Always the last op.
    exec = 15,
    /// setns(args[0] fd, args[1] nstype).
    setns = 16,
    /// clone3(args[0] flags, into cgroup fd args[1] unless negative). The caller
    /// reports the new pid on the result pipe and exits; the new process runs
    /// the remaining ops.
    fork = 17,
    /// unshare(args[0]).
    unshare = 18,
    /// prctl(args[0], args[1], args[2]).
    prctl = 19,
    /// Replace file args[0] (unlinked first, not followed) with a new file of
    /// mode args[2] holding args[1] (a string): e.g. /etc/resolv.conf. A
    /// relative path's directory is resolved inside the root, as for mkdir.
    /// flags field bit 0 (`write_file_optional`): EACCES, EPERM or EROFS
    /// leave the file as it was, without an error. Bit 1
    /// (`write_file_no_link`): a relative path's directory reached through
    /// a symbolic link fails with ELOOP rather than be followed.
    write_file = 20,
    /// Become a minimal init: clone3 the process that runs the remaining
    /// ops, report `started` once it has exec'd, forward signals to it, reap
    /// orphans, and report its wait status (`exited`) when it ends.
    reaper = 21,
    /// Install a seccomp filter: args[0] instructions (struct sock_filter,
    /// 8 bytes each) at args[1]. no_new_privs must be set before (a prctl
    /// op), so that it needs no privilege. The last op before exec.
    seccomp = 22,
    /// Drop every capability whose bit is clear in args[0] from the bounding
    /// set. Needs CAP_SETPCAP: runs before setuid.
    capbset_drop = 23,
    /// Reduce the permitted, effective and inheritable sets to their
    /// intersection with args[0], and clear the ambient set. After setuid.
    capset = 24,
    /// prlimit64(0, args[0] resource, {args[1] soft, args[2] hard}).
    rlimit = 25,
    /// setsid(): a new session without a controlling terminal.
    setsid = 26,
    /// Start a thread that makes the network namespace (unshare), brings
    /// `lo` up in it, and exits; it runs on the fork stack while the ops
    /// after this one go on. Creating a network namespace is most of the cost
    /// of clone3's namespaces (~0.6 ms), so it overlaps the mounts. Where no
    /// thread can be made (a cgroup's pids.max of 1), the process makes the
    /// namespace itself, in turn.
    net_spawn = 27,
    /// Wait for the thread of `net_spawn` to be gone (its pid freed too),
    /// then setns into its network namespace. A no-op without a thread, or
    /// once joined. link() checks that every `net_spawn` is joined before an
    /// op that uses the fork stack (fork, reaper), before one after which
    /// setns may be refused (setuid, capset, seccomp), before close_from
    /// (the thread's namespace fd), and before exec.
    net_join = 28,
    /// Write args[1] (a string) to the existing file args[0], neither created
    /// nor truncated: a sysctl of the process's own namespaces, such as
    /// /proc/sys/kernel/shmmax of its IPC namespace.
    write_existing = 29,
    /// Landlock (Linux 5.13): from here on this process and all it starts
    /// may execute only files beneath the current root, as program, script
    /// interpreter or ELF interpreter alike. A process cloned from the
    /// caller has the caller's program (Deno) as /proc/self/exe until it
    /// execs: a link to it planted in the container, or a script's
    /// `#!/proc/self/exe`, would run the host's Deno binary in the
    /// container, which could then write it through /proc/PID/exe. Nothing
    /// to do where the kernel has no Landlock.
    confine_exec = 30,
    /// With a copy of the caller's memory (sbox_spawn without CLONE_VM):
    /// unmap all of it but the helper library, this program, the stacks and
    /// the thread's TLS block, and reset the peak resident set
    /// (caller_memory.zig). A reaper's command then starts from a few
    /// hundred KiB, and its ru_maxrss is its own: the reaper reports
    /// `max_rss` only after this op succeeded. Never fails: where the
    /// memory is the caller's (CLONE_VM) it does nothing, and what it could
    /// not do only leaves the figure unreported. No `fork` op may follow
    /// (its pid slot is the caller's memory).
    drop_caller_memory = 31,
    /// sched_setscheduler(0, args[0] policy, {args[1] priority}): this
    /// process (thread) only. The caller's real-time policy is inherited
    /// through clone3; a container's processes get SCHED_OTHER back
    /// (src/security/neutral.ts). Leaving a real-time policy needs no
    /// privilege.
    sched_setscheduler = 32,
    /// setpriority(PRIO_PROCESS, 0, args[0]): this thread's nice value, the
    /// low 32 bits of args[0] as a signed number. Raising it needs no
    /// privilege.
    setpriority = 33,
    /// ioprio_set(IOPRIO_WHO_PROCESS, 0, args[0]): this thread's I/O
    /// priority. Leaving the realtime class needs no privilege.
    ioprio_set = 34,
    /// setdomainname(args[0]): the NIS domain name of the process's UTS
    /// namespace, which a new one copies from its creator's.
    setdomainname = 35,

    pub fn stringArgs(code: Code) u6 {
        return switch (code) {
            .mount => 0b10111,
            .mkdir, .touch, .pivot_root, .sethostname, .setdomainname, .chdir => 0b1,
            .write_file, .write_existing => 0b11,
            .symlink => 0b11,
            .exec => 0b1001,
            else => 0,
        };
    }

    pub fn arrayArgs(code: Code) u6 {
        return switch (code) {
            .exec => 0b110,
            else => 0,
        };
    }
};

/// Mount flags field bit 0: for a remount, keep the flags the kernel locked
/// (nosuid, nodev, noexec, atime), so that an unprivileged remount is
/// allowed. sbox's own mounts do not use it; a caller's Mount may.
pub const mount_keep_locked_flags: u32 = 1;
/// Mkdir flags field bit 0: see `Code.mkdir`.
pub const mkdir_owned: u32 = 1;
/// Write_file flags field bits 0 and 1: see `Code.write_file`.
pub const write_file_optional: u32 = 1;
pub const write_file_no_link: u32 = 2;
/// Chdir flags field bit 0: see `Code.chdir`.
pub const chdir_no_magic_links: u32 = 1;
/// Setuid flags field bit 0: the change of uid leaves the capability sets
/// as they are (SECBIT_NO_SETUID_FIXUP for the call alone). The kernel
/// would empty the permitted and effective sets when every uid goes from 0
/// to another: a setup that is container root only for the writes that
/// need it (the IPC sysctls), and its own uid again for the mounts, keeps
/// the capabilities of its user namespace that those need.
pub const setuid_keep_capabilities: u32 = 1;
/// Mount flags field bit 1: a missing target (ENOENT) is not an error, for
/// masking paths that only some kernels have (/proc/sched_debug, ...). Only
/// where the target lies in a file system the program mounted itself
/// (own_mounts.zig): the proc or sysfs just made, where a missing entry can
/// only mean this kernel lacks it. Elsewhere, and for a source that cannot
/// be resolved, ENOENT means the op went somewhere else than meant (an
/// image's link that changed meaning once a mount covered part of its way),
/// and skipping it would silently drop a mask.
pub const mount_ignore_missing: u32 = 2;
/// Mount flags field bit 2: the target must be reached without any symbolic
/// link, else the op fails with ELOOP. For /dev, /proc and /sys of an image:
/// mounted where a link points, they can change what the link means (a link
/// through the new mount point), and the masks and read-only binds that
/// follow by path would then miss them. For every overlay too, whose layer
/// paths overlayfs resolves itself, as the host would: the compiler sets it
/// on each, and child.zig's `mount` refuses a link at an overlay's target
/// without it all the same.
pub const mount_target_no_link: u32 = 4;
/// Mount flags field bit 3: a bind whose source is a host path the caller
/// planned (the host-root view of `sbox run`) as a regular file or a
/// directory, args[5] (S_IFREG or S_IFDIR). It is opened without following
/// any symbolic link and bound from that fd, and only while it is still of
/// that kind: a host user who can write where it lies may have swapped it
/// for a link (to a daemon's socket, to "/") since the plan, or removed it.
/// Then the op does nothing, as if the entry had gone a moment earlier.
pub const mount_host_source: u32 = 8;
/// Mount flags field bit 4: an overlay whose lower directory (a host path
/// the caller planned) may be gone: its ENOENT is not an error, and the
/// target stays the empty directory it was.
pub const mount_skip_gone_lower: u32 = 16;
/// Mount flags field bit 5: a mount without MS_RDONLY that comes out
/// read-only fails with EROFS (overlayfs falls back to read-only, with only
/// a kernel log line, when it cannot make its work directory).
pub const mount_check_writable: u32 = 32;
/// Mount flags field bit 6: a new proc or sysfs takes the atime flags
/// (noatime, nodiratime, relatime, or none of them: strictatime) of the
/// mount at path args[5] (a string with this flag alone), the host's of
/// its kind as the setup sees it before pivot_root. The kernel mounts a proc or sysfs in a user namespace
/// only where one already visible has the same atime flags (they are locked
/// there), so a host that mounts /proc noatime would refuse the default
/// relatime. A path that cannot be read leaves the flags as they are, for
/// the mount's own error to say.
pub const mount_host_atime: u32 = 64;

/// The kernel's limit on a classic BPF program (BPF_MAXINSNS).
pub const max_filter_len: u64 = 4096;

pub const Op = extern struct {
    code: Code,
    flags: u32,
    args: [6]u64,
};

comptime {
    std.debug.assert(@sizeOf(Header) == 16);
    std.debug.assert(@sizeOf(Op) == 56);
}

/// What the child writes on the result pipe. A successful execve writes
/// nothing: the pipe is close-on-exec, so the parent reads end-of-file.
/// Every record is written here (`write`, `write64`, `writeTo`): by the
/// child (child.zig) and by pid 1 under a reaper (reaper.zig).
pub const Record = extern struct {
    kind: RecordKind,
    op_index: u32,
    code: u32,
    /// errno for `failed`, a pid for `forked`/`started`, a wait status for
    /// `exited`; the low 32 bits of a 64-bit figure (`user_time`,
    /// `system_time`, `kill_token`), whose high 32 bits are in `code`.
    value: i32,

    /// Writes a record of `kind` from op `op_index` (of `code`) with `value`
    /// on `fd`.
    pub fn write(fd: i32, kind: RecordKind, op_index: u32, code: Code, value: i32) void {
        const record = Record{ .kind = kind, .op_index = op_index, .code = @intFromEnum(code), .value = value };
        record.writeTo(fd);
    }

    /// Writes a record of `kind` from op `op_index` with a 64-bit figure:
    /// the high half in `code`, the low half in `value`.
    pub fn write64(fd: i32, kind: RecordKind, op_index: u32, value: u64) void {
        const record = Record{
            .kind = kind,
            .op_index = op_index,
            .code = @truncate(value >> 32),
            .value = @bitCast(@as(u32, @truncate(value))),
        };
        record.writeTo(fd);
    }

    /// Writes `record` on `fd` in one write(2), which a pipe keeps whole (it
    /// is less than PIPE_BUF) where two processes write on it: the `forked`
    /// of a `fork` op and a failure of the process it made. Best effort: a
    /// writer has nobody left to tell a failed write to.
    pub fn writeTo(record: *const Record, fd: i32) void {
        _ = linux.syscall3(.write, sys.fdArg(fd), @intFromPtr(record), @sizeOf(Record));
    }
};

comptime {
    std.debug.assert(@sizeOf(Record) == 16); // src/protocol.ts, RECORD_BYTES
    std.debug.assert(@sizeOf(Record) <= 4096); // PIPE_BUF: written whole
}

/// Decoded by src/protocol.ts (`KINDS`, in this order), which
/// tests/program_test.ts keeps equal.
pub const RecordKind = enum(u32) {
    failed = 1,
    forked = 2,
    /// From a reaper: the command has exec'd; `value` is its pid inside.
    started = 3,
    /// From a reaper: the command ended; `value` is its raw wait status.
    exited = 4,
    /// From a reaper, just before `started`: the CPU time pid 1 has used so
    /// far, in microseconds: the container's setup (the network thread's
    /// included), which its cgroup counts too.
    setup_cpu = 5,
    /// From a reaper, just before `started`: CLOCK_MONOTONIC just before the
    /// command's execve, in microseconds, the low 31 bits: the command's own
    /// reading, which pid 1 passes on, or pid 1's when it saw the execve.
    /// Also from the command to pid 1, on its exec pipe.
    started_at = 6,
    /// From a reaper, just before `exited`: the same clock when it reaped the
    /// command.
    exited_at = 7,
    /// From a reaper, just before `exited`, the next three: what pid 1's
    /// reaped children used (getrusage RUSAGE_CHILDREN once it reaped the
    /// command): the command, the orphans pid 1 reaped before it, and every
    /// process these waited for. This one: the largest resident set of any
    /// of them (ru_maxrss), in KiB, at most maxInt(i32). Only after a
    /// `drop_caller_memory` that succeeded: else the command's figure holds
    /// the caller's memory.
    max_rss = 8,
    /// Their CPU time in user mode (ru_utime), in microseconds: 64 bits,
    /// `code` holding the high half and `value` the low half.
    user_time = 9,
    /// Their CPU time in the kernel (ru_stime), as `user_time`.
    system_time = 10,
    /// From a reaper, just before `started`: 64 random bits, the high half
    /// in `code` and the low half in `value`, that the caller's kill request
    /// must carry (reaper.zig, `kill_request`). Only the caller learns them.
    kill_token = 11,
};

pub const LinkError = error{ BadHeader, BadOp, BadOffset, BadString, BadArray, NoExec };

/// Validates `buf` and rewrites its offsets into addresses. Returns the ops.
pub fn link(buf: []u8) LinkError![]Op {
    if (buf.len < @sizeOf(Header) or buf.len > max_bytes) return error.BadHeader;
    const header: *align(1) const Header = @ptrCast(buf.ptr);
    if (header.magic != magic or header.version != version) return error.BadHeader;
    if (header.byte_len != buf.len) return error.BadHeader;
    if (header.op_count == 0 or header.op_count > max_ops) return error.BadHeader;
    const ops_end = @sizeOf(Header) + @as(usize, header.op_count) * @sizeOf(Op);
    if (ops_end > buf.len) return error.BadHeader;
    if (@intFromPtr(buf.ptr) % 8 != 0) return error.BadHeader;
    const ops: []Op = @as([*]Op, @ptrCast(@alignCast(buf.ptr + @sizeOf(Header))))[0..header.op_count];

    const base = @intFromPtr(buf.ptr);
    var network_thread: enum { none, running, joined } = .none;
    // At most one: sbox_spawn reserves one fork slot per program.
    var forked = false;
    var memory_dropped = false;
    for (ops) |*op| {
        _ = std.meta.intToEnum(Code, @intFromEnum(op.code)) catch return error.BadOp;
        if (op.code == .fork) {
            if (forked or memory_dropped) return error.BadOp;
            forked = true;
        }
        if (op.code == .drop_caller_memory) memory_dropped = true;
        switch (op.code) {
            .net_spawn => {
                if (network_thread != .none) return error.BadOp;
                network_thread = .running;
            },
            .net_join => if (network_thread == .running) {
                network_thread = .joined;
            },
            // The thread runs on the stack of fork and reaper; after setuid,
            // capset or seccomp, the join's setns may be refused.
            // close_from would close the namespace fd the thread leaves.
            .fork, .reaper, .exec, .setuid, .capset, .seccomp, .close_from => if (network_thread == .running) return error.BadOp,
            else => {},
        }
        const strings = Code.stringArgs(op.code);
        const arrays = Code.arrayArgs(op.code);
        for (&op.args, 0..) |*arg, i| {
            const bit = @as(u6, 1) << @intCast(i);
            if (strings & bit != 0) {
                if (arg.* != 0) arg.* = base + try checkString(buf, ops_end, arg.*);
            } else if (arrays & bit != 0) {
                arg.* = base + try linkArray(buf, ops_end, arg.*);
            }
        }
        if (op.code == .mount and op.flags & mount_host_atime != 0) {
            // args[5]: the path whose atime flags the mount takes, a string
            // only with this flag (else mount_host_source's file kind).
            if (op.flags & mount_host_source != 0) return error.BadOp;
            op.args[5] = base + try checkString(buf, ops_end, op.args[5]);
        }
        if (op.code == .setgroups) {
            // args[1]: offset of args[0] u32 group ids.
            const count = op.args[0];
            const offset = op.args[1];
            if (count > max_array_len or offset < ops_end or offset % 4 != 0) return error.BadArray;
            if (offset + count * 4 > buf.len) return error.BadArray;
            op.args[1] = base + offset;
        }
        if (op.code == .seccomp) {
            // args[1]: offset of args[0] 8-byte struct sock_filter records.
            const count = op.args[0];
            const offset = op.args[1];
            if (count == 0 or count > max_filter_len) return error.BadArray;
            if (offset < ops_end or offset % 8 != 0 or offset + count * 8 > buf.len) return error.BadArray;
            op.args[1] = base + offset;
        }
    }
    if (ops[ops.len - 1].code != .exec) return error.NoExec;
    return ops;
}

fn checkString(buf: []const u8, data_start: usize, offset: u64) LinkError!usize {
    if (offset < data_start or offset >= buf.len) return error.BadOffset;
    const start: usize = @intCast(offset);
    if (std.mem.indexOfScalarPos(u8, buf, start, 0) == null) return error.BadString;
    return start;
}

/// An array is a list of u64 string offsets ending with 0; each element is
/// rewritten into an address, which gives the child a ready argv/envp.
fn linkArray(buf: []u8, data_start: usize, offset: u64) LinkError!usize {
    if (offset < data_start or offset % 8 != 0 or offset >= buf.len) return error.BadArray;
    const start: usize = @intCast(offset);
    const words: [*]u64 = @ptrCast(@alignCast(buf.ptr + start));
    const max_words = (buf.len - start) / 8;
    var i: usize = 0;
    while (true) : (i += 1) {
        if (i >= max_words or i > max_array_len) return error.BadArray;
        if (words[i] == 0) break;
        words[i] = @intFromPtr(buf.ptr) + try checkString(buf, data_start, words[i]);
    }
    return start;
}
