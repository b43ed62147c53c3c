//! Unit tests of the program format: link() must accept what src/program.ts
//! writes and reject anything that would make the child read out of bounds.

const std = @import("std");
const program = @import("program.zig");

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
