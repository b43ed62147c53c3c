/**
 * Temporary upper layers for the overlays of a container's root.
 *
 * The upper and work directories of every overlay live on one tmpfs that
 * the container mounts, in its own mount namespace, on an empty host
 * directory. pivot_root then detaches that directory from the container's
 * view; the overlays keep the tmpfs alive for as long as the container
 * exists. So writes vanish with the container by construction, nothing is
 * written to the host's disk (and nothing is left there if sbox is killed),
 * and the tmpfs pages count toward the container's memory limit. The
 * tmpfs's size bounds them all (`sbox run --write-limit`, HostRootMount's
 * `size`); the host-root view's "/" is a directory of it too (bound on the
 * rootfs), under the same bound.
 *
 * @module
 */

import { compileLayersTmpfs, compileTemporaryOverlay } from "./mount.ts";
import { MS, type ProgramBuilder, UNCHANGED_ID } from "./program.ts";
import { OVERLAY_LOOP_PROBLEM, overlayStackingProblem } from "./mount_refusals.ts";
import { type MountEntry, mountTable } from "./mountinfo.ts";

/** Where a container's overlays keep their writable layers. */
export class TemporaryLayers {
  /** The empty host directory the tmpfs is mounted on (in the container's namespace only). */
  readonly dir: string;
  /** The tmpfs's size in bytes: all the layers together. */
  readonly size: number;
  #count = 0;

  /** Layers on a tmpfs of `size` bytes mounted on `dir`, an empty host directory. */
  constructor(dir: string, size: number) {
    this.dir = dir;
    this.size = size;
  }

  /** Appends the tmpfs mount; call once, before the first {@linkcode overlay}. */
  mountTmpfs(b: ProgramBuilder): void {
    this.#count = 0;
    // 0700: it is mounted on a host directory, and nothing but the setup
    // needs to enter it (the overlays hold their layers by reference).
    compileLayersTmpfs(b, this.dir, 0o700, this.size, "cannot mount the tmpfs of the upper layers");
  }

  /**
   * Appends a new directory of the tmpfs, bound on `rootfs`: a root whose
   * new entries count toward the same size as the layers. Call after
   * {@linkcode mountTmpfs}.
   */
  bindRoot(b: ProgramBuilder, rootfs: string): void {
    // Exactly 0755, whatever the umask, as the tmpfs root it replaces was.
    b.mkdir(`${this.dir}/root`, 0o755, { uid: UNCHANGED_ID, gid: UNCHANGED_ID });
    b.mount(`${this.dir}/root`, rootfs, null, MS.BIND, null, "cannot bind the root's directory on /");
  }

  /**
   * Appends an overlay of host directory `lower` on `target` (a path under
   * the rootfs, which must exist), with a new upper layer of its own on the
   * tmpfs: mount.ts's `compileTemporaryOverlay`, as a temporary
   * OverlayMount's. `options` say how its errors name it and what they advise.
   */
  overlay(
    b: ProgramBuilder,
    lower: string,
    target: string,
    flags: number,
    what: string,
    options: TemporaryOverlayOptions,
  ): void {
    const n = this.#count++;
    const layerName = options.layerName ?? "the host's directory";
    const remedy = options.stackingRemedy ?? LIBRARY_STACKING_REMEDY;
    compileTemporaryOverlay(b, {
      lowers: [lower],
      upper: `${this.dir}/upper-${n}`,
      work: `${this.dir}/work-${n}`,
      target,
      flags,
      what,
      option: options.option,
      skipGoneLower: options.skipGoneLower,
      explain: (errno) => {
        if (errno === "ELOOP") return OVERLAY_LOOP_PROBLEM;
        if (errno !== "EINVAL") return undefined;
        const table = mountTable();
        // The upper layer is ours, on a tmpfs: only the lower can be on an
        // overlay stacked too deep.
        const stacking = overlayStackingProblem([[layerName, lower]], [], table, remedy);
        return options.explainEinval ? options.explainEinval(table, stacking) : stacking;
      },
    });
  }
}

/**
 * What a library user can do about a host directory on an overlay that
 * cannot be stacked on again: the library's own means, which the CLI
 * replaces with its options' (src/cli/mounts.ts).
 */
const LIBRARY_STACKING_REMEDY = "give the container an image directory on a disk file system or a tmpfs " +
  "instead (an OverlayMount of it on /)";

/** How {@linkcode TemporaryLayers.overlay}'s errors name the overlay, and what they advise. */
export interface TemporaryOverlayOptions {
  /** What an error about the overlay's options (its layer paths too long) names: an option of the caller's. */
  option: string;
  /** What an error calls the lower layer: "the host's directory" by default. */
  layerName?: string;
  /**
   * What an EINVAL for a lower layer on an overlay stacked too deep advises,
   * after saying so: by default the library's way out (an image directory
   * as an OverlayMount), not a CLI option.
   */
  stackingRemedy?: string;
  /** A `lower` gone by the time the child mounts it leaves `target` empty (else the mount fails). */
  skipGoneLower?: boolean;
  /**
   * Says why overlayfs refused the overlay (EINVAL), by `table`, this
   * process's mount table read after the failure, and `stacking`, what
   * the check for a lower layer on an overlay stacked too deep found
   * (undefined: not that), which is the error's explanation without it:
   * the host's root (host_root.ts) knows a cause of its own, a mount made
   * below `lower` since its plan.
   */
  explainEinval?: (table: readonly MountEntry[], stacking: string | undefined) => string | undefined;
}
