/**
 * The C library's blocking calls, for Deno's blocking-pool threads.
 *
 * A nonblocking FFI call runs on a pool thread while the event loop goes
 * on. Deno unloads a library with the Worker that opened it, even while such
 * a call is still running in it: the call would then return into unmapped
 * code. libc stays loaded for the life of the process (Deno itself links
 * it), so the calls that may outlive a Worker go through libc. Without
 * libc.so.6 (a musl system) this is `null` and callers fall back.
 *
 * @module
 */

const SYMBOLS = {
  close: { parameters: ["i32"], result: "i32", nonblocking: true },
  epoll_wait: { parameters: ["i32", "buffer", "i32", "i32"], result: "i32", nonblocking: true },
} as const satisfies Deno.ForeignLibraryInterface;

/** libc's functions used here; they return -1 on failure (errno is not read). */
export type Libc = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

let libc: Libc | null | undefined;

/** libc, opened on first use, or `null` when it cannot be opened. */
export function blockingLibc(): Libc | null {
  if (libc === undefined) {
    try {
      libc = Deno.dlopen("libc.so.6", SYMBOLS).symbols;
    } catch {
      libc = null;
    }
  }
  return libc;
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
    // Its own handle: only Workers pay for the call stub, and a handle
    // that is never closed costs nothing.
    const { symbols } = Deno.dlopen(
      "libc.so.6",
      {
        dlopen: { parameters: ["buffer", "i32"], result: "pointer" },
      } as const,
    );
    const cpath = new TextEncoder().encode(path + "\0");
    return symbols.dlopen(cpath, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE) !== null;
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
