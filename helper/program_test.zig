//! Unit tests of the program format: link() must accept what src/program.ts
//! writes and reject anything that would make the child read out of bounds.
//! And of what the child and pid 1 send back: the records of the result
//! pipe, and the watch that reaches sbox-init on its command line.

const std = @import("std");
const linux = std.os.linux;
const program = @import("program.zig");
const reaper = @import("reaper.zig");

fn buildExec(buf: []align(8) u8, file_off: u64) []u8 {
    @memset(buf, 0);
    const header: *program.Header = @ptrCast(buf.ptr);
    const ops_end = @sizeOf(program.Header) + @sizeOf(program.Op);
    const argv_off = ops_end;
    const str_off = argv_off + 16;
    header.* = .{ .magic = program.magic, .version = program.version, .op_count = 1, .byte_len = @intCast(str_off + 8) };
    const op: *program.Op = @ptrCast(@alignCast(buf.ptr + @sizeOf(program.Header)));
    op.* = .{ .code = .exec, .flags = 0, .args = .{ file_off, argv_off, argv_off + 8, 0, 0, 0 } };
    std.mem.writeInt(u64, buf[argv_off..][0..8], str_off, .little);
    @memcpy(buf[str_off..][0..5], "/bin\x00");
    return buf[0 .. str_off + 8];
}

test "link rewrites offsets into addresses" {
    var storage: [256]u8 align(8) = undefined;
    const ops_end = @sizeOf(program.Header) + @sizeOf(program.Op);
    const buf = buildExec(&storage, ops_end + 16);
    const ops = try program.link(buf);
    try std.testing.expectEqual(@as(usize, 1), ops.len);
    const file: [*:0]const u8 = @ptrFromInt(ops[0].args[0]);
    try std.testing.expectEqualStrings("/bin", std.mem.span(file));
    const argv: [*]const u64 = @ptrFromInt(ops[0].args[1]);
    try std.testing.expectEqual(ops[0].args[0], argv[0]);
    try std.testing.expectEqual(@as(u64, 0), argv[1]);
}

test "link rejects offsets outside the data area" {
    var storage: [256]u8 align(8) = undefined;
    try std.testing.expectError(error.BadOffset, program.link(buildExec(&storage, 4)));
    try std.testing.expectError(error.BadOffset, program.link(buildExec(&storage, 4000)));
}

test "link rejects a bad header and a program that does not end in exec" {
    var storage: [256]u8 align(8) = undefined;
    const ops_end = @sizeOf(program.Header) + @sizeOf(program.Op);
    var buf = buildExec(&storage, ops_end + 16);
    buf[0] ^= 1;
    try std.testing.expectError(error.BadHeader, program.link(buf));
    buf = buildExec(&storage, ops_end + 16);
    const op: *program.Op = @ptrCast(@alignCast(buf.ptr + @sizeOf(program.Header)));
    op.code = .chdir;
    try std.testing.expectError(error.NoExec, program.link(buf));
}

test "link checks a seccomp filter's bounds" {
    var storage: [512]u8 align(8) = undefined;
    @memset(&storage, 0);
    const header: *program.Header = @ptrCast(&storage);
    const ops_end = @sizeOf(program.Header) + 2 * @sizeOf(program.Op);
    const filter_off = ops_end;
    const argv_off = filter_off + 16;
    const str_off = argv_off + 16;
    const len = str_off + 8;
    header.* = .{ .magic = program.magic, .version = program.version, .op_count = 2, .byte_len = len };
    const ops: *[2]program.Op = @ptrCast(@alignCast(storage[@sizeOf(program.Header)..].ptr));
    ops[0] = .{ .code = .seccomp, .flags = 0, .args = .{ 2, filter_off, 0, 0, 0, 0 } };
    ops[1] = .{ .code = .exec, .flags = 0, .args = .{ str_off, argv_off, argv_off + 8, 0, 0, 0 } };
    std.mem.writeInt(u64, storage[argv_off..][0..8], str_off, .little);
    @memcpy(storage[str_off..][0..5], "/bin\x00");
    var copy: [512]u8 align(8) = storage;
    const linked = try program.link(copy[0..len]);
    try std.testing.expectEqual(@intFromPtr(&copy) + filter_off, linked[0].args[1]);

    copy = storage;
    const too_long: *[2]program.Op = @ptrCast(@alignCast(copy[@sizeOf(program.Header)..].ptr));
    too_long[0].args[0] = 64; // runs past the end of the buffer
    try std.testing.expectError(error.BadArray, program.link(copy[0..len]));
    copy = storage;
    const misaligned: *[2]program.Op = @ptrCast(@alignCast(copy[@sizeOf(program.Header)..].ptr));
    misaligned[0].args[1] = filter_off + 4;
    try std.testing.expectError(error.BadArray, program.link(copy[0..len]));
}

test "link: a mount's args[5] is a path with mount_host_atime alone, checked as one" {
    var storage: [512]u8 align(8) = undefined;
    // A mount op (its string args all 0: none given) and then exec; "/bin" is
    // the one string, at str_off.
    const buf = buildOps(&storage, &.{.mount});
    const ops_end = @sizeOf(program.Header) + 2 * @sizeOf(program.Op);
    const str_off = ops_end + 16;
    const mount: *program.Op = @ptrCast(@alignCast(buf.ptr + @sizeOf(program.Header)));
    mount.args[5] = str_off;
    var copy: [512]u8 align(8) = storage;
    // Without the flag, a number (mount_host_source's kind), left as it is.
    try std.testing.expectEqual(@as(u64, str_off), (try program.link(copy[0..buf.len]))[0].args[5]);
    mount.flags = program.mount_host_atime;
    copy = storage;
    const linked = try program.link(copy[0..buf.len]);
    try std.testing.expectEqualStrings("/bin", std.mem.span(@as([*:0]const u8, @ptrFromInt(linked[0].args[5]))));
    mount.args[5] = 4000;
    copy = storage;
    try std.testing.expectError(error.BadOffset, program.link(copy[0..buf.len]));
    // With mount_host_source, args[5] is a file kind: not both.
    mount.args[5] = str_off;
    mount.flags = program.mount_host_atime | program.mount_host_source;
    copy = storage;
    try std.testing.expectError(error.BadOp, program.link(copy[0..buf.len]));
}

/// A program of `codes` (ops without arguments) and then exec.
fn buildOps(storage: []align(8) u8, codes: []const program.Code) []u8 {
    @memset(storage, 0);
    const count = codes.len + 1;
    const ops_end = @sizeOf(program.Header) + count * @sizeOf(program.Op);
    const argv_off = ops_end;
    const str_off = argv_off + 16;
    const len = str_off + 8;
    const header: *program.Header = @ptrCast(storage.ptr);
    header.* = .{ .magic = program.magic, .version = program.version, .op_count = @intCast(count), .byte_len = @intCast(len) };
    const ops: [*]program.Op = @ptrCast(@alignCast(storage.ptr + @sizeOf(program.Header)));
    for (codes, 0..) |code, i| ops[i] = .{ .code = code, .flags = 0, .args = .{ 0, 0, 0, 0, 0, 0 } };
    ops[codes.len] = .{ .code = .exec, .flags = 0, .args = .{ str_off, argv_off, argv_off + 8, 0, 0, 0 } };
    std.mem.writeInt(u64, storage[argv_off..][0..8], str_off, .little);
    @memcpy(storage[str_off..][0..5], "/bin\x00");
    return storage[0..len];
}

test "link: a network thread is joined before any op that uses its stack or gives up privilege, and made once" {
    var storage: [1024]u8 align(8) = undefined;
    _ = try program.link(buildOps(&storage, &.{ .net_spawn, .mkdir, .net_join, .reaper }));
    _ = try program.link(buildOps(&storage, &.{.net_join})); // nothing to join: fine
    const bad = [_][]const program.Code{
        &.{.net_spawn}, // exec while it runs
        &.{ .net_spawn, .reaper },
        &.{ .net_spawn, .fork },
        &.{ .net_spawn, .setuid },
        &.{ .net_spawn, .capset },
        &.{ .net_spawn, .seccomp },
        &.{ .net_spawn, .net_join, .net_spawn, .net_join },
    };
    for (bad) |codes| try std.testing.expectError(error.BadOp, program.link(buildOps(&storage, codes)));
}

test "link: at most one fork op, as sbox_spawn reserves one fork slot" {
    var storage: [1024]u8 align(8) = undefined;
    _ = try program.link(buildOps(&storage, &.{.fork}));
    try std.testing.expectError(error.BadOp, program.link(buildOps(&storage, &.{ .fork, .fork })));
}

test {
    _ = @import("own_mounts.zig");
}

/// Lays out in `storage` a program of `first` then an exec of "/bin";
/// returns its length.
fn programEndingInExec(storage: *align(8) [512]u8, first: []const program.Op) usize {
    @memset(storage, 0);
    const op_count: u32 = @intCast(first.len + 1);
    const ops_end = @sizeOf(program.Header) + op_count * @sizeOf(program.Op);
    const argv_off = ops_end;
    const str_off = argv_off + 16;
    const header: *program.Header = @ptrCast(storage);
    header.* = .{ .magic = program.magic, .version = program.version, .op_count = op_count, .byte_len = str_off + 8 };
    const ops: [*]program.Op = @ptrCast(@alignCast(storage[@sizeOf(program.Header)..].ptr));
    @memcpy(ops[0..first.len], first);
    ops[first.len] = .{ .code = .exec, .flags = 0, .args = .{ str_off, argv_off, argv_off + 8, 0, 0, 0 } };
    std.mem.writeInt(u64, storage[argv_off..][0..8], str_off, .little);
    @memcpy(storage[str_off..][0..5], "/bin\x00");
    return str_off + 8;
}

test "link refuses a fork op after drop_caller_memory, whose pid slot would be unmapped" {
    const fork = program.Op{ .code = .fork, .flags = 0, .args = .{ 0, 0, 0, 0, 0, 0 } };
    const drop = program.Op{ .code = .drop_caller_memory, .flags = 0, .args = .{ 0, 0, 0, 0, 0, 0 } };
    var storage: [512]u8 align(8) = undefined;
    var len = programEndingInExec(&storage, &.{ fork, drop });
    _ = try program.link(storage[0..len]);
    len = programEndingInExec(&storage, &.{ drop, fork });
    try std.testing.expectError(error.BadOp, program.link(storage[0..len]));
}

/// The records written on a new pipe by `writeAll`, read back.
fn recordsThroughPipe(comptime n: usize, writeAll: fn (fd: i32) void) ![n]program.Record {
    var fds: [2]i32 = undefined;
    try std.testing.expectEqual(@as(usize, 0), linux.pipe2(&fds, .{ .CLOEXEC = true }));
    defer _ = linux.close(fds[0]);
    writeAll(fds[1]);
    _ = linux.close(fds[1]);
    var records: [n]program.Record = undefined;
    const bytes = std.mem.asBytes(&records);
    try std.testing.expectEqual(bytes.len, linux.read(fds[0], bytes.ptr, bytes.len));
    var more: [1]u8 = undefined;
    try std.testing.expectEqual(@as(usize, 0), linux.read(fds[0], &more, 1)); // nothing else
    return records;
}

test "Record.write, write64 and writeTo: 16 bytes each, a 64-bit figure's high half in code" {
    const records = try recordsThroughPipe(3, struct {
        fn writeAll(fd: i32) void {
            program.Record.write(fd, .failed, 7, .mount, 13);
            program.Record.write64(fd, .user_time, 3, 0x1234_5678_9abc_def0);
            const passed_on = program.Record{ .kind = .exited, .op_index = 2, .code = 21, .value = -1 };
            passed_on.writeTo(fd);
        }
    }.writeAll);
    try std.testing.expectEqual(program.Record{ .kind = .failed, .op_index = 7, .code = @intFromEnum(program.Code.mount), .value = 13 }, records[0]);
    try std.testing.expectEqual(program.RecordKind.user_time, records[1].kind);
    try std.testing.expectEqual(@as(u32, 3), records[1].op_index);
    try std.testing.expectEqual(@as(u32, 0x1234_5678), records[1].code);
    try std.testing.expectEqual(@as(u32, 0x9abc_def0), @as(u32, @bitCast(records[1].value)));
    try std.testing.expectEqual(program.Record{ .kind = .exited, .op_index = 2, .code = 21, .value = -1 }, records[2]);
}

/// `argv` as sbox-init's main sees it (std.os.argv): up to the null.
fn argvSlice(argv: *const reaper.Watch.Argv) []const [*:0]const u8 {
    const args: [*]const [*:0]const u8 = @ptrCast(argv);
    return args[0 .. argv.len - 1];
}

test "Watch.fromArgv reads back what Watch.toArgv writes, the largest numbers too" {
    const watches = [_]reaper.Watch{
        .{ .result_fd = 3, .exec_fd = 4, .child = 2, .op_index = 17, .own_peak = true },
        .{ .result_fd = 0, .exec_fd = 1, .child = 1, .op_index = 0, .own_peak = false },
        .{ .result_fd = std.math.maxInt(i32), .exec_fd = std.math.maxInt(i32), .child = std.math.maxInt(i32), .op_index = std.math.maxInt(u32), .own_peak = true },
    };
    for (watches) |watch| {
        var text: [reaper.Watch.argc][reaper.Watch.arg_len]u8 = undefined;
        const argv = watch.toArgv(&text);
        try std.testing.expectEqual(@as(?[*:0]const u8, null), argv[argv.len - 1]);
        try std.testing.expectEqualStrings("sbox-init", std.mem.span(argv[0].?));
        try std.testing.expectEqual(watch, reaper.Watch.fromArgv(argvSlice(&argv)).?);
    }
    var text: [reaper.Watch.argc][reaper.Watch.arg_len]u8 = undefined;
    const argv = watches[0].toArgv(&text);
    const expected = [_][]const u8{ "3", "4", "2", "17", "1" }; // sbox-init's usage line, in order
    for (expected, argv[1 .. argv.len - 1]) |want, arg| try std.testing.expectEqualStrings(want, std.mem.span(arg.?));
}

test "Watch.fromArgv refuses a command line that toArgv does not write" {
    const bad = [_][]const [*:0]const u8{
        &.{ "sbox-init", "3", "4", "2", "17" }, // one short
        &.{ "sbox-init", "3", "4", "2", "17", "1", "0" }, // one more
        &.{ "sbox-init", "3", "4", "2", "17", "2" }, // own_peak is 0 or 1
        &.{ "sbox-init", "2147483648", "4", "2", "17", "1" }, // an fd past i32
        &.{ "sbox-init", "-1", "4", "2", "17", "1" },
        &.{ "sbox-init", "3", "4", "", "17", "1" },
        &.{ "sbox-init", "3", "4", "2", "4294967296", "1" },
    };
    for (bad) |args| try std.testing.expectEqual(@as(?reaper.Watch, null), reaper.Watch.fromArgv(args));
}
