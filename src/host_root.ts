/**
 * The host's own root as a container's root, with writes that vanish: what
 * `sbox run` uses without `--rootfs`, and {@linkcode HostRootMount} gives
 * the library.
 *
 * One overlay with the host's "/" as its lower layer cannot be mounted from
 * inside a user namespace: "/" has other mounts below it (/proc, /dev, ...),
 * which the kernel locks when it copies the mount table into a less
 * privileged namespace, and overlayfs refuses a lower layer with locked
 * mounts below it (EINVAL, "failed to clone lowerpath"). So the root is
 * built one level down instead:
 *
 * - "/" is a fresh directory of the layers' tmpfs (temporary_layers.ts), bound on
 *   the rootfs (so new top-level entries can be written, within the same
 *   size limit as every upper layer);
 * - each directory of the host's "/" becomes an overlay of that directory
 *   with an upper layer of its own (on that tmpfs, so writes vanish);
 * - a directory with mounts below it is created empty and filled the same
 *   way, one level further down, until no mount is below;
 * - symbolic links are recreated, regular files (and directories on file
 *   systems overlayfs cannot stack on) are bound read-only, nosuid and
 *   nodev;
 * - sockets, FIFOs and device nodes are left out: through a bind (which
 *   read-only does not cover for them) the container's root, the host's
 *   root under the default id map, could talk to host daemons
 *   (/run/docker.sock), or write to a host disk or terminal;
 * - the kernel's own file systems (proc, sysfs, devtmpfs, devpts, ...)
 *   mounted anywhere in the host's tree show as empty directories: a host
 *   proc (a chroot's /proc, say) lists every host process, a devpts holds
 *   the host's terminals;
 * - /proc, /sys, /dev and /tmp are left out: the container gets fresh ones;
 * - the plan is made from the host's mount table as each start reads it
 *   ({@linkcode FreshHostRoot}), yet the child copies the host's mounts a
 *   moment later, and the host mounts at any moment: a mount made in
 *   between below a directory planned as one overlay makes overlayfs
 *   refuse it (EINVAL, "failed to clone lowerpath": the copy is locked in
 *   the container's user namespace). Its error names the mount and says
 *   the plan went stale ({@linkcode PlannedHostRoot.planWentStale});
 *   `sbox run` plans again and retries (cli/run.ts);
 * - the plan is made here, the mounts a moment later in the child: a bind
 *   is of what the plan found or nothing (`hostSource`: a host user may
 *   have swapped the entry for a link since), an overlay of a directory
 *   gone since leaves it empty, and a directory the user may not list shows
 *   empty (rootless: what lies below is not theirs to see); one the user
 *   may not even search (rootless: /root) is an empty directory of the
 *   tmpfs root, which can be written, where an overlay could not;
 * - names are bytes: readDir, readLink and mountTable give a name that is
 *   not UTF-8 as a string that encodes back to it (cstring.ts), so such a
 *   file, mount point or link target is planned as the host has it (read
 *   as text, its path named no file, and it was left out as gone).
 *
 * @module
 */

import { checkHostDir, mkdirLike, type Mount } from "./mount.ts";
import { type MountEntry, mountTable } from "./mountinfo.ts";
import { containerPath, isWithin, pathRelation } from "./path.ts";
import { MS, type ProgramBuilder } from "./program.ts";
import { SboxError } from "./error.ts";
import { describeErrno, errnoNumber } from "./errno.ts";
import { checkOptionsObject, show } from "./options.ts";
import { close, O, readDir, readLink, readRegularFile, resolvedPath, stat, tryOpen } from "./sys.ts";
import { TemporaryLayers } from "./temporary_layers.ts";

const EACCES = errnoNumber("EACCES");

/** Host directories the container gets fresh instances of instead (BaseMounts, a tmpfs /tmp). */
const REPLACED = new Set(["/proc", "/sys", "/dev", "/tmp"]);

/** File systems overlayfs can use as a lower layer; others are bound read-only. */
const OVERLAY_LOWER_FS = new Set([
  "ext2",
  "ext3",
  "ext4",
  "xfs",
  "btrfs",
  "f2fs",
  "tmpfs",
  "overlay",
  "squashfs",
  "zfs",
  "nfs",
  "nfs4",
  "virtiofs",
]);

/**
 * The kernel's own file systems: what they show is the host's (its
 * processes, devices, terminals, kernel state), not files. Wherever one is
 * mounted in the host's tree, the container sees an empty directory.
 */
const KERNEL_FS = new Set([
  "proc",
  "sysfs",
  "devtmpfs",
  "devpts",
  "cgroup",
  "cgroup2",
  "debugfs",
  "tracefs",
  "securityfs",
  "bpf",
  "binfmt_misc",
  "mqueue",
  "hugetlbfs",
  "pstore",
  "efivarfs",
  "configfs",
  "fusectl",
  "autofs",
  "nsfs",
  "rpc_pipefs",
  "selinuxfs",
]);

/** One entry of the host's tree, as it appears in the container. */
export type HostEntry =
  /** An empty directory on the tmpfs root, filled by the entries below it. */
  | { kind: "dir"; path: string }
  /** A writable view of a host directory, with a temporary upper layer. */
  | { kind: "overlay"; path: string }
  /** A read-only bind mount of a host file or directory, as the plan found it. */
  | { kind: "bind"; path: string; directory: boolean }
  /** A symbolic link, recreated as it is on the host. */
  | { kind: "symlink"; path: string; target: string }
  /** A small host file that the setup may write over later, copied onto the tmpfs root as `text`. */
  | { kind: "copy"; path: string; text: string };

/**
 * Files that a later step of the setup writes over: a network manager's
 * /etc/resolv.conf, `sbox run`'s /etc/hosts and /etc/hostname. Where the
 * plan would bind one (in a directory with mounts below it: /etc on a
 * Docker or Kubernetes host, whose /etc/resolv.conf, /etc/hosts and
 * /etc/hostname are themselves mount points), that write could
 * neither replace the bind nor write through it (`EBUSY`, `EROFS`); a copy
 * on the tmpfs root can be replaced, and without such a step it shows what
 * the host's does.
 */
const REWRITTEN = new Set(["/etc/resolv.conf", "/etc/hosts", "/etc/hostname"]);

/**
 * At most this much of a {@linkcode REWRITTEN} file is copied; a bigger one
 * is bound (see {@linkcode copyableText}).
 */
export const COPY_MAX_BYTES = 1 << 20;

const STRICT_UTF8 = new TextDecoder("utf-8", { fatal: true });

/**
 * The rule for a {@linkcode REWRITTEN} file, in one place: the text of its
 * `bytes` (read with a limit of {@linkcode COPY_MAX_BYTES}: more says it is
 * bigger) where the host's root copies it, or undefined where it binds it.
 * A copy is a string the setup writes back (ProgramBuilder.writeFile), so
 * only UTF-8 is copied, whose bytes come back the same, and without a NUL,
 * which the program's strings cannot hold (a host's /etc/hostname with one
 * failed every run); and only up to {@linkcode COPY_MAX_BYTES}, as it is
 * held in memory and in the program.
 * `sbox run` (cli/etc.ts) rewrites /etc/hosts and /etc/hostname by this
 * rule too, of any root: a file the host's root bound could not be
 * replaced (`EBUSY`), and a run failed where the two rules drifted apart
 * (a hosts file of 100 KiB, rewritten but bound).
 *
 * @example
 * ```ts
 * import { copyableText } from "./host_root.ts";
 *
 * console.log(copyableText(new TextEncoder().encode("nameserver 10.0.2.3\n"))); // its text
 * console.log(copyableText(new Uint8Array([0xfe]))); // undefined: not UTF-8, bound
 * console.log(copyableText(new Uint8Array([0x61, 0]))); // undefined: a NUL, bound
 * ```
 */
export function copyableText(bytes: Uint8Array): string | undefined {
  if (bytes.length > COPY_MAX_BYTES) return undefined;
  let text;
  try {
    text = STRICT_UTF8.decode(bytes);
  } catch {
    return undefined;
  }
  return text.includes("\0") ? undefined : text;
}

/** The text of host file `path` to copy, or undefined where it is to be bound (unreadable, or see {@linkcode copyableText}). */
function copyText(path: string): string | undefined {
  try {
    return copyableText(readRegularFile(path, "host file", COPY_MAX_BYTES + 1));
  } catch {
    return undefined;
  }
}

/**
 * Whether this process may search host directory `path` (look names up in
 * it): an O_PATH open of "path/." asks for that alone. Rootless, a user may
 * not search host root's /root (0700). Overlaid, it would show as the
 * container root's own, yet nothing could be made in it: overlayfs looks a
 * new name up in the lower layer too, as the user (EACCES), so HOME=/root
 * was not writable. One gone since the plan read its parent counts as
 * searchable (an overlay of it leaves it empty).
 */
function searchable(path: string): boolean {
  const fd = tryOpen(`${path}/.`, O.PATH | O.DIRECTORY);
  if (fd === -EACCES) return false;
  if (fd >= 0) close(fd);
  return true;
}

/**
 * Lists how the host's tree maps into the container, parents before
 * children, by this process's mount table `mounts` (read anew by default).
 *
 * @example The plan's first entries
 * ```ts
 * import { planHostRoot } from "./host_root.ts";
 *
 * const entries = planHostRoot();
 * console.log(entries.some((e) => e.path === "/usr")); // true
 * ```
 * @internal Exported for tests only.
 */
export function planHostRoot(mounts: readonly MountEntry[] = mountTable()): HostEntry[] {
  const entries: HostEntry[] = [];
  // Looked up by path, not by a scan of the table for each entry: a host
  // with 2000 mounts in one directory took 2.7 s to plan (4 million scans).
  // The last mount listed at a path is the one on top.
  const topMount = new Map<string, MountEntry>();
  // Every directory with a mount point strictly below it.
  const holders = new Set<string>();
  for (const m of mounts) {
    topMount.set(m.path, m);
    for (let dir = parentDir(m.path); dir !== undefined; dir = parentDir(dir)) {
      if (holders.has(dir)) break; // and its parents too
      holders.add(dir);
    }
  }

  const fstypeOf = (path: string): string => {
    for (let at: string | undefined = path; at !== undefined; at = parentDir(at)) {
      const m = topMount.get(at);
      if (m) return m.fstype;
    }
    return "";
  };
  const hasMountBelow = (dir: string) => holders.has(dir);

  const visit = (dir: string): void => {
    let names: { name: string }[];
    try {
      names = readDir(dir);
    } catch (err) {
      // A directory the user may not list (rootless: another user's
      // /run/user/UID, Docker's 0710 /var/lib/docker) shows empty, as it
      // does to them on the host: what lies below is theirs no more.
      if (err instanceof SboxError && (err.errno === "EACCES" || err.errno === "ENOENT")) return;
      throw err;
    }
    for (const { name } of names) {
      const path = dir === "/" ? `/${name}` : `${dir}/${name}`;
      if (REPLACED.has(path)) continue;
      const info = stat(path, false);
      if (!info) continue; // gone since readDir
      if (info.isSymlink) {
        entries.push({ kind: "symlink", path, target: readLink(path) });
      } else if (KERNEL_FS.has(fstypeOf(path)) && !info.isDirectory) {
        continue; // a kernel file system mounted on a file (a netns of `ip netns add`): left out
      } else if (info.isFile) {
        const text = REWRITTEN.has(path) ? copyText(path) : undefined;
        entries.push(
          text === undefined ? { kind: "bind", path, directory: false } : { kind: "copy", path, text },
        );
      } else if (!info.isDirectory) {
        continue; // a socket, FIFO or device node: left out
      } else if (KERNEL_FS.has(fstypeOf(path))) {
        entries.push({ kind: "dir", path }); // empty, whatever is mounted below
      } else if (hasMountBelow(path)) {
        entries.push({ kind: "dir", path });
        visit(path);
      } else if (!searchable(path)) {
        entries.push({ kind: "dir", path }); // empty, as it is to the user, and writable
      } else if (OVERLAY_LOWER_FS.has(fstypeOf(path))) {
        entries.push({ kind: "overlay", path });
      } else {
        entries.push({ kind: "bind", path, directory: true });
      }
    }
  };
  visit("/");
  return entries;
}

/** The directory that holds absolute `path` ("/a" for "/a/b", "/" for "/a"), or undefined for "/". */
function parentDir(path: string): string | undefined {
  if (path === "/") return undefined;
  const slash = path.lastIndexOf("/");
  return slash <= 0 ? "/" : path.slice(0, slash);
}

/** Options of {@linkcode HostRootMount}. */
export interface HostRootMountOptions {
  /**
   * An empty host directory: the container mounts the tmpfs that holds its
   * writes on it, in its own mount namespace, so on the host it stays
   * empty, even if the caller is killed. It and the rootfs directory lie
   * apart, neither inside the other. `Container.create()` refuses one that
   * is not empty: in the container the tmpfs would hide what it holds.
   * Several containers may share it; remove it once they are destroyed.
   */
  layersDir: string;
  /**
   * The size of that tmpfs in bytes: everything the container writes to
   * its root, together (and one inode per 4 KiB). Default 1 GiB, as
   * `sbox run`'s `--write-limit`. Its pages are memory, counted toward the
   * container's memory limit where a memory controller is given.
   */
  size?: number;
}

/** {@linkcode HostRootMountOptions.size}'s default: `sbox run`'s `--write-limit`. */
export const DEFAULT_HOST_ROOT_SIZE: number = 1024 ** 3;

/**
 * The host's own root as the container's root, with writes that vanish:
 * what `sbox run` uses without `--rootfs`. Your programs (python3, a
 * compiler) run as installed, and nothing the container writes reaches the
 * host. `new OverlayMount(["/"])` cannot do this: the mounts below the
 * host's "/" (/proc, /boot, ...) are locked in the container's user
 * namespace, and overlayfs refuses a lower layer with locked mounts below
 * it. So each directory of "/" is an overlay of its own, one level further
 * down where mounts lie below, with its upper layer on one tmpfs on
 * `layersDir`; files are bound read-only; the kernel's file systems
 * (another proc, devpts, ...) show as empty directories; sockets, FIFOs
 * and devices are left out (no host daemon's socket). /proc, /sys, /dev and
 * /tmp are left out as well: add {@linkcode BaseMounts} and a
 * {@linkcode TmpfsMount} on /tmp. Everything is nosuid, and binds nodev.
 * The host's tree is read when the container starts; a mount the host
 * makes below one of its directories in the moment between that reading
 * and the container's copy of the host's mounts fails the start with an
 * EINVAL whose message names it, and another start reads the tree anew
 * (`sbox run` starts again itself). Without root, what the caller may not
 * list shows empty, and the rest keeps its host owners (unmapped ones show
 * as 65534). /etc/resolv.conf, /etc/hosts and /etc/hostname are copied
 * where they would be bound (a host whose /etc has mounts below it), so
 * that a network manager can write its own resolv.conf.
 *
 * @example A container on the host's root, as `sbox run` makes one
 * ```ts ignore
 * import { BaseMounts, Container, HostRootMount, ProcUserMapper, TmpfsMount } from "../mod.ts";
 *
 * // Needs python3 on the host, and --allow-write (Deno.makeTempDir, mkdir,
 * // remove) beside sbox's --allow-ffi.
 * const state = await Deno.makeTempDir();
 * await Deno.mkdir(`${state}/root`);
 * await Deno.mkdir(`${state}/layers`);
 * const container = await Container.create({
 *   rootfs: `${state}/root`,
 *   userMapper: ProcUserMapper.newRoot(),
 *   mounts: [
 *     new HostRootMount({ layersDir: `${state}/layers`, size: 256 << 20 }),
 *     new BaseMounts(),
 *     new TmpfsMount("/tmp", { size: 64 << 20 }),
 *   ],
 * });
 * try {
 *   const init = await container.start({
 *     command: ["python3", "-c", "print(2 + 2)"],
 *     env: { PATH: "/usr/bin:/bin" },
 *     stdout: "piped",
 *   });
 *   console.log(new TextDecoder().decode((await init.output()).stdout)); // 4
 * } finally {
 *   await container.destroy();
 *   await Deno.remove(state, { recursive: true });
 * }
 * ```
 */
export class HostRootMount implements Mount {
  /** Mounted on the root. */
  readonly target = "/";
  /** Where the tmpfs of the writes is mounted (in the container's namespace only). */
  readonly layersDir: string;
  /** The size of that tmpfs in bytes. */
  readonly size: number;

  /** The host's root, with writes on a tmpfs of `options.size` on `options.layersDir`. */
  constructor(options: HostRootMountOptions) {
    options = checkOptionsObject("HostRootMount", options, { layersDir: true, size: true });
    this.layersDir = options.layersDir;
    this.size = options.size ?? DEFAULT_HOST_ROOT_SIZE;
  }

  /** Checks that `layersDir` is an empty directory and `size` a positive number of bytes. */
  validate(): void {
    checkHostDir("HostRootMount", "layersDir", this.layersDir);
    checkEmptyLayersDir(this.layersDir);
    if (!Number.isSafeInteger(this.size) || this.size <= 0) {
      throw SboxError.invalidOption(
        "HostRootMount",
        `size must be a positive number of bytes, got ${show(this.size)}`,
      );
    }
  }

  /** Reads the host's tree now and appends the tmpfs, the root and a mount, directory or link per entry. */
  compile(b: ProgramBuilder, rootfs: string): void {
    const layers = resolvedPath(this.layersDir), root = resolvedPath(rootfs);
    // "/" holds every path: a layersDir "/" would put the tmpfs over the
    // host's whole tree in the container's namespace, which the plan reads.
    if (pathRelation(layers, root) !== undefined) {
      // The root's bind would hide the layers from the overlays mounted
      // after it, or the layers' tmpfs the rootfs.
      throw SboxError.invalidOption(
        "HostRootMount",
        `layersDir ${this.layersDir} and the rootfs ${rootfs} must lie apart, neither inside the other`,
      );
    }
    new FreshHostRoot(new TemporaryLayers(this.layersDir, this.size)).compile(b, rootfs);
  }
}

/**
 * Refuses a `layersDir` that is not empty, as its docs ask. The layers'
 * tmpfs hides what it holds in the container, where it is a directory of
 * the host's root too: "/etc" gave the container the layers for its /etc
 * (no hostname, every other overlay's upper layer shown).
 */
function checkEmptyLayersDir(layersDir: string): void {
  let entries;
  try {
    entries = readDir(layersDir);
  } catch (err) {
    if (!(err instanceof SboxError) || err.errnoNumber === undefined) throw err;
    throw SboxError.invalidOption(
      "HostRootMount",
      `layersDir ${layersDir} cannot be listed, to check that it is empty: ${describeErrno(err.errnoNumber)}`,
    );
  }
  if (entries.length > 0) {
    const more = entries.length > 1 ? ` and ${entries.length - 1} more` : "";
    throw SboxError.invalidOption(
      "HostRootMount",
      `layersDir ${layersDir} must be an empty directory, but it holds ${show(entries[0].name)}${more}`,
    );
  }
}

/**
 * A plan of the host's root (see {@linkcode planHostRoot}) as a
 * {@linkcode Mount} on "/": what {@linkcode HostRootMount} mounts, and a
 * test with a plan it changed. Everything is mounted nosuid: with ids mapped one to one, a
 * set-uid program of the host would otherwise give its host owner's rights.
 * Binds are nodev too: they come from the host's own mounts, which the
 * kernel does not mark nodev as it does every mount made in a user namespace.
 * @internal Exported for tests only.
 */
export class PlannedHostRoot implements Mount {
  /** Mounted on the root. */
  readonly target = "/";
  /** What is mounted, parents first. */
  readonly entries: readonly HostEntry[];
  readonly #layers: TemporaryLayers;
  readonly #options: PlannedHostRootOptions;
  #stale = false;

  /**
   * A root of `entries` (see {@linkcode planHostRoot}) with upper layers in
   * `layers`; `options` say what its errors know of the plan.
   */
  constructor(entries: HostEntry[], layers: TemporaryLayers, options: PlannedHostRootOptions = {}) {
    this.entries = entries;
    this.#layers = layers;
    this.#options = options;
  }

  /**
   * Whether a start of this root failed because the host's mounts changed
   * after the plan was made (a mount made below a directory planned as one
   * overlay): a plan made anew may well succeed. Set as the failed start's
   * error is made (an overlay's `explain`), so read it once start() has
   * rejected.
   */
  get planWentStale(): boolean {
    return this.#stale;
  }

  /** Nothing to check: the entries come from the host itself. */
  validate(): void {}

  /** Appends the tmpfs root and a mount, directory or link per entry. */
  compile(b: ProgramBuilder, rootfs: string): void {
    this.#layers.mountTmpfs(b);
    this.#layers.bindRoot(b, rootfs);
    for (const entry of this.entries) {
      const at = containerPath(rootfs, entry.path);
      switch (entry.kind) {
        case "dir":
          mkdirLike(b, at, entry.path); // on the tmpfs root: as the host's, not 0755 root
          break;
        case "symlink":
          b.symlink(entry.target, at);
          break;
        case "copy":
          b.writeFile(at, entry.text);
          break;
        case "bind":
          // As planned, whatever the path is by now: the entries lie where
          // host users may write (a directory with a mount below it, such
          // as /run/user/UID), and the helper binds the entry only while
          // it is still of its planned kind, never through a link to it
          // (a daemon's socket, "/"). Read-only from the start, every mount
          // of it (MS_REC: one that appeared below it since the plan too).
          if (entry.directory) b.mkdir(at);
          else b.touch(at);
          b.mount(
            entry.path,
            at,
            null,
            MS.BIND | MS.REC | MS.RDONLY | MS.NOSUID | MS.NODEV,
            null,
            `cannot bind ${entry.path}`,
            { hostSource: entry.directory ? "directory" : "file" },
          );
          break;
        case "overlay":
          // A directory gone since the plan stays empty: an entry that comes
          // and goes on the host does not fail the run.
          b.mkdir(at);
          this.#layers.overlay(b, entry.path, at, MS.NOSUID, `cannot mount overlay on ${entry.path}`, {
            option: "the host's root",
            stackingRemedy: this.#options.stackingRemedy,
            skipGoneLower: true,
            explainEinval: (table, stacking) => this.#explainEinval(entry.path, table, stacking),
          });
          break;
      }
    }
  }

  /**
   * Why overlayfs refused (EINVAL) host directory `dir`, which the plan
   * found with no mount below it, by `table`, the mount table read after
   * the failure, and `stacking`, what TemporaryLayers found of an overlay
   * stacked too deep. The child copied the host's mounts a moment after
   * the plan: one made below `dir` in between is locked in the container's
   * user namespace, and overlayfs refuses a lower layer with a locked mount
   * below it ("failed to clone lowerpath" in the kernel's log). Such a
   * mount is named where it is still there; else a host directory on an
   * overlay stacked too deep is the one other cause sbox knows of, and
   * without it a mount that came and went is the likely one. Either of
   * those means a plan gone stale ({@linkcode planWentStale}).
   */
  #explainEinval(dir: string, table: readonly MountEntry[], stacking: string | undefined): string {
    const made = mountsMadeSince(dir, this.#options.plannedFrom, table);
    if (made.length > 0) {
      this.#stale = true;
      const shown = made.slice(0, 3).map((m) => m.path === dir ? `${dir} itself (${m.fstype})` : m.path);
      const more = made.length > 3 ? ` and ${made.length - 3} more` : "";
      const mounted = `${shown.join(", ")}${more} ${made.length === 1 ? "was" : "were"} mounted since`;
      return `the host's mounts changed while the container was set up: ${dir} had no mount below it when ` +
        `sbox read the host's mount table, so it was planned as one overlay, but ${mounted}, and overlayfs ` +
        "refuses a directory with a mount below it that the container may not unmount";
    }
    if (stacking !== undefined) return stacking;
    this.#stale = true;
    return `overlayfs refuses a directory with a mount below it that the container may not unmount, and ${dir} ` +
      "had none when sbox read the host's mount table: most likely the host mounted one there while the " +
      "container was set up (and has unmounted it again)";
  }
}

/** Options of a {@linkcode PlannedHostRoot}: what its errors know of its plan. */
export interface PlannedHostRootOptions {
  /**
   * What the error of a host directory on an overlay stacked too deep
   * advises, if not the library's way out (TemporaryLayers.overlay): the
   * CLI names its own option.
   */
  stackingRemedy?: string;
  /**
   * The mount table the entries were planned by ({@linkcode planHostRoot}'s
   * `mounts`): a failed overlay's error tells the mounts made since from
   * those the plan saw. Without it, only mounts strictly below the
   * overlay's directory count as made since (the plan saw none there).
   */
  plannedFrom?: readonly MountEntry[];
}

/**
 * The mounts of `table` (read now) at or below host directory `dir` that
 * the plan of an overlay of `dir` did not see: every mount strictly below
 * it (the plan saw none there, or it would have planned `dir` as a
 * directory of its own), and the one on top at `dir` where it is another
 * than the one `plannedFrom` had on top there.
 */
function mountsMadeSince(
  dir: string,
  plannedFrom: readonly MountEntry[] | undefined,
  table: readonly MountEntry[],
): MountEntry[] {
  const below = table.filter((m) => m.path !== dir && isWithin(m.path, dir));
  const topAt = (mounts: readonly MountEntry[]) => mounts.findLast((m) => m.path === dir);
  const now = topAt(table), then = plannedFrom && topAt(plannedFrom);
  const changedAt = plannedFrom !== undefined && now !== undefined &&
    (then === undefined || then.id !== now.id || then.device !== now.device);
  return changedAt ? [now, ...below] : below;
}

/**
 * How many plans a {@linkcode FreshHostRoot} makes in one start, at most,
 * while the host's mounts change under them; it goes on with the last.
 */
const PLANS_PER_START = 3;

/**
 * Whether a mount of `now` that `planned` (the table `entries` were
 * planned by) did not have lies at or below a directory `entries` overlay:
 * overlayfs refuses one with a mount below it that the container may not
 * unmount, and one mounted on it may be of a kernel file system, which the
 * plan shows empty.
 */
function overlaysMountedOn(
  entries: readonly HostEntry[],
  planned: readonly MountEntry[],
  now: readonly MountEntry[],
): boolean {
  const key = (m: MountEntry) => `${m.id} ${m.device} ${m.path}`;
  const seen = new Set(planned.map(key));
  const overlays = new Set(entries.filter((e) => e.kind === "overlay").map((e) => e.path));
  for (const mount of now) {
    if (seen.has(key(mount))) continue;
    for (let at: string | undefined = mount.path; at !== undefined; at = parentDir(at)) {
      if (overlays.has(at)) return true;
    }
  }
  return false;
}

/**
 * {@linkcode FreshHostRoot.compile}'s plan: the entries, and the mount
 * table they were planned by (which their errors compare with the table
 * after a failure, so not the one read after the plan: a mount it has,
 * made on an overlay's own directory meanwhile, would count as seen by
 * the plan). `readTable` reads the table ({@linkcode mountTable}).
 *
 * @internal Exported for tests only.
 */
export function planFreshly(
  readTable: () => MountEntry[] = mountTable,
): { entries: HostEntry[]; plannedFrom: MountEntry[] } {
  let table = readTable();
  for (let plans = 1;; plans++) {
    const entries = planHostRoot(table);
    const now = readTable();
    if (plans < PLANS_PER_START && overlaysMountedOn(entries, table, now)) {
      table = now;
      continue;
    }
    return { entries, plannedFrom: table };
  }
}

/**
 * The host's root planned anew by each start (each compile): a
 * {@linkcode PlannedHostRoot} of {@linkcode planHostRoot} from the mount
 * table as it is just before the container is made, which
 * {@linkcode HostRootMount} and `sbox run` mount. The host mounts and
 * unmounts at any moment (other containers, a test suite under /var/tmp),
 * so a plan is only as good as the moment it was read in: `sbox run` read
 * it with the rest of its setup, tens of milliseconds before the start,
 * and a mount made below /var in between failed the run. After a failed
 * start, {@linkcode planWentStale} says whether the host's mounts changing
 * in the moment between the plan and the container's copy of them was
 * why: the next start plans anew.
 */
export class FreshHostRoot implements Mount {
  /** Mounted on the root. */
  readonly target = "/";
  readonly #layers: TemporaryLayers;
  readonly #stackingRemedy: string | undefined;
  #last: PlannedHostRoot | undefined;

  /**
   * The host's root with upper layers in `layers`; `stackingRemedy` as
   * {@linkcode PlannedHostRootOptions.stackingRemedy}.
   */
  constructor(layers: TemporaryLayers, stackingRemedy?: string) {
    this.#layers = layers;
    this.#stackingRemedy = stackingRemedy;
  }

  /** Nothing to check: the entries come from the host itself. */
  validate(): void {}

  /**
   * Reads the host's mount table and tree now, and appends the root they
   * plan. The table is read again once the tree is: a plan that a mount
   * made meanwhile already makes fail is made again, up to
   * {@linkcode PLANS_PER_START} times, so that the moment in which the
   * host's mounts can make it stale is the start's alone, not the walk of
   * the tree too (seconds, with thousands of mounts in one directory).
   */
  compile(b: ProgramBuilder, rootfs: string): void {
    const { entries, plannedFrom } = planFreshly();
    this.#last = new PlannedHostRoot(entries, this.#layers, {
      stackingRemedy: this.#stackingRemedy,
      plannedFrom,
    });
    this.#last.compile(b, rootfs);
  }

  /** {@linkcode PlannedHostRoot.planWentStale} of the last plan: false before any. */
  get planWentStale(): boolean {
    return this.#last?.planWentStale ?? false;
  }
}
