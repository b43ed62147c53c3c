/**
 * Paths as text: cleaned, compared, and joined to a container's root. No
 * file system is asked (callers resolve links first where they matter).
 *
 * @module
 */

/**
 * An absolute path without "." and ".." components or repeated slashes, by
 * its text alone, as Docker cleans `-w`: "/a/../b/./c/" is "/b/c", "//" or
 * "/." is "/", and ".." at the root stays there. Callers for whom ".." is an
 * error (a mount target, a rootfs) refuse it first.
 */
export function cleanPath(path: string): string {
  const parts: string[] = [];
  for (const part of path.split("/")) {
    if (part === "..") parts.pop();
    else if (part !== "" && part !== ".") parts.push(part);
  }
  return `/${parts.join("/")}`;
}

/**
 * How resolved path `a` stands to `b`: the same, inside it, holding it, or
 * apart (undefined). "/" holds every other path.
 */
export function pathRelation(a: string, b: string): "same" | "inside" | "holds" | undefined {
  if (a === b) return "same";
  if (b === "/" || a.startsWith(`${b}/`)) return "inside";
  if (a === "/" || b.startsWith(`${a}/`)) return "holds";
  return undefined;
}

/** Whether resolved path `path` is `dir` or lies inside it ("/" holds every path). */
export function isWithin(path: string, dir: string): boolean {
  const relation = pathRelation(path, dir);
  return relation === "same" || relation === "inside";
}

/** `rootfs` + container path `target`, which must be absolute and plain. */
export function containerPath(rootfs: string, target: string): string {
  return target === "/" ? rootfs : `${rootfs}${target}`;
}
