/**
 * The C library, for what the helper library has no call for: every use of
 * libc.so.6 through FFI is named here, in groups of symbols. A group is
 * opened on its first use ({@linkcode openLibc}) and then kept: each
 * Deno.dlopen builds a call stub per symbol, so a command pays only for
 * the groups it uses, once. libc stays loaded for the life of the process
 * (Deno itself links it): no handle of it needs closing. Without libc.so.6
 * (a musl system) a group cannot be opened, and each caller says what it
 * does then.
 *
 * The blocking calls are for Deno's blocking-pool threads. A nonblocking
 * FFI call runs on a pool thread while the event loop goes on. Deno
 * unloads a library with the Worker that opened it, even while such a call
 * is still running in it: the call would then return into unmapped code.
 * libc is never unloaded, so the calls that may outlive a Worker go
 * through libc ({@linkcode blockingLibc}).
 *
 * @module
 */

/** The groups of libc's symbols, by their user. */
const GROUPS = {
  /** Calls that may outlive a Worker (reactor.ts's epoll_wait, teardown.ts's closes): see the module. */
  blocking: {
    close: { parameters: ["i32"], result: "i32", nonblocking: true },
    epoll_wait: { parameters: ["i32", "buffer", "i32", "i32"], result: "i32", nonblocking: true },
  },
  /** {@linkcode pinLibrary}'s dlopen (glibc 2.34 or later has it in libc.so.6). */
  dlopen: {
    dlopen: { parameters: ["buffer", "i32"], result: "pointer" },
  },
  /** ffi.ts: whether a helper library that failed to load is there after all. */
  access: {
    access: { parameters: ["buffer", "i32"], result: "i32" },
  },
  /**
   * embedded_helper.ts: the private cache file of the embedded helper
   * library, written before the helper (and its file calls) can load.
   */
  cacheFiles: {
    getenv: { parameters: ["buffer"], result: "pointer" },
    geteuid: { parameters: [], result: "u32" },
    __errno_location: { parameters: [], result: "pointer" },
    mkdir: { parameters: ["buffer", "u32"], result: "i32" },
    // openat's mode is variadic in C; the x86_64 and aarch64 Linux ABIs pass it as a plain argument.
    openat: { parameters: ["i32", "buffer", "i32", "u32"], result: "i32" },
    // statx rather than fstat: one struct layout on every architecture (glibc 2.28).
    statx: { parameters: ["i32", "buffer", "i32", "u32", "buffer"], result: "i32" },
    read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
    write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
    fsync: { parameters: ["i32"], result: "i32" },
    close: { parameters: ["i32"], result: "i32" },
    readlink: { parameters: ["buffer", "buffer", "usize"], result: "isize" },
    linkat: { parameters: ["i32", "buffer", "i32", "buffer", "i32"], result: "i32" },
    renameat: { parameters: ["i32", "buffer", "i32", "buffer"], result: "i32" },
    unlinkat: { parameters: ["i32", "buffer", "i32"], result: "i32" },
    utimensat: { parameters: ["i32", "buffer", "pointer", "i32"], result: "i32" },
    opendir: { parameters: ["buffer"], result: "pointer" },
    readdir: { parameters: ["pointer"], result: "pointer" },
    closedir: { parameters: ["pointer"], result: "i32" },
  },
  /** unix_socket.ts: one request on a UNIX stream socket (slirp4netns's API socket). */
  socket: {
    socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
    connect: { parameters: ["i32", "buffer", "u32"], result: "i32" },
    __errno_location: { parameters: [], result: "pointer" },
  },
  /** cli/fifo.ts: whether a writer holds a `--stdin` FIFO open. */
  fifo: {
    tee: { parameters: ["i32", "i32", "usize", "u32"], result: "isize" },
  },
  /** cli/signal_actions.ts: signal actions past Deno's signal registry, and dying of a signal. */
  signal: {
    signal: { parameters: ["i32", "pointer"], result: "pointer" },
    sigaction: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
    raise: { parameters: ["i32"], result: "i32" },
    setrlimit: { parameters: ["i32", "buffer"], result: "i32" },
  },
  /** cli/terminal.ts: the caller's terminal, saved and put back. */
  terminal: {
    tcgetattr: { parameters: ["i32", "buffer"], result: "i32" },
    tcsetattr: { parameters: ["i32", "i32", "buffer"], result: "i32" },
    tcgetpgrp: { parameters: ["i32"], result: "i32" },
    getpgrp: { parameters: [], result: "i32" },
    tcflow: { parameters: ["i32", "i32"], result: "i32" },
    pthread_sigmask: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
    // Variadic in C; the third argument passes as a fixed one on x86-64 and aarch64 Linux.
    ioctl: { parameters: ["i32", "u64", "buffer"], result: "i32" },
  },
} as const satisfies Record<string, Deno.ForeignLibraryInterface>;

/** A group of libc's symbols: see {@linkcode openLibc}. */
export type LibcGroup = keyof typeof GROUPS;

/** The functions of libc group `G`, as Deno.dlopen gives them. */
export type LibcSymbols<G extends LibcGroup> = Deno.DynamicLibrary<(typeof GROUPS)[G]>["symbols"];

/** The groups opened so far, in this isolate (a Worker opens its own). */
const opened: { [G in LibcGroup]?: LibcSymbols<G> } = {};

/**
 * The functions of libc group `group`, libc.so.6 opened for them on the
 * group's first use; throws where it cannot be opened (a musl system).
 *
 * @example Whether a path exists, by libc's access(2)
 * ```ts
 * import { openLibc } from "./libc.ts";
 *
 * const exists = openLibc("access").access(new TextEncoder().encode("/etc\0"), 0) === 0; // F_OK
 * ```
 */
export function openLibc<G extends LibcGroup>(group: G): LibcSymbols<G> {
  // The cast: TypeScript does not follow G through the index of a mapped type.
  return (opened[group] ??= Deno.dlopen("libc.so.6", GROUPS[group]).symbols as never) as LibcSymbols<G>;
}

/** libc's functions for pool threads; they return -1 on failure (errno is not read). */
export type Libc = LibcSymbols<"blocking">;

/** Whether the blocking group failed to open: it is not tried again. */
let noBlockingLibc = false;

/** libc's blocking calls, opened on first use, or `null` when libc cannot be opened (callers fall back). */
export function blockingLibc(): Libc | null {
  if (noBlockingLibc) return null;
  try {
    return openLibc("blocking");
  } catch {
    noBlockingLibc = true;
    return null;
  }
}

/**
 * Makes the library at `path`, already opened by Deno.dlopen, stay loaded
 * for the life of the process (dlopen with RTLD_NOLOAD | RTLD_NODELETE): no
 * Worker's end unloads it then. Returns whether that worked (it needs glibc
 * 2.34 or later, whose libc.so.6 has dlopen).
 */
export function pinLibrary(path: string): boolean {
  const RTLD_NOW = 2, RTLD_NOLOAD = 4, RTLD_NODELETE = 0x1000;
  try {
    // A group of its own: only Workers pay for its call stub.
    const cpath = new TextEncoder().encode(path + "\0");
    return openLibc("dlopen").dlopen(cpath, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE) !== null;
  } catch {
    return false;
  }
}

/**
 * Size of struct epoll_event and the offset of its data field: packed on
 * x86_64 (12 bytes), naturally aligned elsewhere (16).
 */
export const EPOLL_EVENT: { size: number; dataOffset: number } = Deno.build.arch === "x86_64"
  ? { size: 12, dataOffset: 4 }
  : { size: 16, dataOffset: 8 };
