//! The raw-syscall helpers every file of the helper uses: reading an errno
//! out of a return value, passing an fd, ending the process, the kernel's
//! sigaction. A leaf module, so that init.zig (a program of its own) shares
//! it with the library.

const std = @import("std");
const linux = std.os.linux;

/// AT_FDCWD as a syscall argument.
pub const at_fdcwd: usize = @bitCast(@as(isize, linux.AT.FDCWD));

/// getpriority/setpriority's `which` for one process: with who 0, the calling thread.
pub const prio_process: usize = 0;
/// ioprio_get/ioprio_set's `which` for one process: with who 0, the calling thread.
pub const ioprio_who_process: usize = 1;

/// The errno of a raw syscall's return value, or null when it succeeded.
pub fn errnoOf(rc: usize) ?u16 {
    const signed: isize = @bitCast(rc);
    if (signed < 0 and signed > -4096) return @intCast(-signed);
    return null;
}

/// Whether a raw syscall's return value is an error.
pub fn isError(rc: usize) bool {
    return errnoOf(rc) != null;
}

/// An fd as a syscall argument (sign-extended: -1 stays -1).
pub fn fdArg(fd: i32) usize {
    return @bitCast(@as(isize, fd));
}

/// The kernel's struct sigaction as rt_sigaction(2) takes it on x86_64 and
/// aarch64 (not libc's, whose mask is 128 bytes): the mask is 64 bits, the
/// `sigsetsize` (8) of every call here.
pub const KSigaction = extern struct { handler: usize, flags: c_ulong, restorer: usize, mask: u64 };

comptime {
    std.debug.assert(@sizeOf(KSigaction) == 32);
}

/// exit_group(status): every thread of the process ends.
pub fn exit(status: u8) noreturn {
    _ = linux.syscall1(.exit_group, status);
    unreachable;
}
