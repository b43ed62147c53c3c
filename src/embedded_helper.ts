/**
 * The helper library of a copy of sbox whose modules are not local files (an
 * `https:` or JSR import, a `deno compile` binary): src/embedded_library.ts
 * carries libsbox.so for each architecture as base64 (tools/embed-helper.ts
 * writes it before publishing), and this module writes this machine's copy
 * to a private cache file once, for src/ffi.ts to dlopen. ffi.ts imports it
 * only when no local build loads, so that a checkout never loads it.
 *
 * Every file operation here is the C library's, over FFI: the helper's own
 * wrappers (src/sys.ts) need the library this module is setting up, and
 * Deno's file APIs would need more than --allow-ffi. Nor does this module
 * import sys.ts: sys.ts imports ffi.ts, whose evaluation awaits this module.
 *
 * @module
 */

import { describeErrno, errnoNumber } from "./errno.ts";
import { SboxError } from "./error.ts";
import { type LibcSymbols, openLibc } from "./libc.ts";

/** One architecture's copy of libsbox.so, as tools/embed-helper.ts writes it. */
export interface EmbeddedLibrary {
  /** The library's bytes, base64. */
  readonly base64: string;
  /** The SHA-256 of those bytes, 64 lowercase hex digits. */
  readonly sha256: string;
}

/** The embedded copies by `Deno.build.arch`; the committed placeholder has none. */
export type EmbeddedLibraries = Readonly<Partial<Record<"x86_64" | "aarch64", EmbeddedLibrary>>>;

type Libc = LibcSymbols<"cacheFiles">;

const AT_FDCWD = -100;
const AT_EMPTY_PATH = 0x1000, AT_SYMLINK_NOFOLLOW = 0x100;
const STATX_BASIC_STATS = 0x7ff;
const O_RDONLY = 0, O_WRONLY = 1, O_CREAT = 0o100, O_EXCL = 0o200, O_CLOEXEC = 0o2000000, O_PATH = 0o10000000;
const O_NOFOLLOW = Deno.build.arch === "aarch64" ? 0o100000 : 0o400000;
const S_IFMT = 0o170000, S_IFDIR = 0o040000, S_IFREG = 0o100000, S_IFLNK = 0o120000, S_ISVTX = 0o1000;
const EEXIST = errnoNumber("EEXIST"), ENOENT = errnoNumber("ENOENT");
const EINTR = errnoNumber("EINTR");

const encoder = new TextEncoder();
const cstr = (s: string) => encoder.encode(`${s}\0`);

/** libc's errno after a failed call, read at once (the next call may change it). */
function errno(libc: Libc): number {
  const p = libc.__errno_location();
  return p === null ? 0 : new Deno.UnsafePointerView(p).getInt32();
}

function fail(message: string): never {
  throw new SboxError(message, { step: "ffi" });
}

/** The embedded library's cache file, as {@linkcode embeddedLibraryFile} leaves it for src/ffi.ts. */
export interface EmbeddedFile {
  /** Its path, for messages; " (deleted)" at the end once it was removed. */
  readonly path: string;
  /**
   * What to dlopen: `/proc/self/fd/N`, the file as sbox checked it, through
   * an fd (O_PATH) that this process keeps open for the rest of its life.
   */
  readonly load: string;
}

/** A cache file of another version unused for this long is removed ({@linkcode removeStale}). */
const STALE_SECONDS = 30 * 86400;
/** A cache file's mtime is set to now when it is used and older than this: its last use, to a day. */
const TOUCH_SECONDS = 86400;

/**
 * This machine's embedded helper library, written to the cache directory
 * ({@linkcode cacheDirectory}) on first use: `libsbox-<first 16 hex digits
 * of its SHA-256>.so`, so that versions of sbox share the directory without
 * overwriting each other. `undefined` when src/embedded_library.ts holds no
 * copy for this architecture (the committed placeholder). Throws an
 * {@linkcode SboxError} naming the path and what is wrong when the cache is
 * not safe to load code from.
 */
export async function embeddedLibraryFile(): Promise<EmbeddedFile | undefined> {
  const { EMBEDDED_LIBRARIES } = await import("./embedded_library.ts");
  const embedded = EMBEDDED_LIBRARIES[Deno.build.arch as "x86_64" | "aarch64"];
  if (embedded === undefined) return undefined;
  const name = `libsbox-${embedded.sha256.slice(0, 16)}.so`;
  const libc = openLibc("cacheFiles");
  // The library keeps process-wide state (helper/janitor.zig), so every
  // isolate must load the one file: another Worker may have found another
  // cache directory, had the environment changed in between, or the file
  // may be gone.
  const loaded = loadedFile(libc, name);
  if (loaded !== undefined) return loaded;
  const { fd: dirFd, dir } = openPrivateDirectory(libc, cacheDirectory(libc));
  try {
    let file = openCacheFile(libc, dirFd, dir, name);
    if (file === undefined) {
      await writeCacheFile(libc, dirFd, dir, name, embedded);
      // A new version's first use, or a file removed: a time to look for stale ones.
      removeStale(libc, dirFd, name);
      file = openCacheFile(libc, dirFd, dir, name);
      if (file === undefined) fail(`${dir}/${name} was removed as soon as sbox had written it`);
    } else if (file.mtime < Date.now() / 1000 - TOUCH_SECONDS) {
      // Its last use, for removeStale of other versions (to a day: not a write each start).
      libc.utimensat(dirFd, cstr(name), null, AT_SYMLINK_NOFOLLOW);
      removeStale(libc, dirFd, name);
    }
    return { path: `${dir}/${name}`, load: `/proc/self/fd/${file.fd}` };
  } finally {
    libc.close(dirFd);
  }
}

/**
 * The per-user cache directory: `$XDG_CACHE_HOME/sbox`, else
 * `$HOME/.cache/sbox` (with `~/.cache` to make where it is missing), else
 * `/tmp/sbox-<euid>` (a relative value counts as unset, as the XDG base
 * directory specification says).
 */
function cacheDirectory(libc: Libc): { dir: string; parentToMake?: string } {
  const env = (name: string) => {
    const p = libc.getenv(cstr(name));
    const value = p === null ? "" : Deno.UnsafePointerView.getCString(p);
    return value.startsWith("/") ? value.replace(/\/+$/, "") : undefined;
  };
  const xdg = env("XDG_CACHE_HOME");
  if (xdg !== undefined) return { dir: `${xdg}/sbox` };
  const home = env("HOME");
  if (home !== undefined) return { dir: `${home}/.cache/sbox`, parentToMake: `${home}/.cache` };
  return { dir: `/tmp/sbox-${libc.geteuid()}` };
}

/**
 * Owner and mode of `path` relative to `dirFd` (statx `flags`): of the file
 * open as `dirFd` itself with an empty path and AT_EMPTY_PATH; `undefined`
 * if it does not exist and `missing` says so.
 */
function statAt(
  libc: Libc,
  dirFd: number,
  path: string,
  flags: number,
  what: string,
  missing: "fail" | "allow" = "fail",
): Stat | undefined {
  const buf = new Uint8Array(256);
  if (libc.statx(dirFd, cstr(path), flags, STATX_BASIC_STATS, buf) !== 0) {
    const e = errno(libc);
    if (e === ENOENT && missing === "allow") return undefined;
    fail(`cannot stat ${what}: ${describeErrno(e)}`);
  }
  const view = new DataView(buf.buffer);
  // struct statx: stx_uid at 20, stx_mode at 28, stx_mtime.tv_sec at 112.
  return {
    uid: view.getUint32(20, true),
    mode: view.getUint16(28, true),
    mtime: Number(view.getBigInt64(112, true)),
  };
}

/** What sbox reads of a statx: owner, mode and mtime (seconds). */
interface Stat {
  uid: number;
  mode: number;
  mtime: number;
}

/** Owner, mode and mtime of the file open as `fd`. */
function statFd(libc: Libc, fd: number, what: string): Stat {
  return statAt(libc, fd, "", AT_EMPTY_PATH, what)!;
}

/** Mode bits as `ls -l`'s octal: "0777". */
const octal = (mode: number) => (mode & 0o7777).toString(8).padStart(4, "0");

/**
 * What makes `stat` unsafe to load code from, for root too: not of `type`
 * (a symbolic link is not followed), another owner, or write access for
 * group or others; `undefined` when it is safe.
 */
function unsafe(libc: Libc, stat: Stat, type: number): string | undefined {
  if ((stat.mode & S_IFMT) === S_IFLNK) return "is a symbolic link";
  if ((stat.mode & S_IFMT) !== type) return type === S_IFDIR ? "is not a directory" : "is not a regular file";
  const euid = libc.geteuid();
  if (stat.uid !== euid) return `belongs to uid ${stat.uid}, not to this user (uid ${euid})`;
  if ((stat.mode & 0o022) !== 0) {
    return `is writable by its group or others (mode ${octal(stat.mode)})`;
  }
  return undefined;
}

/**
 * Makes `dir` (0700) unless it is there, opens it without following a
 * symbolic link in its last component, and refuses it unless it is a
 * directory of this user's that nobody else may write to: root dlopens what
 * it holds. Returns it open, with its path as the kernel resolved it, whose
 * every ancestor no other user may change either ({@linkcode checkAncestors}).
 * From here on sbox goes by fds, this one and the file's
 * ({@linkcode openCacheFile}), not by the path.
 */
function openPrivateDirectory(
  libc: Libc,
  { dir, parentToMake }: { dir: string; parentToMake?: string },
): { fd: number; dir: string } {
  // Before anything is made: root whose HOME is another user's must leave
  // that home as it was, not make a ~/.cache there that its user cannot
  // write, and refuse it only then.
  checkAncestors(libc, dir, "as given");
  // Made as the XDG specification says, for the user alone; it may exist.
  if (parentToMake !== undefined) libc.mkdir(cstr(parentToMake), 0o700);
  if (libc.mkdir(cstr(dir), 0o700) !== 0) {
    const e = errno(libc);
    if (e !== EEXIST) fail(`cannot create the cache directory ${dir}: ${describeErrno(e)}`);
  }
  // O_PATH: an fd of whatever is there, a symbolic link itself included,
  // that serves as the directory of openat, linkat and unlinkat once checked.
  const fd = libc.openat(AT_FDCWD, cstr(dir), O_PATH | O_NOFOLLOW | O_CLOEXEC, 0);
  if (fd < 0) fail(`cannot open the cache directory ${dir}: ${describeErrno(errno(libc))}`);
  try {
    const problem = unsafe(libc, statFd(libc, fd, dir), S_IFDIR);
    if (problem !== undefined) {
      fail(
        `the cache directory ${dir} ${problem}: sbox loads its helper library from there, so it must be ` +
          "private (remove it, or set XDG_CACHE_HOME to a directory of your own)",
      );
    }
    const resolved = resolvedPath(libc, fd, dir);
    checkAncestors(libc, resolved, "resolved");
    return { fd, dir: resolved };
  } catch (err) {
    libc.close(fd);
    throw err;
  }
}

/** The path of the directory open as `fd`, as the kernel resolved it (no symbolic links). */
function resolvedPath(libc: Libc, fd: number, dir: string): string {
  const path = readLink(libc, `/proc/self/fd/${fd}`);
  if (path === undefined) fail(`cannot resolve the cache directory ${dir}: ${describeErrno(errno(libc))}`);
  // " (deleted)", or a path of another mount namespace: nothing to load from.
  if (!path.startsWith("/")) fail(`cannot resolve the cache directory ${dir}: ${path}`);
  return path;
}

/**
 * Refuses `dir` unless each directory above it is root's or this user's and
 * writable by nobody else, the sticky bit excepted (/tmp: others may add
 * entries there, not rename or remove this user's). Else another user could
 * rearrange the directories on the way, and put another directory of this
 * user's in the cache's place before sbox opens it, as OpenSSH's StrictModes
 * and sudo reason about the directories above a file they trust (once open,
 * the cache is used through fds only). Of a `resolved` path (none is a symbolic link), every
 * ancestor must exist; of a path `as given`, before sbox makes what is
 * missing, links are followed and missing ones passed over: the check of
 * the resolved path decides.
 */
function checkAncestors(libc: Libc, dir: string, path: "resolved" | "as given"): void {
  const euid = libc.geteuid();
  const flags = path === "resolved" ? AT_SYMLINK_NOFOLLOW : 0;
  for (let end = dir.lastIndexOf("/"); end >= 0; end = dir.lastIndexOf("/", end - 1)) {
    const ancestor = end === 0 ? "/" : dir.slice(0, end);
    const stat = statAt(libc, AT_FDCWD, ancestor, flags, ancestor, path === "resolved" ? "fail" : "allow");
    const problem = stat === undefined
      ? undefined
      : stat.uid !== 0 && stat.uid !== euid
      ? `belongs to uid ${stat.uid}`
      : (stat.mode & 0o022) !== 0 && (stat.mode & S_ISVTX) === 0
      ? `is writable by its group or others (mode ${octal(stat.mode)})`
      : undefined;
    if (problem !== undefined) {
      fail(
        `the cache directory ${dir} lies in ${ancestor}, which ${problem}: another user could replace the ` +
          "directories on the way to the library sbox loads (set XDG_CACHE_HOME to a directory of your own)",
      );
    }
    if (end === 0) break;
  }
}

/**
 * `name` in the cache, open (O_PATH) with its mtime; `undefined` when it is
 * not there. Throws if it is there but is not a regular file of this
 * user's that only this user may write to. Its content is not hashed again:
 * nobody else can write to the directory, and files appear there whole (see
 * {@linkcode writeCacheFile}). The fd stays open for good: dlopen is given
 * it as `/proc/self/fd/N`, so it loads the file checked here, and another
 * isolate finds it there ({@linkcode loadedFile}) even once the file is gone.
 */
function openCacheFile(
  libc: Libc,
  dirFd: number,
  dir: string,
  name: string,
): { fd: number; mtime: number } | undefined {
  const path = `${dir}/${name}`;
  const fd = libc.openat(dirFd, cstr(name), O_PATH | O_NOFOLLOW | O_CLOEXEC, 0);
  if (fd < 0) {
    const e = errno(libc);
    if (e === ENOENT) return undefined;
    fail(`cannot open ${path}: ${describeErrno(e)}`);
  }
  try {
    const stat = statFd(libc, fd, path);
    const problem = unsafe(libc, stat, S_IFREG);
    if (problem !== undefined) fail(`${path} ${problem}: sbox will not load it (remove it)`);
    return { fd, mtime: stat.mtime };
  } catch (err) {
    libc.close(fd);
    throw err;
  }
}

/** What sbox writes to the cache: libraries, and temporaries of a write ({@linkcode writeCacheFile}). */
const CACHE_NAME =
  /^(libsbox-[0-9a-f]{16}\.so|\.libsbox-[0-9a-f]{16}\.so\.[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12})$/;

/**
 * Removes from the cache what other versions of sbox wrote and have not
 * used for {@linkcode STALE_SECONDS} (the mtime: each use sets it, to a
 * day), and temporaries a write that died left: only names sbox gives, of
 * regular files of this user's that no one else may write to, as the cache
 * requires. A process that uses a file this removes keeps it whole: sbox
 * loads it through an fd it holds, and finds it there for every Worker
 * ({@linkcode loadedFile}); the next process of that version writes it
 * again. Best effort: it never fails a start.
 */
function removeStale(libc: Libc, dirFd: number, keep: string): void {
  const before = Date.now() / 1000 - STALE_SECONDS;
  for (const entry of entries(libc, `/proc/self/fd/${dirFd}`)) {
    if (entry === keep || !CACHE_NAME.test(entry)) continue;
    try {
      const stat = statAt(libc, dirFd, entry, AT_SYMLINK_NOFOLLOW, entry, "allow");
      if (stat === undefined || unsafe(libc, stat, S_IFREG) !== undefined || stat.mtime >= before) continue;
    } catch {
      continue;
    }
    libc.unlinkat(dirFd, cstr(entry), 0);
  }
}

/** The names in directory `path` (`.` and `..` left out); none if it cannot be read. */
function entries(libc: Libc, path: string): string[] {
  const dir = libc.opendir(cstr(path));
  if (dir === null) return [];
  const names: string[] = [];
  try {
    // struct dirent of glibc on 64-bit Linux: d_name at 19.
    for (let entry = libc.readdir(dir); entry !== null; entry = libc.readdir(dir)) {
      const name = Deno.UnsafePointerView.getCString(entry, 19);
      if (name !== "." && name !== "..") names.push(name);
    }
  } finally {
    libc.closedir(dir);
  }
  return names;
}

/**
 * Writes the library as `name`, atomically: a new temporary file (O_EXCL)
 * in the same directory, written, synced, then linked to its name. A link
 * does not replace a file another process or Worker put there meanwhile
 * (theirs is as whole and the same), so a file loaded once keeps its inode.
 */
async function writeCacheFile(
  libc: Libc,
  dirFd: number,
  dir: string,
  name: string,
  embedded: EmbeddedLibrary,
): Promise<void> {
  const bytes = Uint8Array.from(atob(embedded.base64), (c) => c.charCodeAt(0));
  // The name says what the file holds: make it true, whatever happened to the module.
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  const sha256 = Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
  if (sha256 !== embedded.sha256) {
    fail(`the embedded helper library is damaged: its SHA-256 is ${sha256}, not ${embedded.sha256}`);
  }
  const temporary = cstr(`.${name}.${crypto.randomUUID()}`);
  const fd = libc.openat(dirFd, temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o500);
  if (fd < 0) fail(`cannot create a file in ${dir}: ${describeErrno(errno(libc))}`);
  try {
    try {
      for (let offset = 0; offset < bytes.length;) {
        const n = Number(libc.write(fd, bytes.subarray(offset), BigInt(bytes.length - offset)));
        if (n >= 0) {
          offset += n;
          continue;
        }
        const e = errno(libc);
        if (e !== EINTR) fail(`cannot write to ${dir}: ${describeErrno(e)}`);
      }
      if (libc.fsync(fd) !== 0) fail(`cannot write to ${dir}: ${describeErrno(errno(libc))}`);
    } finally {
      libc.close(fd);
    }
    if (libc.linkat(dirFd, temporary, dirFd, cstr(name), 0) !== 0) {
      // EEXIST: another process or Worker was first, with the same bytes.
      // Another failure: a file system without hard links; a rename is atomic too.
      if (errno(libc) !== EEXIST && libc.renameat(dirFd, temporary, dirFd, cstr(name)) !== 0) {
        fail(`cannot create ${dir}/${name}: ${describeErrno(errno(libc))}`);
      }
    }
  } finally {
    libc.unlinkat(dirFd, temporary, 0);
  }
}

/**
 * The library named `name` that another isolate of this process loaded
 * already, to be loaded again through the fd that isolate keeps of it
 * ({@linkcode openCacheFile}): dlopen then finds the library it has, even
 * when its file was renamed or removed since, where a path would load a
 * second copy. `undefined` when the process has none mapped.
 */
function loadedFile(libc: Libc, name: string): EmbeddedFile | undefined {
  const path = mappedPath(libc, name);
  if (path === undefined) return undefined;
  // Its fd shows the path that /proc/self/maps shows, " (deleted)" and all.
  for (const entry of entries(libc, "/proc/self/fd")) {
    if (/^[0-9]+$/.test(entry) && readLink(libc, `/proc/self/fd/${entry}`) === path) {
      return { path, load: `/proc/self/fd/${entry}` };
    }
  }
  fail(
    `this process has loaded ${path} already, but the fd sbox keeps of it is closed: a second copy of the ` +
      "library would not share the first one's state (restart the process)",
  );
}

/** The target of the symbolic link `path`; `undefined` if it cannot be read (errno says why). */
function readLink(libc: Libc, path: string): string | undefined {
  const buf = new Uint8Array(4096);
  const n = Number(libc.readlink(cstr(path), buf, BigInt(buf.length)));
  // A target of PATH_MAX bytes does not fit with room to spare: cut short.
  return n < 0 || n === buf.length ? undefined : new TextDecoder().decode(buf.subarray(0, n));
}

/**
 * The path of a file named `name` that this process has mapped already (a
 * library another isolate loaded), from /proc/self/maps, with " (deleted)"
 * at its end if it has been removed since; `undefined` if none is mapped.
 */
function mappedPath(libc: Libc, name: string): string | undefined {
  const fd = libc.openat(AT_FDCWD, cstr("/proc/self/maps"), O_RDONLY | O_CLOEXEC, 0);
  if (fd < 0) return undefined;
  const chunks: Uint8Array[] = [];
  try {
    for (;;) {
      const buf = new Uint8Array(65536);
      const n = Number(libc.read(fd, buf, BigInt(buf.length)));
      if (n < 0 && errno(libc) === EINTR) continue;
      if (n <= 0) break;
      chunks.push(buf.subarray(0, n));
    }
  } finally {
    libc.close(fd);
  }
  const decoder = new TextDecoder();
  const maps = chunks.map((chunk) => decoder.decode(chunk, { stream: true })).join("");
  for (const line of maps.split("\n")) {
    // "address perms offset dev inode path": the path is what follows the
    // first "/", and may hold spaces.
    const path = line.slice(line.indexOf("/"));
    if (line.includes("/") && (path.endsWith(`/${name}`) || path.endsWith(`/${name} (deleted)`))) return path;
  }
  return undefined;
}
