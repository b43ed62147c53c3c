/**
 * Why the kernel refused a mount of the container's, where its errno alone
 * (EPERM, EINVAL) says nothing: read from sbox's own mount table after the
 * failure, never before (a start does not pay for it). Each function takes
 * the mount table as a parameter, so the rules can be checked without
 * making the mounts.
 *
 * @module
 */

import { mountAt, type MountEntry, unescapeMountField } from "./mountinfo.ts";
import { resolvedPath } from "./sys.ts";

/**
 * Directories of proc and sysfs that the kernel makes as mount points of
 * its own file systems (`register_sysctl_mount_point`,
 * `sysfs_create_mount_point`): permanently empty, so a mount on one hides
 * nothing, and the kernel does not count it against a new proc or sysfs.
 * Found by trying, on 6.x: a tmpfs over /sys/kernel/debug lets a new sysfs
 * be mounted, one over /sys/kernel/mm does not.
 */
const EMPTY_MOUNT_POINTS = new Set([
  "/proc/sys/fs/binfmt_misc",
  "/sys/fs/cgroup",
  "/sys/fs/bpf",
  "/sys/fs/pstore",
  "/sys/fs/fuse/connections",
  "/sys/fs/selinux",
  "/sys/fs/smackfs",
  "/sys/fs/resctrl",
  "/sys/kernel/debug",
  "/sys/kernel/tracing",
  "/sys/kernel/security",
  "/sys/kernel/config",
  "/sys/firmware/efi/efivars",
]);

/** At most this many covered paths are named; the count says the rest. */
const NAMED_COVERS = 6;

/**
 * Why a new `proc` or `sysfs` could not be mounted in the container (EPERM),
 * from `mounts`, sbox's own mount table (the container's mount namespace
 * starts as a copy of it).
 *
 * The kernel mounts a new proc or sysfs in a user namespace other than its
 * first only where one is already fully visible in the mount namespace
 * (fs/namespace.c, `mount_too_revealing`): mounted whole (its root, not a
 * directory of it), with nothing mounted over any part of it but the
 * kernel's own empty mount points (a mount copied into the container's
 * namespace is locked there: it cannot be taken off to see what it hid),
 * and not more restricted than the new mount: a read-only one only
 * allows a read-only new one, and its atime flags must be the same (the
 * container's proc is read-write, its sysfs read-only, and each takes the
 * atime flags of the host's at /proc or /sys). A Docker, Podman or Kubernetes container masks parts of
 * both (a /dev/null over /proc/kcore, a read-only tmpfs over /proc/scsi and
 * /sys/firmware), which is enough.
 *
 * @example Docker's masks
 * ```ts
 * import { procSysfsRefusal } from "./mount_refusals.ts";
 * import { parseMountInfo } from "./mountinfo.ts";
 *
 * const mounts = parseMountInfo(
 *   "20 1 0:5 / /proc rw,relatime - proc proc rw\n" +
 *     "21 20 0:6 /null /proc/kcore rw,relatime - devtmpfs udev rw\n",
 * );
 * console.log(procSysfsRefusal("proc", mounts)); // "... (/proc/kcore) ..."
 * ```
 */
export function procSysfsRefusal(fstype: "proc" | "sysfs", mounts: readonly MountEntry[]): string {
  const home = fstype === "proc" ? "/proc" : "/sys";
  const rule = `the kernel mounts a new ${fstype} in a user namespace only where sbox's mount namespace ` +
    "shows a whole one, not read-only, with the same atime flags and nothing mounted over a part of it";
  const whole = mounts.filter((m) => m.fstype === fstype && m.root === "/");
  if (whole.length === 0) {
    return `${rule}; here none is mounted (no ${fstype} mount of its root in /proc/self/mountinfo): mount ` +
      `one on ${home} first`;
  }
  // The one at its usual place speaks for all: a second one elsewhere is rare.
  const shown = whole.find((m) => m.path === home) ?? whole[0];
  const problems: string[] = [];
  const covers = mounts.filter((m) =>
    m.parentId === shown.id && m.id !== shown.id &&
    !EMPTY_MOUNT_POINTS.has(home + m.path.slice(shown.path === "/" ? 0 : shown.path.length))
  ).map((m) => m.path);
  if (covers.length > 0) {
    const named = covers.slice(0, NAMED_COVERS).join(", ");
    const more = covers.length > NAMED_COVERS ? ` and ${covers.length - NAMED_COVERS} more` : "";
    problems.push(`${shown.path} has mounts over parts of it (${named}${more})`);
  }
  if (fstype === "proc" && shown.options.includes("ro")) {
    problems.push(`${shown.path} is read-only (the container's proc is not)`);
  }
  // The container's takes the atime flags of what is mounted at /proc or
  // /sys: they can differ only from one mounted elsewhere.
  const atime = shown.options.filter((o) => o === "noatime" || o === "nodiratime");
  if (shown.path !== home && (atime.length > 0 || !shown.options.includes("relatime"))) {
    const flags = atime.length > 0 ? atime.join(",") : "strictatime";
    problems.push(
      `${shown.path} is mounted ${flags} (the container's ${fstype} takes the atime flags of ${home})`,
    );
  }
  if (problems.length === 0) {
    return `${rule}; ${shown.path} looks so, so something else refused it (a security module's policy, ` +
      "or a mount made since)";
  }
  const masked = covers.length === 0 ? "" : ", as Docker, Podman and Kubernetes mask them: run sbox where " +
    "/proc and /sys are not masked (`docker run --security-opt systempaths=unconfined` or `--privileged`, " +
    "`podman run --security-opt unmask=ALL`, Kubernetes' `procMount: Unmasked`), or unmount them first";
  return `${rule}; here ${problems.join("; ")}${masked}`;
}

/**
 * The directories an overlay's super options (mountinfo's, as they are)
 * name as its layers: `lowerdir=a:b` (`::` before data layers),
 * `upperdir=`, `workdir=`, each as given when it was mounted, where
 * overlayfs takes `\` as an escape (of `:`, `,`, `\`); and `lowerdir+=`
 * and `datadir+=`, one path each, taken as they are. The kernel then
 * writes each option's value with `,`, space, tab, newline and `\` as
 * octal escapes (`\054`, `\040`, ..., `\134`): the layer `/l a:b` of a
 * `lowerdir=` is `/l\040a\134:b` there.
 * @internal Exported for tests only.
 */
export function overlayLayerPaths(superOptions: string): string[] {
  const paths: string[] = [];
  // A "," in a value is written "\054": a bare one separates options.
  for (const option of superOptions.split(",")) {
    const match = /^(lowerdir|upperdir|workdir|lowerdir\+|datadir\+)=(.*)$/s.exec(unescapeMountField(option));
    if (!match) continue;
    const [, name, value] = match;
    if (name.endsWith("+")) {
      paths.push(value);
      continue;
    }
    const values = name === "lowerdir" ? splitUnescaped(value, ":") : [value];
    for (const path of values) if (path !== "") paths.push(path.replace(/\\(.)/g, "$1"));
  }
  return paths;
}

/** `text` split at each `separator` that no `\` escapes; the escapes are kept. */
function splitUnescaped(text: string, separator: string): string[] {
  const parts: string[] = [];
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    if (text[i] === "\\") i++;
    else if (text[i] === separator) {
      parts.push(text.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(text.slice(start));
  return parts;
}

/**
 * Why an overlay failed with ELOOP, which has two causes that the errno
 * does not tell apart and the mount table does not show: a symbolic link
 * on the way to its target, which the helper refuses (program.ts,
 * `targetNoLink`: overlayfs resolves the layer paths in its options itself,
 * as the host would), and layers that overlap, which overlayfs refuses.
 * `OverlayMount.validate()` refuses overlapping layers by path, but not a
 * bind mount of one layer inside another. The explain of every overlay op
 * (OverlayMount, TemporaryLayers) gives it, whatever its message says.
 */
export const OVERLAY_LOOP_PROBLEM = "a symbolic link on the way: an overlay is mounted only on a path of " +
  "the image, or of a kept upper layer, that has none; or layers that overlap: overlayfs refuses a lower, " +
  "upper or work directory that is, holds or lies inside another";

/**
 * Why overlayfs refused (EINVAL) an overlay of `lowers` (and `uppers`, the
 * upper and work directories when they are the caller's), `[what, path]`
 * each, by the file systems they are on, or undefined when that is not it:
 *
 * - an upper or work directory on an overlayfs: overlayfs does not take
 *   one (its log says "filesystem on ... not supported as upperdir");
 * - a layer on an overlay that itself has an overlay among its layers:
 *   the kernel stacks file systems at most two deep
 *   (`FILESYSTEM_MAX_STACK_DEPTH`; "maximum fs stacking depth exceeded").
 *   An overlay whose layers are on a disk or a tmpfs can be a lower layer,
 *   which is why sbox runs in a Docker container whose root is one. What
 *   the overlay a layer is on is itself stacked on is read from its
 *   options (the paths it was mounted with, as the mount table of this
 *   namespace resolves them); where that cannot be told (paths of another
 *   namespace), a layer on an overlay is named as the likely cause.
 *
 * `mounts` is sbox's mount table, `resolve` the way to a layer's real path;
 * `remedy` what to do about a lower layer stacked too deep.
 */
export function overlayStackingProblem(
  lowers: readonly [string, string][],
  uppers: readonly [string, string][],
  mounts: readonly MountEntry[],
  remedy = "copy it to a directory on a disk file system or a tmpfs (`cp -a`)",
  resolve: (path: string) => string | undefined = tryResolvedPath,
): string | undefined {
  for (const [what, path] of uppers) {
    const dir = resolve(path);
    const on = dir === undefined ? undefined : mountAt(dir, mounts);
    if (on?.fstype !== "overlay") continue;
    return `${what} ${path} is on an overlayfs (mounted on ${on.path}), which overlayfs does not take as an ` +
      "upper or work directory: put upperDir and workDir on a disk file system or a tmpfs";
  }
  for (const [what, path] of lowers) {
    const dir = resolve(path);
    const on = dir === undefined ? undefined : mountAt(dir, mounts);
    if (on?.fstype !== "overlay") continue;
    const layers = overlayLayerPaths(on.superOptions).map((layer) => {
      const real = layer.startsWith("/") ? resolve(layer) : undefined;
      return { layer, on: real === undefined ? undefined : mountAt(real, mounts) };
    });
    const stacked = layers.find((l) => l.on?.fstype === "overlay")?.layer;
    // Every layer seen, none on an overlay: one level, which can be stacked on.
    if (stacked === undefined && layers.length > 0 && layers.every((l) => l.on !== undefined)) continue;
    const why = stacked === undefined
      ? ", probably one with an overlay among its own layers, which cannot be stacked on again: the kernel " +
        "stacks file systems at most two deep"
      : `, which has an overlay among its own layers (${stacked}), so it cannot be stacked on again: the ` +
        "kernel stacks file systems at most two deep";
    return `${what} ${path} is on an overlayfs (mounted on ${on.path})${why} (its log says "maximum fs ` +
      `stacking depth exceeded"): ${remedy}`;
  }
  return undefined;
}

/** The real path of `path`, or undefined where it cannot be opened. */
function tryResolvedPath(path: string): string | undefined {
  try {
    return resolvedPath(path);
  } catch {
    return undefined;
  }
}
