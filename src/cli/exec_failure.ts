/**
 * The line `sbox: cannot exec PROGRAM: ERRNO (...)` for a command that
 * could not be executed, with what helps a user beyond the errno: the name
 * quoted where it would not show as it is (blank, with spaces at an end,
 * with control characters), a directory said to be one (execve's EACCES
 * reads as a permission problem), and Docker's `-v SRC:DST` taken for the
 * command. Hints only: the status (126, 127) and the report stay those of
 * the failure.
 *
 * @module
 */

import type { SboxError } from "../error.ts";
import { isWithin } from "../path.ts";
import { resolvedPath, stat } from "../sys.ts";
import type { RunOptions } from "./args.ts";
import { hostPath } from "./mounts.ts";

/**
 * The message for `err`, the exec failure of `options.command`: the
 * library's `cannot exec PROGRAM: ...`, PROGRAM quoted where it must be,
 * and a hint where one applies.
 */
export function execFailureMessage(options: RunOptions, err: SboxError): string {
  const program = options.command[0];
  const prefix = `cannot exec ${program}: `;
  const message = err.message.startsWith(prefix)
    ? `cannot exec ${shownName(program)}: ${err.message.slice(prefix.length)}`
    : err.message;
  return message + directoryHint(options, err) + bindHint(program, err);
}

/**
 * `name` as it is, or quoted as a JSON string where it would not show as
 * it is in a message: empty-looking (blank), with white space at an end, or
 * with a control, format or line-separator character.
 */
function shownName(name: string): string {
  const plain = /^\S(.*\S)?$/su.test(name) && !/[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u.test(name);
  return plain ? name : JSON.stringify(name);
}

/**
 * What to say after `cannot exec PROGRAM: ENOENT` when PROGRAM looks like a
 * bind (`/src:/dst:ro`): Docker's `-v SRC:DST` is sbox's --verbose, which
 * leaves the bind as the command. Only a hint: the run stays a command not
 * found (127, RE), which it is.
 */
function bindHint(program: string, err: SboxError): string {
  return err.errno === "ENOENT" && program.includes(":")
    ? " (a bind is --bind SRC:DST; -v is --verbose)"
    : "";
}

/**
 * ": it is a directory" after an EACCES of a PROGRAM that is a directory
 * in the container, where sbox can tell that from the host (see
 * {@linkcode hostFileOf}); nothing otherwise. The container is gone by
 * now, and a second process in it only for this would cost more than the
 * hint is worth.
 */
function directoryHint(options: RunOptions, err: SboxError): string {
  if (err.errno !== "EACCES") return "";
  try {
    const file = hostFileOf(options);
    return file !== undefined && stat(file)?.isDirectory ? ": it is a directory" : "";
  } catch {
    return ""; // it cannot be looked at: no hint
  }
}

/** Where the container's own file systems are, which the host has no view of (see mounts.ts). */
const CONTAINER_OWN = ["/proc", "/sys", "/dev", "/tmp"];

/**
 * The host file that the command's program was in the container, or
 * undefined where sbox cannot be sure from the host: a name without a slash
 * (the PATH search tried several), a path with `..` or through a symbolic
 * link (it may lead elsewhere in the container), or one in a file system
 * of the container's own (/proc, /sys, /dev, /tmp, a --tmpfs). Otherwise
 * the program is in the root (the image, or the host's root) or in a
 * --bind, the last of these mounted over its path.
 */
function hostFileOf(options: RunOptions): string | undefined {
  const program = options.command[0];
  if (!program.includes("/")) return undefined;
  const path = program.startsWith("/") ? program : `${options.cwd}/${program}`;
  const parts = path.split("/").filter((part) => part !== "" && part !== ".");
  if (parts.includes("..")) return undefined;
  const inContainer = `/${parts.join("/")}`;
  const under = (dir: string) => isWithin(inContainer, dir);
  let root: string | undefined = CONTAINER_OWN.some(under)
    ? undefined
    : options.rootfs === undefined
    ? "/"
    : hostPath(options.rootfs);
  let rest = inContainer;
  for (const mount of options.mounts) {
    const target = `/${mount.target.split("/").filter((part) => part !== "" && part !== ".").join("/")}`;
    if (!under(target)) continue;
    root = mount.kind === "bind" ? hostPath(mount.source) : undefined;
    rest = inContainer.slice(target === "/" ? 0 : target.length);
  }
  if (root === undefined) return undefined;
  const base = resolvedPath(root);
  const file = `${base === "/" ? "" : base}${rest}`;
  // Only a path without links: the kernel followed the container's, which
  // may lead elsewhere than the host's.
  return resolvedPath(file) === file ? file : undefined;
}
