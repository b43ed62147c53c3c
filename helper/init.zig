//! sbox-init: pid 1 of a container started with a reaper. A static program
//! of its own, embedded in the helper library and exec'd from a memfd by the
//! `reaper` op (child.zig), so that pid 1, which lives as long as the
//! container, holds none of the caller's memory.
//!
//!   sbox-init RESULT_FD EXEC_FD COMMAND_PID OP_INDEX OWN_PEAK
//!
//! as reaper.zig's `Watch.toArgv` writes it and `Watch.fromArgv` reads it.

const std = @import("std");
const linux = std.os.linux;
const reaper = @import("reaper.zig");

pub fn main() u8 {
    // Non-dumpable: no process of the container without CAP_SYS_PTRACE may
    // read or write this process's memory or open its fds. That capability
    // in the container's user namespace (where this program was exec'd)
    // would do: a container given SYS_PTRACE can rewrite what this process
    // reports (docs/security.md).
    const pr_set_dumpable = 4;
    _ = linux.syscall2(.prctl, pr_set_dumpable, 0);
    const watch = reaper.Watch.fromArgv(std.os.argv) orelse return 2;
    reaper.supervise(watch);
}
