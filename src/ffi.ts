/**
 * Opens the helper library (helper/, built by build.zig) with Deno.dlopen.
 * This is the only place that knows the library's symbols.
 *
 * @module
 */

import { SboxError } from "./error.ts";

const SYMBOLS = {
  sbox_abi_version: { parameters: [], result: "u32" },
  sbox_spawn: { parameters: ["buffer", "usize", "u64", "i32", "i32", "buffer"], result: "isize" },
  sbox_stack_free: { parameters: ["u64"], result: "isize" },
  sbox_open: { parameters: ["buffer", "u32", "u32"], result: "isize" },
  sbox_read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  sbox_write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  sbox_close: { parameters: ["i32"], result: "isize" },
  sbox_pipe2: { parameters: ["buffer", "u32"], result: "isize" },
  sbox_fcntl: { parameters: ["i32", "i32", "u64"], result: "isize" },
  sbox_mkdir: { parameters: ["buffer", "u32"], result: "isize" },
  sbox_rmdir: { parameters: ["buffer"], result: "isize" },
  sbox_unlink: { parameters: ["buffer"], result: "isize" },
  sbox_getdents64: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  sbox_readlink: { parameters: ["buffer", "buffer", "usize"], result: "isize" },
  sbox_stat: { parameters: ["buffer", "bool", "buffer"], result: "isize" },
  sbox_kill: { parameters: ["i32", "i32"], result: "isize" },
  sbox_pidfd_open: { parameters: ["i32"], result: "isize" },
  sbox_pidfd_send_signal: { parameters: ["i32", "i32"], result: "isize" },
  sbox_waitid: { parameters: ["i32", "u32", "buffer"], result: "isize" },
  sbox_getids: { parameters: ["buffer"], result: "void" },
  sbox_epoll_create: { parameters: [], result: "isize" },
  sbox_epoll_ctl: { parameters: ["i32", "i32", "i32", "u32", "u64"], result: "isize" },
  sbox_epoll_wait: { parameters: ["i32", "buffer", "u32", "i32"], result: "isize", nonblocking: true },
  sbox_eventfd: { parameters: [], result: "isize" },
} as const satisfies Deno.ForeignLibraryInterface;

/** The helper's exported functions. */
export type HelperSymbols = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

/** ABI of the program format this module writes: version, Op size, Record size. */
export const EXPECTED_ABI = (2 << 16) | (56 << 8) | 16;

const ARCH_DIRS: Record<string, string> = { x86_64: "x86_64-linux", aarch64: "aarch64-linux" };

/** Where the library may be, most specific first. */
function candidates(): string[] {
  const here = new URL(".", import.meta.url);
  const urls = [
    new URL(`../helper/dist/${ARCH_DIRS[Deno.build.arch] ?? Deno.build.arch}/libsbox.so`, here),
    new URL("../zig-out/lib/libsbox.so", here),
  ];
  // Not node:url's fileURLToPath: the first node: import costs ~10 ms of
  // start-up, which every `sbox run` would pay.
  return urls.filter((url) => url.protocol === "file:").map((url) => decodeURIComponent(url.pathname));
}

let library: Deno.DynamicLibrary<typeof SYMBOLS> | undefined;

/** The helper's symbols; opens the library on first use. */
export function helper(): HelperSymbols {
  if (library) return library.symbols;
  const errors: string[] = [];
  for (const path of candidates()) {
    try {
      library = Deno.dlopen(path, SYMBOLS);
      break;
    } catch (err) {
      if (err instanceof Deno.errors.NotCapable || err instanceof Deno.errors.PermissionDenied) {
        throw new SboxError("sbox needs --allow-ffi (and nothing else): run with `deno run --allow-ffi`", {
          step: "ffi",
          cause: err,
        });
      }
      errors.push(`${path}: ${(err as Error).message}`);
    }
  }
  if (!library) {
    throw new SboxError(
      `cannot open the sbox helper library (build it with \`zig build --release\`): ${errors.join("; ")}`,
      { step: "ffi" },
    );
  }
  const abi = library.symbols.sbox_abi_version();
  if (abi !== EXPECTED_ABI) {
    library.close();
    library = undefined;
    throw new SboxError(
      `the sbox helper library has ABI ${abi.toString(16)}, expected ${EXPECTED_ABI.toString(16)}`,
      {
        step: "ffi",
      },
    );
  }
  return library.symbols;
}
