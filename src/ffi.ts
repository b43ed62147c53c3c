/**
 * Opens the helper library (helper/, built by build.zig) with Deno.dlopen.
 * This is the only place that knows the library's symbols.
 *
 * @module
 */

import { errnoNumber } from "./errno.ts";
import { SboxError } from "./error.ts";
import { openLibc, pinLibrary } from "./libc.ts";
import { OP_BYTES, PROGRAM_VERSION } from "./program.ts";

/**
 * The library's exports. Deno builds a call stub for each symbol it opens
 * (~0.3 ms each, paid by every `sbox run`), so everything but the
 * nonblocking epoll_wait goes through one, `sbox_call`, by number (`CALL`).
 */
const SYMBOLS = {
  sbox_abi_version: { parameters: [], result: "u32" },
  sbox_call: { parameters: ["u32", "u64", "u64", "u64", "u64", "u64", "u64"], result: "isize" },
  sbox_epoll_wait: { parameters: ["i32", "buffer", "u32", "i32"], result: "isize", nonblocking: true },
} as const satisfies Deno.ForeignLibraryInterface;

/** Numbers of `sbox_call`: `Call` in helper/lib.zig's, which tests/program_test.ts keeps equal. */
const CALL = {
  spawn: 1,
  stack_free: 2,
  open: 3,
  read: 4,
  write: 5,
  close: 6,
  pipe2: 7,
  fcntl: 8,
  mkdir: 9,
  rmdir: 10,
  unlink: 11,
  getdents64: 12,
  readlink: 13,
  stat: 14,
  kill: 15,
  pidfd_open: 16,
  // 17 was pidfd_send_signal without flags (see Call in helper/lib.zig).
  waitid: 18,
  getids: 19,
  epoll_create: 20,
  epoll_ctl: 21,
  eventfd: 22,
  flock: 23,
  waitpid: 24,
  track: 25,
  forget: 26,
  open_tree: 27,
  mount_setattr: 28,
  fstat: 29,
  fchown: 30,
  fchmod: 31,
  monotonic_usec: 32,
  pidfd_send_signal: 33,
  pidfd_queue_signal: 34,
  sched_state: 35,
  faccessat2: 36,
  unlinkat: 37,
  mount_id: 38,
} as const;

type Word = number | bigint;
type Buffer = Uint8Array<ArrayBuffer>;

/** The helper's calls, each returning the raw result: >= 0, or a negative errno. */
export interface HelperSymbols {
  sbox_spawn(prog: Buffer, len: Word, flags: bigint, cgroupFd: number, resultFd: number, out: Buffer): Word;
  sbox_stack_free(stack: bigint): Word;
  sbox_open(path: Buffer, flags: number, mode: number): Word;
  sbox_read(fd: number, buf: Buffer, len: Word): Word;
  sbox_write(fd: number, buf: Buffer, len: Word): Word;
  sbox_close(fd: number): Word;
  sbox_pipe2(fds: Buffer, flags: number): Word;
  sbox_fcntl(fd: number, cmd: number, arg: Word): Word;
  sbox_mkdir(path: Buffer, mode: number): Word;
  sbox_rmdir(path: Buffer): Word;
  sbox_unlink(path: Buffer): Word;
  sbox_getdents64(fd: number, buf: Buffer, len: Word): Word;
  sbox_readlink(path: Buffer, buf: Buffer, len: Word): Word;
  sbox_stat(path: Buffer, follow: boolean, out: Buffer): Word;
  sbox_kill(pid: number, signal: number): Word;
  sbox_pidfd_open(pid: number): Word;
  sbox_pidfd_send_signal(pidfd: number, signal: number, flags: number): Word;
  sbox_pidfd_queue_signal(pidfd: number, signal: number, value: bigint): Word;
  sbox_waitid(pidfd: number, options: number, out: Buffer): Word;
  sbox_waitpid(pid: number, options: number, out: Buffer): Word;
  sbox_getids(out: Buffer): void;
  sbox_epoll_create(): Word;
  sbox_epoll_ctl(epfd: number, op: number, fd: number, events: number, data: bigint): Word;
  sbox_eventfd(): Word;
  sbox_flock(fd: number, operation: number): Word;
  /** Records what this isolate's thread creates from now on (helper/janitor.zig). */
  sbox_track(): Word;
  /** Forgets an fd about to be closed by other means than sbox_close (libc's). */
  sbox_forget(fd: number): Word;
  sbox_open_tree(dirfd: number, path: Buffer, flags: number): Word;
  sbox_mount_setattr(dirfd: number, path: Buffer, atFlags: number, attrSet: number): Word;
  sbox_fstat(fd: number, out: Buffer): Word;
  sbox_fchown(fd: number, uid: number, gid: number): Word;
  sbox_fchmod(fd: number, mode: number): Word;
  /** CLOCK_MONOTONIC in microseconds, its low 31 bits, as a reaper's records have it. */
  sbox_monotonic_usec(): Word;
  /**
   * The calling thread's getpriority, sched_getscheduler and ioprio_get, raw
   * (a negative errno where one failed), as three i64 into `out`.
   */
  sbox_sched_state(out: Buffer): void;
  /** faccessat2(AT_FDCWD, path, mode, AT_EACCESS): 0 or a negative errno. */
  sbox_faccessat2(path: Buffer, mode: number): Word;
  /** unlinkat(dirfd, name, flags): 0 or a negative errno. */
  sbox_unlinkat(dirfd: number, name: Buffer, flags: number): Word;
  /** The id of the mount that fd `fd` lies on (statx's stx_mnt_id), or a negative errno. */
  sbox_mount_id(fd: number): Word;
  /** Nonblocking: runs on a pool thread. */
  sbox_epoll_wait(epfd: number, out: Buffer, max: number, timeoutMs: number): Promise<Word>;
}

/** A buffer's address, as a word for `sbox_call`. */
function address(buffer: Buffer): Word {
  return Deno.UnsafePointer.value(Deno.UnsafePointer.of(buffer));
}

/** An i32 as a word: the helper reads the low half (`int` in lib.zig). */
function i32(n: number): number {
  return n >>> 0;
}

function calls(lib: Deno.DynamicLibrary<typeof SYMBOLS>["symbols"]): HelperSymbols {
  // Deno takes a number or a bigint for a u64 argument; its types say bigint
  // only, and a BigInt per argument would cost an allocation each.
  const call = lib.sbox_call as unknown as (
    call: number,
    a: Word,
    b: Word,
    c: Word,
    d: Word,
    e: Word,
    f: Word,
  ) => Word;
  return {
    sbox_spawn: (prog, len, flags, cgroupFd, resultFd, out) =>
      call(CALL.spawn, address(prog), len, flags, i32(cgroupFd), i32(resultFd), address(out)),
    sbox_stack_free: (stack) => call(CALL.stack_free, stack, 0, 0, 0, 0, 0),
    sbox_open: (path, flags, mode) => call(CALL.open, address(path), flags, mode, 0, 0, 0),
    sbox_read: (fd, buf, len) => call(CALL.read, i32(fd), address(buf), len, 0, 0, 0),
    sbox_write: (fd, buf, len) => call(CALL.write, i32(fd), address(buf), len, 0, 0, 0),
    sbox_close: (fd) => call(CALL.close, i32(fd), 0, 0, 0, 0, 0),
    sbox_pipe2: (fds, flags) => call(CALL.pipe2, address(fds), flags, 0, 0, 0, 0),
    sbox_fcntl: (fd, cmd, arg) => call(CALL.fcntl, i32(fd), i32(cmd), arg, 0, 0, 0),
    sbox_mkdir: (path, mode) => call(CALL.mkdir, address(path), mode, 0, 0, 0, 0),
    sbox_rmdir: (path) => call(CALL.rmdir, address(path), 0, 0, 0, 0, 0),
    sbox_unlink: (path) => call(CALL.unlink, address(path), 0, 0, 0, 0, 0),
    sbox_getdents64: (fd, buf, len) => call(CALL.getdents64, i32(fd), address(buf), len, 0, 0, 0),
    sbox_readlink: (path, buf, len) => call(CALL.readlink, address(path), address(buf), len, 0, 0, 0),
    sbox_stat: (path, follow, out) => call(CALL.stat, address(path), follow ? 1 : 0, address(out), 0, 0, 0),
    sbox_kill: (pid, signal) => call(CALL.kill, i32(pid), i32(signal), 0, 0, 0, 0),
    sbox_pidfd_open: (pid) => call(CALL.pidfd_open, i32(pid), 0, 0, 0, 0, 0),
    sbox_pidfd_send_signal: (pidfd, signal, flags) =>
      call(CALL.pidfd_send_signal, i32(pidfd), i32(signal), flags, 0, 0, 0),
    sbox_pidfd_queue_signal: (pidfd, signal, value) =>
      call(CALL.pidfd_queue_signal, i32(pidfd), i32(signal), value, 0, 0, 0),
    sbox_waitid: (pidfd, options, out) => call(CALL.waitid, i32(pidfd), options, address(out), 0, 0, 0),
    sbox_waitpid: (pid, options, out) => call(CALL.waitpid, i32(pid), options, address(out), 0, 0, 0),
    sbox_getids: (out) => void call(CALL.getids, address(out), 0, 0, 0, 0, 0),
    sbox_epoll_create: () => call(CALL.epoll_create, 0, 0, 0, 0, 0, 0),
    sbox_epoll_ctl: (epfd, op, fd, events, data) =>
      call(CALL.epoll_ctl, i32(epfd), i32(op), i32(fd), events, data, 0),
    sbox_eventfd: () => call(CALL.eventfd, 0, 0, 0, 0, 0, 0),
    sbox_flock: (fd, operation) => call(CALL.flock, i32(fd), i32(operation), 0, 0, 0, 0),
    sbox_track: () => call(CALL.track, 0, 0, 0, 0, 0, 0),
    sbox_forget: (fd) => call(CALL.forget, i32(fd), 0, 0, 0, 0, 0),
    sbox_open_tree: (dirfd, path, flags) => call(CALL.open_tree, i32(dirfd), address(path), flags, 0, 0, 0),
    sbox_mount_setattr: (dirfd, path, atFlags, attrSet) =>
      call(CALL.mount_setattr, i32(dirfd), address(path), atFlags, attrSet, 0, 0),
    sbox_fstat: (fd, out) => call(CALL.fstat, i32(fd), address(out), 0, 0, 0, 0),
    sbox_fchown: (fd, uid, gid) => call(CALL.fchown, i32(fd), uid, gid, 0, 0, 0),
    sbox_fchmod: (fd, mode) => call(CALL.fchmod, i32(fd), mode, 0, 0, 0, 0),
    sbox_monotonic_usec: () => call(CALL.monotonic_usec, 0, 0, 0, 0, 0, 0),
    sbox_sched_state: (out) => void call(CALL.sched_state, address(out), 0, 0, 0, 0, 0),
    sbox_faccessat2: (path, mode) => call(CALL.faccessat2, address(path), mode, 0, 0, 0, 0),
    sbox_unlinkat: (dirfd, name, flags) => call(CALL.unlinkat, i32(dirfd), address(name), flags, 0, 0, 0),
    sbox_mount_id: (fd) => call(CALL.mount_id, i32(fd), 0, 0, 0, 0, 0),
    sbox_epoll_wait: (epfd, out, max, timeoutMs) => lib.sbox_epoll_wait(epfd, out, max, timeoutMs),
  };
}

/**
 * ABI this module expects of the library: the highest `sbox_call` number,
 * the program format version, Op size and Record size.
 */
const EXPECTED_ABI: number =
  ((Math.max(...Object.values(CALL)) << 24) | (PROGRAM_VERSION << 16) | (OP_BYTES << 8) | 16) >>> 0;

/** Where a local build of the library may be: none for modules that are not local files. */
function localCandidates(): string[] {
  // A local build first: it is what a checkout runs, and newer than a
  // packaged copy. A miss costs a failed dlopen (~1 ms).
  const url = new URL("../zig-out/lib/libsbox.so", import.meta.url);
  // Not node:url's fileURLToPath: the first node: import costs ~10 ms of
  // start-up, which every `sbox run` would pay.
  return url.protocol === "file:" ? [decodeURIComponent(url.pathname)] : [];
}

/**
 * glibc reports a library built for another architecture as "No such file
 * or directory": say so when the file is there after all. Asked of libc
 * itself, as the helper is what failed to load; only on this failure path.
 */
function otherArchitecture(path: string): string {
  try {
    const exists = openLibc("access").access(new TextEncoder().encode(`${path}\0`), 0) === 0;
    return exists
      ? ` (the file is there: built for another architecture? this machine is ${Deno.build.arch})`
      : "";
  } catch {
    return "";
  }
}

/**
 * What sbox needs of Deno. Not `--allow-ffi=PATH`: under a list of paths
 * Deno refuses the C library, which sbox opens by its name (libc.so.6), and
 * every pointer to a buffer, which each helper call passes.
 */
const NEEDS_FFI =
  "sbox needs --allow-ffi without a list of paths, and nothing else: run with `deno run --allow-ffi`";

/** What to do when no library could be opened, for a copy of sbox loaded from `moduleUrl`. */
function remedy(moduleUrl: string): string {
  if (embedded.state === "failed") return embedded.reason;
  if (embedded.state === "cached") {
    return `its embedded copy, written to ${embedded.path}, does not load (a file system mounted noexec? ` +
      "set XDG_CACHE_HOME to a directory on another)";
  }
  const build = "which builds it (zig build --release)";
  if (embedded.state === "skipped") {
    // Whether this copy carries the library is in a module not imported.
    return "--allow-ffi was granted only after sbox was imported, too late to set up the copy of the library " +
      "that a package of sbox carries: give --allow-ffi when Deno starts" +
      (moduleUrl.startsWith("file:") ? `; or, in sbox's checkout, run ./tools/setup, ${build}` : "");
  }
  if (!moduleUrl.startsWith("file:")) {
    return `this copy of sbox was loaded from ${new URL("..", moduleUrl)}, which does not deliver ` +
      `libsbox.so (its src/embedded_library.ts holds none for ${Deno.build.arch}: published without ` +
      "`deno task publish`?): use a checkout of sbox, set up with ./tools/setup (README, Distribution)";
  }
  return `run ./tools/setup in sbox's checkout, ${build}`;
}

let library: Deno.DynamicLibrary<typeof SYMBOLS> | undefined;
/** The path {@linkcode library} was opened from (`/proc/self/fd/N` for the embedded copy). */
let opened = "";
let symbols: HelperSymbols | undefined;

/**
 * The embedded copy of the library (src/embedded_helper.ts), once the
 * start-up step below looked for it: its cache file (`path`, for messages)
 * and what to dlopen (`load`), or why it cannot be used; `none` when a
 * local build loaded or the module holds no copy for this machine;
 * `skipped` when the step did not run, --allow-ffi not being granted then.
 */
let embedded:
  | { state: "none" | "skipped" }
  | { state: "cached"; path: string; load: string }
  | { state: "failed"; reason: string } = { state: "none" };

/** A library to try: what to dlopen, and the file's name in messages. */
interface Candidate {
  load: string;
  name: string;
}

/**
 * Opens the first of `candidates` that loads and has the ABI this module
 * expects as {@linkcode library}, and says in `errors` why each one before
 * it did not; returns whether one did.
 */
function openFirst(candidates: readonly Candidate[], errors: string[]): boolean {
  for (const { load, name } of candidates) {
    let candidate: Deno.DynamicLibrary<typeof SYMBOLS>;
    try {
      candidate = Deno.dlopen(load, SYMBOLS);
    } catch (err) {
      if (err instanceof Deno.errors.NotCapable || err instanceof Deno.errors.PermissionDenied) {
        throw new SboxError(NEEDS_FFI, { step: "ffi", cause: err });
      }
      // Deno says "Could not open library: " twice.
      const message = (err as Error).message.replaceAll("Could not open library: ", "").replaceAll(
        load,
        name,
      );
      // It names the path itself, as dlerror() does.
      const named = message.startsWith(name) ? message : `${name}: ${message}`;
      errors.push(`${named}${message.includes("No such file") ? otherArchitecture(load) : ""}`);
      continue;
    }
    const abi = candidate.symbols.sbox_abi_version();
    if (abi === EXPECTED_ABI) {
      library = candidate;
      opened = load;
      return true;
    }
    candidate.close();
    errors.push(
      `${name} is from another version of sbox (ABI ${abi.toString(16)}, expected ${
        EXPECTED_ABI.toString(16)
      })`,
    );
  }
  return false;
}

/** The local builds as candidates: each loaded by its path. */
const local = (): Candidate[] => localCandidates().map((path) => ({ load: path, name: path }));

// The start-up step, before any helper() call: helper() is synchronous, and
// importing the embedded copy is not. A local build is opened here, as
// helper() would on first use, so a checkout pays nothing more than before;
// only where none loads is the embedded copy imported, with a literal
// specifier, so that `deno compile` and JSR keep it in the module graph.
// Only with --allow-ffi granted (querySync never prompts: `sbox --help`
// needs no permission), and never throwing: helper() reports what failed.
if (Deno.permissions.querySync({ name: "ffi" }).state === "granted") {
  try {
    if (!openFirst(local(), [])) {
      const { embeddedLibraryFile } = await import("./embedded_helper.ts");
      const file = await embeddedLibraryFile();
      if (file !== undefined) {
        embedded = { state: "cached", ...file };
        openFirst([{ load: file.load, name: file.path }], []);
      }
    }
  } catch (err) {
    embedded = { state: "failed", reason: err instanceof Error ? err.message : String(err) };
  }
} else {
  embedded = { state: "skipped" };
}

/**
 * The helper's calls. The library is opened when this module loads, or
 * else on first use: the local build ({@linkcode localCandidates}) if it
 * loads and has the ABI this module expects (a build left from another
 * version of sbox is passed over, and named if nothing else will do), else
 * the embedded copy's cache file (src/embedded_helper.ts), under the same
 * check. Throws an {@linkcode SboxError} saying why when neither opens, or
 * when --allow-ffi is not granted for every path.
 */
export function helper(): HelperSymbols {
  if (symbols) return symbols;
  // Opened at start-up, or else tried again now (and to say why not).
  if (!library) {
    // Not granted, or only for a list of paths (which the query without a
    // path does not count): say what is needed, not what a dlopen allowed
    // by that list happened to miss.
    if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") {
      throw new SboxError(NEEDS_FFI, { step: "ffi" });
    }
    const errors: string[] = [];
    const candidates = local();
    if (embedded.state === "cached") candidates.push({ load: embedded.load, name: embedded.path });
    if (!openFirst(candidates, errors)) {
      const tried = errors.length > 0 ? ` (${errors.join("; ")})` : "";
      throw new SboxError(`cannot open the sbox helper library: ${remedy(import.meta.url)}${tried}`, {
        step: "ffi",
      });
    }
  }
  const lib = library as Deno.DynamicLibrary<typeof SYMBOLS>;
  const helperCalls = calls(lib.symbols);
  if (inWorker()) {
    try {
      trackWorker(opened, helperCalls);
    } catch (err) {
      lib.close();
      library = undefined;
      throw err;
    }
  }
  symbols = helperCalls;
  return symbols;
}

/** Whether this isolate is a Worker's. */
function inWorker(): boolean {
  // deno-lint-ignore no-explicit-any
  const scope = globalThis as any;
  return typeof scope.WorkerGlobalScope !== "undefined" && scope instanceof scope.WorkerGlobalScope;
}

/**
 * A terminated Worker runs no more code of its own, so the library lets go of
 * what its isolate held: its children, fds and child stacks (helper/janitor.zig,
 * which runs a thread of the library). That needs the library to stay
 * loaded after the Worker is gone, which Deno would unload: pinned first
 * (RTLD_NODELETE), else nothing is recorded. Best effort: a kernel without
 * PIDFD_THREAD (before Linux 6.9) or a C library without dlopen (musl)
 * leaves a terminated Worker's resources as they are.
 */
function trackWorker(path: string, lib: HelperSymbols): void {
  if (!pinLibrary(path)) return;
  // Untracked, this Worker's containers would outlive its termination: say
  // so now rather than leak then.
  if (Number(lib.sbox_track()) === -errnoNumber("ENOSPC")) {
    throw new SboxError(
      "too many Workers use sbox at once (256, helper/janitor.zig): end one before another starts containers",
      { step: "ffi" },
    );
  }
}
