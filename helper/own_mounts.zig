//! Which paths in the container's root lie in file systems the setup
//! program mounted itself. The child walks a path in the root for symbolic
//! links before an op uses it (child.zig, `InRoot.resolve`), except where this
//! record says the path lies in an own mount: a new tmpfs, proc or sysfs, or
//! a bind of a path in one, holds only what the kernel and the program put
//! there. A bind of a host path or an overlay of an image is not own.
//!
//! Paths are relative to the working directory (the container's root), as
//! the program's ops give them. Fixed capacity, no allocation: a record that
//! is full forgets all it holds, and so trusts less, never more.

const std = @import("std");

pub const OwnMounts = struct {
    pub const capacity = 64;

    /// Mount targets without "./", pointing into the program buffer.
    targets: [capacity][]const u8 = undefined,
    own: [capacity]bool = undefined,
    len: usize = 0,

    /// Whether `path` lies in an own mount: the deepest recorded mount at or
    /// above it is own. A path under no recorded mount lies in the image.
    pub fn contains(self: *const OwnMounts, path: []const u8) bool {
        const at = plain(path);
        var deepest: usize = 0;
        var own = false;
        for (self.targets[0..self.len], self.own[0..self.len]) |target, target_own| {
            if (target.len + 1 > deepest and covers(target, at)) {
                deepest = target.len + 1;
                own = target_own;
            }
        }
        return own;
    }

    /// Records a mount (not a remount) at `target`. It hides the mounts
    /// recorded at or below its target, which are dropped.
    pub fn record(self: *OwnMounts, target: []const u8, own: bool) void {
        const at = plain(target);
        var kept: usize = 0;
        for (0..self.len) |i| {
            if (covers(at, self.targets[i])) continue;
            self.targets[kept] = self.targets[i];
            self.own[kept] = self.own[i];
            kept += 1;
        }
        self.len = kept;
        // Full: forget the older ones. The new mount is the top one at its
        // target, so trusting it alone is still right.
        if (self.len == capacity) self.forget();
        self.targets[self.len] = at;
        self.own[self.len] = own;
        self.len += 1;
    }

    /// Forgets every mount: after a chdir or a mount on an absolute path,
    /// relative paths lead somewhere else.
    pub fn forget(self: *OwnMounts) void {
        self.len = 0;
    }
};

/// Whether a mount at `target` covers `path`: it is the path or one of its parents.
fn covers(target: []const u8, path: []const u8) bool {
    if (!std.mem.startsWith(u8, path, target)) return false;
    return path.len == target.len or path[target.len] == '/';
}

/// `path` without leading "./".
pub fn plain(path: []const u8) []const u8 {
    var rest = path;
    while (std.mem.startsWith(u8, rest, "./")) rest = rest[2..];
    return rest;
}

test "own mounts: new file systems and binds of their paths are own; host binds and overlays are not" {
    var m = OwnMounts{};
    try std.testing.expect(!m.contains("./dev/null")); // the image
    m.record("./dev", true); // a tmpfs
    try std.testing.expect(m.contains("./dev/null"));
    try std.testing.expect(m.contains("./dev"));
    try std.testing.expect(!m.contains("./devices/x")); // not below ./dev
    m.record("./dev/null", false); // a bind of the host's /dev/null
    try std.testing.expect(!m.contains("./dev/null/x"));
    try std.testing.expect(m.contains("./dev/zero"));
    // A host directory bound into an own tmpfs shows the host's files.
    m.record("./data", true);
    m.record("./data/in", false);
    try std.testing.expect(!m.contains("./data/in/x"));
    try std.testing.expect(m.contains("./data/other"));
    // An overlay on an own tmpfs shows its image, and hides what was below.
    m.record("./opt", true);
    m.record("./opt/upper", true);
    m.record("./opt", false);
    try std.testing.expect(!m.contains("./opt/upper"));
    try std.testing.expect(!m.contains("./opt/x"));
    // A new tmpfs over a host bind is own again.
    m.record("./data/in", true);
    try std.testing.expect(m.contains("./data/in/x"));
    m.forget();
    try std.testing.expect(!m.contains("./dev/zero"));
}

test "own mounts: a full record forgets the older mounts and keeps the newest" {
    var names: [OwnMounts.capacity + 1][8]u8 = undefined;
    var m = OwnMounts{};
    for (&names, 0..) |*name, i| {
        const text = std.fmt.bufPrint(name, "m{d}", .{i}) catch unreachable;
        m.record(text, true);
        if (i < OwnMounts.capacity - 1) try std.testing.expect(m.contains(text));
    }
    try std.testing.expect(!m.contains("m0/x"));
    try std.testing.expectEqual(1, m.len);
    try std.testing.expect(m.contains("m64/x"));
}
