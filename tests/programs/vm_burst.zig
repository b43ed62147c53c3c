//! For tests/vm_limits_test.ts, run in a container: THREADS threads busy for
//! BUSY_MS of wall-clock time from the start, then a sleep until TOTAL_MS
//! from the start, then "elapsed MS" on stdout and exit 0. A burst like this
//! uses up a `--cpus` quota right after the command's execve. Static, no libc.
//!
//!   vm_burst TOTAL_MS THREADS BUSY_MS

const std = @import("std");
const linux = std.os.linux;

fn nowNs() u64 {
    var ts: linux.timespec = undefined;
    _ = linux.clock_gettime(.MONOTONIC, &ts);
    return @as(u64, @intCast(ts.sec)) * std.time.ns_per_s + @as(u64, @intCast(ts.nsec));
}

fn spin(until_ns: u64) void {
    while (nowNs() < until_ns) std.mem.doNotOptimizeAway(nowNs());
}

pub fn main() !void {
    const start = nowNs();
    var args = std.process.args();
    _ = args.next();
    const total_ms = try std.fmt.parseInt(u64, args.next() orelse return error.Usage, 10);
    const threads = try std.fmt.parseInt(usize, args.next() orelse return error.Usage, 10);
    const busy_ms = try std.fmt.parseInt(u64, args.next() orelse return error.Usage, 10);
    const busy_until = start + busy_ms * std.time.ns_per_ms;
    var pool: [64]std.Thread = undefined;
    const n = @min(threads, pool.len);
    for (pool[0..n]) |*t| t.* = try std.Thread.spawn(.{}, spin, .{busy_until});
    for (pool[0..n]) |t| t.join();
    const end = start + total_ms * std.time.ns_per_ms;
    const now = nowNs();
    if (now < end) {
        const left = end - now;
        const ts = linux.timespec{ .sec = @intCast(left / std.time.ns_per_s), .nsec = @intCast(left % std.time.ns_per_s) };
        _ = linux.nanosleep(&ts, null);
    }
    var buf: [64]u8 = undefined;
    const line = try std.fmt.bufPrint(&buf, "elapsed {d}\n", .{(nowNs() - start) / std.time.ns_per_ms});
    _ = linux.write(1, line.ptr, line.len);
}
