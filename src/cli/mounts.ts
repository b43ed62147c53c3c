/**
 * The mounts of a `sbox run` container, in order: the root (an image overlay
 * with `--rootfs`, else the host's root, see host_root.ts), the base file
 * systems (/proc, /sys, /dev), a fresh 64 MiB tmpfs /tmp, the container's
 * /etc/hosts and /etc/hostname (etc.ts), then `--bind` and `--tmpfs` in command-line order
 * (each makes its missing parent directories), and last the `--cwd`
 * directory where it is missing.
 *
 * @module
 */

import { SboxError } from "../error.ts";
import {
  BaseMounts,
  BindMount,
  checkNoMountsBelow,
  compileParents,
  type Mount,
  TmpfsMount,
} from "../mount.ts";
import type { ProcReading } from "../mountinfo.ts";
import { containerPath } from "../path.ts";
import type { ProgramBuilder } from "../program.ts";
import { close, ids, O, readLink, resolvedPath, stat, tryOpen } from "../sys.ts";
import { describeErrno } from "../errno.ts";
import type { MountSpec } from "./args.ts";
import { FreshHostRoot } from "../host_root.ts";
import { HOSTNAME_PATH, hostnameFile, HOSTS_PATH, hostsWithHostname, WrittenEtcFile } from "./etc.ts";
import type { TemporaryLayers } from "../temporary_layers.ts";

/**
 * The size of `sbox run`'s /tmp: bounded, as a tmpfs is memory; the same
 * as /dev/shm's (`DEFAULT_SHM_SIZE`, mount.ts), but its own, so that a
 * size of /dev/shm does not change it. `--tmpfs /tmp:SIZE` mounts another
 * over it.
 * @internal Exported for tests only.
 */
export const DEFAULT_TMP_SIZE: number = 64 * 1024 * 1024;

/** A host path as given on the command line, made absolute against sbox's working directory. */
export function hostPath(path: string): string {
  if (path.startsWith("/")) return path;
  const cwd = readLink("/proc/self/cwd");
  return `${cwd === "/" ? "" : cwd}/${path.replace(/^(\.\/)+/, "")}`;
}

/** Checks `--rootfs` (by `reading`, sbox's mounts) and returns the absolute image directory. */
export function imageDir(rootfs: string, reading: ProcReading): string {
  const dir = hostPath(rootfs);
  let found;
  try {
    found = stat(dir);
  } catch (err) {
    // Below a directory this user may not search (EACCES), through a file
    // (ENOTDIR), a loop of links: as --bind says it, naming the option.
    if (!(err instanceof SboxError) || err.errnoNumber === undefined) throw err;
    throw SboxError.invalidOption("--rootfs", `cannot stat ${dir}: ${describeErrno(err.errnoNumber)}`, {
      errno: err.errnoNumber,
      cause: err,
    });
  }
  if (!found) throw SboxError.invalidOption("--rootfs", `${dir} does not exist`);
  if (!found.isDirectory) throw SboxError.invalidOption("--rootfs", `${dir} is not a directory`);
  // overlayfs refuses the host's root as a lower layer (EINVAL), however it
  // is spelled ("//.", "..", a link to it); and without --rootfs the root
  // is the host's anyway.
  if (resolvedPath(dir) === "/") {
    throw SboxError.invalidOption(
      "--rootfs",
      `${rootfs} is the host's root /, which is the default: leave --rootfs out`,
    );
  }
  // A mount below the image (a chroot's /proc, a bound cache) would fail
  // its overlay in the child with a bare EINVAL.
  checkNoMountsBelow("--rootfs", [["image", dir]], reading.mounts);
  // The setup walks it as sbox's own user: one who may not (an image of
  // another user, mode 0700) got "cannot create directory /dev: EACCES",
  // which named neither the option nor the directory. Search permission is
  // what it needs (an O_PATH open of "DIR/." asks for that alone): a mode
  // 0711 image runs.
  const fd = tryOpen(`${dir}/.`, O.PATH | O.DIRECTORY);
  if (fd < 0) {
    throw SboxError.invalidOption(
      "--rootfs",
      `${dir} cannot be entered by uid ${ids().euid}: ${describeErrno(-fd)}`,
    );
  }
  close(fd);
  return dir;
}

/**
 * The mount of a `--bind` or `--tmpfs`, or none for a `:try` bind whose
 * source does not exist (ENOENT, a link to nothing included). Checked here,
 * before any process exists, as every bind source is; any other failure to
 * stat the source (EACCES, ENOTDIR, ELOOP) is an error, optional or not.
 */
function userMount(spec: MountSpec, onSkipped: (source: string) => void): Mount[] {
  if (spec.kind === "tmpfs") {
    return [new TmpfsMount(spec.target, { size: spec.size })];
  }
  const source = hostPath(spec.source);
  if (!bindSourceExists(source)) {
    if (!spec.optional) {
      throw SboxError.invalidOption("--bind", `${source} does not exist (add :try to skip it)`);
    }
    onSkipped(source);
    return [];
  }
  return [new BindMount(source, spec.target, { readonly: spec.readonly })];
}

/** Whether a bind's source exists: false for ENOENT only; another error names --bind and the errno. */
function bindSourceExists(source: string): boolean {
  try {
    return stat(source) !== undefined; // undefined: ENOENT
  } catch (err) {
    if (!(err instanceof SboxError) || err.errnoNumber === undefined) throw err;
    throw SboxError.invalidOption("--bind", `cannot stat ${source}: ${describeErrno(err.errnoNumber)}`, {
      errno: err.errnoNumber,
      cause: err,
    });
  }
}

/** What sbox run advises when a host directory is on an overlay it cannot stack on: an image instead. */
const HOST_ROOT_STACKING_REMEDY =
  "run an image directory on a disk file system or a tmpfs with --rootfs instead";

/** An image directory as the read-only lower layer of the root, with a temporary upper layer. */
class ImageRootMount implements Mount {
  readonly target = "/";
  readonly #image: string;
  readonly #layers: TemporaryLayers;

  constructor(image: string, layers: TemporaryLayers) {
    this.#image = image;
    this.#layers = layers;
  }

  /** Nothing to check: the layer paths are escaped (mount.ts, overlayOptions). */
  validate(): void {}

  compile(b: ProgramBuilder, rootfs: string): void {
    this.#layers.mountTmpfs(b);
    this.#layers.overlay(b, this.#image, rootfs, 0, "cannot mount the overlay of the image on /", {
      option: "--rootfs",
      layerName: "the image",
      stackingRemedy: "copy the image to a directory on a disk file system or a tmpfs (`cp -a`)",
    });
  }
}

/**
 * The `--cwd` directory, made with its missing parents as `mkdir -p` does
 * (as Docker does for `-w`): owned by the container's root, mode 0755. It
 * mounts nothing and comes after every mount, so the directory is made on
 * whatever is mounted there; an existing one is left as it is. The child
 * resolves the path inside the root, so a symbolic link in the image cannot
 * lead it out.
 */
class WorkingDirectory implements Mount {
  readonly target: string;

  constructor(target: string) {
    this.target = target;
  }

  validate(): void {}

  compile(b: ProgramBuilder, rootfs: string): void {
    compileParents(b, rootfs, this.target);
    b.mkdir(containerPath(rootfs, this.target));
  }
}

/** What the root of {@linkcode containerMounts} is set up for, besides the mounts. */
export interface RootSettings {
  /** The working directory (absolute), made where missing; "/" or none: the root, which exists. */
  cwd?: string;
  /** The container's hostname: /etc/hosts gets a line for it, /etc/hostname holds it (etc.ts). */
  hostname: string;
  /** Hears of each `:try` bind left out, by its source. */
  onSkipped?: (source: string) => void;
}

/**
 * All mounts of the container: `image` (an absolute directory) or the host's
 * root as "/" (a {@linkcode FreshHostRoot}: planned by each start, from the
 * host's mounts as they are then), with upper layers in `layers`, then the base file systems,
 * /tmp, the container's /etc/hosts and /etc/hostname, the user's mounts and the working
 * directory `settings.cwd`.
 * `settings.onSkipped` hears of each `:try` bind left out, by its source.
 */
export function containerMounts(
  image: string | undefined,
  userMounts: MountSpec[],
  layers: TemporaryLayers,
  settings: RootSettings,
): Mount[] {
  const hosts = hostsWithHostname(image ?? "/", settings.hostname);
  const hostname = hostnameFile(image ?? "/", settings.hostname);
  const root = image === undefined
    ? new FreshHostRoot(layers, HOST_ROOT_STACKING_REMEDY)
    : new ImageRootMount(image, layers);
  const cwd = settings.cwd ?? "/";
  return [
    root,
    new BaseMounts(),
    new TmpfsMount("/tmp", { size: DEFAULT_TMP_SIZE }),
    ...(hosts === undefined ? [] : [new WrittenEtcFile(HOSTS_PATH, hosts)]),
    ...(hostname === undefined ? [] : [new WrittenEtcFile(HOSTNAME_PATH, hostname)]),
    ...userMounts.flatMap((spec) => userMount(spec, settings.onSkipped ?? (() => {}))),
    ...(cwd === "/" ? [] : [new WorkingDirectory(cwd)]),
  ];
}
