//! libsbox: the mechanism half of sbox for Deno, opened with Deno.dlopen.
//!
//! Three exports: `sbox_abi_version`, `sbox_epoll_wait` (for a nonblocking
//! FFI call) and `sbox_call`, which dispatches by number to
//! - `sbox_spawn`: clone3 a child that runs a setup program (child.zig);
//! - thin syscall wrappers, because the library runs with --allow-ffi only:
//!   every file, pipe, signal and wait goes through here. They return the
//!   raw kernel result: a value >= 0, or a negative errno.
//!
//! No libc: raw syscalls keep the child async-signal-safe and the library
//! free of glibc version requirements.

const std = @import("std");
const linux = std.os.linux;
const sys = @import("sys.zig");
const program = @import("program.zig");
const child = @import("child.zig");
const clone = @import("clone.zig");
const janitor = @import("janitor.zig");
const reaper = @import("reaper.zig");

/// Stack for each process the helper creates (the spawned child, and the one
/// a `fork` op makes), and for the janitor's thread (janitor.zig). The
/// deepest frame is execSearch's 4 KiB path buffer.
pub const stack_len: usize = 64 * 1024;
pub const guard_len: usize = 4096;
/// [guard][fork stack][guard][spawn stack, Context at its top]
pub const region_len: usize = 2 * (guard_len + stack_len);

pub const SpawnResult = extern struct {
    pid: i32,
    pidfd: i32,
    /// The child's stack region. With CLONE_VM the child runs on it until it
    /// execs or exits: free it with sbox_stack_free only after the result
    /// pipe reached end-of-file.
    stack: u64,
};

fn errnoResult(rc: usize) isize {
    return @bitCast(rc);
}

/// Starts a process that runs `prog` (see program.zig). `flags` are clone3
/// flags (CLONE_PIDFD is added); `cgroup_fd` >= 0 adds CLONE_INTO_CGROUP.
/// Returns 0 or a negative errno; -EINVAL for a malformed program.
fn sbox_spawn(prog: [*]u8, prog_len: usize, flags: u64, cgroup_fd: i32, result_fd: i32, out: *SpawnResult) isize {
    const ops = program.link(prog[0..prog_len]) catch return -@as(isize, @intFromEnum(linux.E.INVAL));

    const region_rc = linux.mmap(null, region_len, linux.PROT.NONE, .{ .TYPE = .PRIVATE, .ANONYMOUS = true, .NORESERVE = true }, -1, 0);
    if (errnoOf(region_rc)) |e| return -@as(isize, e);
    const region: [*]u8 = @ptrFromInt(region_rc);
    const rw = linux.PROT.READ | linux.PROT.WRITE;
    const fork_stack = region + guard_len;
    const spawn_stack = region + 2 * guard_len + stack_len;
    if (errnoOf(linux.mprotect(fork_stack, stack_len, rw))) |e| return unmapFailed(region, e);
    if (errnoOf(linux.mprotect(spawn_stack, stack_len, rw))) |e| return unmapFailed(region, e);

    const ctx = contextOf(region);
    const ctx_addr = @intFromPtr(ctx);
    ctx.* = .{
        .ops = ops.ptr,
        .op_count = @intCast(ops.len),
        .result_fd = result_fd,
        .resume_at = 0,
        .fork_stack = @intFromPtr(fork_stack),
        .fork_stack_len = stack_len,
        .own_memory = @intFromBool(flags & linux.CLONE.VM == 0),
    };
    // One slot: link() allows at most one fork op (the exec path's).
    for (ops) |op| {
        if (op.code != .fork) continue;
        ctx.fork_pid_slot = janitor.reserveForkSlot();
        break;
    }

    var pidfd: i32 = -1;
    var args = clone.CloneArgs{
        .flags = flags | linux.CLONE.PIDFD,
        .pidfd = @intFromPtr(&pidfd),
        .exit_signal = linux.SIG.CHLD,
    };
    if (cgroup_fd >= 0) {
        args.flags |= linux.CLONE.INTO_CGROUP;
        args.cgroup = @intCast(cgroup_fd);
    }
    // Without CLONE_VM too: a `drop_caller_memory` op unmaps the copy of the
    // calling thread's stack, and the child must not run on it then.
    args.stack = @intFromPtr(spawn_stack);
    args.stack_size = ctx_addr - @intFromPtr(spawn_stack);

    // Block every signal around clone3: a signal delivered to the child
    // before it reset the handlers would run V8's handler on the child stack.
    const all = linux.sigfillset();
    var old: linux.sigset_t = undefined;
    _ = linux.syscall4(.rt_sigprocmask, linux.SIG.SETMASK, @intFromPtr(&all), @intFromPtr(&old), linux.NSIG / 8);
    const pid = clone.clone3(&args, child.spawnEntry, ctx_addr);
    _ = linux.syscall4(.rt_sigprocmask, linux.SIG.SETMASK, @intFromPtr(&old), 0, linux.NSIG / 8);

    if (errnoOf(pid)) |e| {
        janitor.releaseForkSlot(ctx.fork_pid_slot, 0);
        return unmapFailed(region, e);
    }
    out.* = .{ .pid = @intCast(pid), .pidfd = pidfd, .stack = @intFromPtr(region) };
    janitor.adopt(.pidfd, @intCast(pidfd));
    janitor.adopt(.stack, @intFromPtr(region));
    return 0;
}

/// Where sbox_spawn puts the child's Context: the top of the spawn stack.
fn contextOf(region: [*]u8) *child.Context {
    const spawn_stack = region + 2 * guard_len + stack_len;
    return @ptrFromInt(std.mem.alignBackward(usize, @intFromPtr(spawn_stack) + stack_len - @sizeOf(child.Context), 16));
}

fn unmapFailed(region: [*]u8, e: u16) isize {
    _ = linux.munmap(region, region_len);
    return -@as(isize, e);
}

fn sbox_stack_free(stack: u64) isize {
    if (stack == 0) return 0;
    // The child has exited (TypeScript frees its stack at the end of its
    // result pipe): a slot it forked into waits for the pidfd_open of that pid.
    janitor.releaseForkSlot(contextOf(@ptrFromInt(stack)).fork_pid_slot, 0);
    janitor.forget(stack, true);
    return errnoResult(linux.munmap(@ptrFromInt(stack), region_len));
}

const errnoOf = sys.errnoOf;

/// The highest `sbox_call` number, the program format version and the sizes
/// of an op and a record, so that TypeScript can check that it agrees.
export fn sbox_abi_version() u32 {
    return (highest_call << 24) | (program.version << 16) | (@sizeOf(program.Op) << 8) | @sizeOf(program.Record);
}

// ---- one entry point ----------------------------------------------------------

/// Every call from TypeScript but the nonblocking epoll_wait, by number:
/// Deno builds a call stub for each symbol it opens (~0.3 ms each), which
/// every `sbox run` would pay. Shared with `CALL` in src/ffi.ts, which
/// tests/program_test.ts keeps equal.
pub const Call = enum(u32) {
    spawn = 1,
    stack_free = 2,
    open = 3,
    read = 4,
    write = 5,
    close = 6,
    pipe2 = 7,
    fcntl = 8,
    mkdir = 9,
    rmdir = 10,
    unlink = 11,
    getdents64 = 12,
    readlink = 13,
    stat = 14,
    kill = 15,
    pidfd_open = 16,
    // 17 was pidfd_send_signal without flags: renumbered (33) when it took
    // them, so that the ABI check refuses a library that would ignore them.
    waitid = 18,
    getids = 19,
    epoll_create = 20,
    epoll_ctl = 21,
    eventfd = 22,
    flock = 23,
    waitpid = 24,
    track = 25,
    forget = 26,
    open_tree = 27,
    mount_setattr = 28,
    fstat = 29,
    fchown = 30,
    fchmod = 31,
    monotonic_usec = 32,
    pidfd_send_signal = 33,
    pidfd_queue_signal = 34,
    sched_state = 35,
    faccessat2 = 36,
    unlinkat = 37,
    mount_id = 38,
};

/// Part of the ABI version, so that TypeScript can check that its list agrees.
const highest_call: u32 = blk: {
    var highest: u32 = 0;
    for (std.enums.values(Call)) |call| highest = @max(highest, @intFromEnum(call));
    break :blk highest;
};

/// Calls `call` with its arguments as 64-bit words: integers (an i32 in the
/// low half) and addresses of buffers. Returns the call's result, or -EINVAL
/// for an unknown call.
export fn sbox_call(call: u32, a: u64, b: u64, c: u64, d: u64, e: u64, f: u64) isize {
    const which = std.meta.intToEnum(Call, call) catch return -@as(isize, @intFromEnum(linux.E.INVAL));
    return switch (which) {
        .spawn => sbox_spawn(@ptrFromInt(a), b, c, int(d), int(e), @ptrFromInt(f)),
        .stack_free => sbox_stack_free(a),
        .open => sbox_open(@ptrFromInt(a), @truncate(b), @truncate(c)),
        .read => sbox_read(int(a), @ptrFromInt(b), c),
        .write => sbox_write(int(a), @ptrFromInt(b), c),
        .close => sbox_close(int(a)),
        .pipe2 => sbox_pipe2(@ptrFromInt(a), @truncate(b)),
        .fcntl => sbox_fcntl(int(a), int(b), c),
        .mkdir => sbox_mkdir(@ptrFromInt(a), @truncate(b)),
        .rmdir => sbox_rmdir(@ptrFromInt(a)),
        .unlink => sbox_unlink(@ptrFromInt(a)),
        .getdents64 => sbox_getdents64(int(a), @ptrFromInt(b), c),
        .readlink => sbox_readlink(@ptrFromInt(a), @ptrFromInt(b), c),
        .stat => sbox_stat(@ptrFromInt(a), b != 0, @ptrFromInt(c)),
        .kill => sbox_kill(int(a), int(b)),
        .pidfd_open => sbox_pidfd_open(int(a)),
        .pidfd_send_signal => sbox_pidfd_send_signal(int(a), int(b), @truncate(c)),
        .pidfd_queue_signal => sbox_pidfd_queue_signal(int(a), int(b), c),
        .waitid => sbox_waitid(int(a), @truncate(b), @ptrFromInt(c)),
        .getids => blk: {
            sbox_getids(@ptrFromInt(a));
            break :blk 0;
        },
        .epoll_create => sbox_epoll_create(),
        .epoll_ctl => sbox_epoll_ctl(int(a), int(b), int(c), @truncate(d), e),
        .eventfd => sbox_eventfd(),
        .flock => sbox_flock(int(a), int(b)),
        .waitpid => sbox_waitpid(int(a), @truncate(b), @ptrFromInt(c)),
        .track => janitor.track(),
        .forget => blk: {
            janitor.forget(@as(u32, @bitCast(int(a))), false);
            break :blk 0;
        },
        .open_tree => sbox_open_tree(int(a), @ptrFromInt(b), @truncate(c)),
        .mount_setattr => sbox_mount_setattr(int(a), @ptrFromInt(b), @truncate(c), d),
        .fstat => sbox_fstat(int(a), @ptrFromInt(b)),
        .fchown => sbox_fchown(int(a), @truncate(b), @truncate(c)),
        .fchmod => sbox_fchmod(int(a), @truncate(b)),
        // The same reading as a reaper's records: the low 31 bits.
        .monotonic_usec => reaper.monotonicUsec(),
        .sched_state => blk: {
            sbox_sched_state(@ptrFromInt(a));
            break :blk 0;
        },
        .faccessat2 => sbox_faccessat2(@ptrFromInt(a), @truncate(b)),
        .unlinkat => sbox_unlinkat(int(a), @ptrFromInt(b), @truncate(c)),
        .mount_id => sbox_mount_id(int(a)),
    };
}

/// What clone3 from the calling thread passes on to a child, as the kernel
/// reports it, each a raw result (a negative errno where the call failed):
/// getpriority(PRIO_PROCESS, 0), which is 20 minus the nice value;
/// sched_getscheduler(0), the policy with SCHED_RESET_ON_FORK; and
/// ioprio_get(IOPRIO_WHO_PROCESS, 0). Each is the calling thread's own (who
/// 0), which is what a clone3 from it copies. src/security/neutral.ts
/// decides from them what a container's process resets.
fn sbox_sched_state(out: *[3]i64) void {
    out[0] = @bitCast(linux.syscall2(.getpriority, sys.prio_process, 0));
    out[1] = @bitCast(linux.syscall1(.sched_getscheduler, 0));
    out[2] = @bitCast(linux.syscall2(.ioprio_get, sys.ioprio_who_process, 0));
}

/// An i32 passed in the low half of a word (TypeScript sends `n >>> 0`).
fn int(word: u64) i32 {
    return @bitCast(@as(u32, @truncate(word)));
}

// ---- thin syscall wrappers --------------------------------------------------

const at_fdcwd = sys.at_fdcwd;
const fdArg = sys.fdArg;

/// A new fd (or a negative errno), recorded for the calling isolate (janitor.zig).
fn adopted(kind: janitor.Kind, rc: usize) isize {
    if (errnoOf(rc) == null) janitor.adopt(kind, rc);
    return errnoResult(rc);
}

fn sbox_open(path: [*:0]const u8, flags: u32, mode: u32) isize {
    return adopted(.fd, linux.syscall4(.openat, at_fdcwd, @intFromPtr(path), flags, mode));
}

fn sbox_read(fd: i32, buf: [*]u8, len: usize) isize {
    return errnoResult(linux.syscall3(.read, fdArg(fd), @intFromPtr(buf), len));
}

fn sbox_write(fd: i32, buf: [*]const u8, len: usize) isize {
    return errnoResult(linux.syscall3(.write, fdArg(fd), @intFromPtr(buf), len));
}

fn sbox_close(fd: i32) isize {
    if (fd >= 0) janitor.forget(@intCast(fd), false);
    return errnoResult(linux.syscall1(.close, fdArg(fd)));
}

fn sbox_pipe2(fds: *[2]i32, flags: u32) isize {
    const rc = linux.syscall2(.pipe2, @intFromPtr(fds), flags);
    if (errnoOf(rc) == null) {
        janitor.adopt(.fd, @intCast(fds[0]));
        janitor.adopt(.fd, @intCast(fds[1]));
    }
    return errnoResult(rc);
}

fn sbox_fcntl(fd: i32, cmd: i32, arg: u64) isize {
    const rc = linux.syscall3(.fcntl, fdArg(fd), fdArg(cmd), arg);
    const dupfd = 0;
    const dupfd_cloexec = 1030;
    if (cmd == dupfd or cmd == dupfd_cloexec) return adopted(.fd, rc);
    return errnoResult(rc);
}

fn sbox_mkdir(path: [*:0]const u8, mode: u32) isize {
    return errnoResult(linux.syscall3(.mkdirat, at_fdcwd, @intFromPtr(path), mode));
}

/// Whether this process may access `path` as `mode` asks (R_OK 4, W_OK 2,
/// X_OK 1), by the kernel's own check with its effective ids, groups and
/// capabilities (AT_EACCESS, which only faccessat2 takes: Linux 5.8).
fn sbox_faccessat2(path: [*:0]const u8, mode: u32) isize {
    return errnoResult(linux.syscall4(.faccessat2, at_fdcwd, @intFromPtr(path), mode, at_eaccess));
}

/// AT_EACCESS (include/uapi/linux/fcntl.h), which std lacks: the bit of
/// AT_REMOVEDIR, in faccessat2's own namespace of flags.
const at_eaccess: usize = 0x200;

fn sbox_rmdir(path: [*:0]const u8) isize {
    return errnoResult(linux.syscall3(.unlinkat, at_fdcwd, @intFromPtr(path), linux.AT.REMOVEDIR));
}

fn sbox_unlink(path: [*:0]const u8) isize {
    return errnoResult(linux.syscall3(.unlinkat, at_fdcwd, @intFromPtr(path), 0));
}

/// unlinkat(2) of `name` in the directory open as `dirfd` (`flags`:
/// AT_REMOVEDIR for a directory): a name found in that very directory,
/// whatever has been mounted on the way to it since it was opened.
fn sbox_unlinkat(dirfd: i32, name: [*:0]const u8, flags: u32) isize {
    return errnoResult(linux.syscall3(.unlinkat, fdArg(dirfd), @intFromPtr(name), flags));
}

/// The id of the mount that the open fd `fd` lies on, as
/// /proc/self/mountinfo numbers mounts (statx's stx_mnt_id: Linux 5.8), or
/// a negative errno: -ENOSYS where the kernel does not report it.
fn sbox_mount_id(fd: i32) isize {
    var stx: linux.Statx = undefined;
    const rc = linux.syscall5(.statx, fdArg(fd), @intFromPtr(""), linux.AT.EMPTY_PATH, statx_mnt_id, @intFromPtr(&stx));
    if (errnoOf(rc) != null) return errnoResult(rc);
    if (stx.mask & statx_mnt_id == 0) return -@as(isize, @intFromEnum(linux.E.NOSYS));
    // stx_mnt_id, the first word after dev_minor, which std's Statx leaves
    // in its padding; an int in the kernel.
    return @intCast(@as(u32, @truncate(stx.__pad2[0])));
}

/// STATX_MNT_ID (include/uapi/linux/stat.h), which std lacks.
const statx_mnt_id: u32 = 0x1000;

fn sbox_readlink(path: [*:0]const u8, buf: [*]u8, len: usize) isize {
    return errnoResult(linux.syscall4(.readlinkat, at_fdcwd, @intFromPtr(path), @intFromPtr(buf), len));
}

fn sbox_getdents64(fd: i32, buf: [*]u8, len: usize) isize {
    return errnoResult(linux.syscall3(.getdents64, fdArg(fd), @intFromPtr(buf), len));
}

/// statx of a path without following a final symlink unless `follow`.
/// Writes mode (u32), uid, gid and size (u64) into `out`.
fn sbox_stat(path: [*:0]const u8, follow: bool, out: *[4]u64) isize {
    var stx: linux.Statx = undefined;
    const flags: u32 = if (follow) 0 else linux.AT.SYMLINK_NOFOLLOW;
    const rc = linux.syscall5(.statx, at_fdcwd, @intFromPtr(path), flags, linux.STATX_BASIC_STATS, @intFromPtr(&stx));
    if (errnoOf(rc) != null) return errnoResult(rc);
    out.* = .{ stx.mode, stx.uid, stx.gid, stx.size };
    return 0;
}

/// statx of an open fd (AT_EMPTY_PATH). Writes mode, uid, gid, size, the
/// major and minor of the device it is (rdev; 0 for other files), the major
/// and minor of the device it is on, and its inode number into `out`.
fn sbox_fstat(fd: i32, out: *[9]u64) isize {
    var stx: linux.Statx = undefined;
    const rc = linux.syscall5(.statx, fdArg(fd), @intFromPtr(""), linux.AT.EMPTY_PATH, linux.STATX_BASIC_STATS, @intFromPtr(&stx));
    if (errnoOf(rc) != null) return errnoResult(rc);
    out.* = .{ stx.mode, stx.uid, stx.gid, stx.size, stx.rdev_major, stx.rdev_minor, stx.dev_major, stx.dev_minor, stx.ino };
    return 0;
}

fn sbox_fchown(fd: i32, uid: u32, gid: u32) isize {
    return errnoResult(linux.syscall3(.fchown, fdArg(fd), uid, gid));
}

fn sbox_fchmod(fd: i32, mode: u32) isize {
    return errnoResult(linux.syscall2(.fchmod, fdArg(fd), mode));
}

/// open_tree(2): with OPEN_TREE_CLONE, a detached copy of the mount at
/// `path` (from `dirfd`; "" with AT_EMPTY_PATH for `dirfd` itself), which
/// lives as long as this fd or a file opened through it.
fn sbox_open_tree(dirfd: i32, path: [*:0]const u8, flags: u32) isize {
    return adopted(.fd, linux.syscall3(.open_tree, fdArg(dirfd), @intFromPtr(path), flags));
}

/// mount_setattr(2) setting the MOUNT_ATTR_* bits `attr_set` (none cleared,
/// propagation and id mapping left as they are).
fn sbox_mount_setattr(dirfd: i32, path: [*:0]const u8, at_flags: u32, attr_set: u64) isize {
    var attr = child.MountAttr{ .attr_set = attr_set, .attr_clr = 0, .propagation = 0, .userns_fd = 0 };
    return errnoResult(linux.syscall5(.mount_setattr, fdArg(dirfd), @intFromPtr(path), at_flags, @intFromPtr(&attr), @sizeOf(child.MountAttr)));
}

/// flock(2): `sbox run` holds one on its scratch directory and cgroup, so
/// that a later run can tell them from those of a run that is gone.
fn sbox_flock(fd: i32, op: i32) isize {
    return errnoResult(linux.syscall2(.flock, fdArg(fd), fdArg(op)));
}

fn sbox_kill(pid: i32, sig: i32) isize {
    return errnoResult(linux.syscall2(.kill, fdArg(pid), fdArg(sig)));
}

fn sbox_pidfd_open(pid: i32) isize {
    const rc = adopted(.pidfd, linux.syscall2(.pidfd_open, fdArg(pid), 0));
    // Recorded now as a pidfd (or, on failure, killed and reaped by pid in
    // TypeScript): the fork slot that held it is done with.
    janitor.adoptedForkedPid(pid);
    return rc;
}

/// pidfd_send_signal(2); `flags` may name the scope, e.g. PIDFD_SIGNAL_PROCESS_GROUP
/// (Linux 6.9; EINVAL before).
fn sbox_pidfd_send_signal(pidfd: i32, sig: i32, flags: u32) isize {
    return errnoResult(linux.syscall4(.pidfd_send_signal, fdArg(pidfd), fdArg(sig), 0, flags));
}

/// pidfd_send_signal(2) with a siginfo of our own: the code SI_QUEUE and
/// `value` as si_value, as sigqueue(3) would send it. Returns 0 or a negative
/// errno: -EAGAIN when the target's queue of pending signals is full (a
/// queued signal is refused then, never delivered without its value).
fn sbox_pidfd_queue_signal(pidfd: i32, sig: i32, value: u64) isize {
    // The kernel's siginfo on 64-bit targets: signo, errno, code, then the
    // union at offset 16 (_rt: si_pid, si_uid, si_value).
    var info = [_]u8{0} ** 128;
    const si_queue: i32 = -1;
    std.mem.writeInt(i32, info[0..4], sig, .little);
    std.mem.writeInt(i32, info[8..12], si_queue, .little);
    std.mem.writeInt(u32, info[16..20], @bitCast(linux.getpid()), .little);
    std.mem.writeInt(u32, info[20..24], linux.getuid(), .little);
    std.mem.writeInt(u64, info[24..32], value, .little);
    return errnoResult(linux.syscall4(.pidfd_send_signal, fdArg(pidfd), fdArg(sig), @intFromPtr(&info), 0));
}

/// waitid(P_PIDFD). Writes si_code (CLD_EXITED, CLD_KILLED, CLD_DUMPED, ...)
/// and si_status into `out`; returns 0, or -EAGAIN with WNOHANG and no exit.
fn sbox_waitid(pidfd: i32, options: u32, out: *[2]i32) isize {
    return waitFor(3, pidfd, options, out); // 3 = P_PIDFD
}

/// waitid(P_PID), as sbox_waitid: for a child of ours that has no pidfd
/// (pidfd_open failed), whose pid stays its own until it is reaped.
fn sbox_waitpid(pid: i32, options: u32, out: *[2]i32) isize {
    return waitFor(1, pid, options, out); // 1 = P_PID
}

fn waitFor(idtype: usize, id: i32, options: u32, out: *[2]i32) isize {
    var info = std.mem.zeroes(linux.siginfo_t);
    const rc = linux.syscall5(.waitid, idtype, fdArg(id), @intFromPtr(&info), options, 0);
    if (errnoOf(rc) != null) return errnoResult(rc);
    if (info.fields.common.first.piduid.pid == 0) return -@as(isize, @intFromEnum(linux.E.AGAIN));
    out.* = .{ info.code, info.fields.common.second.sigchld.status };
    return 0;
}

/// Writes uid, gid, euid, pid and egid into `out`.
fn sbox_getids(out: *[5]u32) void {
    out.* = .{
        @truncate(linux.syscall0(.getuid)),
        @truncate(linux.syscall0(.getgid)),
        @truncate(linux.syscall0(.geteuid)),
        @truncate(linux.syscall0(.getpid)),
        @truncate(linux.syscall0(.getegid)),
    };
}

fn sbox_epoll_create() isize {
    return adopted(.fd, linux.syscall1(.epoll_create1, linux.EPOLL.CLOEXEC));
}

fn sbox_epoll_ctl(epfd: i32, op: i32, fd: i32, events: u32, data: u64) isize {
    var ev = linux.epoll_event{ .events = events, .data = .{ .u64 = data } };
    return errnoResult(linux.syscall4(.epoll_ctl, fdArg(epfd), fdArg(op), fdArg(fd), @intFromPtr(&ev)));
}

/// Waits for events and writes them as (events: u32, pad: u32, data: u64)
/// pairs into `out`. Meant for a nonblocking FFI call: one thread waits for
/// every container of the process.
export fn sbox_epoll_wait(epfd: i32, out: [*]u64, max: u32, timeout_ms: i32) isize {
    var events: [64]linux.epoll_event = undefined;
    const n = @min(max, events.len);
    const rc = linux.syscall6(.epoll_pwait, fdArg(epfd), @intFromPtr(&events), n, fdArg(timeout_ms), 0, 8);
    if (errnoOf(rc) != null) return errnoResult(rc);
    for (events[0..rc], 0..) |ev, i| {
        out[2 * i] = ev.events;
        out[2 * i + 1] = ev.data.u64;
    }
    return @intCast(rc);
}

fn sbox_eventfd() isize {
    return adopted(.eventfd, linux.syscall2(.eventfd2, 0, linux.EFD.CLOEXEC | linux.EFD.NONBLOCK));
}

/// A failed assertion must not unwind or print through std's locks: in a
/// child that shares the caller's memory those belong to another process.
pub const panic = std.debug.FullPanic(panicExit);

fn panicExit(_: []const u8, _: ?usize) noreturn {
    _ = linux.syscall1(.exit_group, 70);
    unreachable;
}

test {
    _ = program;
}
