/**
 * Mounts of a container. Each mount compiles into setup ops (program.ts) that
 * the child runs in its new mount namespace, before pivot_root, so targets
 * are paths under the container's rootfs and sources are host paths. Order
 * matters and is the caller's: the root ("/") first, then what goes on it.
 *
 * @module
 */

import { encodedLength } from "./cstring.ts";
import { describeErrno } from "./errno.ts";
import { SboxError } from "./error.ts";
import { checkBoolean, checkNoHoles, checkOptionsObject, checkPathText, show } from "./options.ts";
import { type MountOpOptions, MS, type ProgramBuilder, UNCHANGED_ID } from "./program.ts";
import { type MountEntry, mountTable } from "./mountinfo.ts";
import { cleanPath, containerPath, isWithin, pathRelation } from "./path.ts";
import { type FileStat, readDir, resolvedPath, stat } from "./sys.ts";
import { containerId } from "./user.ts";
import { OVERLAY_LOOP_PROBLEM, overlayStackingProblem, procSysfsRefusal } from "./mount_refusals.ts";

/**
 * Something that can be mounted into a container. Its methods are
 * synchronous: one that returns a promise (written `async`) is refused,
 * since the container does not wait for it.
 */
export interface Mount {
  /** Checks host paths; throws an SboxError naming the bad option. */
  validate(): void;
  /**
   * Appends the ops that mount it under `rootfs`: the absolute path of the
   * container's root directory, or "." (the working directory is then that
   * root) for a mount whose target is not "/".
   */
  compile(builder: ProgramBuilder, rootfs: string): void;
  /** The container path it mounts on. */
  readonly target: string;
  /**
   * Whether it mounts a file system on "/" itself, in place of the rootfs
   * directory; default: whether `target` is "/". Without such a mount the
   * container binds the rootfs on itself, since pivot_root needs a mount
   * point. {@linkcode BaseMounts} says false: its target is "/", yet it
   * mounts only below it. A mount on "/" itself must come first among a
   * container's mounts (`Container.create()` refuses it later).
   */
  readonly mountsOnRoot?: boolean;
  /**
   * The host path it binds on `target`, if it binds one, as a
   * {@linkcode BindMount} does (its `source`): what is written at `target`
   * in the container then reaches the host's files. With a network manager
   * (`Slirp4NetnsManager`, `PastaManager`), `Container.create()` refuses
   * such a mount on /etc or /etc/resolv.conf: the network writes
   * /etc/resolv.conf after the mounts, which would go into the source (or
   * fail on a read-only one). A custom mount that binds a host path says
   * so here, or escapes that refusal.
   */
  readonly bindSource?: string;
}

/** Whether `mount` replaces the root: see {@linkcode Mount.mountsOnRoot}. */
export function replacesRoot(mount: Mount): boolean {
  return mount.mountsOnRoot ?? mount.target === "/";
}

/**
 * Appends a mkdir for each parent directory of container path `target`
 * (not `target` itself), so that a mount may go below directories the image
 * lacks, as with `mkdir -p`. Existing ones are fine. The child checks each
 * for symbolic links first, so none of them is made outside the root.
 */
export function compileParents(builder: ProgramBuilder, rootfs: string, target: string): void {
  const parts = target.split("/").filter(Boolean);
  for (let i = 1; i < parts.length; i++) {
    builder.mkdir(containerPath(rootfs, `/${parts.slice(0, i).join("/")}`));
  }
}

/**
 * Appends a mkdir of `path` with the mode and owner of host directory
 * `like`: for the upper layer of an overlay, whose root directory is what
 * the overlay shows as its own (a host /root of mode 0700 must stay 0700).
 * The owner goes through the builder's id maps; one they leave out (host
 * root under a rootless map) stays the setup's: the container's root, or
 * under keep-id maps the caller's own uid, the command's in `sbox run
 * --keep-id` (see setupIds in user.ts); never an id that would make another
 * container user its owner.
 */
export function mkdirLike(builder: ProgramBuilder, path: string, like: string): void {
  const host = stat(like);
  if (!host) return void builder.mkdir(path);
  const maps = builder.idMaps;
  builder.mkdir(path, host.mode & 0o7777, {
    uid: (maps && containerId(maps.uidMap, host.uid)) ?? UNCHANGED_ID,
    gid: (maps && containerId(maps.gidMap, host.gid)) ?? UNCHANGED_ID,
  });
}

/**
 * The options of an overlay mount. `userxattr`: the overlay is always
 * mounted in the container's user namespace, where the kernel refuses the
 * `trusted.overlay.*` xattrs that mark opaque directories; without it,
 * removing or replacing a directory of a lower layer (`rm -rf /etc`, then
 * `mkdir /etc`) fails with EIO. Renaming one fails with EXDEV either way:
 * that needs `redirect_dir`, which no user namespace may have. The
 * `user.overlay.*` ones need Linux 5.11 and an upper file system with user
 * xattrs (tmpfs, ext4, xfs, btrfs).
 */
function overlayOptions(
  lowerDirs: readonly string[],
  upperDir: string,
  workDir: string,
  option: string,
): string {
  const lower = lowerDirs.map(escapeOverlayPath).join(":");
  const options = `lowerdir=${lower},upperdir=${escapeOverlayPath(upperDir)},workdir=${
    escapeOverlayPath(workDir)
  },userxattr`;
  // mount(2) takes one page of options and cuts the rest off without a word:
  // the kernel would mount fewer layers, or no upper layer, or no userxattr.
  const bytes = encodedLength(options); // as the program writes it: an escaped byte is one (cstring.ts)
  if (bytes > MAX_MOUNT_DATA) {
    throw SboxError.invalidOption(
      option,
      `the overlay's options (its layer paths) are ${bytes} bytes, more than mount(2) takes ` +
        `(${MAX_MOUNT_DATA}): use fewer layers or shorter paths`,
    );
  }
  return options;
}

/** The most option bytes mount(2) reads: a page, less its final NUL (4 KiB pages are the smallest). */
const MAX_MOUNT_DATA = 4095;

/**
 * A path as overlayfs reads it in its options: "," separates options and
 * ":" layers, and a backslash escapes either (and itself).
 */
function escapeOverlayPath(path: string): string {
  return path.replace(/[\\,:]/g, (c) => `\\${c}`);
}

/** An overlay of sbox's: its layers, where it goes, and how its errors read. */
export interface OverlayLayers {
  /** Read-only layers, top first. */
  lowers: readonly string[];
  /** The writable layer. */
  upper: string;
  /** overlayfs's work directory, on the upper layer's file system. */
  work: string;
  /** Where it is mounted: a path under the rootfs. */
  target: string;
  /** Its MS flags. */
  flags: number;
  /** What its op's error says could not be done. */
  what: string;
  /** What an error about its options (its layer paths too long) names: an option of the caller's. */
  option: string;
  /** Why it failed, where the errno alone would not say: see {@linkcode MountOpOptions.explain}. */
  explain: (errno: string) => string | undefined;
  /** A lower layer gone by the time the child mounts it leaves `target` empty (else the mount fails). */
  skipGoneLower?: boolean;
}

/**
 * Appends the mount op of `overlay`. Every overlay of sbox's refuses a
 * symbolic link at its target (`targetNoLink`: overlayfs resolves its layer
 * paths again itself, as the host would) and fails with EROFS where it came
 * out read-only (`checkWritable`).
 */
function compileOverlay(builder: ProgramBuilder, overlay: OverlayLayers): void {
  builder.mount(
    "overlay",
    overlay.target,
    "overlay",
    overlay.flags,
    overlayOptions(overlay.lowers, overlay.upper, overlay.work, overlay.option),
    overlay.what,
    {
      targetNoLink: true,
      skipGoneLower: overlay.skipGoneLower ?? false,
      checkWritable: true,
      explain: overlay.explain,
    },
  );
}

/**
 * Appends the mount of a tmpfs for temporary upper layers on `dir` (a host
 * path, or one under the rootfs): nosuid and nodev, its root of `mode`,
 * `size` bytes at most (the kernel's default, half of RAM, without). Their
 * pages are memory, counted toward the container's memory limit.
 */
export function compileLayersTmpfs(
  builder: ProgramBuilder,
  dir: string,
  mode: number,
  size: number | undefined,
  what: string,
): void {
  const limits = size === undefined ? "" : `,${tmpfsLimits(size)}`;
  builder.mount("tmpfs", dir, "tmpfs", MS.NOSUID | MS.NODEV, `mode=${mode.toString(8)}${limits}`, what);
}

/**
 * Appends a temporary upper layer and the overlay with it: `overlay.upper`
 * and `overlay.work` made on a tmpfs the caller mounted
 * ({@linkcode compileLayersTmpfs}), then the overlay. The one way sbox makes
 * an overlay whose writes vanish with the container: {@linkcode OverlayMount}
 * without `upperDir`, and the layers of `sbox run`'s root and of
 * HostRootMount (temporary_layers.ts).
 */
export function compileTemporaryOverlay(builder: ProgramBuilder, overlay: OverlayLayers): void {
  // The upper layer's root directory is the overlay's: it takes the top lower one's mode and owner.
  mkdirLike(builder, overlay.upper, overlay.lowers[0]);
  builder.mkdir(overlay.work);
  compileOverlay(builder, overlay);
}

/**
 * The size options of a tmpfs of `bytes`: its size, and as many inodes as
 * it has pages (at least 1024). A size alone bounds the data, not the
 * files: empty files cost none of it, yet each takes about a kilobyte of
 * kernel memory, and the kernel's default allows millions of them (half of
 * RAM in pages), which nothing else bounds where there is no memory
 * controller. One per page keeps that memory under a third of the size.
 */
function tmpfsLimits(bytes: number): string {
  return `size=${bytes},nr_inodes=${Math.max(1024, Math.ceil(bytes / 4096))}`;
}

/**
 * Checks container path `target` of a mount that `option` names: absolute,
 * without "..", and text the kernel gets as given (`checkPathText`: no NUL
 * byte, no lone surrogate, no file name past NAME_MAX); returns it cleaned.
 */
export function checkTarget(option: string, target: string): string {
  if (typeof target !== "string" || !target.startsWith("/")) {
    throw SboxError.invalidOption(option, `target must be an absolute path, got ${show(target)}`);
  }
  checkPathText(option, "target", target);
  if (target.split("/").some((part) => part === "..")) {
    throw SboxError.invalidOption(option, `target must not contain "..": ${target}`);
  }
  return cleanPath(target);
}

/**
 * Checks host path `path`, which `what` names in `option` ("source" of
 * "BindMount"; undefined: the option itself, "rootfs"): absolute, text the
 * kernel gets as given (`checkPathText`), and one that can be looked at.
 * Returns its stat, undefined where it does not exist. A stat that fails
 * otherwise (EACCES on the way, ENOTDIR, ELOOP, ENAMETOOLONG once links
 * are followed) is an error naming `option`: its own would name neither
 * the option nor the path's role.
 */
export function statHostPath(option: string, what: string | undefined, path: string): FileStat | undefined {
  const subject = what === undefined ? "" : `${what} `;
  if (typeof path !== "string" || !path.startsWith("/")) {
    throw SboxError.invalidOption(option, `${subject}must be an absolute path, got ${show(path)}`);
  }
  checkPathText(option, what, path);
  try {
    return stat(path);
  } catch (err) {
    if (!(err instanceof SboxError) || err.errnoNumber === undefined) throw err;
    throw SboxError.invalidOption(
      option,
      `cannot stat ${subject}${path}: ${describeErrno(err.errnoNumber)}`,
      {
        errno: err.errnoNumber,
        cause: err,
      },
    );
  }
}

/** Checks host directory `path`, which `what` names in `option` ("upperDir" of "OverlayMount"). */
export function checkHostDir(option: string, what: string, path: string): void {
  if (!statHostPath(option, what, path)?.isDirectory) {
    throw SboxError.invalidOption(option, `${what} ${path} is not a directory`);
  }
}

/**
 * Refuses overlay directories (`[what, path]`, each an existing directory)
 * of which one is, holds or lies inside another. Most such layouts overlayfs
 * refuses itself, but in the child, after the process exists, with an error
 * that names neither: ELOOP ("overlapping lowerdir path", also for two lower
 * layers) or EINVAL ("workdir and upperdir must be separate subtrees"). An
 * upper or work directory inside a lower layer it does mount (it checks only
 * the lower layers' ancestors): the container's writes then change a lower
 * layer under the mounted overlay, which overlayfs leaves undefined. Paths
 * are compared as the kernel resolves them, as overlayfs does: a link to
 * another layer is the same directory.
 */
function checkLayersApart(layers: readonly [string, string][]): void {
  // One layer (a temporary overlay of one image, the usual start) has
  // nothing to overlap: no resolution, which costs three calls a layer.
  if (layers.length < 2) return;
  const resolved = layers.map(([, path]) => resolvedPath(path));
  for (let i = 0; i < layers.length; i++) {
    for (let j = i + 1; j < layers.length; j++) {
      const relation = pathRelation(resolved[i], resolved[j]);
      if (relation === undefined) continue;
      const [a, b] = [layerName(layers[i], resolved[i]), layerName(layers[j], resolved[j])];
      const problem = relation === "same"
        ? `${a} and ${b} are the same directory`
        : relation === "inside"
        ? `${a} is inside ${b}`
        : `${b} is inside ${a}`;
      throw SboxError.invalidOption(
        "OverlayMount",
        `${problem}: keep the lower, upper and work directories apart, none inside another (overlayfs ` +
          "refuses most such layouts, and with an upper or work directory inside a lower one the " +
          "container's writes would change that lower layer under the overlay, which it leaves undefined)",
      );
    }
  }
}

/** "upperDir /x/up" for a message, with the resolved path where a link made it another. */
function layerName([what, path]: [string, string], resolved: string): string {
  return cleanPath(path) === resolved ? `${what} ${path}` : `${what} ${path} (${resolved})`;
}

/**
 * Why lower layers (`[what, path]`, each an existing directory) cannot be
 * overlaid, where one has a host mount below it, or undefined. The kernel
 * locks every mount it copies into the container's mount namespace, owned
 * by a user namespace of its own, and overlayfs refuses a lower layer with
 * locked mounts below it, in the child, with a bare EINVAL (its log says
 * "failed to clone lowerpath"): the host's "/" always has some. By the
 * mount table `mounts`.
 */
function mountsBelowProblem(
  lowers: readonly [string, string][],
  mounts: readonly MountEntry[] = mountTable(),
): string | undefined {
  for (const layer of lowers) {
    const dir = resolvedPath(layer[1]);
    const below = mounts.find((m) => pathRelation(m.path, dir) === "inside");
    if (!below) continue;
    return `${layerName(layer, dir)} has a mount below it (${below.path}), which the kernel locks in the ` +
      `container's user namespace, and overlayfs refuses a lower layer with locked mounts below it ` +
      `(EINVAL)${dir === "/" ? HOST_ROOT_REMEDY : ""}`;
  }
  return undefined;
}

const HOST_ROOT_REMEDY = ": for the host's root use HostRootMount, which overlays its directories apart";

/**
 * Refuses lower layers (`[what, path]`) with a host mount below them (see
 * `mountsBelowProblem`), naming `option`: for a check made once, before a
 * command line's run (`--rootfs`), by the mount table `mounts` it read for
 * its setup.
 */
export function checkNoMountsBelow(
  option: string,
  lowers: readonly [string, string][],
  mounts: readonly MountEntry[],
): void {
  const problem = mountsBelowProblem(lowers, mounts);
  if (problem !== undefined) throw SboxError.invalidOption(option, problem);
}

/**
 * Refuses `lowerDirs` of an {@linkcode OverlayMount} that is no array, or
 * one with holes, which `map` would skip (a TypeError at the start).
 */
function checkLowerDirs(lowerDirs: unknown): asserts lowerDirs is readonly string[] {
  if (!Array.isArray(lowerDirs)) {
    throw SboxError.invalidOption(
      "OverlayMount",
      `lowerDirs must be an array of directories, got ${show(lowerDirs)}`,
    );
  }
  checkNoHoles("OverlayMount", lowerDirs, "lowerDirs");
}

/**
 * The first of an overlay's layers (`[what, path]`) that is no directory
 * any more, said so, or undefined: one removed or replaced since
 * `Container.create()` checked it, which overlayfs refuses with an errno
 * that names no layer. Asked after the mount failed only.
 */
function goneLayerProblem(layers: readonly [string, string][]): string | undefined {
  for (const [what, path] of layers) {
    let found: FileStat | undefined;
    try {
      found = stat(path);
    } catch {
      continue; // not for this message to say
    }
    if (found?.isDirectory) continue;
    return `${what} ${path} ${found ? "is no longer a directory" : "no longer exists"} (changed since ` +
      "Container.create() checked it)";
  }
  return undefined;
}

/** Options of {@linkcode OverlayMount}. */
export interface OverlayMountOptions {
  /** Container path of the overlay; "/" by default. */
  target?: string;
  /**
   * For a temporary upper layer: the size limit of its tmpfs in bytes, all
   * the container writes there. Default: the kernel's for a tmpfs, half of
   * the host's RAM, for each container. Its pages are memory: where no
   * memory controller bounds the container, give a size (`sbox run` gives
   * 1 GiB, its `--write-limit`).
   */
  size?: number;
}

/**
 * An overlay file system: read-only `lowerDirs` (first is on top) under a
 * writable upper layer. With `upperDir` and `workDir` (overlayfs's scratch
 * directory, on the same file system), writes land in `upperDir` and stay.
 * Without them the upper layer is temporary: a tmpfs that exists only in the
 * container's mount namespace, so writes vanish with the container, nothing
 * is left on the host even if the caller is killed, and nothing is synced
 * to disk when it goes away. A kept `upperDir` and `workDir` serve one
 * container at a time (overlayfs only warns when two mount them; both then
 * misbehave), and sbox does not lock them. Where overlayfs cannot make
 * its work directory (not writable, or the upper layer's file system out
 * of space or inodes), it would mount read-only with only a line in the kernel's log;
 * the start fails with EROFS instead. A lower layer with a mount below it
 * cannot be stacked in the container's user namespace (the kernel locks
 * that mount, and overlayfs refuses the layer with EINVAL): a lower of "/"
 * is refused by `Container.create()` (use `HostRootMount`), and any other
 * such lower fails the start with an EINVAL whose message names the layer
 * and the mount below it.
 *
 * @example An image directory as the root, writes in a scratch directory
 * ```ts ignore
 * import { OverlayMount } from "./mount.ts";
 *
 * const kept = new OverlayMount(["/images/busybox"], "/tmp/c1/upper", "/tmp/c1/work");
 * const temporary = new OverlayMount(["/images/busybox"], undefined, undefined, { size: 64 << 20 });
 * ```
 */
export class OverlayMount implements Mount {
  /** Read-only layers, top first. */
  readonly lowerDirs: readonly string[];
  /** The writable layer, or undefined for a temporary one. */
  readonly upperDir: string | undefined;
  /** overlayfs's work directory, or undefined for a temporary upper layer. */
  readonly workDir: string | undefined;
  /** Container path, "/" by default. */
  readonly target: string;
  /** Size limit of a temporary upper layer, in bytes. */
  readonly size: number | undefined;

  /** An overlay of `lowerDirs`; writes go to `upperDir`, or to a temporary layer without one. */
  constructor(lowerDirs: string[], upperDir?: string, workDir?: string, options?: OverlayMountOptions) {
    options = checkOptionsObject("OverlayMount", options, { target: true, size: true });
    checkLowerDirs(lowerDirs);
    this.lowerDirs = [...lowerDirs];
    this.upperDir = upperDir;
    this.workDir = workDir;
    this.target = checkTarget("OverlayMount", options.target ?? "/");
    this.size = options.size;
  }

  /**
   * Checks that the layers are existing directories, none the same as or
   * inside another; and, as every field may have been changed since the
   * constructor (they are read-only to TypeScript alone), that `lowerDirs`
   * is still an array without holes.
   */
  validate(): void {
    checkLowerDirs(this.lowerDirs);
    if (this.lowerDirs.length === 0) {
      throw SboxError.invalidOption("OverlayMount", "needs at least one lower directory");
    }
    if ((this.upperDir === undefined) !== (this.workDir === undefined)) {
      throw SboxError.invalidOption("OverlayMount", "give both upperDir and workDir, or neither");
    }
    if (this.upperDir !== undefined && this.size !== undefined) {
      throw SboxError.invalidOption("OverlayMount", "size applies only to a temporary upper layer");
    }
    if (this.size !== undefined && (!Number.isSafeInteger(this.size) || this.size <= 0)) {
      throw SboxError.invalidOption(
        "OverlayMount",
        `size must be a positive number of bytes, got ${show(this.size)}`,
      );
    }
    const layers = this.lowerDirs.map((dir, i): [string, string] => [`lowerDirs[${i}]`, dir]);
    if (this.upperDir !== undefined) layers.push(["upperDir", this.upperDir], ["workDir", this.workDir!]);
    for (const [what, dir] of layers) checkHostDir("OverlayMount", what, dir);
    checkLayersApart(layers);
    // The host's "/" always has mounts below it: said here, from the path's
    // text alone. Other lowers with mounts below (a link to "/" too) fail
    // the overlay in the child, which compile's explain() then says why:
    // reading the mount table for every start cost ~70 µs, 5% of one.
    const root = this.lowerDirs.findIndex((dir) => cleanPath(dir) === "/");
    if (root >= 0) {
      throw SboxError.invalidOption(
        "OverlayMount",
        `lowerDirs[${root}] / has mounts below it, which the kernel locks in the container's user ` +
          "namespace, and overlayfs refuses a lower layer with locked mounts below it (EINVAL)" +
          HOST_ROOT_REMEDY,
      );
    }
  }

  /**
   * Why the overlay failed (asked after a failure): ELOOP, a link at its
   * target or layers that overlap; EINVAL, a lower layer with a mount below
   * it, or a layer on an overlayfs that cannot be stacked on.
   */
  #explainFailure = (errno: string): string | undefined => {
    if (errno === "ELOOP") return OVERLAY_LOOP_PROBLEM;
    const lowers = this.lowerDirs.map((dir, i): [string, string] => [`lowerDirs[${i}]`, dir]);
    const uppers: [string, string][] = this.upperDir === undefined
      ? []
      : [["upperDir", this.upperDir], ["workDir", this.workDir!]];
    // A layer removed, or replaced by a file, since create() checked it:
    // overlayfs says ENOENT, ENOTDIR or EINVAL, and names none.
    if (errno === "ENOENT" || errno === "ENOTDIR" || errno === "EINVAL") {
      const gone = goneLayerProblem([...lowers, ...uppers]);
      if (gone !== undefined) return gone;
    }
    if (errno !== "EINVAL") return undefined;
    return mountsBelowProblem(lowers) ?? overlayStackingProblem(lowers, uppers, mountTable());
  };

  /** Appends the overlay mount (and the tmpfs of a temporary upper layer). */
  compile(builder: ProgramBuilder, rootfs: string): void {
    const target = containerPath(rootfs, this.target);
    if (this.target !== "/") {
      compileParents(builder, rootfs, this.target);
      builder.mkdir(target);
    }
    const what = `cannot mount overlay on ${this.target}`;
    const explain = this.#explainFailure;
    const overlay = { lowers: this.lowerDirs, target, flags: 0, what, option: "OverlayMount", explain };
    if (this.upperDir !== undefined) {
      compileOverlay(builder, { ...overlay, upper: this.upperDir, work: this.workDir! });
      return;
    }
    // A tmpfs on the target holds upper and work; the overlay is mounted on
    // top of it, on the target itself (overlayfs holds its layers by
    // reference, not by path). The tmpfs stays underneath, reachable by the
    // overlay only.
    compileLayersTmpfs(builder, target, 0o755, this.size, `cannot mount tmpfs on ${target}`);
    compileTemporaryOverlay(builder, { ...overlay, upper: `${target}/upper`, work: `${target}/work` });
  }
}

/**
 * A bind mount of host path `source` on container path `target`,
 * read-only with `{ readonly: true }` (the mounts inside it too). The target and its missing parent
 * directories are made in the container's root. With a network manager
 * (`Slirp4NetnsManager`, `PastaManager`), a bind on /etc or
 * /etc/resolv.conf is refused by `Container.create()`: the network writes
 * /etc/resolv.conf after the mounts, which would go into the source.
 *
 * @example Share a directory read-only
 * ```ts ignore
 * import { BindMount } from "./mount.ts";
 *
 * const tests = new BindMount("/srv/tests", "/tests", { readonly: true });
 * ```
 */
export class BindMount implements Mount {
  /** Host path. */
  readonly source: string;
  /** Container path. */
  readonly target: string;
  /** Whether the mount is read-only. */
  readonly readonly: boolean;

  /** Its `source`: see {@linkcode Mount.bindSource}. */
  get bindSource(): string {
    return this.source;
  }

  /** Binds `source` (host) on `target` (container). */
  constructor(source: string, target: string, options?: { readonly?: boolean }) {
    options = checkOptionsObject("BindMount", options, { readonly: true });
    this.source = source;
    this.target = checkTarget("BindMount", target);
    this.readonly = options.readonly ?? false;
  }

  /** Checks that the source exists and that `readonly` is a boolean. */
  validate(): void {
    checkBoolean("BindMount", this.readonly, "readonly");
    if (!statHostPath("BindMount", "source", this.source)) {
      throw SboxError.invalidOption("BindMount", `source ${this.source} does not exist`);
    }
  }

  /** Appends the target creation and the bind. */
  compile(builder: ProgramBuilder, rootfs: string): void {
    const target = containerPath(rootfs, this.target);
    compileParents(builder, rootfs, this.target);
    if (stat(this.source)?.isDirectory) builder.mkdir(target);
    else builder.touch(target);
    // Read-only: one op, MS_RDONLY on the bind itself, which the helper makes
    // read-only before it is attached (child.zig, bindWithAttributes); MS_REC: the
    // mounts the source has inside are read-only too. MS_NOSUID, MS_NODEV and
    // MS_NOEXEC would take effect the same way, with or without MS_RDONLY
    // (mount(2) alone ignores all four on a bind): see MS in program.ts.
    builder.mount(
      this.source,
      target,
      null,
      MS.BIND | MS.REC | (this.readonly ? MS.RDONLY : 0),
      null,
      this.readonly
        ? `cannot bind ${this.source} read-only on ${this.target}`
        : `cannot bind ${this.source} on ${this.target}`,
    );
  }
}

/**
 * A tmpfs on container path `target`; `size` in bytes (default: the
 * kernel's, half of RAM). The target and its missing parent directories are
 * made in the container's root.
 *
 * @example A 64 MiB /tmp
 * ```ts ignore
 * import { TmpfsMount } from "./mount.ts";
 *
 * const tmp = new TmpfsMount("/tmp", { size: 64 * 1024 * 1024 });
 * ```
 */
export class TmpfsMount implements Mount {
  /** Container path. */
  readonly target: string;
  /** Size limit in bytes, if any. */
  readonly size: number | undefined;
  /** Permission bits of the root directory. */
  readonly mode: number;

  /** A tmpfs on `target`. */
  constructor(target: string, options?: { size?: number; mode?: number }) {
    options = checkOptionsObject("TmpfsMount", options, { size: true, mode: true });
    this.target = checkTarget("TmpfsMount", target);
    this.size = options.size;
    this.mode = options.mode ?? 0o1777;
  }

  /** Checks the size and the mode. */
  validate(): void {
    if (this.size !== undefined && (!Number.isSafeInteger(this.size) || this.size <= 0)) {
      throw SboxError.invalidOption(
        "TmpfsMount",
        `size must be a positive number of bytes, got ${show(this.size)}`,
      );
    }
    if (!Number.isInteger(this.mode) || this.mode < 0 || this.mode > 0o7777) {
      throw SboxError.invalidOption(
        "TmpfsMount",
        `mode must be permission bits from 0 to 0o7777, got ${show(this.mode)}`,
      );
    }
  }

  /** Appends the tmpfs mount. */
  compile(builder: ProgramBuilder, rootfs: string): void {
    const target = containerPath(rootfs, this.target);
    const size = this.size === undefined ? "" : `,${tmpfsLimits(this.size)}`;
    compileParents(builder, rootfs, this.target);
    builder.mkdir(target);
    builder.mount(
      "tmpfs",
      target,
      "tmpfs",
      MS.NOSUID | MS.NODEV,
      `mode=${this.mode.toString(8)}${size}`,
      `cannot mount tmpfs on ${this.target}`,
    );
  }
}

/** Device nodes bound from the host into the container's /dev. */
const DEVICES = ["null", "zero", "full", "random", "urandom", "tty"] as const;

/**
 * Paths of /proc and /sys that show or change the host rather than the
 * container: files get /dev/null bound over them, directories an empty
 * read-only tmpfs. The container's root is host root when ids are mapped
 * one to one, and the kernel checks some of these by uid alone (writing
 * /proc/sysrq-trigger needs no capability). Paths a kernel lacks are skipped.
 *
 * Not masked, as every mount costs time at each start: /proc/kcore and
 * /proc/kmsg, which the kernel opens only for CAP_SYS_RAWIO and CAP_SYSLOG
 * in the host's user namespace, which no container has; and
 * /sys/kernel/debug and /sys/kernel/security, empty in a new sysfs (on the
 * host, other file systems are mounted there). tests/escape_test.ts checks
 * both in a container without masks.
 *
 * Frozen: every container's masks come from it.
 *
 * @example What BaseMounts hides
 * ```ts
 * import { MASKED_PATHS } from "./mount.ts";
 *
 * console.log(MASKED_PATHS.map(({ path }) => path).includes("/proc/keys")); // true
 * ```
 */
export const MASKED_PATHS: readonly Readonly<{ path: string; kind: "file" | "dir" }>[] = Object.freeze(
  ([
    { path: "/proc/keys", kind: "file" },
    { path: "/proc/latency_stats", kind: "file" },
    { path: "/proc/timer_list", kind: "file" },
    { path: "/proc/timer_stats", kind: "file" },
    { path: "/proc/sched_debug", kind: "file" },
    { path: "/proc/sysrq-trigger", kind: "file" },
    { path: "/proc/kpagecount", kind: "file" },
    { path: "/proc/kpageflags", kind: "file" },
    { path: "/proc/kpagecgroup", kind: "file" },
    { path: "/proc/acpi", kind: "dir" },
    { path: "/proc/asound", kind: "dir" },
    { path: "/proc/scsi", kind: "dir" },
    { path: "/proc/driver", kind: "dir" },
    { path: "/sys/firmware", kind: "dir" },
    { path: "/sys/devices/virtual/powercap", kind: "dir" },
  ] as const).map((entry) => Object.freeze(entry)),
);

/**
 * Directories of /proc that BaseMounts makes read-only: system-wide
 * settings and devices. Frozen, as {@linkcode MASKED_PATHS}.
 *
 * @example
 * ```ts
 * import { READONLY_PROC_PATHS } from "./mount.ts";
 *
 * console.log(READONLY_PROC_PATHS.includes("/proc/sys")); // true
 * ```
 */
export const READONLY_PROC_PATHS: readonly string[] = Object.freeze([
  "/proc/sys",
  "/proc/bus",
  "/proc/irq",
  "/proc/fs",
]);

/** Options of {@linkcode BaseMounts}. */
export interface BaseMountsOptions {
  /** Size limit of /dev/shm in bytes; default 64 MiB. */
  shmSize?: number;
  /** Mask {@linkcode MASKED_PATHS} and make {@linkcode READONLY_PROC_PATHS} read-only; default true. */
  maskPaths?: boolean;
}

/**
 * The default size of /dev/shm, as Docker's.
 *
 * @internal Exported for tests only.
 */
export const DEFAULT_SHM_SIZE: number = 64 * 1024 * 1024;

/**
 * The file systems every Linux program expects: /proc, a read-only /sys
 * (a new sysfs; in a container with `network: "host"` the host's, bound,
 * with the mounts below it covered), a /dev tmpfs with null, zero, full, random, urandom and tty bound from the
 * host, /dev/pts (a new devpts instance), /dev/shm, /dev/mqueue and a
 * read-only cgroup2 at /sys/fs/cgroup showing the container's own cgroup
 * and the groups below it: without the `cgroup` option the container stays
 * in the caller's cgroup, and shows that one (the usage of every container
 * started there, and any groups below it).
 * Paths of /proc and /sys that reach the host are masked, and /proc/sys,
 * /proc/bus, /proc/irq and /proc/fs are read-only ({@linkcode MASKED_PATHS}).
 * An image (or kept upper layer) with a symbolic link at /dev, /proc or /sys
 * is refused: the start fails with ELOOP rather than mount where it points.
 *
 * @example The usual root of a container
 * ```ts ignore
 * import { BaseMounts, OverlayMount } from "./mount.ts";
 *
 * const mounts = [new OverlayMount(["/images/busybox"], "/tmp/up", "/tmp/work"), new BaseMounts()];
 * const bigShm = new BaseMounts({ shmSize: 1024 * 1024 * 1024 });
 * ```
 */
export class BaseMounts implements Mount {
  /** Mounted on the root. */
  readonly target = "/";
  /** It mounts nothing on "/" itself: a plain rootfs directory still needs its bind. */
  readonly mountsOnRoot = false;
  /** Size limit of /dev/shm in bytes. */
  readonly shmSize: number;
  /** Whether host-revealing paths are masked and /proc/sys is read-only. */
  readonly maskPaths: boolean;

  /** The base file systems; see {@linkcode BaseMountsOptions}. */
  constructor(options?: BaseMountsOptions) {
    options = checkOptionsObject("BaseMounts", options, { shmSize: true, maskPaths: true });
    this.shmSize = options.shmSize ?? DEFAULT_SHM_SIZE;
    this.maskPaths = options.maskPaths ?? true;
  }

  /** Checks the options; only the host's device nodes are used. */
  validate(): void {
    if (!Number.isSafeInteger(this.shmSize) || this.shmSize <= 0) {
      throw SboxError.invalidOption(
        "BaseMounts",
        `shmSize must be a positive number of bytes, got ${show(this.shmSize)}`,
      );
    }
    checkBoolean("BaseMounts", this.maskPaths, "maskPaths");
  }

  /**
   * Appends the mounts, device binds and symlinks, at paths relative to the
   * root (it mounts nothing on the root itself): some forty of them, each a
   * shorter walk for the kernel than from the host's "/".
   */
  compile(b: ProgramBuilder, rootfs: string): void {
    if (rootfs !== ".") b.chdir(rootfs);
    const at = (path: string) => containerPath(".", path);
    const nosuidNodevNoexec = MS.NOSUID | MS.NODEV | MS.NOEXEC;
    // /dev, /proc, /sys and /sys/fs/cgroup of the image: never through a
    // symbolic link there (ELOOP). Mounted where a link points, a file
    // system can change what the link means once it covers part of its way
    // (/proc -> /m/n/v/self/../../../v, with the image's m/n/v/self, leads
    // to /m/n/v before procfs is mounted there and to /m/v after), and the
    // masks and read-only binds that follow by path would miss it.
    // A new proc or sysfs is refused (EPERM) where sbox's own is not fully
    // visible, as in a Docker container: procSysfsRefusal says which way.
    const explain = (fstype: string) => (errno: string) =>
      errno === "EPERM" && (fstype === "proc" || fstype === "sysfs")
        ? procSysfsRefusal(fstype, mountTable())
        : undefined;
    // A new proc or sysfs takes the host's atime flags (noatime, ...), as
    // the kernel requires of one in a user namespace: the host's own at the
    // same path, as the setup sees it before pivot_root.
    const newFs = (fstype: string, path: string, flags: number, data: string | null) =>
      b.mount(fstype, at(path), fstype, flags, data, `cannot mount ${fstype} on ${path}`, {
        targetNoLink: true,
        atimeOf: fstype === "proc" || fstype === "sysfs" ? path : undefined,
        explain: explain(fstype),
      });
    b.mkdir(at("/dev"));
    newFs("tmpfs", "/dev", MS.NOSUID | MS.NOEXEC, `mode=755,${tmpfsLimits(64 * 1024 * 1024)}`);
    for (const device of DEVICES) {
      // A tmpfs mounted in a user namespace cannot hold usable device nodes:
      // bind the host's instead, as bubblewrap does. Read-only: the node is
      // the host's inode, which the container's root (the host's root under
      // the identity map) could otherwise chmod or chown for the whole host
      // (/dev/null 0600). Reads and writes of a device do not need a
      // writable mount. Not noexec: mmap of /dev/zero with PROT_EXEC (JITs,
      // allocators) needs an exec mount, as on the host.
      b.touch(at(`/dev/${device}`), 0o666).mount(
        `/dev/${device}`,
        at(`/dev/${device}`),
        null,
        MS.BIND | MS.RDONLY | MS.NOSUID,
        null,
        `cannot bind /dev/${device}`,
      );
    }
    // After /dev: the masks of /proc are binds of the container's read-only
    // /dev/null, and so read-only too (a bind keeps its source's flags).
    b.mkdir(at("/proc"));
    newFs("proc", "/proc", nosuidNodevNoexec, null);
    if (this.maskPaths) compileMasks(b, "/proc");
    b.mkdir(at("/dev/pts")).mount(
      "devpts",
      at("/dev/pts"),
      "devpts",
      MS.NOSUID | MS.NOEXEC,
      "newinstance,ptmxmode=0666,mode=620",
      "cannot mount devpts on /dev/pts",
    );
    b.symlink("pts/ptmx", at("/dev/ptmx"));
    b.mkdir(at("/dev/shm")).mount(
      "tmpfs",
      at("/dev/shm"),
      "tmpfs",
      MS.NOSUID | MS.NODEV,
      `mode=1777,${tmpfsLimits(this.shmSize)}`,
      "cannot mount tmpfs on /dev/shm",
    );
    b.mkdir(at("/dev/mqueue")).mount(
      "mqueue",
      at("/dev/mqueue"),
      "mqueue",
      nosuidNodevNoexec,
      null,
      "cannot mount mqueue on /dev/mqueue",
    );
    b.symlink("/proc/self/fd", at("/dev/fd"));
    b.symlink("/proc/self/fd/0", at("/dev/stdin"));
    b.symlink("/proc/self/fd/1", at("/dev/stdout"));
    b.symlink("/proc/self/fd/2", at("/dev/stderr"));
    // Last: sysfs waits for the network namespace, which a thread may still
    // be making meanwhile (ProgramBuilder.spawnNetwork).
    b.mkdir(at("/sys"));
    if (b.hostNetwork) compileHostSys(b, at("/sys"));
    else newFs("sysfs", "/sys", nosuidNodevNoexec | MS.RDONLY, null);
    newFs("cgroup2", "/sys/fs/cgroup", nosuidNodevNoexec | MS.RDONLY, null);
    if (this.maskPaths) compileMasks(b, "/sys");
  }
}

/**
 * /sys of a container in the caller's network namespace (`network:
 * "host"`). The kernel mounts a sysfs only for a process with CAP_SYS_ADMIN
 * over the owner of its network namespace (sysfs shows that namespace's
 * interfaces): the host's user namespace here, where the container has no
 * capability. So the host's /sys is bound instead, read-only: recursively,
 * as a bind of it alone is refused (EINVAL: the mounts below it are
 * locked). It shows what a new sysfs would, the kernel and the network
 * namespace being the same; the host's mounts below it (debugfs, tracefs,
 * securityfs, bpf, ...), which a new sysfs would not have, are covered by
 * an empty directory each, a file mounted there (lxcfs binds files such as
 * /sys/devices/system/cpu/online) by an empty file, and /sys/fs/cgroup gets
 * the container's own cgroup2 next. A mount the host adds below /sys after
 * this plan is not covered: it comes from the mount table as the program is
 * compiled.
 */
function compileHostSys(b: ProgramBuilder, target: string): void {
  const flags = MS.BIND | MS.REC | MS.RDONLY | MS.NOSUID | MS.NODEV | MS.NOEXEC;
  b.mount("/sys", target, null, flags, null, "cannot bind the host's /sys (network: host)", {
    targetNoLink: true,
  });
  for (const path of outermostMountsBelow("/sys", "/sys/fs/cgroup")) {
    const at = containerPath(".", path);
    const what = `cannot cover the host's ${path}`;
    // A tmpfs goes only on a directory (ENOTDIR on a file).
    if (isFileMountPoint(path)) mountEmptyFile(b, at, what);
    else mountEmptyDir(b, at, what);
  }
}

/**
 * Whether the mount point `path` is a file (or another non-directory), as
 * its parent's listing says: the kernel mounts a file only on a file and a
 * directory only on a directory, and the listing does not ask the mounted
 * file system, which may be a FUSE one whose daemon is gone or that refuses
 * a stat (lxcfs). A mount point the listing lacks (gone since the mount
 * table was read) counts as a directory: its cover then fails the start.
 */
function isFileMountPoint(path: string): boolean {
  const slash = path.lastIndexOf("/");
  const name = path.slice(slash + 1);
  const entry = readDir(path.slice(0, slash) || "/").find((entry) => entry.name === name);
  return entry !== undefined && !entry.isDirectory;
}

/**
 * The mount points of this process's mount table strictly below `dir`,
 * leaving out `replaced` and what is below it, and any below another one
 * listed (covered with it): e.g. /sys/kernel/debug, not
 * /sys/kernel/debug/tracing.
 */
function outermostMountsBelow(dir: string, replaced: string): string[] {
  const below = mountTable().map(({ path }) => path).filter((path) =>
    pathRelation(path, dir) === "inside" && !isWithin(path, replaced)
  );
  const outermost: string[] = [];
  for (const path of below.sort((a, b) => a.length - b.length)) {
    if (!outermost.some((top) => isWithin(path, top))) outermost.push(path);
  }
  return outermost;
}

/** An empty read-only tmpfs on `at`: what a masked or covered directory shows. */
function mountEmptyDir(b: ProgramBuilder, at: string, what: string): void {
  b.mount("tmpfs", at, "tmpfs", MS.RDONLY | MS.NOSUID | MS.NODEV | MS.NOEXEC, "mode=555,size=4k", what);
}

/**
 * The container's /dev/null bound on `at`: what a masked or covered file
 * shows, empty. Read-only, as BaseMounts binds /dev/null first (a bind
 * keeps its source's flags); writes to it are swallowed, as a device's.
 */
function mountEmptyFile(b: ProgramBuilder, at: string, what: string, options?: MountOpOptions): void {
  b.mount("./dev/null", at, null, MS.BIND, null, what, options);
}

/**
 * The masked paths this kernel has. The container's /proc and /sys are fresh
 * instances of the same kernel's, so the host's tell; ops still skip a path
 * that is missing after all.
 */
let presentMasks: typeof MASKED_PATHS | undefined;

/**
 * Masks the paths under `fs` ("/proc" or "/sys", mounted already) at paths
 * relative to the working directory (the container's root), and for /proc
 * makes {@linkcode READONLY_PROC_PATHS} read-only. Directories are covered
 * by one empty read-only tmpfs, on the first of them, and binds of it on the
 * others: cheaper to make and to tear down than a tmpfs each.
 *
 * A path this kernel lacks is skipped (`ignoreMissing`), but the helper
 * skips it only inside the proc or sysfs the setup just mounted: a mask
 * whose path is missing anywhere else, or whose source (the container's
 * /dev/null) cannot be found, went somewhere it was not meant to, and
 * fails the start rather than leave the file unmasked.
 */
function compileMasks(b: ProgramBuilder, fs: "/proc" | "/sys"): void {
  const ignoreMissing = true;
  presentMasks ??= MASKED_PATHS.filter(({ path }) => stat(path) !== undefined);
  const emptyDir = presentMasks.find(({ kind }) => kind === "dir")?.path;
  for (const { path, kind } of presentMasks) {
    if (!path.startsWith(`${fs}/`)) continue;
    const at = containerPath(".", path);
    if (kind === "file") {
      mountEmptyFile(b, at, `cannot mask ${path}`, { ignoreMissing });
    } else if (path === emptyDir) {
      // Not skipped when missing: the binds need it, and the host said it
      // exists.
      mountEmptyDir(b, at, `cannot mask ${path}`);
    } else {
      const source = containerPath(".", emptyDir!);
      b.mount(source, at, null, MS.BIND, null, `cannot mask ${path}`, { ignoreMissing });
    }
  }
  if (fs === "/sys") return;
  for (const path of READONLY_PROC_PATHS) {
    const at = containerPath(".", path);
    b.mount(at, at, null, MS.BIND | MS.REC, null, `cannot bind ${path}`, { ignoreMissing });
    // The flags of our own proc mount, so no need to read them back first
    // (nothing is locked in a mount this namespace made).
    b.mount(
      null,
      at,
      null,
      MS.BIND | MS.REMOUNT | MS.RDONLY | MS.NOSUID | MS.NODEV | MS.NOEXEC,
      null,
      `cannot make ${path} read-only`,
      { ignoreMissing },
    );
  }
}
