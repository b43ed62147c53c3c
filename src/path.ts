/**
 * Paths as text: cleaned, compared, and joined to a container's root; and
 * what the kernel refuses in a path's text, checked before a path reaches
 * it: too many bytes (ENAMETOOLONG), and the lone surrogates that no byte
 * stands for. The library's options (options.ts, `checkPathText`) and `sbox
 * run`'s (src/cli/args.ts) refuse those alike, each naming its own option.
 * No file system is asked (callers resolve links first where they matter):
 * the command line's option table (run_options.ts) uses it before the rest
 * of sbox loads.
 *
 * @module
 */

import { encodedLength } from "./cstring.ts";

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

/**
 * PATH_MAX of <linux/limits.h>: a path's bytes, with its final NUL.
 *
 * @internal Exported for tests only.
 */
export const PATH_MAX = 4096;
/**
 * NAME_MAX of <linux/limits.h>: the bytes of one file name, a path's component.
 *
 * @internal Exported for tests only.
 */
export const NAME_MAX = 255;

/**
 * Why the kernel would refuse `path` with ENAMETOOLONG, or undefined: too
 * many bytes in all, or in one of its file names. Bytes as the setup writes
 * them (cstring.ts: an escaped byte is one).
 *
 * @example
 * ```ts
 * import { pathLengthProblem } from "./path.ts";
 *
 * console.log(pathLengthProblem("/tmp/x")); // undefined
 * console.log(pathLengthProblem(`/tmp/${"c".repeat(300)}`)); // a file name of 300 bytes, "cccc..."...: at most 255
 * ```
 */
export function pathLengthProblem(path: string): string | undefined {
  // A path of fewer UTF-16 units than NAME_MAX / 3 cannot be too long: no
  // encoding of the usual, short path.
  if (path.length <= NAME_MAX / 3) return undefined;
  const total = encodedLength(path);
  if (total >= PATH_MAX) return `a path of ${total} bytes, ${shortened(path)}: at most ${PATH_MAX - 1}`;
  for (const part of path.split("/")) {
    const bytes = part.length > NAME_MAX / 3 ? encodedLength(part) : 0;
    if (bytes > NAME_MAX) return `a file name of ${bytes} bytes, ${shortened(part)}: at most ${NAME_MAX}`;
  }
  return undefined;
}

/** `text` quoted, cut to its first 40 code points (never half of a UTF-16 pair) for a message. */
function shortened(text: string): string {
  const points: string[] = [];
  for (const point of text) {
    if (points.length === 40) return `${JSON.stringify(points.join(""))}...`;
    points.push(point);
  }
  return JSON.stringify(text);
}

/**
 * Whether `text` holds a lone surrogate that has no byte to stand for: the
 * setup writes it as U+FFFD (cstring.ts, `encodeUtf8Into`), so a path that
 * holds one names another file than the one given. An escaped byte
 * (U+DC80-U+DCFF alone, as `decodeName` makes of a name that is not UTF-8)
 * is not one: it is written as the byte it stands for.
 *
 * @example
 * ```ts
 * import { hasUnwritableSurrogate } from "./path.ts";
 *
 * console.log(hasUnwritableSurrogate("/t\ud800")); // true
 * console.log(hasUnwritableSurrogate("/m\udcfe")); // false: the byte 0xfe
 * console.log(hasUnwritableSurrogate("/\ud83d\ude00")); // false: a pair, U+1F600
 * ```
 */
export function hasUnwritableSurrogate(text: string): boolean {
  if (text.isWellFormed()) return false;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0xd800 || code > 0xdfff) continue;
    if (code <= 0xdbff) {
      const next = text.charCodeAt(i + 1); // NaN past the end
      if (next >= 0xdc00 && next <= 0xdfff) i++;
      else return true;
    } else if (code < 0xdc80 || code > 0xdcff) {
      return true;
    }
  }
  return false;
}
