//! clone3 with a child entry point. std.os.linux has no clone3 wrapper, and a
//! child that gets its own stack cannot return into the caller's frame, so the
//! child side is a few instructions of assembly per architecture that call
//! `entry(arg)` on the new stack and exit with its result.

const std = @import("std");
const builtin = @import("builtin");

/// struct clone_args from <linux/sched.h> (version 2, 88 bytes).
pub const CloneArgs = extern struct {
    flags: u64 = 0,
    pidfd: u64 = 0,
    child_tid: u64 = 0,
    parent_tid: u64 = 0,
    exit_signal: u64 = 0,
    stack: u64 = 0,
    stack_size: u64 = 0,
    tls: u64 = 0,
    set_tid: u64 = 0,
    set_tid_size: u64 = 0,
    cgroup: u64 = 0,
};

comptime {
    std.debug.assert(@sizeOf(CloneArgs) == 88);
}

pub const Entry = *const fn (arg: usize) callconv(.c) u8;

/// A thread of the calling process: it shares everything a thread shares,
/// and the kernel writes its tid to the word given as `parent_tid` and
/// `child_tid` before it runs, then clears that word and wakes a futex
/// waiter on it when the thread exits (the pthread_join protocol; see
/// `joinThread`).
pub const thread_flags: u64 = blk: {
    const C = std.os.linux.CLONE;
    break :blk C.VM | C.FS | C.FILES | C.SIGHAND | C.THREAD | C.SYSVSEM | C.PARENT_SETTID | C.CHILD_CLEARTID;
};

/// Waits until the thread started with `thread_flags` and `word` as its tid
/// word has exited: the kernel has cleared the word.
pub fn joinThread(word: *i32) void {
    const futex_wait: usize = 0; // shared, as the kernel's wake at thread exit
    while (true) {
        const tid = @atomicLoad(i32, word, .acquire);
        if (tid == 0) return;
        _ = std.os.linux.syscall4(.futex, @intFromPtr(word), futex_wait, @as(u32, @bitCast(tid)), 0);
    }
}

/// Returns the child's pid (or a negative errno as usize) in the parent; the
/// child runs `entry(arg)` and exits with its return value. With a stack in
/// `args`, the child starts on it; without one (no CLONE_VM) it runs on its
/// copy of the caller's stack.
pub fn clone3(args: *const CloneArgs, entry: Entry, arg: usize) usize {
    return trampoline(args, @sizeOf(CloneArgs), entry, arg);
}

extern fn sbox_clone3_trampoline(args: *const CloneArgs, size: usize, entry: Entry, arg: usize) usize;
const trampoline = sbox_clone3_trampoline;

// Registers: the syscall clobbers only rax, rcx, r11 (x86_64) and x0 (aarch64),
// so the entry and its argument survive it in r8/r9 (x9/x10). The child
// aligns its stack, clears the frame pointer so that unwinders stop there,
// calls the entry and exits with its result (the exit syscall, not exit_group:
// with CLONE_VM the address space is shared with the caller).
comptime {
    switch (builtin.cpu.arch) {
        .x86_64 => asm (
            \\.text
            \\.global sbox_clone3_trampoline
            \\.hidden sbox_clone3_trampoline
            \\.type sbox_clone3_trampoline, @function
            \\sbox_clone3_trampoline:
            \\  movq %rdx, %r8
            \\  movq %rcx, %r9
            \\  movl $435, %eax
            \\  syscall
            \\  testq %rax, %rax
            \\  jz 1f
            \\  retq
            \\1:
            \\  xorl %ebp, %ebp
            \\  andq $-16, %rsp
            \\  movq %r9, %rdi
            \\  callq *%r8
            \\  movzbl %al, %edi
            \\  movl $60, %eax
            \\  syscall
            \\  ud2
            \\.size sbox_clone3_trampoline, .-sbox_clone3_trampoline
        ),
        .aarch64 => asm (
            \\.text
            \\.global sbox_clone3_trampoline
            \\.hidden sbox_clone3_trampoline
            \\.type sbox_clone3_trampoline, %function
            \\sbox_clone3_trampoline:
            \\  mov x9, x2
            \\  mov x10, x3
            \\  mov x8, #435
            \\  svc #0
            \\  cbz x0, 1f
            \\  ret
            \\1:
            \\  mov x29, xzr
            \\  mov x30, xzr
            \\  mov x0, x10
            \\  blr x9
            \\  and x0, x0, #0xff
            \\  mov x8, #93
            \\  svc #0
            \\  brk #0
            \\.size sbox_clone3_trampoline, .-sbox_clone3_trampoline
        ),
        else => @compileError("sbox helper supports x86_64 and aarch64"),
    }
}
