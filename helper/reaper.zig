//! What pid 1 does under a `reaper` op, once the command is started:
//! forward signals to the command, reap whatever ends, and report the
//! command's start and end on the result pipe. Runs in helper/init.zig (a
//! process of its own memory) or, when that cannot be exec'd, in place.

const std = @import("std");
const linux = std.os.linux;
const sys = @import("sys.zig");
const program = @import("program.zig");

/// What pid 1 watches; passed on sbox-init's command line (init.zig), one
/// decimal number for each field, in the order they are declared here.
pub const Watch = struct {
    /// The result pipe to the caller.
    result_fd: i32,
    /// Read end of the close-on-exec pipe of the command: a failure record,
    /// or end-of-file once it exec'd.
    exec_fd: i32,
    /// The command's pid (inside the container).
    child: i32,
    /// Index of the reaper op, for the records.
    op_index: u32,
    /// The command started from this process's own small memory (a
    /// `drop_caller_memory` op succeeded), not from a copy of the caller's:
    /// its ru_maxrss is its own, and `max_rss` is reported.
    own_peak: bool,

    /// sbox-init's arguments after its name: one for each field.
    pub const argc = std.meta.fields(Watch).len;
    /// Room for one argument: the 10 digits of any u32, and the NUL.
    pub const arg_len = 11;
    /// sbox-init's argv as execve(2) takes it: its name, the `argc`
    /// arguments, and the null that ends it.
    pub const Argv = [argc + 2]?[*:0]const u8;

    /// The command line that hands this watch to sbox-init. The numbers are
    /// written into `text` (no allocation: the child has none), which the
    /// returned pointers point into: it must live until the execve.
    pub fn toArgv(watch: Watch, text: *[argc][arg_len]u8) Argv {
        var argv: Argv = @splat(null);
        argv[0] = "sbox-init";
        inline for (std.meta.fields(Watch), 0..) |field, i| {
            const value: u32 = switch (field.type) {
                i32 => value: {
                    // An fd or a pid: never negative.
                    std.debug.assert(@field(watch, field.name) >= 0);
                    break :value @intCast(@field(watch, field.name));
                },
                u32 => @field(watch, field.name),
                bool => @intFromBool(@field(watch, field.name)),
                else => @compileError("no argv encoding for Watch." ++ field.name),
            };
            const len = std.fmt.printInt(text[i][0 .. arg_len - 1], value, 10, .lower, .{});
            text[i][len] = 0;
            argv[i + 1] = text[i][0..len :0];
        }
        std.debug.assert(argv[argc + 1] == null);
        return argv;
    }

    /// The watch on sbox-init's command line (`args`, its name first), or
    /// null where it is not one that `toArgv` writes.
    pub fn fromArgv(args: []const [*:0]const u8) ?Watch {
        if (args.len != argc + 1) return null;
        var watch: Watch = undefined;
        inline for (std.meta.fields(Watch), 1..) |field, i| {
            const value = std.fmt.parseInt(u32, std.mem.span(args[i]), 10) catch return null;
            @field(watch, field.name) = switch (field.type) {
                i32 => std.math.cast(i32, value) orelse return null,
                u32 => value,
                bool => switch (value) {
                    0 => false,
                    1 => true,
                    else => return null,
                },
                else => @compileError("no argv decoding for Watch." ++ field.name),
            };
        }
        return watch;
    }
};

const isError = sys.isError;
const fdArg = sys.fdArg;

fn noopHandler(_: i32) callconv(.c) void {}

/// One record to the caller, from the reaper op.
fn report(watch: Watch, kind: program.RecordKind, value: i32) void {
    program.Record.write(watch.result_fd, kind, watch.op_index, .reaper, value);
}

/// CPU time of this process (CLOCK_PROCESS_CPUTIME_ID), in microseconds, at
/// most maxInt(i32); 0 if the clock cannot be read.
fn ownCpuUsec() i32 {
    var ts: linux.timespec = undefined;
    if (isError(linux.syscall2(.clock_gettime, @intFromEnum(linux.CLOCK.PROCESS_CPUTIME_ID), @intFromPtr(&ts)))) return 0;
    const usec = @as(i64, ts.sec) * std.time.us_per_s + @divTrunc(@as(i64, ts.nsec), std.time.ns_per_us);
    return @intCast(@min(usec, std.math.maxInt(i32)));
}

/// CLOCK_MONOTONIC in microseconds, its low 31 bits (a record's value is an
/// i32): it wraps every ~36 minutes, which the caller undoes with its own
/// coarser clock.
pub fn monotonicUsec() i32 {
    var ts: linux.timespec = undefined;
    if (isError(linux.syscall2(.clock_gettime, @intFromEnum(linux.CLOCK.MONOTONIC), @intFromPtr(&ts)))) return 0;
    const usec = @as(u64, @intCast(ts.sec)) * std.time.us_per_s + @as(u64, @intCast(ts.nsec)) / std.time.ns_per_us;
    return @intCast(usec & 0x7fffffff);
}

/// Sends a 64-bit figure as one record: the high half in `code`, the low
/// half in `value` (see `Record`).
fn report64(watch: Watch, kind: program.RecordKind, value: u64) void {
    program.Record.write64(watch.result_fd, kind, watch.op_index, value);
}

fn timevalUsec(tv: linux.timeval) u64 {
    return @as(u64, @intCast(@max(tv.sec, 0))) * std.time.us_per_s + @as(u64, @intCast(@max(tv.usec, 0)));
}

/// Reports what this process's reaped children used: called once the
/// command is reaped, so it covers the command, the orphans reaped before it
/// (pid 1 waits for every child, reapAll) and whatever each of them waited
/// for. Not pid 1's own setup, and not the processes still running, which
/// die with pid 1 unwaited. The peak only when the command started from
/// small memory (`Watch.own_peak`). Nothing if getrusage fails.
fn reportChildrenUsage(watch: Watch) void {
    var usage: linux.rusage = undefined;
    const children: isize = linux.rusage.CHILDREN;
    if (isError(linux.syscall2(.getrusage, @bitCast(children), @intFromPtr(&usage)))) return;
    if (watch.own_peak) report(watch, .max_rss, @intCast(std.math.clamp(usage.maxrss, 0, std.math.maxInt(i32))));
    report64(watch, .user_time, timevalUsec(usage.utime));
    report64(watch, .system_time, timevalUsec(usage.stime));
}

const exit = sys.exit;

/// Reaps every child that ended; reports and exits when the command did.
fn reapAll(watch: Watch) void {
    while (true) {
        var status: u32 = 0;
        const pid = reapOne(&status);
        if (isError(pid) or pid == 0) return;
        if (pid == @as(usize, @intCast(watch.child))) {
            const end = monotonicUsec();
            // The kernel hands back the command first where orphans have
            // ended too (it was pid 1's child first): theirs count in the
            // figures as well, so every process that has ended is reaped
            // before getrusage, not only those wait4 gave back earlier.
            var other: u32 = 0;
            while (true) {
                const ended = reapOne(&other);
                if (isError(ended) or ended == 0) break;
            }
            reportEnd(watch, end, status);
        }
    }
}

/// After the kill request's kill(-1): every other process of the container
/// is dying. Waits for each, the command's end among them, and then
/// reports as reapAll does. Only a process that is reaped reaches
/// getrusage's figures, and a child of the command whose parent died first
/// becomes ours: reporting at the command's end, as reapAll does, left out a
/// wrapper's child killed with it (a `sh -c` whose 100 MiB child was never
/// counted). SIGKILL ends them all at once; should one not end (a process
/// stuck in the kernel), the caller kills this process a second later.
fn reapAfterKill(watch: Watch) noreturn {
    var command_status: ?u32 = null;
    var command_end: i32 = 0;
    while (true) {
        var status: u32 = 0;
        const wall = 0x40000000;
        const pid = linux.syscall4(.wait4, @bitCast(@as(isize, -1)), @intFromPtr(&status), wall, 0);
        if (pid == @as(usize, @bitCast(-@as(isize, @intFromEnum(linux.E.INTR))))) continue;
        if (isError(pid)) break; // ECHILD: none is left
        if (pid == @as(usize, @intCast(watch.child))) {
            command_status = status;
            command_end = monotonicUsec();
        }
    }
    // The command is always among them: had it ended before, reapAll would
    // have reported it and exited.
    if (command_status) |status| reportEnd(watch, command_end, status);
    exit(0);
}

/// Reports the command's end (`end`: the clock when it was reaped), what
/// the reaped processes used, and its wait status, and exits.
fn reportEnd(watch: Watch, end: i32, status: u32) noreturn {
    report(watch, .exited_at, end);
    reportChildrenUsage(watch);
    report(watch, .exited, @bitCast(status));
    exit(0);
}

/// wait4(-1) for any child that has ended, without waiting: its pid, 0 for
/// none, or an error (ECHILD: no child at all).
fn reapOne(status: *u32) usize {
    const wnohang = 1;
    const wall = 0x40000000;
    return linux.syscall4(.wait4, @bitCast(@as(isize, -1)), @intFromPtr(status), wnohang | wall, 0);
}

/// Sends `signo` to the process group of `child` (its pgid is its pid), or to
/// `child` alone if it has left its group.
fn toGroup(child: i32, signo: u32) void {
    const group = -@as(isize, child);
    if (isError(linux.syscall2(.kill, @bitCast(group), signo))) _ = linux.syscall2(.kill, fdArg(child), signo);
}

/// The signal by which the caller asks pid 1 to kill the container's other
/// processes (InitProcess.killCommand): SIGRTMAX, queued with the kill token
/// as its value. Any other SIGRTMAX, from inside the container or not, is
/// forwarded to the command like any other signal.
pub const kill_request: u32 = 64;

/// 64 random bits that a kill request must carry, sent to the caller on the
/// result pipe and kept nowhere the container can read: this process's
/// memory (it is not dumpable, init.zig) and the pipe. The sender of a
/// signal cannot be told apart otherwise: si_pid 0 and the code SI_USER are
/// what any kill() has once the kernel dropped its details, which a command
/// brings about by using up pid 1's queue of pending signals (lowering its
/// RLIMIT_SIGPENDING, or queuing its own). Null when getrandom failed: then
/// no request is taken, and the caller kills pid 1 instead.
fn newKillToken() ?u64 {
    var token: u64 = 0;
    const n = linux.syscall3(.getrandom, @intFromPtr(&token), @sizeOf(u64), 0);
    return if (n == @sizeOf(u64)) token else null;
}

/// Whether a signalfd record is the caller's kill request: SIGRTMAX with
/// the code SI_QUEUE and the token as its value (ssi_ptr, offset 48).
fn isKillRequest(info: *const [128]u8, token: ?u64) bool {
    const expected = token orelse return false;
    const si_queue = -1;
    const code = std.mem.readInt(i32, info[8..12], .little);
    const value = std.mem.readInt(u64, info[48..56], .little);
    return code == si_queue and value == expected;
}

/// pid 1's life once the command is started, in four phases, each in turn:
/// catch every signal, wait for the command's exec, report its start, then
/// forward signals and reap until the command ends (reportEnd exits).
pub fn supervise(watch: Watch) noreturn {
    const sfd = catchAllSignals();
    const command_start = awaitCommandExec(watch);
    const kill_token = reportStart(watch, command_start);
    forwardSignals(watch, sfd, kill_token);
}

/// Takes every signal through a signalfd, which it returns; exits where
/// there can be none. First, before anything is reported: where there is
/// no signalfd, pid 1 ends while the caller still waits for `started`, and
/// the start fails ("pid 1 exited ... before the command started",
/// launch.ts) rather than give a container that no signal reaches.
fn catchAllSignals() usize {
    // A handler that is not SIG_DFL makes the kernel deliver signals to
    // pid 1 at all; every signal is blocked, so they queue for the signalfd.
    const sig_all: u64 = ~@as(u64, 0);
    _ = linux.syscall4(.rt_sigprocmask, linux.SIG.SETMASK, @intFromPtr(&sig_all), 0, 8);
    const sa_restorer = 0x04000000;
    const catching = sys.KSigaction{ .handler = @intFromPtr(&noopHandler), .flags = sa_restorer, .restorer = @intFromPtr(&noopHandler), .mask = sig_all };
    var sig: usize = 1;
    while (sig < linux.NSIG) : (sig += 1) {
        if (sig == linux.SIG.KILL or sig == linux.SIG.STOP) continue;
        _ = linux.syscall4(.rt_sigaction, sig, @intFromPtr(&catching), 0, 8);
    }
    const sfd = linux.syscall4(.signalfd4, @bitCast(@as(isize, -1)), @intFromPtr(&sig_all), 8, linux.SFD.CLOEXEC);
    if (isError(sfd)) exit(1);
    return sfd;
}

/// Waits for the command's execve: end-of-file on its exec pipe. Returns
/// the command's own clock reading just before it, if it sent one; passes a
/// failed step of the command on as if it were ours, and exits. Before the
/// start is reported: `started` means the command runs its program, and
/// until it has exec'd it shares this process's memory.
fn awaitCommandExec(watch: Watch) ?i32 {
    // The command's own reading rather than ours: this process shares the
    // container's CPU limit (cpu.max), and a command whose threads use up
    // the quota would keep us from reading the clock ourselves until the
    // next period: its start would look late.
    var command_start: ?i32 = null;
    var failure: program.Record = undefined;
    var got: usize = 0;
    while (true) {
        got = linux.syscall3(.read, fdArg(watch.exec_fd), @intFromPtr(&failure), @sizeOf(program.Record));
        if (got == @as(usize, @bitCast(-@as(isize, @intFromEnum(linux.E.INTR))))) continue;
        if (got == @sizeOf(program.Record) and failure.kind == .started_at) {
            command_start = failure.value;
            continue;
        }
        break;
    }
    _ = linux.syscall1(.close, fdArg(watch.exec_fd));
    if (got == @sizeOf(program.Record)) {
        // Pass the command's failure on as if it were ours, and end.
        failure.writeTo(watch.result_fd);
        exit(1);
    }
    return command_start;
}

/// Reports the command's start: the setup's CPU time, the clock at its
/// execve, the kill token, then `started`, which the caller waits for and
/// takes the others with. Returns the token. Right after the exec and
/// before any signal is forwarded or process reaped: the CPU time this
/// process has used by then is the setup's, not its supervision's; and the
/// caller can make no kill request before it has the token.
fn reportStart(watch: Watch, command_start: ?i32) ?u64 {
    // The setup's CPU time first (this process has done it all, its ended
    // network thread included: a process's CPU clock outlives execve), so
    // that the caller can tell it from the command's in the cgroup's figure.
    report(watch, .setup_cpu, ownCpuUsec());
    // When the command's execve was seen here, and (reapAll) when its end:
    // the caller's own clock sees both later, by as long as its event loop
    // takes to read them, which a loaded machine stretches.
    report(watch, .started_at, command_start orelse monotonicUsec());
    // Drawn once the command has exec'd: until then it shared this memory.
    const kill_token = newKillToken();
    if (kill_token) |token| report64(watch, .kill_token, token);
    report(watch, .started, watch.child);
    return kill_token;
}

/// Forwards each signal that reaches pid 1 to the command, reaps whatever
/// ends, and takes the caller's kill request, until the command's end is
/// reported (reapAll and reapAfterKill exit there). Last: the records of
/// the command's end must follow those of its start, which the caller reads
/// in order, and a kill request is checked against reportStart's token.
fn forwardSignals(watch: Watch, sfd: usize, kill_token: ?u64) noreturn {
    // The command may have ended before the handlers were in place (its
    // SIGCHLD then dropped): look before waiting.
    reapAll(watch);
    // Every reaper is its container's pid 1 (exec() has none). Should one
    // ever not be, the kill request must not become a kill(-1) of its own,
    // which would reach the whole container, not only its command.
    const is_namespace_init = linux.getpid() == 1;
    var info: [128]u8 align(8) = undefined;
    while (true) {
        const n = linux.syscall3(.read, sfd, @intFromPtr(&info), info.len);
        if (isError(n)) continue;
        const signo = std.mem.readInt(u32, info[0..4], .little);
        if (signo == linux.SIG.CHLD) {
            reapAll(watch);
        } else if (signo == linux.SIG.INT or signo == linux.SIG.QUIT or signo == linux.SIG.CONT or
            signo == linux.SIG.WINCH)
        {
            // A terminal's keys, `fg` or `bg` after a stop (below), and a
            // resized window: to the command's process group, as a terminal
            // and a shell send them (its pgid is its pid: it leads a session
            // or at least a group of its own), so that an interactive
            // shell's running child is interrupted, goes on, or redraws
            // (vi, less, top), with the shell. The command alone if it has
            // left its group.
            toGroup(watch.child, signo);
        } else if (signo == kill_request and is_namespace_init and isKillRequest(&info, kill_token)) {
            // InitProcess.killCommand: every process of the container but
            // this one dies, and the command's end is reported as any other
            // (reapAll), its figures (max_rss, times) with it, which a kill
            // of pid 1 itself would lose. kill(-1) from a pid namespace's
            // init reaches every other process of the namespace, nested ones
            // included; pid 1 is root in the container, or shares the
            // command's uid under keep-id maps, so none is out of its reach.
            _ = linux.syscall2(.kill, @bitCast(@as(isize, -1)), linux.SIG.KILL);
            reapAfterKill(watch);
        } else if (signo == linux.SIG.TSTP) {
            // The terminal's Ctrl-Z, which sbox passes on before it stops
            // itself: the whole group stops, a shell's running child with
            // it, as in a terminal. As SIGSTOP: the kernel discards the
            // default stop of SIGTSTP in an orphaned process group, and the
            // command's is one when it leads a session of its own (its
            // parent, pid 1, is outside it). A program that catches SIGTSTP
            // is stopped without being told.
            toGroup(watch.child, linux.SIG.STOP);
        } else {
            _ = linux.syscall2(.kill, fdArg(watch.child), signo);
        }
    }
}
