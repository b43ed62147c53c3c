//! What each Worker's isolate holds, process-wide, and a thread that lets it
//! go once the Worker's thread has ended.
//!
//! Deno runs each Worker's isolate on a thread of its own, and terminating a
//! Worker runs none of its code: not an unload event, not a finalizer. The
//! Worker's children die with its thread (their parent-death signal), but
//! they stay zombies of this process that nobody reaps (a container's init
//! even waits, in the kernel, until every process of its pid namespace is
//! reaped), and the isolate's fds stay open: pidfds, pipes, the reactor's
//! epoll fd and eventfd, the held mount namespace (the container's file
//! systems stay mounted). Only this library, loaded once per process, sees
//! every isolate's calls.
//!
//! An isolate that calls `track` (src/ffi.ts does, in a Worker) becomes an
//! owner: every fd, pidfd and child stack the library creates on its thread
//! is recorded, and every close forgets it; so is the pid of a process that
//! an exec() launch forks, in a slot of shared memory (`reserveForkSlot`).
//! A janitor thread waits on a pidfd of each owner's thread (PIDFD_THREAD,
//! Linux 6.9). When one ends, the janitor kills the owner's children, reaps
//! them (each as it ends, so that an init waiting for an exec'd process is
//! not waited for first), wakes the owner's reactor wait (its eventfd), and
//! a little later closes every fd and frees the stacks. The janitor runs
//! only while there are owners or leftovers: a process without Workers
//! never has one.
//!
//! The thread runs code of this library: src/ffi.ts makes it stay loaded
//! (RTLD_NODELETE) before it calls `track`.

const std = @import("std");
const linux = std.os.linux;
const sys = @import("sys.zig");
const clone = @import("clone.zig");
const lib = @import("lib.zig");

pub const Kind = enum(u8) {
    free = 0,
    /// Closed.
    fd,
    /// A pidfd of a child: killed, reaped, closed.
    pidfd,
    /// An eventfd: written (waking a reactor wait), then closed.
    eventfd,
    /// A child stack region (address): unmapped once every child is reaped.
    stack,
    /// A fork slot (index into `fork_pids`), reserved by a launch whose
    /// program forks: if it holds a pid once the owner ended, that process
    /// is killed and reaped like a pidfd's.
    fork_slot,
};

const Entry = struct {
    /// The owner's thread id; 0 once the owner is gone (the janitor's alone).
    owner: i32 = 0,
    kind: Kind = .free,
    /// Reaped (a pidfd of an ended owner), so only the close remains.
    reaped: bool = false,
    value: u64 = 0,
};

const Owner = struct {
    tid: i32 = 0,
    /// PIDFD_THREAD pidfd of the thread, in the janitor's epoll set.
    pidfd: i32 = -1,
    /// Which owner of this slot it is (`next_generation`): in its epoll
    /// event's data beside the slot, so that an event can only ever end the
    /// owner it was registered for, never a later one given the same slot.
    generation: u32 = 0,
};

/// The generation of the next owner (wraps after 2^32 Workers: harmless,
/// since a slot's stale event would have to outlive them all).
var next_generation: u32 = 0;

/// An owner's epoll data: its slot in the low half, its generation above.
fn eventData(slot: usize, generation: u32) u64 {
    return @as(u64, generation) << 32 | slot;
}

/// Limits for the whole process. A running container holds about four
/// entries (its pidfd, two pipes, the held mount namespace): some 4000
/// containers across every Worker. Past `max_entries` more is not recorded
/// (and would leak as without a janitor); a 257th Worker's `track` fails
/// (ENOSPC), and src/ffi.ts refuses it sbox, by name. The table is scanned
/// linearly, which at this size is a few microseconds a close, in Workers
/// only; its pages are touched only as far as it is used.
const max_entries = 16384;
const max_owners = 256;
/// How long after an owner ended its fds stay open: its reactor's
/// epoll_wait, woken through the eventfd, must have returned by then (an
/// eventfd closed first would leave it waiting for good on a pool thread).
const grace_ns: u64 = 200 * std.time.ns_per_ms;
/// How long the janitor waits for children that do not end before it closes
/// the fds all the same: without a limit, one process that cannot end (in
/// the kernel for good) would keep it from closing anything of any Worker.
const give_up_ns: u64 = 5 * std.time.ns_per_s;
/// Fork slots: words in a page shared with every process the library forks
/// without CLONE_VM (MAP_SHARED survives fork). The exec() path's first
/// process forks the command's process as a child of ours (CLONE_PARENT),
/// and its pid reaches TypeScript only through the result pipe, some
/// event-loop turns later. A Worker terminated in between would leave that
/// process unrecorded: a zombie nobody may reap by pid (another isolate's
/// child could be its twin), for which the container's init then waits in
/// the kernel until this process ends. The fork op stores the pid in its
/// launch's slot first; TypeScript's pidfd_open of it frees the slot.
const max_fork_slots = 1024;
var fork_pids: ?*[max_fork_slots]i32 = null;
var fork_slot_used = [_]bool{false} ** max_fork_slots;
/// How often the janitor looks for ended children while some remain.
const poll_ms: i32 = 20;
const stack_len = lib.stack_len;
const guard_len = lib.guard_len;

var lock_word = std.atomic.Value(u32).init(0);
var entries = [_]Entry{.{}} ** max_entries;
/// Entries in use are below this index.
var high: usize = 0;
var owners = [_]Owner{.{}} ** max_owners;
/// Owners, read without the lock: no owner, nothing to record.
var owner_count = std.atomic.Value(u32).init(0);
/// Entries whose owner ended, not yet closed.
var leftovers: usize = 0;
/// When the last owner ended (CLOCK_MONOTONIC, ns).
var last_end_ns: u64 = 0;
var running = false;
var epfd: i32 = -1;
/// The janitor's stack, mapped once and reused by each janitor.
var stack_region: usize = 0;
/// The janitor's tid while it runs; the kernel clears it (CLONE_CHILD_CLEARTID)
/// once the thread is gone, so that the next one may take the stack.
var thread_word: i32 align(4) = 0;

const isError = sys.isError;
const fdArg = sys.fdArg;

fn lock() void {
    while (lock_word.cmpxchgWeak(0, 1, .acquire, .monotonic) != null) {
        _ = linux.syscall0(.sched_yield);
    }
}

fn unlock() void {
    lock_word.store(0, .release);
}

fn gettid() i32 {
    return @intCast(linux.syscall0(.gettid));
}

fn nowNs() u64 {
    var ts: linux.timespec = undefined;
    _ = linux.syscall2(.clock_gettime, @intFromEnum(linux.CLOCK.MONOTONIC), @intFromPtr(&ts));
    return @as(u64, @intCast(ts.sec)) * std.time.ns_per_s + @as(u64, @intCast(ts.nsec));
}

fn ownerIndex(tid: i32) ?usize {
    for (&owners, 0..) |*o, i| if (o.tid == tid) return i;
    return null;
}

/// Makes the calling thread an owner. Returns 0 or a negative errno (EINVAL
/// from a kernel without PIDFD_THREAD: nothing is recorded then).
pub fn track() isize {
    const tid = gettid();
    lock();
    defer unlock();
    if (ownerIndex(tid) != null) return 0;
    const slot = ownerIndex(0) orelse return -@as(isize, @intFromEnum(linux.E.NOSPC));
    const pidfd_thread: usize = 0o200; // PIDFD_THREAD (O_EXCL)
    const pidfd = linux.syscall2(.pidfd_open, @intCast(tid), pidfd_thread);
    if (isError(pidfd)) return @bitCast(pidfd);
    if (!running) {
        const rc = start();
        if (rc < 0) {
            _ = linux.syscall1(.close, pidfd);
            return rc;
        }
    }
    const generation = next_generation;
    next_generation +%= 1;
    var ev = linux.epoll_event{ .events = linux.EPOLL.IN, .data = .{ .u64 = eventData(slot, generation) } };
    const ctl = linux.syscall4(.epoll_ctl, fdArg(epfd), linux.EPOLL.CTL_ADD, pidfd, @intFromPtr(&ev));
    if (isError(ctl)) {
        _ = linux.syscall1(.close, pidfd);
        return @bitCast(ctl);
    }
    owners[slot] = .{ .tid = tid, .pidfd = @intCast(pidfd), .generation = generation };
    _ = owner_count.fetchAdd(1, .release);
    return 0;
}

/// Records what the calling thread just created, if it is an owner.
pub fn adopt(kind: Kind, value: u64) void {
    if (owner_count.load(.acquire) == 0) return;
    const tid = gettid();
    lock();
    defer unlock();
    if (ownerIndex(tid) == null) return;
    _ = record(tid, kind, value);
}

/// An entry for `owner`, with the lock held; false when the table is full.
fn record(owner: i32, kind: Kind, value: u64) bool {
    for (entries[0..high]) |*e| {
        if (e.kind == .free) {
            e.* = .{ .owner = owner, .kind = kind, .value = value };
            return true;
        }
    }
    if (high == max_entries) return false;
    entries[high] = .{ .owner = owner, .kind = kind, .value = value };
    high += 1;
    return true;
}

/// Lowers `high` past the free entries at the table's end; with the lock held.
fn trimHigh() void {
    while (high > 0 and entries[high - 1].kind == .free) high -= 1;
}

/// For a launch whose program forks, on an owner's thread: the address of a
/// fork slot for Context.fork_pid_slot, recorded for the owner; 0 when the
/// thread is no owner (the main thread's children die with the process) or
/// no slot is left (the fork is then unrecorded, as without slots).
pub fn reserveForkSlot() u64 {
    if (owner_count.load(.acquire) == 0) return 0;
    const tid = gettid();
    lock();
    defer unlock();
    if (ownerIndex(tid) == null) return 0;
    if (fork_pids == null) {
        const rc = linux.mmap(null, @sizeOf([max_fork_slots]i32), linux.PROT.READ | linux.PROT.WRITE, .{ .TYPE = .SHARED, .ANONYMOUS = true }, -1, 0);
        if (isError(rc)) return 0;
        fork_pids = @ptrFromInt(rc);
    }
    const index = std.mem.indexOfScalar(bool, &fork_slot_used, false) orelse return 0;
    if (!record(tid, .fork_slot, index)) return 0;
    fork_slot_used[index] = true;
    @atomicStore(i32, &fork_pids.?[index], 0, .release);
    return @intFromPtr(&fork_pids.?[index]);
}

/// The slot at `address` (from `reserveForkSlot`) is done with: always when
/// `pid` is 0 (the launch failed, or its process exited without a fork),
/// else only if it holds `pid` (TypeScript has a pidfd of that process now).
pub fn releaseForkSlot(address: u64, pid: i32) void {
    const pids = fork_pids orelse return;
    if (address == 0) return;
    const index = (address - @intFromPtr(pids)) / @sizeOf(i32);
    std.debug.assert(index < max_fork_slots);
    lock();
    defer unlock();
    const held = @atomicLoad(i32, &pids[index], .acquire);
    if (pid != 0 and held != pid) return;
    if (pid == 0 and held != 0) return; // forked: freed when TypeScript adopts the pid
    for (entries[0..high]) |*e| {
        if (e.kind != .fork_slot or e.value != index or e.owner == 0) continue;
        e.* = .{};
        fork_slot_used[index] = false;
        break;
    }
    trimHigh();
}

/// TypeScript opened a pidfd of `pid`: the calling owner's slot holding it,
/// if any, is done with.
pub fn adoptedForkedPid(pid: i32) void {
    if (owner_count.load(.acquire) == 0 or pid <= 0) return;
    const pids = fork_pids orelse return;
    const tid = gettid();
    var address: u64 = 0;
    lock();
    for (entries[0..high]) |e| {
        if (e.kind != .fork_slot or e.owner != tid) continue;
        if (@atomicLoad(i32, &pids[e.value], .acquire) == pid) address = @intFromPtr(&pids[e.value]);
    }
    unlock();
    releaseForkSlot(address, pid);
}

/// Forgets a closed fd (`stack` false) or a freed stack of the calling thread.
pub fn forget(value: u64, stack: bool) void {
    if (owner_count.load(.acquire) == 0) return;
    const tid = gettid();
    lock();
    defer unlock();
    for (entries[0..high]) |*e| {
        if (e.owner != tid or e.value != value or e.kind == .free) continue;
        if ((e.kind == .stack) != stack) continue;
        e.* = .{};
        break;
    }
    trimHigh();
}

/// Starts the janitor; called with the lock held.
fn start() isize {
    // The previous janitor released the lock before it ended: wait until
    // its thread is gone before reusing the stack.
    clone.joinThread(&thread_word);
    if (stack_region == 0) {
        const rc = linux.mmap(null, guard_len + stack_len, linux.PROT.NONE, .{ .TYPE = .PRIVATE, .ANONYMOUS = true, .NORESERVE = true }, -1, 0);
        if (isError(rc)) return @bitCast(rc);
        if (isError(linux.mprotect(@ptrFromInt(rc + guard_len), stack_len, linux.PROT.READ | linux.PROT.WRITE))) {
            _ = linux.munmap(@ptrFromInt(rc), guard_len + stack_len);
            return -@as(isize, @intFromEnum(linux.E.NOMEM));
        }
        stack_region = rc;
    }
    const ep = linux.syscall1(.epoll_create1, linux.EPOLL.CLOEXEC);
    if (isError(ep)) return @bitCast(ep);
    epfd = @intCast(ep);

    var args = clone.CloneArgs{
        .flags = clone.thread_flags,
        .parent_tid = @intFromPtr(&thread_word),
        .child_tid = @intFromPtr(&thread_word),
        .stack = stack_region + guard_len,
        .stack_size = stack_len,
    };
    // The thread starts with every signal blocked and keeps them so: a
    // handler of Deno's (glibc's, V8's) must never run on it, as it has no
    // thread state of theirs.
    const all = linux.sigfillset();
    var old: linux.sigset_t = undefined;
    _ = linux.syscall4(.rt_sigprocmask, linux.SIG.SETMASK, @intFromPtr(&all), @intFromPtr(&old), linux.NSIG / 8);
    const tid = clone.clone3(&args, janitorEntry, 0);
    _ = linux.syscall4(.rt_sigprocmask, linux.SIG.SETMASK, @intFromPtr(&old), 0, linux.NSIG / 8);
    if (isError(tid)) {
        _ = linux.syscall1(.close, ep);
        epfd = -1;
        return @bitCast(tid);
    }
    running = true;
    return 0;
}

fn janitorEntry(_: usize) callconv(.c) u8 {
    var events: [16]linux.epoll_event = undefined;
    while (true) {
        lock();
        const idle = owner_count.load(.acquire) == 0 and leftovers == 0;
        if (idle) {
            // Under the lock: a `track` from now on starts another janitor.
            running = false;
            const ep = epfd;
            epfd = -1;
            unlock();
            _ = linux.syscall1(.close, fdArg(ep));
            return 0;
        }
        const ep = epfd;
        const timeout: i32 = if (leftovers > 0) poll_ms else -1;
        unlock();
        const rc = linux.syscall6(.epoll_pwait, fdArg(ep), @intFromPtr(&events), events.len, fdArg(timeout), 0, 8);
        const n: usize = if (isError(rc)) 0 else rc;
        for (events[0..n]) |ev| ownerEnded(@truncate(ev.data.u64), @truncate(ev.data.u64 >> 32));
        sweep();
    }
}

/// The thread of the owner in `slot` with `generation` has ended: its
/// children are killed and its reactor woken.
fn ownerEnded(slot: u32, generation: u32) void {
    lock();
    defer unlock();
    const owner = owners[slot];
    // An event for an owner that is gone, its slot empty or another's:
    // never acted on (see `generation`).
    if (owner.tid == 0 or owner.generation != generation) return;
    // Out of the epoll set before the close: a close takes it out only
    // with the file's last reference, and a launch under way in any isolate
    // holds one (clone3 without CLONE_FILES copies the whole fd table into
    // the child, which keeps it until it execs). Left in, the pidfd of a
    // thread that is gone, level-triggered, would wake the janitor again
    // and again until then; and, before `generation`, ended the slot's next
    // owner while it ran: its containers went unrecorded (zombies, fds left
    // once it was terminated), or were killed and their fds closed under
    // it, numbers its own later closes then took from whoever had them
    // since (tokio's epoll fd or eventfd: Deno panicked).
    _ = linux.syscall4(.epoll_ctl, fdArg(epfd), linux.EPOLL.CTL_DEL, fdArg(owner.pidfd), 0);
    _ = linux.syscall1(.close, fdArg(owner.pidfd));
    owners[slot] = .{};
    _ = owner_count.fetchSub(1, .release);
    for (entries[0..high]) |*e| {
        if (e.owner != owner.tid or e.kind == .free) continue;
        e.owner = 0;
        leftovers += 1;
        const fd: usize = @truncate(e.value);
        switch (e.kind) {
            .pidfd => _ = linux.syscall4(.pidfd_send_signal, fd, linux.SIG.KILL, 0, 0),
            .eventfd => {
                const one: u64 = 1;
                _ = linux.syscall3(.write, fd, @intFromPtr(&one), 8);
            },
            else => {},
        }
    }
    last_end_ns = nowNs();
}

/// What `sweep` takes out of the table to close outside the lock: static,
/// as it is larger than the janitor's stack. Only the janitor thread (one
/// at a time) uses it.
var sweep_done: [max_entries]Entry = undefined;

/// Reaps the leftover children that ended; once all are and the grace time
/// has passed, closes the leftover fds and frees the stacks (outside the
/// lock: the last close of a mount namespace unmounts a container's file
/// systems, which takes a while).
fn sweep() void {
    const done = &sweep_done;
    var count: usize = 0;
    {
        lock();
        defer unlock();
        if (leftovers == 0) return;
        // A slot that holds a pid: that process is ours, not reaped by
        // anyone (its owner is gone), so the pid still names it. Kill it
        // and reap it as a pidfd's. Until the final pass, an empty slot is
        // looked at again: the owner's launch may still be in its fork. So
        // is one whose pidfd_open failed (a full fd table, say): the pid
        // stays in the slot, and names the process until it is reaped.
        for (entries[0..high]) |*e| {
            if (e.owner != 0 or e.kind != .fork_slot) continue;
            const pid = @atomicLoad(i32, &fork_pids.?[e.value], .acquire);
            if (pid <= 0) continue;
            const pidfd = linux.syscall2(.pidfd_open, @intCast(pid), 0);
            if (isError(pidfd)) continue;
            @atomicStore(i32, &fork_pids.?[e.value], 0, .release);
            _ = linux.syscall4(.pidfd_send_signal, pidfd, linux.SIG.KILL, 0, 0);
            fork_slot_used[e.value] = false;
            e.* = .{ .owner = 0, .kind = .pidfd, .value = pidfd };
        }
        var alive: usize = 0;
        for (entries[0..high]) |*e| {
            if (e.owner != 0 or e.kind != .pidfd or e.reaped) continue;
            var info = std.mem.zeroes(linux.siginfo_t);
            const wexited = 4;
            const wnohang = 1;
            const wall = 0x40000000;
            const rc = linux.syscall5(.waitid, 3, @truncate(e.value), @intFromPtr(&info), wexited | wnohang | wall, 0); // 3 = P_PIDFD
            // An error (ECHILD: reaped already) leaves nothing to wait for either.
            if (isError(rc) or info.fields.common.first.piduid.pid != 0) e.reaped = true else alive += 1;
        }
        const since = nowNs() - last_end_ns;
        if (since < grace_ns or (alive > 0 and since < give_up_ns)) return;
        // The slots are free from now on; the fds stay open until closed
        // below, so no one else can be given their numbers meanwhile.
        for (entries[0..high]) |*e| {
            if (e.owner != 0 or e.kind == .free) continue;
            if (e.kind == .fork_slot) fork_slot_used[e.value] = false;
            done[count] = e.*;
            count += 1;
            e.* = .{};
        }
        trimHigh();
        leftovers -= count;
    }
    for (done[0..count]) |e| {
        switch (e.kind) {
            .stack => _ = linux.munmap(@ptrFromInt(e.value), lib.region_len),
            .fork_slot => {},
            else => _ = linux.syscall1(.close, @truncate(e.value)),
        }
    }
}
