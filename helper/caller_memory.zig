//! `drop_caller_memory` (program.zig): a process that holds a copy of the
//! caller's memory (sbox_spawn without CLONE_VM) unmaps all of it that the
//! setup does not use, then resets its peak resident set.
//!
//! Why: the kernel counts, in a process's ru_maxrss, the resident set of
//! the memory it had before its execve (fs/exec.c, exec_mmap). A reaper's
//! command is cloned from pid 1 and shares its memory until its execve: a
//! copy of the caller (Deno, tens of MiB) would be in the command's figure,
//! and in every figure that includes it (wait4, getrusage RUSAGE_CHILDREN).
//! Dropped first, that memory is a few hundred KiB: the helper library's
//! pages the setup touched, the program and the stacks.
//!
//! Raw syscalls only, no allocation, as everywhere in the child.

const std = @import("std");
const builtin = @import("builtin");
const linux = std.os.linux;
const sys = @import("sys.zig");

const errnoOf = sys.errnoOf;
const at_fdcwd = sys.at_fdcwd;

/// The unit that kept ranges are widened to and gaps narrowed to: every page
/// size the architecture may have (aarch64 kernels use 4, 16 or 64 KiB), so
/// that munmap never sees an unaligned address.
const unit: usize = switch (builtin.cpu.arch) {
    .x86_64 => 4096,
    .aarch64 => 64 * 1024,
    else => @compileError("sbox helper supports x86_64 and aarch64"),
};

/// An address range `[start, end)`.
const Range = [2]usize;

/// The first and last byte of the helper library itself, its code, data and
/// the sbox-init program it carries: symbols the linker defines.
extern const __ehdr_start: u8;
extern const _end: u8;

/// `[start, end)` widened outward to `unit`.
fn widen(start: usize, end: usize) Range {
    return .{ std.mem.alignBackward(usize, start, unit), std.mem.alignForward(usize, end, unit) };
}

/// Unmaps everything but the helper library, `[program, program_end)` (the
/// setup program: its ops, strings and arrays), `[stack, stack_end)` (the
/// stacks and Context) and the thread's TLS block, then resets the peak
/// resident set. Returns whether both were done: only then do this
/// process's children start from a small peak. Nothing is done where the
/// calling thread has a shadow stack (its pages are not known here, and a
/// return would fault without them).
pub fn drop(program: usize, program_end: usize, stack: usize, stack_end: usize) bool {
    if (shadowStackOn()) return false;
    // The thread's TLS block holds its rseq area, which the kernel writes
    // on every preemption of a process that inherited the registration
    // (clone without CLONE_VM keeps it): unmapped, that write would kill
    // this process with SIGSEGV. Its struct pthread lies within a page or
    // two of the thread pointer (after it on x86_64, before it on aarch64).
    const tp = threadPointer();
    var keep = [4]Range{
        widen(@intFromPtr(&__ehdr_start), @intFromPtr(&_end)),
        widen(program, program_end),
        widen(stack, stack_end),
        widen(tp -| 2 * 4096, tp + 3 * 4096),
    };
    std.mem.sort(Range, &keep, {}, startsBefore);
    var from: usize = 0;
    var unmapped = true;
    for (keep) |range| {
        if (range[0] > from) unmapped = unmap(from, range[0]) and unmapped;
        from = @max(from, range[1]);
    }
    unmapped = unmapTop(from) and unmapped;
    return unmapped and resetPeak();
}

fn startsBefore(_: void, a: Range, b: Range) bool {
    return a[0] < b[0];
}

fn unmap(start: usize, end: usize) bool {
    return errnoOf(linux.syscall2(.munmap, start, end - start)) == null;
}

/// Unmaps from `from` to the top of the address space, which depends on the
/// kernel's configuration (39 to 56 bits): munmap refuses a range past it
/// (EINVAL) without unmapping anything, so try the largest first.
fn unmapTop(from: usize) bool {
    for ([_]u6{ 56, 52, 48, 47, 42, 39 }) |bits| {
        const top = (@as(usize, 1) << bits) - unit;
        if (top <= from) continue;
        const rc = linux.syscall2(.munmap, from, top - from);
        if (errnoOf(rc) == null) return true;
        if (errnoOf(rc) != @intFromEnum(linux.E.INVAL)) return false;
    }
    return false;
}

/// Sets the peak resident set of this process's memory (VmHWM, what an
/// execve passes on as ru_maxrss) to what is resident now.
fn resetPeak() bool {
    const flags: u32 = @bitCast(linux.O{ .ACCMODE = .WRONLY, .CLOEXEC = true });
    const fd = linux.syscall3(.openat, at_fdcwd, @intFromPtr("/proc/self/clear_refs"), flags);
    if (errnoOf(fd) != null) return false;
    defer _ = linux.syscall1(.close, fd);
    const clear_refs_mm_hiwater_rss = "5";
    return linux.syscall3(.write, fd, @intFromPtr(clear_refs_mm_hiwater_rss), 1) == 1;
}

fn threadPointer() usize {
    switch (builtin.cpu.arch) {
        .x86_64 => {
            var fs: usize = 0;
            const arch_get_fs = 0x1003;
            _ = linux.syscall2(.arch_prctl, arch_get_fs, @intFromPtr(&fs));
            return fs;
        },
        .aarch64 => return asm volatile ("mrs %[tp], tpidr_el0"
            : [tp] "=r" (-> usize),
        ),
        else => @compileError("sbox helper supports x86_64 and aarch64"),
    }
}

/// Whether the calling thread runs with a shadow stack (x86 CET, arm64 GCS).
fn shadowStackOn() bool {
    switch (builtin.cpu.arch) {
        .x86_64 => {
            var features: u64 = 0;
            const arch_shstk_status = 0x5005;
            const rc = linux.syscall2(.arch_prctl, arch_shstk_status, @intFromPtr(&features));
            return errnoOf(rc) == null and features & 1 != 0;
        },
        .aarch64 => {
            var status: u64 = 0;
            const pr_get_shadow_stack_status = 74;
            const rc = linux.syscall5(.prctl, pr_get_shadow_stack_status, @intFromPtr(&status), 0, 0, 0);
            return errnoOf(rc) == null and status & 1 != 0;
        },
        else => @compileError("sbox helper supports x86_64 and aarch64"),
    }
}
