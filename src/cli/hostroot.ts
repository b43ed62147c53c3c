/**
 * The host's own root as a container's root, with writes that vanish: what
 * `sbox run` uses without `--rootfs`.
 *
 * One overlay with the host's "/" as its lower layer cannot be mounted from
 * inside a user namespace: "/" has other mounts below it (/proc, /dev, ...),
 * which the kernel locks when it copies the mount table into a less
 * privileged namespace, and overlayfs refuses a lower layer with locked
 * mounts below it (EINVAL, "failed to clone lowerpath"). So the root is
 * built one level down instead:
 *
 * - "/" is a fresh directory of the layers' tmpfs (layers.ts), bound on
 *   the rootfs (so new top-level entries can be written, within the same
 *   size limit as every upper layer);
 * - each directory of the host's "/" becomes an overlay of that directory
 *   with an upper layer of its own (layers.ts: on a tmpfs, so writes vanish);
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
 * - /proc, /sys, /dev and /tmp are left out: the container gets fresh ones.
 *
 * @module
 */

import { containerPath, mkdirLike, type Mount } from "../mount.ts";
import { MS, type ProgramBuilder } from "../program.ts";
import { readDir, readLink, readTextFile, stat } from "../sys.ts";
import type { TemporaryLayers } from "./layers.ts";

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
  /** A read-only bind mount of a host file or directory. */
  | { kind: "bind"; path: string }
  /** A symbolic link, recreated as it is on the host. */
  | { kind: "symlink"; path: string; target: string };

/** A mount point of the host, from /proc/self/mountinfo. */
interface HostMount {
  path: string;
  fstype: string;
}

function unescape(path: string): string {
  return path.replace(/\\([0-7]{3})/g, (_, oct) => String.fromCharCode(parseInt(oct, 8)));
}

function hostMounts(): HostMount[] {
  const mounts: HostMount[] = [];
  for (const line of readTextFile("/proc/self/mountinfo").split("\n")) {
    const sep = line.indexOf(" - ");
    if (sep < 0) continue;
    mounts.push({
      path: unescape(line.slice(0, sep).split(" ")[4]),
      fstype: line.slice(sep + 3).split(" ")[0],
    });
  }
  return mounts;
}

/** Lists how the host's tree maps into the container, parents before children. */
export function planHostRoot(): HostEntry[] {
  const mounts = hostMounts();
  const entries: HostEntry[] = [];

  const fstypeOf = (path: string): string => {
    let best: HostMount | undefined;
    for (const m of mounts) {
      const contains = m.path === "/" || path === m.path || path.startsWith(`${m.path}/`);
      if (contains && (!best || m.path.length >= best.path.length)) best = m;
    }
    return best?.fstype ?? "";
  };
  const hasMountBelow = (dir: string) => mounts.some((m) => m.path.startsWith(`${dir}/`));

  const visit = (dir: string): void => {
    for (const { name } of readDir(dir)) {
      const path = dir === "/" ? `/${name}` : `${dir}/${name}`;
      if (REPLACED.has(path)) continue;
      const info = stat(path, false);
      if (!info) continue; // gone since readDir
      if (info.isSymlink) {
        entries.push({ kind: "symlink", path, target: readLink(path) });
      } else if (info.isFile) {
        entries.push({ kind: "bind", path });
      } else if (!info.isDirectory) {
        continue; // a socket, FIFO or device node: left out
      } else if (KERNEL_FS.has(fstypeOf(path))) {
        entries.push({ kind: "dir", path }); // empty, whatever is mounted below
      } else if (hasMountBelow(path)) {
        entries.push({ kind: "dir", path });
        visit(path);
      } else if (OVERLAY_LOWER_FS.has(fstypeOf(path))) {
        entries.push({ kind: "overlay", path });
      } else {
        entries.push({ kind: "bind", path });
      }
    }
  };
  visit("/");
  return entries;
}

/**
 * The host's root as a {@linkcode Mount} on "/": see the module
 * documentation. Everything is mounted nosuid: with ids mapped one to one, a
 * set-uid program of the host would otherwise give its host owner's rights.
 * Binds are nodev too: they come from the host's own mounts, which the
 * kernel does not mark nodev as it does every mount made in a user namespace.
 */
export class HostRootMount implements Mount {
  /** Mounted on the root. */
  readonly target = "/";
  /** What is mounted, parents first. */
  readonly entries: readonly HostEntry[];
  readonly #layers: TemporaryLayers;

  /** A root of `entries` (see {@linkcode planHostRoot}) with upper layers in `layers`. */
  constructor(entries: HostEntry[], layers: TemporaryLayers) {
    this.entries = entries;
    this.#layers = layers;
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
        case "bind":
          if (stat(entry.path)?.isDirectory) b.mkdir(at);
          else b.touch(at);
          b.mount(entry.path, at, null, MS.BIND | MS.REC, null, `cannot bind ${entry.path}`);
          // MS_REC: a mount that appeared below it since the plan was made is read-only too.
          b.mount(
            null,
            at,
            null,
            MS.BIND | MS.REMOUNT | MS.RDONLY | MS.NOSUID | MS.NODEV | MS.REC,
            null,
            `cannot make ${entry.path} read-only`,
          );
          break;
        case "overlay":
          b.mkdir(at);
          this.#layers.overlay(
            b,
            entry.path,
            at,
            MS.NOSUID,
            `cannot mount overlay on ${entry.path}`,
            "the host's root",
          );
          break;
      }
    }
  }
}
