//! Builds the helper shared library (helper/lib.zig) that src/ffi.ts opens
//! with Deno.dlopen: `zig build` puts it at zig-out/lib/libsbox.so.
//! `zig build test` runs the unit tests of the program format.

const std = @import("std");

pub fn build(b: *std.Build) void {
    const target = b.standardTargetOptions(.{});
    const optimize = b.standardOptimizeOption(.{ .preferred_optimize_mode = .ReleaseSafe });

    const module = b.createModule(.{
        .root_source_file = b.path("helper/lib.zig"),
        .target = target,
        .optimize = optimize,
        .link_libc = false,
        .pic = true,
        // The child runs on a small stack it shares with nobody else; keep
        // frames plain so that nothing reaches for thread-local state.
        .omit_frame_pointer = false,
        .stack_protector = false,
    });
    const lib = b.addLibrary(.{ .linkage = .dynamic, .name = "sbox", .root_module = module });
    b.installArtifact(lib);

    const tests = b.addTest(.{ .root_module = b.createModule(.{
        .root_source_file = b.path("helper/program_test.zig"),
        .target = target,
        .optimize = optimize,
    }) });
    const run_tests = b.addRunArtifact(tests);
    b.step("test", "Run the helper's unit tests").dependOn(&run_tests.step);
}
