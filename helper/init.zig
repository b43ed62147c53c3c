//! sbox-init: pid 1 of a container started with a reaper. A static program
//! of its own, embedded in the helper library and exec'd from a memfd by the
//! `reaper` op (child.zig), so that pid 1, which lives as long as the
//! container, holds none of the caller's memory.
//!
//!   sbox-init RESULT_FD EXEC_FD COMMAND_PID OP_INDEX OWN_PEAK

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
    const args = std.os.argv;
    if (args.len != 6) return 2;
    var values: [5]u32 = undefined;
    for (args[1..6], 0..) |arg, i| {
        values[i] = std.fmt.parseInt(u32, std.mem.span(arg), 10) catch return 2;
    }
    reaper.supervise(.{
        .result_fd = @intCast(values[0]),
        .exec_fd = @intCast(values[1]),
        .child = @intCast(values[2]),
        .op_index = values[3],
        .own_peak = values[4] != 0,
    });
}
