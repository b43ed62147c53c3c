//! Builds the helper shared library (helper/lib.zig) that src/ffi.ts opens
//! with Deno.dlopen: `zig build` puts it at zig-out/lib/libsbox.so.
//! `zig build test` runs the unit tests of the program format.

const std = @import("std");

pub fn build(b: *std.Build) void {
    // A library that other machines load (a JSR package, a compiled
    // binary, the VM tier's guest, whose emulated CPU has no AVX): built for
    // the architecture's baseline CPU, not this machine's, by default.
    const target = b.standardTargetOptions(.{ .default_target = .{ .cpu_model = .baseline } });
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
        // Debug info triples the file that every sbox process dlopens.
        .strip = optimize != .Debug,
    });
    // pid 1 under a reaper (helper/init.zig): a small static program that the
    // library carries inside and execs from a memfd.
    const init = b.addExecutable(.{ .name = "sbox-init", .root_module = b.createModule(.{
        .root_source_file = b.path("helper/init.zig"),
        .target = target,
        .optimize = .ReleaseSmall,
        .link_libc = false,
        .single_threaded = true,
        .strip = true,
    }) });
    module.addAnonymousImport("sbox_init_elf", .{ .root_source_file = init.getEmittedBin() });
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
