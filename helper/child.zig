//! The child side: runs between clone3 and execve. It shares the caller's
//! address space (CLONE_VM) or a copy of it, so it follows the rules of a
//! vfork child: raw syscalls only, no allocation, no writes outside its own
//! stack and its Context, never back into V8. Every failure is reported as
//! one Record (op index, op code, errno) on the close-on-exec result pipe.

const std = @import("std");
const linux = std.os.linux;
const sys = @import("sys.zig");
const program = @import("program.zig");
const clone = @import("clone.zig");
const reaper_loop = @import("reaper.zig");
const own_mounts = @import("own_mounts.zig");
const caller_memory = @import("caller_memory.zig");
const OwnMounts = own_mounts.OwnMounts;

/// Placed by the parent at the top of the child's stack region.
pub const Context = extern struct {
    ops: [*]const program.Op,
    op_count: u32,
    result_fd: i32,
    /// First op to run; a `fork` op sets it for the process it creates.
    resume_at: u32,
    /// The caller's umask. The setup runs with none (spawnEntry), so that
    /// the files and directories it makes have exactly the modes their ops
    /// give; every program it starts gets this one back (`restoreUmask`).
    umask: u32 = 0,
    /// Lowest address and size of the stack for the process a `fork` op makes.
    fork_stack: u64,
    fork_stack_len: u64,
    /// The thread of a `net_spawn` op: its tid while it runs. The kernel
    /// zeroes this word and wakes a futex waiter on it when the thread exits.
    net_thread: i32 = 0,
    /// The same tid, kept for `net_join` (0: no thread to join).
    net_tid: i32 = 0,
    /// What the thread leaves: an fd of its network namespace, or -errno.
    net_result: i32 = 0,
    /// Set by a `reaper` op for its command: the exec op sends the time just
    /// before its execve (reaper.zig, `supervise`).
    report_exec_start: u32 = 0,
    /// Address of a word in memory shared with the caller (janitor.zig,
    /// `reserveForkSlot`), or 0: a `fork` op stores the pid it made there
    /// before anything else, so that the caller's janitor can reap it should
    /// the Worker that launched it end before the pid reaches TypeScript.
    fork_pid_slot: u64 = 0,
    /// 1 when this process has a copy of the caller's memory (sbox_spawn
    /// without CLONE_VM), which `drop_caller_memory` may unmap; 0 when it
    /// shares the caller's memory, which nothing here may unmap.
    own_memory: u32 = 0,
    /// Set by `drop_caller_memory` once it has dropped that copy and reset
    /// the peak resident set: a reaper then reports its command's ru_maxrss.
    caller_memory_dropped: u32 = 0,
};

/// Entry of the process made by sbox_spawn: signals are still blocked (the
/// parent blocked them around clone3) and the handlers are V8's, so reset
/// every handler to its default before unblocking anything.
pub fn spawnEntry(arg: usize) callconv(.c) u8 {
    resetSignals();
    const ctx: *Context = @ptrFromInt(arg);
    // umask(2) cannot fail; processes a fork op makes inherit the 0.
    ctx.umask = @intCast(linux.syscall1(.umask, 0));
    run(ctx);
}

/// Entry of the command started by a `reaper` op: it inherits the reaper's
/// blocked mask and no-op handlers, so reset them like spawnEntry does.
fn reaperChildEntry(arg: usize) callconv(.c) u8 {
    resetSignals();
    run(@ptrFromInt(arg));
}

/// Entry of the process made by a `fork` op: it inherits default handlers.
fn forkEntry(arg: usize) callconv(.c) u8 {
    run(@ptrFromInt(arg));
}

fn run(ctx: *Context) noreturn {
    // A process made by a fork op starts with an empty record: it trusts less.
    var own = OwnMounts{};
    var i: u32 = ctx.resume_at;
    while (i < ctx.op_count) : (i += 1) {
        const op = &ctx.ops[i];
        const rc = step(ctx, i, op, &own);
        if (errnoOf(rc)) |e| fail(ctx, i, op.code, e);
    }
    // link() guarantees the last op is exec, which only returns on failure.
    unreachable;
}

fn step(ctx: *Context, index: u32, op: *const program.Op, own: *OwnMounts) usize {
    const a = op.args;
    return switch (op.code) {
        .wait_parent => waitParent(@intCast(a[0]), @intCast(a[1])),
        .mount => mount(op, own),
        .mkdir, .touch, .symlink => createEntry(op, own),
        .pivot_root => pivotRoot(a[0]),
        .sethostname => linux.syscall2(.sethostname, a[0], cstr(a[0]).len),
        .setdomainname => linux.syscall2(.setdomainname, a[0], cstr(a[0]).len),
        .loopback_up => loopbackUp(),
        .net_spawn => spawnNetwork(ctx),
        .net_join => joinNetwork(ctx),
        .dup2 => if (a[0] == a[1])
            linux.syscall3(.fcntl, a[0], linux.F.SETFD, 0)
        else
            linux.syscall3(.dup3, a[0], a[1], 0),
        .close_from => closeFrom(ctx, a[0]),
        .chdir => blk: {
            own.forget(); // relative paths lead somewhere else now
            break :blk if (op.flags & program.chdir_no_magic_links != 0)
                changeDirectory(a[0])
            else
                linux.syscall1(.chdir, a[0]);
        },
        .setgroups => linux.syscall2(.setgroups, a[0], a[1]),
        .setgid => linux.syscall3(.setresgid, a[0], a[0], a[0]),
        .setuid => if (op.flags & program.setuid_keep_capabilities != 0)
            setuidKeepingCapabilities(a[0])
        else
            linux.syscall3(.setresuid, a[0], a[0], a[0]),
        .exec => exec(ctx, index, op),
        .setns => linux.syscall2(.setns, a[0], a[1]),
        .unshare => linux.syscall1(.unshare, a[0]),
        .prctl => linux.syscall5(.prctl, a[0], a[1], a[2], 0, 0),
        .fork => fork(ctx, index, op),
        .write_file => writeFile(op, own),
        .write_existing => writeExisting(a[0], a[1]),
        .confine_exec => confineExec(),
        .reaper => reaper(ctx, index),
        .seccomp => blk: {
            // Before the filter, which may deny umask(2): the setup has
            // nothing left to create, and a denied restore must not leave
            // the command with none.
            restoreUmask(ctx);
            break :blk installFilter(a[0], a[1]);
        },
        .capbset_drop => dropBoundingSet(a[0]),
        .capset => reduceCapabilities(a[0]),
        .rlimit => setRlimit(a[0], a[1], a[2]),
        .setsid => linux.syscall0(.setsid),
        .drop_caller_memory => dropCallerMemory(ctx),
        .sched_setscheduler => blk: {
            const param = [1]i32{@bitCast(@as(u32, @truncate(a[1])))}; // struct sched_param
            break :blk linux.syscall3(.sched_setscheduler, 0, a[0], @intFromPtr(&param));
        },
        // The kernel reads the nice value as an int: the low 32 bits.
        .setpriority => linux.syscall3(.setpriority, prio_process, 0, a[0]),
        .ioprio_set => linux.syscall3(.ioprio_set, ioprio_who_process, 0, a[0]),
    };
}

const prio_process = sys.prio_process;
const ioprio_who_process = sys.ioprio_who_process;
const at_fdcwd = sys.at_fdcwd;
const errnoOf = sys.errnoOf;
const exit = sys.exit;

fn negErrno(e: linux.E) usize {
    return @bitCast(-@as(isize, @intFromEnum(e)));
}

fn allowExisting(rc: usize) usize {
    return if (errnoOf(rc) == @intFromEnum(linux.E.EXIST)) 0 else rc;
}

fn fail(ctx: *const Context, index: u32, code: program.Code, e: u16) noreturn {
    send(ctx, .failed, index, code, e);
    exit(1);
}

/// One record on the result pipe (best effort: nothing is left to tell a failure to).
fn send(ctx: *const Context, kind: program.RecordKind, index: u32, code: program.Code, value: i32) void {
    program.Record.write(ctx.result_fd, kind, index, code, value);
}

/// Gives this process the caller's umask back (see `Context.umask`): for
/// the program it is about to become.
fn restoreUmask(ctx: *const Context) void {
    _ = linux.syscall1(.umask, ctx.umask);
}

fn resetSignals() void {
    const default = sys.KSigaction{ .handler = 0, .flags = 0, .restorer = 0, .mask = 0 };
    var sig: usize = 1;
    while (sig < linux.NSIG) : (sig += 1) {
        if (sig == linux.SIG.KILL or sig == linux.SIG.STOP) continue;
        _ = linux.syscall4(.rt_sigaction, sig, @intFromPtr(&default), 0, 8);
    }
    const empty: u64 = 0;
    _ = linux.syscall4(.rt_sigprocmask, linux.SIG.SETMASK, @intFromPtr(&empty), 0, 8);
}

fn waitParent(fd: i32, parent_end: i32) usize {
    // Our copy of the parent's end would keep the pipe open: without closing
    // it, a parent that dies before releasing us would leave us waiting.
    _ = linux.syscall1(.close, @bitCast(@as(isize, parent_end)));
    var byte: u8 = 0;
    const rc = linux.syscall3(.read, @bitCast(@as(isize, fd)), @intFromPtr(&byte), 1);
    if (errnoOf(rc) != null) return rc;
    // End of file: the parent gave up on this child (it is being killed).
    if (rc == 0) exit(1);
    return linux.syscall1(.close, @bitCast(@as(isize, fd)));
}

fn mount(op: *const program.Op, own: *OwnMounts) usize {
    const a = op.args;
    const MS = linux.MS;
    const bind = a[3] & MS.BIND != 0;
    // Decided before this mount is recorded: a missing target is skipped
    // only in a file system the program mounted itself (the proc or sysfs
    // just made), where it means this kernel lacks the entry. Anywhere else
    // the op's path led somewhere it was not meant to go, and skipping it
    // would drop a mask without a word (program.zig, `mount_ignore_missing`).
    const skip_missing = op.flags & program.mount_ignore_missing != 0 and
        inRoot(cstr(a[1])) and own.contains(cstr(a[1]));
    // The ops that ask for it (`mount_target_no_link`: /dev, /proc and /sys,
    // whose masks follow by path, and overlays) go only on a target reached
    // without a link. overlayfs resolves the layer paths in its options
    // itself, as the host would (a temporary upper layer's are relative:
    // ./target/upper): the compiler sets the flag on every overlay, and an
    // overlay without it is refused a link all the same, as a defence.
    const no_link = op.flags & program.mount_target_no_link != 0 or
        (a[2] != 0 and std.mem.eql(u8, cstr(a[2]), "overlay"));
    var source = InRoot{};
    var target = InRoot{};
    defer source.close();
    defer target.close();
    if (op.flags & program.mount_host_source != 0) {
        // Gone, behind a link now, or of another kind: not what was planned.
        const rc = source.openHostSource(a[0], a[5]);
        if (errnoOf(rc)) |e| return switch (e) {
            @intFromEnum(linux.E.NOENT), @intFromEnum(linux.E.LOOP), @intFromEnum(linux.E.NOTDIR) => 0,
            else => rc,
        };
        if (source.fd < 0) return 0;
    } else if (bind and a[0] != 0) { // a path only for a bind
        // A source that cannot be resolved is an error even with
        // mount_ignore_missing: a mask's source (the container's /dev/null)
        // is always there unless a link moved it. (A source in an own file
        // system is not resolved here: missing, it fails the mount itself,
        // which is then as skippable as its target.)
        const rc = source.resolve(own, a[0], .follow);
        if (errnoOf(rc) != null) return rc;
    }
    var rc = target.resolve(own, a[1], if (no_link) .refuse else .follow);
    if (errnoOf(rc) == null) {
        const attributes = MS.RDONLY | MS.NOSUID | MS.NODEV | MS.NOEXEC;
        rc = if (bind and a[3] & MS.REMOUNT == 0 and a[3] & attributes != 0)
            bindWithAttributes(source.pathOr(a[0]), &target, a[1], a[3])
        else
            mountOrRemount(op, source.pathOr(a[0]), target.pathOr(a[1]));
    }
    if (errnoOf(rc) == null and op.flags & program.mount_check_writable != 0 and a[3] & MS.RDONLY == 0) {
        rc = checkWritable(a[1]);
    }
    if (errnoOf(rc) == null) recordMount(own, a, source.linked, target.linked);
    if (skip_missing and errnoOf(rc) == @intFromEnum(linux.E.NOENT)) return 0;
    if (op.flags & program.mount_skip_gone_lower != 0 and errnoOf(rc) == @intFromEnum(linux.E.NOENT)) return 0;
    return rc;
}

/// EROFS if the file system now at `path` is read-only. By the op's path,
/// not a held fd: an fd of the target names the directory the mount covers.
fn checkWritable(path: u64) usize {
    var st_flags: u64 = 0;
    const rc = statfsFlags(path, &st_flags);
    if (errnoOf(rc) != null) return rc;
    const st_rdonly = 1;
    return if (st_flags & st_rdonly != 0) negErrno(.ROFS) else 0;
}

/// statfs(2)'s f_flags (ST_*) of the file system at `path`; returns 0 or -errno.
fn statfsFlags(path: u64, flags: *u64) usize {
    var st: [16]u64 = undefined; // struct statfs: f_flags is the 11th word
    const rc = linux.syscall2(.statfs, path, @intFromPtr(&st));
    if (errnoOf(rc) == null) flags.* = st[10];
    return rc;
}

/// A bind that is read-only, nosuid, nodev or noexec from the start:
/// mount(2) ignores those flags on a bind (only a remount sets them), and a
/// remount after it would resolve the target's path again, which a host
/// user who can write to a bind's source could have pointed elsewhere in
/// between (the remount would then miss). So the tree is cloned detached
/// (open_tree), given the flags there, every mount of it with MS_REC, and
/// attached at the target's fd (move_mount).
fn bindWithAttributes(source: u64, target: *const InRoot, target_path: u64, flags: u64) usize {
    const MS = linux.MS;
    const open_tree_clone: usize = 1;
    const cloexec: usize = @as(u32, @bitCast(linux.O{ .CLOEXEC = true }));
    const recursive = if (flags & MS.REC != 0) @as(usize, linux.AT.RECURSIVE) else 0;
    const tree = linux.syscall3(.open_tree, at_fdcwd, source, open_tree_clone | cloexec | recursive);
    if (errnoOf(tree) != null) return tree;
    defer _ = linux.syscall1(.close, tree);
    var attr = mountAttr(flags);
    var rc = linux.syscall5(.mount_setattr, tree, @intFromPtr(""), linux.AT.EMPTY_PATH | recursive, @intFromPtr(&attr), @sizeOf(MountAttr));
    if (errnoOf(rc) != null) return rc;
    const move_mount_f_empty_path: usize = 0x4;
    const move_mount_t_empty_path: usize = 0x40;
    if (target.fd >= 0) {
        rc = linux.syscall5(.move_mount, tree, @intFromPtr(""), @bitCast(target.fd), @intFromPtr(""), move_mount_f_empty_path | move_mount_t_empty_path);
    } else {
        rc = linux.syscall5(.move_mount, tree, @intFromPtr(""), at_fdcwd, target_path, move_mount_f_empty_path);
    }
    return rc;
}

/// Notes what a mount shows (own_mounts.zig): a new file system other than
/// an overlay is own; a bind is as own as its source. A mount on a host path,
/// or on a path reached through a link, went somewhere the record cannot
/// name: it forgets all it holds.
fn recordMount(own: *OwnMounts, a: [6]u64, source_linked: bool, target_linked: bool) void {
    const target = cstr(a[1]);
    if (!inRoot(target) or target_linked) return own.forget();
    if (a[3] & linux.MS.REMOUNT != 0) return;
    const is_own = if (a[3] & linux.MS.BIND != 0)
        !source_linked and a[0] != 0 and inRoot(cstr(a[0])) and own.contains(cstr(a[0]))
    else
        a[2] != 0 and !std.mem.eql(u8, cstr(a[2]), "overlay");
    own.record(target, is_own);
}

fn cstr(p: u64) [:0]const u8 {
    return std.mem.span(@as([*:0]const u8, @ptrFromInt(p)));
}

fn mountOrRemount(op: *const program.Op, source: u64, target: u64) usize {
    const a = op.args;
    var flags = a[3];
    const MS = linux.MS;
    if (flags & (MS.REMOUNT | MS.BIND | MS.REC) == MS.REMOUNT | MS.BIND | MS.REC) {
        return setMountFlagsRecursive(target, flags);
    }
    if (op.flags & program.mount_keep_locked_flags != 0) {
        // An unprivileged remount must keep the flags the kernel locked when
        // the mount was copied into this namespace: read them back first.
        var st_flags: u64 = 0;
        const rc = statfsFlags(target, &st_flags);
        if (errnoOf(rc) != null) return rc;
        const keep = MS.NOSUID | MS.NODEV | MS.NOEXEC | MS.NOATIME | MS.NODIRATIME;
        flags |= st_flags & keep;
        if (st_flags & 4096 != 0) flags |= MS.RELATIME; // ST_RELATIME
    }
    if (op.flags & program.mount_host_atime != 0) flags = withAtimeOf(a[5], flags);
    return linux.syscall5(.mount, source, target, a[2], flags, a[4]);
}

/// `flags` with the atime flags of the mount at `path` instead of its own
/// (`mount_host_atime`), as a new mount takes them: MS_NOATIME and
/// MS_NODIRATIME as they are, relatime by default, MS_STRICTATIME where the
/// mount has neither noatime nor relatime. Unchanged if `path` cannot be read.
fn withAtimeOf(path: u64, flags: u64) u64 {
    const MS = linux.MS;
    var st_flags: u64 = 0;
    if (errnoOf(statfsFlags(path, &st_flags)) != null) return flags;
    const st_noatime = 1024;
    const st_nodiratime = 2048;
    const st_relatime = 4096;
    var atime: u64 = 0;
    if (st_flags & st_noatime != 0) atime |= MS.NOATIME;
    if (st_flags & st_nodiratime != 0) atime |= MS.NODIRATIME;
    if (st_flags & (st_noatime | st_relatime) == 0) atime |= MS.STRICTATIME;
    return flags & ~@as(u64, MS.NOATIME | MS.NODIRATIME | MS.RELATIME | MS.STRICTATIME) | atime;
}

/// A bind remount with MS_REC: mount(2) would change the target's mount
/// alone and leave the mounts below it as they are (a read-only bind of a
/// tree with a mount inside would be writable there), so mount_setattr sets
/// the flags on every mount of the tree (AT_RECURSIVE, Linux 5.12). It only
/// sets: flags the kernel locked stay, as they must.
fn setMountFlagsRecursive(target: u64, flags: u64) usize {
    var attr = mountAttr(flags);
    return linux.syscall5(.mount_setattr, at_fdcwd, target, linux.AT.RECURSIVE, @intFromPtr(&attr), @sizeOf(MountAttr));
}

/// struct mount_attr (linux/mount.h).
pub const MountAttr = extern struct { attr_set: u64, attr_clr: u64, propagation: u64, userns_fd: u64 };

/// The MOUNT_ATTR_RDONLY, _NOSUID, _NODEV and _NOEXEC of mount(2) `flags`, to set.
fn mountAttr(flags: u64) MountAttr {
    const MS = linux.MS;
    var attr = MountAttr{ .attr_set = 0, .attr_clr = 0, .propagation = 0, .userns_fd = 0 };
    if (flags & MS.RDONLY != 0) attr.attr_set |= 0x1;
    if (flags & MS.NOSUID != 0) attr.attr_set |= 0x2;
    if (flags & MS.NODEV != 0) attr.attr_set |= 0x4;
    if (flags & MS.NOEXEC != 0) attr.attr_set |= 0x8;
    return attr;
}

/// seccomp(SECCOMP_SET_MODE_FILTER) with the filter link() checked. The
/// kernel copies the filter, so the buffer may go away after this.
fn installFilter(count: u64, filter: u64) usize {
    std.debug.assert(count > 0 and count <= program.max_filter_len);
    const SockFprog = extern struct { len: u16, filter: u64 };
    const fprog = SockFprog{ .len = @intCast(count), .filter = filter };
    const set_mode_filter: usize = 1;
    return linux.syscall3(.seccomp, set_mode_filter, 0, @intFromPtr(&fprog));
}

const pr_capbset_drop: usize = 24;
const pr_cap_ambient: usize = 47;
const pr_cap_ambient_clear_all: usize = 4;
/// The kernel numbers capabilities below 64 (two 32-bit words in capset).
const max_capabilities: u32 = 64;

/// Drops from the bounding set every capability not in `keep`. The kernel
/// answers EINVAL past its last capability, which ends the walk.
fn dropBoundingSet(keep: u64) usize {
    var cap: u32 = 0;
    while (cap < max_capabilities) : (cap += 1) {
        if (keep & (@as(u64, 1) << @intCast(cap)) != 0) continue;
        const rc = linux.syscall5(.prctl, pr_capbset_drop, cap, 0, 0, 0);
        if (errnoOf(rc)) |e| {
            if (e == @intFromEnum(linux.E.INVAL)) return 0;
            return rc;
        }
    }
    return 0;
}

/// A process's capability sets, as 64-bit masks (capget/capset give them as
/// two 32-bit words each).
const CapSets = struct { effective: u64, permitted: u64, inheritable: u64 };

const CapHeader = extern struct { version: u32, pid: i32 };
const CapWord = extern struct { effective: u32, permitted: u32, inheritable: u32 };
const cap_version_3: u32 = 0x20080522; // _LINUX_CAPABILITY_VERSION_3

/// This process's capability sets, into `sets`; returns capget's result.
fn capGet(sets: *CapSets) usize {
    var header = CapHeader{ .version = cap_version_3, .pid = 0 };
    var words: [2]CapWord = undefined;
    const rc = linux.syscall2(.capget, @intFromPtr(&header), @intFromPtr(&words));
    if (errnoOf(rc) != null) return rc;
    sets.* = .{
        .effective = words[0].effective | @as(u64, words[1].effective) << 32,
        .permitted = words[0].permitted | @as(u64, words[1].permitted) << 32,
        .inheritable = words[0].inheritable | @as(u64, words[1].inheritable) << 32,
    };
    return rc;
}

/// Sets this process's capability sets to `sets`; returns capset's result.
fn capSet(sets: CapSets) usize {
    var header = CapHeader{ .version = cap_version_3, .pid = 0 };
    var words: [2]CapWord = undefined;
    for (&words, 0..) |*word, i| {
        const shift: u6 = @intCast(32 * i);
        word.* = .{
            .effective = @truncate(sets.effective >> shift),
            .permitted = @truncate(sets.permitted >> shift),
            .inheritable = @truncate(sets.inheritable >> shift),
        };
    }
    return linux.syscall2(.capset, @intFromPtr(&header), @intFromPtr(&words));
}

/// Permitted and effective become their intersection with `keep` (after a
/// setuid to a non-zero id the kernel has already emptied them), the
/// inheritable and ambient sets become empty: nothing is passed on to a
/// program through file capabilities that the bounding set would not allow.
fn reduceCapabilities(keep: u64) usize {
    var sets: CapSets = undefined;
    var rc = capGet(&sets);
    if (errnoOf(rc) != null) return rc;
    rc = capSet(.{ .effective = sets.effective & keep, .permitted = sets.permitted & keep, .inheritable = 0 });
    if (errnoOf(rc) != null) return rc;
    return linux.syscall5(.prctl, pr_cap_ambient, pr_cap_ambient_clear_all, 0, 0, 0);
}

const pr_get_securebits: usize = 27;
const pr_set_securebits: usize = 28;
const secbit_no_setuid_fixup: usize = 1 << 2;

/// setresuid(uid) with the capability sets left as they are: the securebit
/// SECBIT_NO_SETUID_FIXUP for this call alone, then the bits the process
/// had (inherited from the caller, usually none). Changing them needs
/// CAP_SETPCAP, which the call leaves in place.
fn setuidKeepingCapabilities(uid: u64) usize {
    const bits = linux.syscall5(.prctl, pr_get_securebits, 0, 0, 0, 0);
    if (errnoOf(bits) != null) return bits;
    const set = linux.syscall5(.prctl, pr_set_securebits, bits | secbit_no_setuid_fixup, 0, 0, 0);
    if (errnoOf(set) != null) return set;
    const rc = linux.syscall3(.setresuid, uid, uid, uid);
    const restored = linux.syscall5(.prctl, pr_set_securebits, bits, 0, 0, 0);
    return if (errnoOf(rc) != null) rc else restored;
}

/// CAP_DAC_OVERRIDE (1) and CAP_DAC_READ_SEARCH (2).
const cap_dac_override_and_read_search: u64 = (1 << 1) | (1 << 2);

/// Clears `caps` from the effective set (`on` false), or puts them back
/// (true): permitted keeps them all along, and the next execve (as uid 0)
/// has them again.
fn setEffective(caps: u64, on: bool) usize {
    var sets: CapSets = undefined;
    const rc = capGet(&sets);
    if (errnoOf(rc) != null) return rc;
    sets.effective = if (on) sets.effective | (caps & sets.permitted) else sets.effective & ~caps;
    return capSet(sets);
}

fn setRlimit(resource: u64, soft: u64, hard: u64) usize {
    std.debug.assert(soft <= hard);
    const limit = [2]u64{ soft, hard };
    return linux.syscall4(.prlimit64, 0, resource, @intFromPtr(&limit), 0);
}

/// mkdir, touch (an empty regular file, made by mknod in one syscall where
/// open and close take two) or symlink, in the parent directory as
/// `InRoot` resolves it. An existing entry is fine: a mount on it resolves it
/// whole.
fn createEntry(op: *const program.Op, own: *const OwnMounts) usize {
    const a = op.args;
    var dir = InRoot{};
    defer dir.close();
    var name: [*:0]const u8 = undefined;
    const rc = resolveParent(own, cstr(if (op.code == .symlink) a[1] else a[0]), &dir, &name, .follow);
    if (errnoOf(rc) != null) return rc;
    const at = dir.dirFd();
    if (op.code == .mkdir and op.flags & program.mkdir_owned != 0) return mkdirOwned(at, name, a[1], a[2], a[3]);
    return allowExisting(switch (op.code) {
        .mkdir => linux.syscall3(.mkdirat, at, @intFromPtr(name), a[1]),
        .touch => linux.syscall4(.mknodat, at, @intFromPtr(name), linux.S.IFREG | (a[1] & 0o7777), 0),
        .symlink => linux.syscall3(.symlinkat, a[0], at, @intFromPtr(name)),
        else => unreachable,
    });
}

/// Where an entry of path `full` is made: for a relative path (one in the
/// container's root, see `InRoot`) with a parent, `dir` gets the parent as
/// resolved inside the root and `name` the last component; else (an
/// absolute or own path, or one without a slash) `name` is `full` itself,
/// used from the working directory. Returns 0 or -errno.
fn resolveParent(own: *const OwnMounts, full: [:0]const u8, dir: *InRoot, name: *[*:0]const u8, links: InRoot.Links) usize {
    name.* = full.ptr;
    if (!inRoot(full)) return 0;
    const path = own_mounts.plain(full);
    const slash = std.mem.lastIndexOfScalar(u8, path, '/') orelse return 0;
    var parent: [std.os.linux.PATH_MAX]u8 = undefined;
    if (slash >= parent.len) return negErrno(.NAMETOOLONG);
    @memcpy(parent[0..slash], path[0..slash]);
    parent[slash] = 0;
    const rc = dir.resolve(own, @intFromPtr(&parent), links);
    if (errnoOf(rc) != null) return rc;
    // Resolved (not own): the entry goes in the directory the walk found.
    if (dir.fd >= 0) name.* = full[full.len - path.len + slash + 1 ..].ptr;
    return 0;
}

/// mkdir of a directory with exactly `mode` and owner `uid`:`gid` (ids of
/// this user namespace; 0xffffffff leaves one as it is): the upper layer of
/// an overlay, whose root directory shows as the overlay's own (a host /root
/// of mode 0700 stays 0700). An existing directory is left as it is.
fn mkdirOwned(at: usize, name: [*:0]const u8, mode: u64, uid: u64, gid: u64) usize {
    var rc = linux.syscall3(.mkdirat, at, @intFromPtr(name), 0o700);
    if (errnoOf(rc) != null) return allowExisting(rc);
    rc = linux.syscall5(.fchownat, at, @intFromPtr(name), uid, gid, 0);
    if (errnoOf(rc) != null) return rc;
    // After the chown, which clears set-id bits.
    return linux.syscall3(.fchmodat, at, @intFromPtr(name), mode & 0o7777);
}

/// A relative path of an op: a path in the container's root, the working
/// directory during the mounts. Its image and upper layer may hold symbolic
/// links that a container's earlier run left (a kept upper layer) or that
/// the image has (/var/run -> /run). Followed as the host would, an absolute
/// one leads out of the root, and the setup, as the mapped root (host root
/// under the default id map), would create files or mount on the host. So a
/// path is resolved as the container will see it: openat2 with
/// RESOLVE_IN_ROOT, which takes the root for "/" and never leaves it, and
/// the op uses /proc/self/fd/N of the result (mount) or creates its entry in
/// the resolved directory. The op always uses the fd of the resolution, never
/// the path again: a bind's source may be writable by someone else (a host
/// user, another container), who could swap a directory on the path for a
/// link between a second walk and the first. Most paths have no link, and
/// are resolved with RESOLVE_NO_SYMLINKS first; paths in file systems the
/// setup mounted itself are not walked at all (own_mounts.zig): nobody else
/// reaches those. Absolute paths are the host's, given by the caller; after
/// pivot_root every path resolves inside the container, once `close_from`
/// has closed the caller's fds, which a link to /proc/self/fd/N would reach
/// (container.ts puts it right after pivot_root). Some mounts refuse
/// a link on the way instead (`Links.refuse`): an overlay, whose options
/// the kernel resolves again as the host would, and /dev, /proc and /sys,
/// which could change what the link means once mounted (program.zig,
/// `mount_target_no_link`).
const InRoot = struct {
    /// An O_PATH fd of the resolved path, or -1 (an own or absolute path: used as it is).
    fd: isize = -1,
    /// Whether the resolution went through a link.
    linked: bool = false,
    /// "/proc/self/fd/N" of `fd`.
    proc_path: [32]u8 = undefined,

    /// What `resolve` does with a link on the way: follow it inside the
    /// root, or fail with ELOOP (a mount that must not go through one).
    const Links = enum { follow, refuse };

    /// Resolves relative `path`; returns 0 or -errno. Then `pathOr` gives what the op uses.
    fn resolve(self: *InRoot, own: *const OwnMounts, path_arg: u64, links: Links) usize {
        const path = cstr(path_arg);
        if (!inRoot(path) or own.contains(path)) return 0;
        var fd = openat2(path.ptr, resolve_no_symlinks | resolve_beneath);
        if (errnoOf(fd) == @intFromEnum(linux.E.LOOP)) {
            if (links == .refuse) return fd;
            fd = openat2(path.ptr, resolve_in_root | resolve_no_magiclinks);
            self.linked = true;
        }
        if (errnoOf(fd) != null) return fd;
        self.keep(fd);
        return 0;
    }

    /// Opens absolute host path `path_arg` without following any symbolic
    /// link (see `mount_host_source`); keeps the fd only if the file is of
    /// type `kind` (S_IFREG, S_IFDIR). Returns 0 or -errno; no fd: another kind.
    fn openHostSource(self: *InRoot, path_arg: u64, kind: u64) usize {
        const fd = openat2(@ptrFromInt(path_arg), resolve_no_symlinks);
        if (errnoOf(fd) != null) return fd;
        var stx: linux.Statx = undefined;
        const rc = linux.syscall5(.statx, fd, @intFromPtr(""), linux.AT.EMPTY_PATH, linux.STATX_TYPE, @intFromPtr(&stx));
        if (errnoOf(rc) != null or stx.mode & linux.S.IFMT != kind) {
            _ = linux.syscall1(.close, fd);
            return if (errnoOf(rc) != null) rc else 0;
        }
        self.keep(fd);
        return 0;
    }

    /// Takes `fd` (an O_PATH fd of the resolved file) as the one the op uses.
    fn keep(self: *InRoot, fd: usize) void {
        self.fd = @bitCast(fd);
        _ = std.fmt.bufPrintZ(&self.proc_path, "/proc/self/fd/{d}", .{fd}) catch unreachable;
    }

    /// The path the op uses: `/proc/self/fd/N` of a resolved path, else the op's own.
    fn pathOr(self: *const InRoot, path_arg: u64) u64 {
        return if (self.fd >= 0) @intFromPtr(&self.proc_path) else path_arg;
    }

    /// The dirfd for an *at call on a name in the resolved directory, else AT_FDCWD.
    fn dirFd(self: *const InRoot) usize {
        return if (self.fd >= 0) @bitCast(self.fd) else at_fdcwd;
    }

    fn close(self: *InRoot) void {
        if (self.fd >= 0) _ = linux.syscall1(.close, @bitCast(self.fd));
        self.fd = -1;
    }
};

const OpenHow = extern struct { flags: u64, mode: u64, resolve: u64 };
const resolve_no_magiclinks: u64 = 0x02;
const resolve_no_symlinks: u64 = 0x04;
const resolve_beneath: u64 = 0x08;
const resolve_in_root: u64 = 0x10;

/// An O_PATH fd of `path`, relative to the working directory, resolved with `resolve`.
fn openat2(path: [*:0]const u8, resolve: u64) usize {
    const how = OpenHow{
        .flags = @as(u32, @bitCast(linux.O{ .PATH = true, .CLOEXEC = true })),
        .mode = 0,
        .resolve = resolve,
    };
    return linux.syscall4(.openat2, at_fdcwd, @intFromPtr(path), @intFromPtr(&how), @sizeOf(OpenHow));
}

/// Whether `path` is relative: a path in the container's root (see `InRoot`).
fn inRoot(path: []const u8) bool {
    return path.len > 0 and path[0] != '/';
}

/// Closes every fd from `first` up but the result pipe: see `close_from`.
fn closeFrom(ctx: *const Context, first: u64) usize {
    const last = std.math.maxInt(u32);
    const keep: u64 = @intCast(ctx.result_fd);
    if (keep < first) return linux.syscall3(.close_range, first, last, 0);
    if (keep > first) {
        const rc = linux.syscall3(.close_range, first, keep - 1, 0);
        if (errnoOf(rc) != null) return rc;
    }
    return linux.syscall3(.close_range, keep + 1, last, 0);
}

/// chdir without magic links: the container may have put a link to
/// /proc/self/fd/N or /proc/self/cwd where the caller's cwd is, and this
/// process is still a copy of the caller until it execs.
fn changeDirectory(path: u64) usize {
    // fchdir of anything but a directory fails with ENOTDIR, as chdir does.
    const fd = openat2(@ptrFromInt(path), resolve_no_magiclinks);
    if (errnoOf(fd) != null) return fd;
    defer _ = linux.syscall1(.close, fd);
    return linux.syscall1(.fchdir, fd);
}

/// See `drop_caller_memory` in program.zig. The stacks' region (lib.zig):
/// the fork stack up to the Context at the top of the spawn stack.
fn dropCallerMemory(ctx: *Context) usize {
    if (ctx.own_memory == 0) return 0;
    const program_start = @intFromPtr(ctx.ops) - @sizeOf(program.Header);
    const header: *const program.Header = @ptrFromInt(program_start);
    const stack_start = ctx.fork_stack;
    const stack_end = @intFromPtr(ctx) + @sizeOf(Context);
    if (caller_memory.drop(program_start, program_start + header.byte_len, stack_start, stack_end)) {
        ctx.caller_memory_dropped = 1;
    }
    return 0;
}

/// See `confine_exec` in program.zig.
fn confineExec() usize {
    const access_fs_execute: u64 = 1 << 0;
    const rule_path_beneath: usize = 1;
    // struct landlock_ruleset_attr, as its first ABI has it.
    const ruleset_attr = [1]u64{access_fs_execute};
    const ruleset = linux.syscall3(.landlock_create_ruleset, @intFromPtr(&ruleset_attr), @sizeOf(@TypeOf(ruleset_attr)), 0);
    if (errnoOf(ruleset)) |e| {
        // No Landlock in this kernel, or not enabled at boot.
        if (e == @intFromEnum(linux.E.NOSYS) or e == @intFromEnum(linux.E.OPNOTSUPP)) return 0;
        return ruleset;
    }
    defer _ = linux.syscall1(.close, ruleset);
    const root = openat2("/", resolve_no_symlinks);
    if (errnoOf(root) != null) return root;
    defer _ = linux.syscall1(.close, root);
    // struct landlock_path_beneath_attr { u64 allowed_access; s32 parent_fd; } packed.
    var beneath: [12]u8 = undefined;
    std.mem.writeInt(u64, beneath[0..8], access_fs_execute, .little);
    std.mem.writeInt(i32, beneath[8..12], @intCast(root), .little);
    const rc = linux.syscall4(.landlock_add_rule, ruleset, rule_path_beneath, @intFromPtr(&beneath), 0);
    if (errnoOf(rc) != null) return rc;
    // Needs no_new_privs or CAP_SYS_ADMIN here: the container's root still has it.
    return linux.syscall2(.landlock_restrict_self, ruleset, 0);
}

/// Replaces the file at the op's path with a new regular file holding
/// `data`. Whatever was there goes first: an image's /etc/resolv.conf is
/// often a link into a directory the container lacks
/// (/run/systemd/resolve), which a write through it would fail on. A
/// relative path is resolved inside the root, as `createEntry` does. With
/// `write_file_optional`, a directory the process may not write (or a
/// read-only one) leaves the file as it is.
fn writeFile(op: *const program.Op, own: *const OwnMounts) usize {
    const links: InRoot.Links = if (op.flags & program.write_file_no_link != 0) .refuse else .follow;
    const rc = replaceFile(own, cstr(op.args[0]), op.args[1], op.args[2], links);
    if (op.flags & program.write_file_optional == 0) return rc;
    return switch (@as(linux.E, @enumFromInt(errnoOf(rc) orelse 0))) {
        .ACCES, .PERM, .ROFS => 0,
        else => rc,
    };
}

fn replaceFile(own: *const OwnMounts, path: [:0]const u8, data: u64, mode: u64, links: InRoot.Links) usize {
    var dir = InRoot{};
    defer dir.close();
    var name: [*:0]const u8 = undefined;
    const rc = resolveParent(own, path, &dir, &name, links);
    if (errnoOf(rc) != null) return rc;
    const at = dir.dirFd();
    const gone = linux.syscall3(.unlinkat, at, @intFromPtr(name), 0);
    if (errnoOf(gone)) |e| if (e != @intFromEnum(linux.E.NOENT)) return gone;
    const flags: u32 = @bitCast(linux.O{ .ACCMODE = .WRONLY, .CREAT = true, .EXCL = true, .NOFOLLOW = true, .CLOEXEC = true, .NOCTTY = true });
    const fd = linux.syscall4(.openat, at, @intFromPtr(name), flags, mode);
    if (errnoOf(fd) != null) return fd;
    defer _ = linux.syscall1(.close, fd);
    return writeAll(fd, data);
}

fn writeExisting(path: u64, data: u64) usize {
    const flags: u32 = @bitCast(linux.O{ .ACCMODE = .WRONLY, .NOFOLLOW = true, .CLOEXEC = true, .NOCTTY = true });
    const fd = linux.syscall3(.openat, at_fdcwd, path, flags);
    if (errnoOf(fd) != null) return fd;
    defer _ = linux.syscall1(.close, fd);
    return writeAll(fd, data);
}

/// Writes the string at `data` whole to `fd`.
fn writeAll(fd: usize, data: u64) usize {
    var rest: []const u8 = cstr(data);
    while (rest.len > 0) {
        const n = linux.syscall3(.write, fd, @intFromPtr(rest.ptr), rest.len);
        if (errnoOf(n)) |e| {
            if (e == @intFromEnum(linux.E.INTR)) continue;
            return n;
        }
        rest = rest[n..];
    }
    return 0;
}

fn pivotRoot(new_root: u64) usize {
    // pivot_root(".", ".") stacks the old root on top of the new one; a lazy
    // unmount of "." then detaches it without needing a directory for it.
    var rc = linux.syscall1(.chdir, new_root);
    if (errnoOf(rc) != null) return rc;
    rc = linux.syscall2(.pivot_root, @intFromPtr("."), @intFromPtr("."));
    if (errnoOf(rc) != null) return rc;
    rc = linux.syscall2(.umount2, @intFromPtr("."), linux.MNT.DETACH);
    if (errnoOf(rc) != null) return rc;
    return linux.syscall1(.chdir, @intFromPtr("/"));
}

fn loopbackUp() usize {
    const fd = linux.syscall3(.socket, linux.AF.INET, linux.SOCK.DGRAM | linux.SOCK.CLOEXEC, 0);
    if (errnoOf(fd) != null) return fd;
    defer _ = linux.syscall1(.close, fd);
    return setLoopbackUp(fd);
}

/// `lo` up, through `socket` (any socket of the network namespace).
fn setLoopbackUp(socket: usize) usize {
    var ifr = [_]u8{0} ** 40; // struct ifreq: name[16], then the flags as a short
    @memcpy(ifr[0..2], "lo");
    const rc = linux.syscall3(.ioctl, socket, linux.SIOCGIFFLAGS, @intFromPtr(&ifr));
    if (errnoOf(rc) != null) return rc;
    const flags = std.mem.readInt(u16, ifr[16..18], .little) | 0x1 | 0x40; // IFF_UP | IFF_RUNNING
    std.mem.writeInt(u16, ifr[16..18], flags, .little);
    return linux.syscall3(.ioctl, socket, linux.SIOCSIFFLAGS, @intFromPtr(&ifr));
}

/// Starts the network thread (see `net_spawn` in program.zig), with
/// ctx.net_thread as its tid word (clone.zig, `thread_flags`).
fn spawnNetwork(ctx: *Context) usize {
    std.debug.assert(ctx.net_tid == 0);
    var args = clone.CloneArgs{
        .flags = clone.thread_flags,
        .parent_tid = @intFromPtr(&ctx.net_thread),
        .child_tid = @intFromPtr(&ctx.net_thread),
        .stack = ctx.fork_stack,
        .stack_size = ctx.fork_stack_len,
    };
    const tid = clone.clone3(&args, networkThread, @intFromPtr(ctx));
    if (errnoOf(tid) == null) {
        ctx.net_tid = @intCast(tid);
        moveOffThisCpu(tid);
        return 0;
    }
    // No thread (a cgroup's pids.max of 1, say): make it here, in turn.
    const fd = newNetworkNamespace();
    if (errnoOf(fd) != null) return fd;
    return linux.syscall1(.close, fd);
}

/// The scheduler starts a new thread on its creator's CPU, where it would
/// wait until we block: allow it every CPU we may use but ours, so that it
/// runs beside us at once. With no other CPU, it stays where it is.
fn moveOffThisCpu(tid: usize) void {
    var mask = [_]u64{0} ** 16; // 1024 CPUs
    const size = linux.syscall3(.sched_getaffinity, 0, @sizeOf(@TypeOf(mask)), @intFromPtr(&mask));
    if (errnoOf(size) != null) return;
    var cpu: u32 = 0;
    if (errnoOf(linux.syscall3(.getcpu, @intFromPtr(&cpu), 0, 0)) != null) return;
    if (cpu >= mask.len * 64) return;
    mask[cpu / 64] &= ~(@as(u64, 1) << @intCast(cpu % 64));
    for (mask) |word| {
        if (word != 0) break;
    } else return;
    _ = linux.syscall3(.sched_setaffinity, tid, size, @intFromPtr(&mask));
}

fn networkThread(arg: usize) callconv(.c) u8 {
    const ctx: *Context = @ptrFromInt(arg);
    const rc = newNetworkNamespace();
    ctx.net_result = if (errnoOf(rc)) |e| -@as(i32, e) else @intCast(rc);
    return 0;
}

/// unshare(CLONE_NEWNET), `lo` up, and an fd of the new namespace (from a
/// socket in it: SIOCGSKNS needs no /proc).
fn newNetworkNamespace() usize {
    var rc = linux.syscall1(.unshare, linux.CLONE.NEWNET);
    if (errnoOf(rc) != null) return rc;
    const socket = linux.syscall3(.socket, linux.AF.INET, linux.SOCK.DGRAM | linux.SOCK.CLOEXEC, 0);
    if (errnoOf(socket) != null) return socket;
    defer _ = linux.syscall1(.close, socket);
    rc = setLoopbackUp(socket);
    if (errnoOf(rc) != null) return rc;
    const siocgskns: usize = 0x894C;
    return linux.syscall3(.ioctl, socket, siocgskns, 0);
}

fn joinNetwork(ctx: *Context) usize {
    if (ctx.net_tid == 0) return 0;
    clone.joinThread(&ctx.net_thread);
    // The word is cleared early in the thread's exit; its pid is freed a bit
    // later. Wait for that too, so that the next pid (a reaper's command,
    // pid 2) is free: tgkill finds the thread until then.
    const self = linux.syscall0(.getpid);
    while (linux.syscall3(.tgkill, self, @as(u32, @bitCast(ctx.net_tid)), 0) == 0) {
        _ = linux.syscall0(.sched_yield);
    }
    ctx.net_tid = 0;
    const result = ctx.net_result;
    if (result < 0) return negErrno(@enumFromInt(-result));
    const fd: usize = @intCast(result);
    defer _ = linux.syscall1(.close, fd);
    return linux.syscall2(.setns, fd, linux.CLONE.NEWNET);
}

/// The command's execve. Under a reaper, first the time (best effort: a
/// seccomp policy may deny the write; pid 1 then reads its own clock).
fn exec(ctx: *Context, index: u32, op: *const program.Op) usize {
    restoreUmask(ctx);
    if (ctx.report_exec_start != 0) send(ctx, .started_at, index, op.code, reaper_loop.monotonicUsec());
    return execSearch(op);
}

/// execve, with execvp's PATH search when the file has no slash: ENOENT and
/// ENOTDIR try the next directory, EACCES is remembered, anything else stops.
fn execSearch(op: *const program.Op) usize {
    const a = op.args;
    const file: [*:0]const u8 = @ptrFromInt(a[0]);
    const name = std.mem.span(file);
    if (a[3] == 0 or std.mem.indexOfScalar(u8, name, '/') != null) {
        return linux.syscall3(.execve, a[0], a[1], a[2]);
    }
    const search = cstr(a[3]);
    var path_buf: [4096]u8 = undefined;
    var result = negErrno(.NOENT);
    var it = std.mem.splitScalar(u8, search, ':');
    while (it.next()) |entry| {
        const dir = if (entry.len == 0) "." else entry;
        if (dir.len + 1 + name.len + 1 > path_buf.len) continue;
        @memcpy(path_buf[0..dir.len], dir);
        path_buf[dir.len] = '/';
        @memcpy(path_buf[dir.len + 1 ..][0..name.len], name);
        path_buf[dir.len + 1 + name.len] = 0;
        const rc = linux.syscall3(.execve, @intFromPtr(&path_buf), a[1], a[2]);
        switch (@as(linux.E, @enumFromInt(errnoOf(rc) orelse 0))) {
            .NOENT, .NOTDIR, .NODEV, .TIMEDOUT, .STALE => {},
            .ACCES => result = negErrno(.ACCES),
            else => return rc,
        }
    }
    return result;
}

/// A second clone3 from inside the container's namespaces (the exec path:
/// setns only moves the caller's future children into the pid namespace).
/// The new process continues with the next op; this one reports its pid.
fn fork(ctx: *Context, index: u32, op: *const program.Op) usize {
    const a = op.args;
    // With CLONE_PARENT the kernel takes the exit signal from the caller and
    // rejects any other (EINVAL).
    const exit_signal: u64 = if (a[0] & linux.CLONE.PARENT != 0) 0 else linux.SIG.CHLD;
    var args = clone.CloneArgs{ .flags = a[0], .exit_signal = exit_signal };
    const cgroup_fd: i64 = @bitCast(a[1]);
    if (cgroup_fd >= 0) {
        args.flags |= linux.CLONE.INTO_CGROUP;
        args.cgroup = @intCast(cgroup_fd);
    }
    if (args.flags & linux.CLONE.VM != 0) {
        args.stack = ctx.fork_stack;
        args.stack_size = ctx.fork_stack_len;
    }
    ctx.resume_at = index + 1;
    const pid = clone.clone3(&args, forkEntry, @intFromPtr(ctx));
    if (errnoOf(pid) != null) return pid;
    // First: the caller's janitor reaps what is in the slot should the
    // Worker that launched us end now. (Killed between clone3's last check
    // for a fatal signal and this store, a few microseconds, we would still
    // leave the process unrecorded.)
    if (ctx.fork_pid_slot != 0) {
        const slot: *i32 = @ptrFromInt(ctx.fork_pid_slot);
        @atomicStore(i32, slot, @intCast(pid), .release);
    }
    send(ctx, .forked, index, op.code, @intCast(pid));
    exit(0);
}

/// pid 1 of the container when the command should not be pid 1 itself: the
/// kernel drops signals that a namespace's init sends itself (abort(),
/// `kill -9 $$`), so a command running as pid 1 cannot die of them and its
/// end would be misreported. Starts the command (the rest of the program) as
/// its child, then becomes helper/init.zig, a static program of its own that
/// supervises it (reaper.zig): pid 1 lives as long as the container, and
/// must not keep the caller's memory (and so its secrets) mapped all along.
fn reaper(ctx: *Context, index: u32) usize {
    // Blocked until the supervisor's signalfd takes over (the mask survives
    // execve); the command unblocks its own in reaperChildEntry.
    const sig_all: u64 = ~@as(u64, 0);
    var rc = linux.syscall4(.rt_sigprocmask, linux.SIG.SETMASK, @intFromPtr(&sig_all), 0, 8);
    if (errnoOf(rc) != null) return rc;

    // The command reports a failed step to us through a close-on-exec pipe:
    // a record means it failed, end-of-file alone means it exec'd.
    var exec_pipe: [2]i32 = undefined;
    rc = linux.syscall2(.pipe2, @intFromPtr(&exec_pipe), @as(u32, @bitCast(linux.O{ .CLOEXEC = true })));
    if (errnoOf(rc) != null) return rc;
    const result_fd = ctx.result_fd;
    ctx.result_fd = exec_pipe[1];
    ctx.report_exec_start = 1;
    ctx.resume_at = index + 1;
    // The command is pid 2, whatever took a pid before it (a network thread).
    const command_pid = [1]i32{2};
    var args = clone.CloneArgs{
        .flags = linux.CLONE.VM,
        .exit_signal = linux.SIG.CHLD,
        .stack = ctx.fork_stack,
        .stack_size = ctx.fork_stack_len,
        .set_tid = @intFromPtr(&command_pid),
        .set_tid_size = command_pid.len,
    };
    const child = clone.clone3(&args, reaperChildEntry, @intFromPtr(ctx));
    if (errnoOf(child) != null) {
        ctx.result_fd = result_fd;
        return child;
    }
    // ctx stays pointed at the exec pipe: the command shares this memory and
    // reads ctx.result_fd when a step fails. We keep result_fd ourselves.
    _ = linux.syscall1(.close, @bitCast(@as(isize, exec_pipe[1])));
    restoreUmask(ctx); // pid 1 creates nothing: its own umask is the caller's, as the command's

    keepOnly(.{ result_fd, exec_pipe[0] });
    const watch = reaper_loop.Watch{
        .result_fd = result_fd,
        .exec_fd = exec_pipe[0],
        .child = @intCast(child),
        .op_index = index,
        .own_peak = ctx.caller_memory_dropped != 0,
    };
    execInit(watch);
    // No memfd or no exec of it (vm.memfd_noexec=2): supervise from here.
    reaper_loop.supervise(watch);
}

/// From here pid 1 holds `keep` (its two pipes) and 0-2 on the container's
/// /dev/null (closed where there is none): a stray write to stderr reaches
/// nobody, and the fds it opens later never take 0-2. Every other fd goes.
/// The ops before the fork put the command's stdio on 0-2 and closed the
/// caller's fds (container.ts, `compileStdio`); held by pid 1 too, a stdout
/// pipe would reach end-of-file for its reader only when the whole container
/// ends, not when the command does. The command has its own copy of the fd
/// table, and keeps them.
fn keepOnly(keep: [2]i32) void {
    const flags: u32 = @bitCast(linux.O{ .ACCMODE = .RDWR, .NOCTTY = true, .NONBLOCK = true, .CLOEXEC = true });
    const dev_null = linux.syscall3(.openat, at_fdcwd, @intFromPtr("/dev/null"), flags);
    var fd: usize = 0;
    while (fd < 3) : (fd += 1) {
        if (fd == keep[0] or fd == keep[1] or fd == dev_null) continue;
        _ = if (errnoOf(dev_null) == null) linux.syscall3(.dup3, dev_null, fd, 0) else linux.syscall1(.close, fd);
    }
    // close_range over the gaps between the kept fds, /dev/null's included.
    var first: u32 = 3;
    const low: u32 = @intCast(@min(keep[0], keep[1]));
    const high: u32 = @intCast(@max(keep[0], keep[1]));
    for ([2]u32{ low, high }) |kept| {
        if (kept < first) continue;
        if (kept > first) _ = linux.syscall3(.close_range, first, kept - 1, 0);
        first = kept + 1;
    }
    _ = linux.syscall3(.close_range, first, std.math.maxInt(u32), 0);
}

const init_elf = @embedFile("sbox_init_elf");

/// Replaces this process with helper/init.zig, embedded in the library and
/// run from a memfd, passing the watch on its command line. Returns on failure.
fn execInit(watch: reaper_loop.Watch) void {
    const mfd_cloexec: usize = 1;
    const fd = linux.syscall2(.memfd_create, @intFromPtr("sbox-init"), mfd_cloexec);
    if (errnoOf(fd) != null) return;
    var written: usize = 0;
    while (written < init_elf.len) {
        const n = linux.syscall3(.write, fd, @intFromPtr(init_elf.ptr) + written, init_elf.len - written);
        if (errnoOf(n) != null) return;
        written += n;
    }
    var numbers: [reaper_loop.Watch.argc][reaper_loop.Watch.arg_len]u8 = undefined;
    const argv = watch.toArgv(&numbers);
    // The two pipes must outlive the exec; keepOnly closed the rest.
    _ = linux.syscall3(.fcntl, @bitCast(@as(isize, watch.result_fd)), linux.F.SETFD, 0);
    _ = linux.syscall3(.fcntl, @bitCast(@as(isize, watch.exec_fd)), linux.F.SETFD, 0);
    // Not dumpable from the execve on, not from init.zig's prctl a few
    // microseconds later: in between, the command (which may run by then)
    // could open /proc/1/mem and keep the fd, and with it write pid 1's
    // memory and the records it sends. The kernel makes an exec non-dumpable
    // when the program's file is one the process may not read: execute-only,
    // with the two capabilities that read any file out of the effective set.
    // The exec gives them back (uid 0); this process's others stay. Under
    // keep-id maps pid 1 is the caller's uid and holds none after the exec.
    // Best effort: should either fail, the window is as it was.
    _ = linux.syscall2(.fchmod, fd, 0o100);
    const dropped = errnoOf(setEffective(cap_dac_override_and_read_search, false)) == null;
    const envp: [1]?[*:0]const u8 = .{null};
    _ = linux.syscall5(.execveat, fd, @intFromPtr(""), @intFromPtr(&argv), @intFromPtr(&envp), linux.AT.EMPTY_PATH);
    _ = linux.syscall1(.close, fd);
    // Supervising in place (the caller goes on): with the capabilities it had.
    if (dropped) _ = setEffective(cap_dac_override_and_read_search, true);
}
