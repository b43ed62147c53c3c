//! Attacks for tests/escape_test.ts, run inside a container (and, as a
//! control, on the host). Each subcommand tries one thing with raw syscalls
//! and prints one line: "<attack> ok" when the kernel allowed it, or
//! "<attack> E<NAME>" with the errno that stopped it. Exit status 0 either
//! way: the test decides what the answer means. Static, no libc.
//!
//!   escape kill PID | ptrace-child | ptrace PID | mount-root | remount-root
//!   escape module | keyctl | bpf | perf | userns | clone-userns | clone3
//!   escape clone-parent | clone-kinds | fscrypt PATH
//!   escape tiocsti | tiocsti-high | io_uring | personality VALUE | vsock
//!   escape socket-filter | seccomp-stack
//!   escape connect PORT | fdbomb | chroot-breakout HOST_PATH | euid
//!   escape read PATH | write PATH | lease PATH | catch-exec ENVIRONMENT
//!   escape sigpending-pid1 (sets pid 1's RLIMIT_SIGPENDING to 0: a signal
//!     sent to it then arrives without its sender's details)
//!   escape swap DIR (on the host: exchanges DIR/a and DIR/b until killed)

const std = @import("std");
const linux = std.os.linux;

var out_buf: [512]u8 = undefined;

fn say(comptime fmt: []const u8, args: anytype) void {
    const line = std.fmt.bufPrint(&out_buf, fmt ++ "\n", args) catch unreachable;
    _ = linux.write(1, line.ptr, line.len);
}

fn errnoOf(rc: usize) ?linux.E {
    const signed: isize = @bitCast(rc);
    if (signed < 0 and signed > -4096) return @enumFromInt(-signed);
    return null;
}

/// Prints "<name> ok" or "<name> E<NAME>" for a raw syscall result.
fn report(name: []const u8, rc: usize) void {
    if (errnoOf(rc)) |e| say("{s} E{s}", .{ name, @tagName(e) }) else say("{s} ok", .{name});
}

fn number(arg: [*:0]const u8) u64 {
    const text = std.mem.span(arg);
    if (std.mem.startsWith(u8, text, "0x")) return std.fmt.parseInt(u64, text[2..], 16) catch unreachable;
    return std.fmt.parseInt(u64, text, 10) catch unreachable;
}

/// fork(), also on architectures without a fork syscall.
fn fork() usize {
    return linux.syscall5(.clone, linux.SIG.CHLD, 0, 0, 0, 0);
}

fn reapChild(pid: usize) void {
    var status: u32 = 0;
    _ = linux.syscall4(.wait4, pid, @intFromPtr(&status), 0, 0);
}

pub fn main() void {
    const argv = std.os.argv;
    if (argv.len < 2) {
        say("usage: escape ATTACK [ARG]", .{});
        linux.exit(2);
    }
    const attack = std.mem.span(argv[1]);
    const arg: [*:0]const u8 = if (argv.len > 2) argv[2] else "";

    if (eql(attack, "kill")) {
        report(attack, linux.kill(@intCast(number(arg)), 0));
    } else if (eql(attack, "sigpending-pid1")) {
        const none = [2]u64{ 0, 0 };
        const rlimit_sigpending = 11;
        report(attack, linux.syscall4(.prlimit64, 1, rlimit_sigpending, @intFromPtr(&none), 0));
    } else if (eql(attack, "ptrace")) {
        const pid = number(arg);
        const rc = linux.syscall4(.ptrace, 16, pid, 0, 0); // PTRACE_ATTACH
        report(attack, rc);
        if (errnoOf(rc) == null) _ = linux.syscall4(.ptrace, 17, pid, 0, 0); // PTRACE_DETACH
    } else if (eql(attack, "ptrace-child")) {
        // Tracing one's own child needs no privilege at all: only seccomp stops it.
        const pid = fork();
        if (pid == 0) {
            while (true) _ = linux.syscall0(.pause);
        }
        report(attack, linux.syscall4(.ptrace, 16, pid, 0, 0));
        _ = linux.kill(@intCast(pid), linux.SIG.KILL);
        reapChild(pid);
    } else if (eql(attack, "mount-root")) {
        report(attack, linux.syscall5(.mount, @intFromPtr("none"), @intFromPtr("/"), @intFromPtr("tmpfs"), 0, 0));
    } else if (eql(attack, "remount-root")) {
        const flags = linux.MS.REMOUNT | linux.MS.BIND | linux.MS.RDONLY;
        report(attack, linux.syscall5(.mount, 0, @intFromPtr("/"), 0, flags, 0));
    } else if (eql(attack, "module")) {
        const fd = linux.open("/bin/busybox", .{ .ACCMODE = .RDONLY }, 0);
        report("finit_module", linux.syscall3(.finit_module, fd, @intFromPtr(""), 0));
        var image = [_]u8{0} ** 64;
        report("init_module", linux.syscall3(.init_module, @intFromPtr(&image), image.len, @intFromPtr("")));
    } else if (eql(attack, "keyctl")) {
        const key_spec_session_keyring: usize = @bitCast(@as(isize, -3));
        report(attack, linux.syscall3(.keyctl, 0, key_spec_session_keyring, 1)); // KEYCTL_GET_KEYRING_ID, create
    } else if (eql(attack, "bpf")) {
        var attr = [_]u8{0} ** 128;
        std.mem.writeInt(u32, attr[0..4], 2, .little); // BPF_MAP_TYPE_ARRAY
        std.mem.writeInt(u32, attr[4..8], 4, .little); // key size
        std.mem.writeInt(u32, attr[8..12], 4, .little); // value size
        std.mem.writeInt(u32, attr[12..16], 1, .little); // max entries
        report(attack, linux.syscall3(.bpf, 0, @intFromPtr(&attr), attr.len)); // BPF_MAP_CREATE
    } else if (eql(attack, "perf")) {
        var attr = [_]u8{0} ** 128;
        std.mem.writeInt(u32, attr[0..4], 1, .little); // PERF_TYPE_SOFTWARE
        std.mem.writeInt(u32, attr[4..8], 128, .little); // size
        const cpu: usize = @bitCast(@as(isize, -1));
        report(attack, linux.syscall5(.perf_event_open, @intFromPtr(&attr), 0, cpu, cpu, 0));
    } else if (eql(attack, "userns")) {
        report(attack, linux.syscall1(.unshare, linux.CLONE.NEWUSER));
    } else if (eql(attack, "clone-userns")) {
        const pid = linux.syscall5(.clone, linux.CLONE.NEWUSER | linux.SIG.CHLD, 0, 0, 0, 0);
        if (pid == 0) linux.exit(0);
        report(attack, pid);
        if (errnoOf(pid) == null) reapChild(pid);
    } else if (eql(attack, "clone3")) {
        var args = [_]u64{0} ** 11;
        args[4] = linux.SIG.CHLD; // exit_signal
        const pid = linux.syscall2(.clone3, @intFromPtr(&args), @sizeOf(@TypeOf(args)));
        if (pid == 0) linux.exit(0);
        report(attack, pid);
        if (errnoOf(pid) == null) reapChild(pid);
    } else if (eql(attack, "clone-parent")) {
        // The new process would be a child of our parent: for a process
        // exec() started, of the Deno process, which knows nothing of it.
        const pid = linux.syscall5(.clone, linux.CLONE.PARENT, 0, 0, 0, 0);
        if (pid == 0) linux.exit(0);
        report(attack, pid);
    } else if (eql(attack, "clone-kinds")) {
        cloneKinds();
    } else if (eql(attack, "fscrypt")) {
        // fscrypt's key ioctls on any fd of the file system; zeroed
        // arguments. The kernel refuses them on a file system without
        // encryption with ENOTTY or EOPNOTSUPP, never EPERM.
        const fd = linux.open(arg, .{ .ACCMODE = .RDONLY }, 0);
        if (errnoOf(fd) != null) return report(attack, fd);
        var buf = [_]u8{0} ** 128;
        const requests = [_]struct { name: []const u8, request: u32 }{
            .{ .name = "add_key", .request = 0xc0506617 },
            .{ .name = "remove_key", .request = 0xc0406618 },
            .{ .name = "remove_key_all_users", .request = 0xc0406619 },
            .{ .name = "key_status", .request = 0xc080661a },
        };
        for (requests) |r| report(r.name, linux.syscall3(.ioctl, fd, r.request, @intFromPtr(&buf)));
    } else if (eql(attack, "tiocsti") or eql(attack, "tiocsti-high")) {
        // The request is an unsigned int: the kernel ignores the upper half
        // of the register, so a filter must too.
        const request: usize = if (eql(attack, "tiocsti")) 0x5412 else 0x1_0000_5412;
        const c: u8 = '#';
        report(attack, linux.syscall3(.ioctl, 0, request, @intFromPtr(&c)));
    } else if (eql(attack, "vsock")) {
        const af_vsock: usize = 40;
        const fd = linux.socket(af_vsock, linux.SOCK.STREAM, 0);
        report(attack, fd);
        if (errnoOf(fd) == null) _ = linux.close(@intCast(fd));
    } else if (eql(attack, "socket-filter")) {
        // One-instruction classic BPF programs ("ret 0xffff"), attached as a
        // socket's filter and as a SO_REUSEPORT group's: each would take JIT
        // memory from the machine-wide net.core.bpf_jit_limit.
        var insn = [_]u8{ 0x06, 0, 0, 0, 0xff, 0xff, 0, 0 };
        const Fprog = extern struct { len: u16, filter: usize };
        const prog = Fprog{ .len = 1, .filter = @intFromPtr(&insn) };
        const so_attach_filter: u32 = 26;
        const so_attach_reuseport_cbpf: u32 = 51;
        const unix_fd = linux.socket(linux.AF.UNIX, linux.SOCK.DGRAM, 0);
        if (errnoOf(unix_fd) != null) return report(attack, unix_fd);
        report("so_attach_filter", linux.setsockopt(@intCast(unix_fd), linux.SOL.SOCKET, so_attach_filter, @ptrCast(&prog), @sizeOf(Fprog)));
        const udp = linux.socket(linux.AF.INET, linux.SOCK.DGRAM, 0);
        if (errnoOf(udp) != null) return report(attack, udp);
        const one: u32 = 1;
        _ = linux.setsockopt(@intCast(udp), linux.SOL.SOCKET, linux.SO.REUSEPORT, @ptrCast(&one), 4);
        report("so_attach_reuseport_cbpf", linux.setsockopt(@intCast(udp), linux.SOL.SOCKET, so_attach_reuseport_cbpf, @ptrCast(&prog), @sizeOf(Fprog)));
    } else if (eql(attack, "seccomp-stack")) {
        // A filter of one's own on top of the container's ("ret ALLOW"), as
        // sandboxes (Chromium's, OpenSSH's, bubblewrap) install: allowed.
        var insn = [_]u8{ 0x06, 0, 0, 0, 0, 0, 0xff, 0x7f };
        const Fprog = extern struct { len: u16, filter: usize };
        const prog = Fprog{ .len = 1, .filter = @intFromPtr(&insn) };
        _ = linux.prctl(@intFromEnum(linux.PR.SET_NO_NEW_PRIVS), 1, 0, 0, 0);
        report(attack, linux.syscall3(.seccomp, 1, 0, @intFromPtr(&prog))); // SECCOMP_SET_MODE_FILTER
    } else if (eql(attack, "io_uring")) {
        var params = [_]u8{0} ** 120;
        report(attack, linux.syscall2(.io_uring_setup, 1, @intFromPtr(&params)));
    } else if (eql(attack, "personality")) {
        report(attack, linux.syscall1(.personality, number(arg)));
    } else if (eql(attack, "connect")) {
        const fd = linux.socket(linux.AF.INET, linux.SOCK.STREAM, 0);
        var addr = linux.sockaddr.in{ .port = std.mem.nativeToBig(u16, @intCast(number(arg))), .addr = std.mem.nativeToBig(u32, 0x7f000001) };
        report(attack, linux.connect(@intCast(fd), @ptrCast(&addr), @sizeOf(@TypeOf(addr))));
    } else if (eql(attack, "fdbomb")) {
        var count: usize = 0;
        while (count < 1_000_000) : (count += 1) {
            const fd = linux.open("/dev/null", .{ .ACCMODE = .RDONLY }, 0);
            if (errnoOf(fd)) |e| {
                say("{s} E{s} after {d}", .{ attack, @tagName(e), count });
                return;
            }
        }
        say("{s} ok after {d}", .{ attack, count });
    } else if (eql(attack, "chroot-breakout")) {
        // The classic: chroot into a subdirectory while keeping the working
        // directory outside it, walk up, chroot there. After pivot_root and
        // a detached old root there is nothing above "/" to reach.
        _ = linux.mkdir("/tmp/breakout", 0o700);
        var rc = linux.chroot("/tmp/breakout");
        if (errnoOf(rc) != null) return report(attack, rc);
        var i: usize = 0;
        while (i < 64) : (i += 1) _ = linux.chdir("..");
        rc = linux.chroot(".");
        if (errnoOf(rc) != null) return report(attack, rc);
        var st: linux.Stat = undefined;
        rc = linux.stat(arg, &st);
        if (errnoOf(rc)) |e| say("{s} host path E{s}", .{ attack, @tagName(e) }) else say("{s} host path visible", .{attack});
    } else if (eql(attack, "euid")) {
        say("euid {d}", .{linux.geteuid()});
    } else if (eql(attack, "read")) {
        const fd = linux.open(arg, .{ .ACCMODE = .RDONLY }, 0);
        if (errnoOf(fd) != null) return report(attack, fd);
        var buf: [4096]u8 = undefined;
        const n = linux.read(@intCast(fd), &buf, buf.len);
        if (errnoOf(n) != null) return report(attack, n);
        say("{s} ok {d} bytes", .{ attack, n });
    } else if (eql(attack, "lease")) {
        // A read lease (F_SETLEASE, F_RDLCK): the host's next opener of
        // PATH for writing waits until it is given up, or 45 s.
        const fd = linux.open(arg, .{ .ACCMODE = .RDONLY }, 0);
        if (errnoOf(fd) != null) return report(attack, fd);
        const f_setlease = 1024;
        const f_rdlck = 0;
        report(attack, linux.fcntl(@intCast(fd), f_setlease, f_rdlck));
    } else if (eql(attack, "write")) {
        const fd = linux.open(arg, .{ .ACCMODE = .WRONLY }, 0);
        if (errnoOf(fd) != null) return report(attack, fd);
        report(attack, linux.write(@intCast(fd), "1\n", 2));
    } else if (eql(attack, "catch-exec")) {
        catchExec(std.mem.span(arg));
    } else if (eql(attack, "swap")) {
        // A host user racing the setup: a directory and a link on the path of
        // a mount trade places all the time (renameat2 RENAME_EXCHANGE).
        const dir = linux.open(arg, .{ .ACCMODE = .RDONLY, .DIRECTORY = true }, 0);
        if (errnoOf(dir) != null) return report(attack, dir);
        const rename_exchange: usize = 2;
        while (true) {
            const rc = linux.syscall5(.renameat2, dir, @intFromPtr("a"), dir, @intFromPtr("b"), rename_exchange);
            if (errnoOf(rc) != null) return report(attack, rc);
        }
    } else {
        say("unknown attack {s}", .{attack});
        linux.exit(2);
    }
}

var clone_stack: [16384]u8 align(16) = undefined;

fn cloneChild(_: usize) callconv(.c) u8 {
    return 0;
}

/// The clones that programs make, which the filter must let through: a
/// thread (pthread_create's flags but CLONE_SETTLS), posix_spawn's
/// CLONE_VM | CLONE_VFORK, and fork. Prints "<kind> ok" or "<kind> E<NAME>".
fn cloneKinds() void {
    const C = linux.CLONE;
    const stack_top = @intFromPtr(&clone_stack) + clone_stack.len;
    var tid: i32 = 0;
    const thread_flags = C.VM | C.FS | C.FILES | C.SIGHAND | C.THREAD | C.SYSVSEM |
        C.PARENT_SETTID | C.CHILD_CLEARTID;
    const thread = linux.clone(cloneChild, stack_top, thread_flags, 0, &tid, 0, &tid);
    report("thread", thread);
    if (errnoOf(thread) == null) {
        // The kernel clears tid and wakes it when the thread has exited.
        const futex_wait = 0;
        while (true) {
            const value = @atomicLoad(i32, &tid, .acquire);
            if (value == 0) break;
            _ = linux.syscall4(.futex, @intFromPtr(&tid), futex_wait, @as(u32, @bitCast(value)), 0);
        }
    }
    const vfork = linux.clone(cloneChild, stack_top, C.VM | C.VFORK | linux.SIG.CHLD, 0, null, 0, null);
    report("vfork", vfork);
    if (errnoOf(vfork) == null) reapChild(vfork);
    const pid = fork();
    if (pid == 0) linux.exit(0);
    report("fork", pid);
    if (errnoOf(pid) == null) reapChild(pid);
}

fn eql(a: []const u8, b: []const u8) bool {
    return std.mem.eql(u8, a, b);
}

/// Waits for the next process of this pid namespace (one the host execs
/// into the container with the environment ARG alone) and reads its
/// /proc/PID/environ until that process has exec'd: while it sets up, a
/// copy of the host process's. Prints "catch-exec leaked" when it read
/// another environment than ARG, "catch-exec denied" when it was refused
/// until the exec (or the end), "catch-exec late" when the first read was
/// already the command's, "catch-exec missed" when it never saw the process.
/// Gives up 2 s after "ready".
fn catchExec(command_env: []const u8) void {
    var last: [16]u8 = undefined;
    const fd = linux.open("/proc/sys/kernel/ns_last_pid", .{ .ACCMODE = .RDONLY }, 0);
    const n = linux.read(@intCast(fd), &last, last.len);
    _ = linux.close(@intCast(fd));
    const next = (std.fmt.parseInt(u32, std.mem.trimRight(u8, last[0..n], "\n"), 10) catch unreachable) + 1;
    var path_buf: [32]u8 = undefined;
    const environ = std.fmt.bufPrintZ(&path_buf, "/proc/{d}/environ", .{next}) catch unreachable;
    const deadline = seconds() + 2;
    say("ready", .{});
    var seen = false;
    var denied = false;
    while (seconds() < deadline) {
        const opened = linux.open(environ, .{ .ACCMODE = .RDONLY }, 0);
        if (errnoOf(opened)) |e| {
            if (e == .NOENT) {
                if (seen) break; // gone
                continue; // not yet
            }
            seen = true;
            denied = true;
            continue;
        }
        seen = true;
        var buf: [4096]u8 = undefined;
        const len = linux.read(@intCast(opened), &buf, buf.len);
        _ = linux.close(@intCast(opened));
        if (errnoOf(len) != null or len == 0) continue; // no memory: exiting
        const text = std.mem.trimRight(u8, buf[0..len], "\x00");
        if (!std.mem.eql(u8, text, command_env)) return say("catch-exec leaked", .{});
        return say("catch-exec {s}", .{if (denied) "denied" else "late"});
    }
    say("catch-exec {s}", .{if (denied) "denied" else "missed"});
}

fn seconds() i64 {
    var now: linux.timespec = undefined;
    _ = linux.clock_gettime(.MONOTONIC, &now);
    return now.sec;
}
