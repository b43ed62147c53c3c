/**
 * Typed wrappers over the helper's syscalls. With only --allow-ffi the
 * library reaches the OS through here (files, directories, pipes, signals,
 * waits); through the C library for the little the helper has no call for
 * (a UNIX socket, the terminal, signal actions: see libc.ts); and, for the
 * embedded helper's cache file, written before the helper can load,
 * through the C library too (embedded_helper.ts). Each wrapper throws an
 * {@linkcode SboxError} naming the operation and the path, or returns the
 * raw result where a caller wants to handle an errno itself (`try*`
 * functions).
 *
 * @module
 */

import { helper } from "./ffi.ts";
import { SboxError, show, type Step } from "./error.ts";
import { errnoNumber } from "./errno.ts";
import { decodeName, encodeUtf8Into } from "./cstring.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** open(2) flags; O_DIRECTORY and O_NOFOLLOW differ between architectures. */
export const O = {
  RDONLY: 0,
  WRONLY: 1,
  RDWR: 2,
  CREAT: 0o100,
  EXCL: 0o200,
  NOCTTY: 0o400,
  TRUNC: 0o1000,
  APPEND: 0o2000,
  NONBLOCK: 0o4000,
  DIRECTORY: Deno.build.arch === "aarch64" ? 0o40000 : 0o200000,
  NOFOLLOW: Deno.build.arch === "aarch64" ? 0o100000 : 0o400000,
  CLOEXEC: 0o2000000,
  PATH: 0o10000000,
} as const;

export const EAGAIN: number = errnoNumber("EAGAIN");
export const EINTR: number = errnoNumber("EINTR");
export const EMFILE: number = errnoNumber("EMFILE");
export const ENOENT: number = errnoNumber("ENOENT");
export const EEXIST: number = errnoNumber("EEXIST");
export const EBUSY: number = errnoNumber("EBUSY");
export const ESRCH: number = errnoNumber("ESRCH");
export const EPERM: number = errnoNumber("EPERM");
export const EINVAL: number = errnoNumber("EINVAL");
const EBADF: number = errnoNumber("EBADF");
export const ENOSYS: number = errnoNumber("ENOSYS");

/** A NUL-terminated copy of `s` for a syscall; rejects embedded NULs. */
export function cstr(s: string): Uint8Array<ArrayBuffer> {
  if (s.includes("\0")) {
    throw new SboxError(`path contains a NUL byte: ${show(s)}`, { step: "options" });
  }
  const out = new Uint8Array(s.length * 3 + 1);
  return out.subarray(0, encodeUtf8Into(s, out, 0) + 1);
}

/** The number a helper call returned (>= 0 or a negative errno). */
export function num(ret: number | bigint): number {
  return Number(ret);
}

/** Returns `ret` or throws `"<what>: ENOENT (...)"` for a negative errno. */
export function check(ret: number | bigint, step: Step, what: string): number {
  const n = Number(ret);
  if (n < 0) throw SboxError.fromErrno(step, what, -n);
  return n;
}

/** open(2): returns the fd or a negative errno. */
export function tryOpen(path: string, flags: number, mode = 0o644): number {
  return num(helper().sbox_open(cstr(path), flags | O.CLOEXEC, mode));
}

/** open(2), throwing on failure. */
export function open(path: string, flags: number, mode = 0o644): number {
  return check(tryOpen(path, flags, mode), "open", `cannot open ${path}`);
}

/** close(2); errors are ignored, as after close the fd is gone anyway. */
export function close(fd: number): void {
  if (fd >= 0) helper().sbox_close(fd);
}

/** read(2) into `buf`: bytes read, 0 at end of file, or a negative errno. */
export function tryRead(fd: number, buf: Uint8Array<ArrayBuffer>): number {
  return num(helper().sbox_read(fd, buf, BigInt(buf.length)));
}

/** write(2) of `data`: bytes written or a negative errno. */
export function tryWrite(fd: number, data: Uint8Array<ArrayBuffer>): number {
  return num(helper().sbox_write(fd, data, BigInt(data.length)));
}

/** Writes all of `data` to a blocking fd. */
export function writeAll(fd: number, data: Uint8Array<ArrayBuffer>, what: string): void {
  let offset = 0;
  while (offset < data.length) {
    const n = tryWrite(fd, data.subarray(offset));
    if (n === -EINTR) continue;
    offset += check(n, "write", what);
  }
}

/** `chunks` one after the other, in one new array. */
export function concatBytes(chunks: readonly Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(chunks.reduce((total, chunk) => total + chunk.length, 0));
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

/** Reads a whole file, e.g. under /proc or /sys/fs/cgroup. */
export function readFile(path: string): Uint8Array<ArrayBuffer> {
  const fd = open(path, O.RDONLY);
  try {
    return readAll(fd, path);
  } finally {
    close(fd);
  }
}

/**
 * The size of {@linkcode readAll}'s buffer, and of a result it returns without a second one.
 *
 * @internal Exported for tests only.
 */
export const READ_BUFFER_BYTES = 65536;

/**
 * The buffer {@linkcode readAll} reads into, kept from call to call. A new
 * 64 KiB buffer for each read(2) (two for a small file: the second read
 * finds its end) cost more than the read of a small /proc file itself: a
 * readFile of /proc/self/stat took 40-60 µs in a loop, and about 20 with
 * one kept buffer (bench/read_bench.ts). Only the bytes read are copied out.
 */
let readBuffer: Uint8Array<ArrayBuffer> | undefined;

/**
 * Reads `fd` (`what` names it in errors) to end-of-file, or until it has
 * read more than `limit` bytes: a result longer than `limit` (by one byte)
 * says the file is bigger, without reading it all. A file of any size is
 * read whole: past {@linkcode READ_BUFFER_BYTES}, into buffers of this
 * call's own, each twice the one before, joined once at the end.
 */
export function readAll(fd: number, what: string, limit = Infinity): Uint8Array<ArrayBuffer> {
  // Synchronous, and nothing it calls reads a file: no second call can
  // fill the kept buffer while this one uses it.
  let buf = readBuffer ??= new Uint8Array(READ_BUFFER_BYTES);
  const full: Uint8Array[] = [];
  let filled = 0; // of buf
  let total = 0;
  while (total <= limit) {
    if (filled === buf.length) {
      full.push(buf);
      buf = new Uint8Array(Math.min(buf.length * 2, limit + 1 - total));
      filled = 0;
    }
    const n = tryRead(fd, buf.subarray(filled, Math.min(buf.length, filled + limit + 1 - total)));
    if (n === -EINTR) continue;
    check(n, "read", `cannot read ${what}`);
    if (n === 0) break;
    filled += n;
    total += n;
  }
  // Copied out before the kept buffer can be filled again.
  return full.length === 0 ? buf.slice(0, filled) : concatBytes([...full, buf.subarray(0, filled)]);
}

/**
 * Reads the regular file `path`, one a user named (`what` names it in
 * errors): opened with O_NONBLOCK, so that a FIFO without a writer cannot
 * block sbox in an FFI call no signal interrupts, then refused unless it is
 * a regular file (a FIFO, a device such as /dev/zero). More than `limit`
 * bytes is an error rather than all of memory.
 */
export function readRegularFile(path: string, what: string, limit: number): Uint8Array<ArrayBuffer> {
  const fd = open(path, O.RDONLY | O.NONBLOCK);
  try {
    if (!stat(`/proc/self/fd/${fd}`)?.isFile) {
      throw new SboxError(`${what} ${path} is not a regular file`, { step: "open" });
    }
    // A regular file ignores O_NONBLOCK; cleared all the same, as for a shell's redirection.
    setNonblocking(fd, false);
    const bytes = readAll(fd, `${what} ${path}`, limit);
    if (bytes.length > limit) {
      throw new SboxError(`${what} ${path} is larger than ${limit} bytes`, { step: "read" });
    }
    return bytes;
  } finally {
    close(fd);
  }
}

/** Reads a whole file as UTF-8 text. */
export function readTextFile(path: string): string {
  return decoder.decode(readFile(path));
}

/** Writes `text` to an existing file in one write(2), as kernel interfaces expect. */
export function writeTextFile(path: string, text: string): void {
  const fd = open(path, O.WRONLY);
  try {
    writeAll(fd, encoder.encode(text), `cannot write ${path}`);
  } finally {
    close(fd);
  }
}

/** mkdir(2): 0 or a negative errno. */
export function tryMkdir(path: string, mode = 0o755): number {
  return num(helper().sbox_mkdir(cstr(path), mode));
}

/** rmdir(2): 0 or a negative errno. */
export function tryRmdir(path: string): number {
  return num(helper().sbox_rmdir(cstr(path)));
}

/** The modes of {@linkcode tryAccess}, as access(2) spells them. */
export const ACCESS = { R: 4, W: 2, X: 1 } as const;

/**
 * Whether this process may access `path` as `mode` asks (the bits of
 * {@linkcode ACCESS}): the kernel's own check, with the effective ids,
 * supplementary groups and capabilities (faccessat2 with AT_EACCESS; a
 * write is refused on a read-only mount too). 0 or a negative errno:
 * EACCES, EROFS, ENOENT, ...; ENOSYS before Linux 5.8.
 */
export function tryAccess(path: string, mode: number): number {
  return num(helper().sbox_faccessat2(cstr(path), mode));
}

/** unlink(2): 0 or a negative errno. */
export function tryUnlink(path: string): number {
  return num(helper().sbox_unlink(cstr(path)));
}

/** unlinkat(2)'s flag for a directory: rmdir rather than unlink. */
export const AT_REMOVEDIR = 0x200;

/**
 * unlinkat(2) of `name` (one name, no "/") in the directory open as
 * `dirfd`, AT_REMOVEDIR in `flags` for a directory: that directory's
 * entry, whatever was mounted on its path since it was opened. 0 or a
 * negative errno.
 */
export function tryUnlinkAt(dirfd: number, name: string, flags = 0): number {
  return num(helper().sbox_unlinkat(dirfd, cstr(name), flags));
}

/**
 * The id of the mount that open fd `fd` lies on, as /proc/self/mountinfo
 * numbers mounts (statx's STATX_MNT_ID, Linux 5.8): two files on the same
 * file system, one of them through a bind mount, have the same device but
 * not the same mount. No /proc read.
 */
export function mountId(fd: number): number {
  return check(helper().sbox_mount_id(fd), "stat", `cannot read the mount of fd ${fd}`);
}

/**
 * readlink(2): the target of the symbolic link `path`, its bytes that are
 * not UTF-8 escaped as {@linkcode readDir}'s names.
 */
export function readLink(path: string): string {
  const buf = new Uint8Array(4096);
  const n = check(
    helper().sbox_readlink(cstr(path), buf, BigInt(buf.length)),
    "readlink",
    `cannot read link ${path}`,
  );
  // As readDir's names: bytes that are not UTF-8 come back the same (cstring.ts).
  return decodeName(buf.subarray(0, n));
}

/**
 * The path the kernel resolves `path` to: absolute, without links, "." or
 * "..": the link of an O_PATH fd of it in /proc/self/fd. Throws (an
 * SboxError of step "open") when `path` cannot be opened.
 */
export function resolvedPath(path: string): string {
  const fd = open(path, O.PATH);
  try {
    return readLink(`/proc/self/fd/${fd}`);
  } finally {
    close(fd);
  }
}

/** What {@linkcode stat} reports. */
export interface FileStat {
  mode: number;
  uid: number;
  gid: number;
  size: number;
  isDirectory: boolean;
  isFile: boolean;
  isSymlink: boolean;
}

/** statx(2) of `path`, or `undefined` when it does not exist. */
export function stat(path: string, follow = true): FileStat | undefined {
  const out = new BigUint64Array(4);
  const n = num(helper().sbox_stat(cstr(path), follow, new Uint8Array(out.buffer)));
  if (n === -ENOENT) return undefined;
  check(n, "stat", `cannot stat ${path}`);
  return fileStatOf(out);
}

/** The FileStat of the helper's stat words: mode, uid, gid, size first. */
function fileStatOf(out: BigUint64Array): FileStat {
  const mode = Number(out[0]);
  const type = mode & 0o170000;
  return {
    mode,
    uid: Number(out[1]),
    gid: Number(out[2]),
    size: Number(out[3]),
    isDirectory: type === 0o040000,
    isFile: type === 0o100000,
    isSymlink: type === 0o120000,
  };
}

/** What {@linkcode fstat} reports: {@linkcode FileStat}, and the device a device node is. */
export interface FdStat extends FileStat {
  isCharDevice: boolean;
  isBlockDevice: boolean;
  isFifo: boolean;
  /** Major number of the device the file is (0 for other files). */
  rdevMajor: number;
  /** Minor number of the device the file is (0 for other files). */
  rdevMinor: number;
  /** The device the file is on and its inode number, "major:minor:inode": which file it is. */
  identity: string;
}

/** statx(2) of the open fd `fd`, or `undefined` when `fd` is not open (EBADF). */
export function fstat(fd: number): FdStat | undefined {
  const out = new BigUint64Array(9);
  const n = num(helper().sbox_fstat(fd, new Uint8Array(out.buffer)));
  if (n === -EBADF) return undefined;
  check(n, "stat", `cannot stat fd ${fd}`);
  const type = Number(out[0]) & 0o170000;
  return {
    ...fileStatOf(out),
    isCharDevice: type === 0o020000,
    isBlockDevice: type === 0o060000,
    isFifo: type === 0o010000,
    rdevMajor: Number(out[4]),
    rdevMinor: Number(out[5]),
    identity: `${out[6]}:${out[7]}:${out[8]}`,
  };
}

/**
 * {@linkcode FdStat.identity} of the file `path` leads to now (links
 * followed), or undefined when nothing is there. An O_PATH open: no FIFO
 * blocks it, and no file is opened for reading.
 */
export function identityOf(path: string): string | undefined {
  const fd = tryOpen(path, O.PATH);
  if (fd < 0) return undefined;
  try {
    return fstat(fd)?.identity;
  } finally {
    close(fd);
  }
}

/** fchown(2): 0 or a negative errno. */
export function tryFchown(fd: number, uid: number, gid: number): number {
  return num(helper().sbox_fchown(fd, uid >>> 0, gid >>> 0));
}

/** fchmod(2): 0 or a negative errno. */
export function tryFchmod(fd: number, mode: number): number {
  return num(helper().sbox_fchmod(fd, mode));
}

/** open_tree(2) flags (OPEN_TREE_CLOEXEC is always added) and AT_EMPTY_PATH. */
export const OPEN_TREE = { CLONE: 1, EMPTY_PATH: 0x1000 } as const;

/** mount_setattr(2) attributes. */
export const MOUNT_ATTR = { RDONLY: 0x1, NOSUID: 0x2, NODEV: 0x4, NOEXEC: 0x8 } as const;

/**
 * open_tree(2) of `path` from `dirfd` ("" with OPEN_TREE.EMPTY_PATH: of
 * `dirfd` itself): an O_PATH fd of the mount, or a detached copy of it with
 * OPEN_TREE.CLONE, or a negative errno (EPERM without CAP_SYS_ADMIN).
 */
export function tryOpenTree(dirfd: number, path: string, flags: number): number {
  return num(helper().sbox_open_tree(dirfd, cstr(path), flags | O.CLOEXEC));
}

/** mount_setattr(2) setting the MOUNT_ATTR bits `attrSet` on the mount `dirfd` is (AT_EMPTY_PATH): 0 or a negative errno. */
export function tryMountSetattr(dirfd: number, attrSet: number): number {
  return num(helper().sbox_mount_setattr(dirfd, cstr(""), OPEN_TREE.EMPTY_PATH, attrSet));
}

/**
 * Names in a directory, without `.` and `..`. A name's bytes that are not
 * UTF-8 are escaped (cstring.ts's decodeName), so that the path made of it
 * names that entry.
 */
export function readDir(path: string): { name: string; isDirectory: boolean }[] {
  const fd = open(path, O.RDONLY | O.DIRECTORY);
  try {
    return readDirFd(fd, path);
  } finally {
    close(fd);
  }
}

/**
 * {@linkcode readDir} of the directory open as `fd` (from its current
 * offset: a fresh fd lists it all); `path` names it in an error.
 */
export function readDirFd(fd: number, path: string): { name: string; isDirectory: boolean }[] {
  const entries: { name: string; isDirectory: boolean }[] = [];
  const buf = new Uint8Array(32768);
  const view = new DataView(buf.buffer);
  for (;;) {
    const n = check(
      helper().sbox_getdents64(fd, buf, BigInt(buf.length)),
      "getdents",
      `cannot list ${path}`,
    );
    if (n === 0) break;
    // struct linux_dirent64: u64 ino, i64 off, u16 reclen, u8 type, name
    for (let offset = 0; offset < n;) {
      const reclen = view.getUint16(offset + 16, true);
      const type = buf[offset + 18];
      const nameStart = offset + 19;
      const nameEnd = buf.indexOf(0, nameStart);
      // Bytes, not text: a name that is not UTF-8 must name the same entry
      // once encoded back (cstring.ts), or it reads as gone.
      const name = decodeName(buf.subarray(nameStart, nameEnd));
      if (name !== "." && name !== "..") entries.push({ name, isDirectory: type === 4 });
      offset += reclen;
    }
  }
  return entries;
}

/** pipe2(O_CLOEXEC): `[readEnd, writeEnd]`. */
export function pipe(): [number, number] {
  const fds = new Int32Array(2);
  check(helper().sbox_pipe2(new Uint8Array(fds.buffer), O.CLOEXEC), "pipe", "cannot create a pipe");
  return [fds[0], fds[1]];
}

/** fcntl(F_DUPFD_CLOEXEC): another fd of the same file, the lowest free one from `lowest` on. */
export function dupCloexec(fd: number, lowest = 0): number {
  const F_DUPFD_CLOEXEC = 1030;
  return check(helper().sbox_fcntl(fd, F_DUPFD_CLOEXEC, BigInt(lowest)), "fcntl", "cannot duplicate an fd");
}

/** Whether `fd` is open in this process (fcntl F_GETFD does not fail with EBADF). */
export function isOpenFd(fd: number): boolean {
  const F_GETFD = 1;
  return num(helper().sbox_fcntl(fd, F_GETFD, 0n)) >= 0;
}

/** The access mode and status flags of an fd (F_GETFL): O.RDONLY, O.WRONLY or O.RDWR, O.APPEND, O.NONBLOCK, ... */
export function fdFlags(fd: number): number {
  const F_GETFL = 3;
  return check(helper().sbox_fcntl(fd, F_GETFL, 0n), "fcntl", "cannot read fd flags");
}

/** Sets O_NONBLOCK on an fd this process owns (F_SETFL); `on` false clears it. */
export function setNonblocking(fd: number, on = true): void {
  const flags = fdFlags(fd);
  setFdFlags(fd, on ? flags | O.NONBLOCK : flags & ~O.NONBLOCK, "cannot change O_NONBLOCK");
}

/**
 * Sets the status flags of `fd` that F_SETFL changes (O.APPEND, O.NONBLOCK,
 * ...) to `flags`; the open file's, shared by every fd on it.
 */
export function setFdFlags(fd: number, flags: number, what = "cannot change fd flags"): void {
  const F_SETFL = 4;
  check(helper().sbox_fcntl(fd, F_SETFL, BigInt(flags)), "fcntl", what);
}

/** flock(2) operations. */
export const LOCK = { EX: 2, NB: 4 } as const;

/** flock(2): 0 or a negative errno (-EAGAIN, alias EWOULDBLOCK, when another holds the lock, with LOCK.NB). */
export function tryFlock(fd: number, operation: number): number {
  return num(helper().sbox_flock(fd, operation));
}

/** pidfd_send_signal(2): 0 or a negative errno (ESRCH once reaped). */
export function pidfdSignal(pidfd: number, signal: number): number {
  return num(helper().sbox_pidfd_send_signal(pidfd, signal, 0));
}

/**
 * pidfd_send_signal(2) of a signal queued as sigqueue(3) does, with the code
 * SI_QUEUE and `value` as its si_value: 0, or a negative errno (ESRCH once
 * reaped, EAGAIN when the target's queue of pending signals is full).
 */
export function pidfdQueueSignal(pidfd: number, signal: number, value: bigint): number {
  return num(helper().sbox_pidfd_queue_signal(pidfd, signal, value));
}

/** pidfd_send_signal(2)'s flag that sends to a process group: Linux 6.9 (EINVAL before). */
const PIDFD_SIGNAL_PROCESS_GROUP = 4;

/**
 * pidfd_send_signal(2) to the process group whose id is the pidfd's
 * process: 0, or a negative errno (ESRCH when no process is in that
 * group, EINVAL before Linux 6.9). The pidfd names the pid itself, not a
 * number: it reaches that group even once its leader has been reaped
 * (the group's members keep the pid in use), and never a later group that
 * got the same number.
 */
export function pidfdSignalGroup(pidfd: number, signal: number): number {
  return num(helper().sbox_pidfd_send_signal(pidfd, signal, PIDFD_SIGNAL_PROCESS_GROUP));
}

/**
 * CLOCK_MONOTONIC in microseconds, its low 31 bits: the clock of a reaper's
 * records (which performance.now() is not), as they have it.
 */
export function monotonicUsec(): number {
  return Number(helper().sbox_monotonic_usec());
}

/** pidfd_open(2): the pidfd or a negative errno. */
export function tryPidfdOpen(pid: number): number {
  return num(helper().sbox_pidfd_open(pid));
}

/**
 * pidfd_open(2), throwing on failure.
 *
 * @internal Exported for tests only.
 */
export function pidfdOpen(pid: number): number {
  return check(tryPidfdOpen(pid), "pidfd_open", `cannot open pidfd of ${pid}`);
}

/**
 * kill(2): 0 or a negative errno. Only for a child of ours not yet reaped,
 * whose pid cannot name another process (nor, negated, another process
 * group); anything else has a pidfd.
 */
export function tryKill(pid: number, signal: number): number {
  return num(helper().sbox_kill(pid, signal));
}

/** How a waited-for process ended. */
export interface WaitResult {
  /** Whether it exited (si_code CLD_EXITED), rather than died of a signal. */
  exited: boolean;
  /** The exit status if it exited, else the signal's number. */
  status: number;
}

/**
 * waitid(P_PIDFD, WEXITED | WNOHANG): `undefined` while it runs. Never
 * blocking: the caller waits for the pidfd to become readable first.
 */
export function waitPidfd(pidfd: number): WaitResult | undefined {
  return waitFor((options, out) => helper().sbox_waitid(pidfd, options, out));
}

/**
 * waitid(P_PID, WEXITED | WNOHANG), as {@linkcode waitPidfd}, for a child
 * of ours that has no pidfd (see {@linkcode tryKill}).
 */
export function waitPid(pid: number): WaitResult | undefined {
  return waitFor((options, out) => helper().sbox_waitpid(pid, options, out));
}

function waitFor(
  waitid: (options: number, out: Uint8Array<ArrayBuffer>) => number | bigint,
): WaitResult | undefined {
  // __WALL: a process made with CLONE_PARENT has no exit signal.
  const WEXITED = 4, WNOHANG = 1, WALL = 0x40000000;
  const CLD_EXITED = 1;
  const out = new Int32Array(2);
  for (;;) {
    const n = num(waitid(WEXITED | WALL | WNOHANG, new Uint8Array(out.buffer)));
    if (n === -EINTR) continue;
    if (n === -EAGAIN) return undefined;
    check(n, "waitid", "cannot wait for a process");
    return { exited: out[0] === CLD_EXITED, status: out[1] };
  }
}

/** The calling process's real and effective ids and pid. */
export function ids(): { uid: number; gid: number; euid: number; egid: number; pid: number } {
  const out = new Uint32Array(5);
  helper().sbox_getids(new Uint8Array(out.buffer));
  return { uid: out[0], gid: out[1], euid: out[2], pid: out[3], egid: out[4] };
}

/** The process environment, read from /proc/self/environ (no --allow-env needed). */
export function environment(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const entry of readTextFile("/proc/self/environ").split("\0")) {
    const eq = entry.indexOf("=");
    if (eq > 0) env[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  return env;
}

/**
 * One variable of the process environment, read exactly from
 * /proc/self/environ (no --allow-env needed): its value, each byte that is
 * not UTF-8 escaped as host names are (cstring.ts's `decodeName`), so that
 * the value passed on is the same bytes ({@linkcode environment} shows
 * U+FFFD there); `undefined` where it is not set.
 */
export function environmentVariable(name: string): string | undefined {
  // "NAME=", NAME's escaped bytes as the bytes they stand for.
  const buf = new Uint8Array(name.length * 3 + 1);
  const written = encodeUtf8Into(name, buf, 0);
  buf[written] = 0x3d;
  const prefix = buf.subarray(0, written + 1);
  const environ = readFile("/proc/self/environ");
  for (let start = 0; start < environ.length;) {
    const nul = environ.indexOf(0, start);
    const end = nul < 0 ? environ.length : nul;
    const entry = environ.subarray(start, end);
    if (entry.length >= prefix.length && prefix.every((byte, i) => entry[i] === byte)) {
      return decodeName(entry.subarray(prefix.length));
    }
    start = end + 1;
  }
  return undefined;
}
