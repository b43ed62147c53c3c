/**
 * Files of the container root's /etc that `sbox run` reads (the user's
 * /etc/passwd entry) or writes (/etc/hosts with a line for the container's
 * hostname, /etc/hostname with the name).
 * The root is the host's or an image, which may be anyone's: its files are
 * read without following any link, and written by the container's setup,
 * inside the root, in its temporary upper layer.
 *
 * @module
 */

import { COPY_MAX_BYTES, copyableText } from "../host_root.ts";
import type { Mount } from "../mount.ts";
import { containerPath } from "../path.ts";
import type { ProgramBuilder } from "../program.ts";
import { close, ENOENT, O, readAll, stat, tryOpen } from "../sys.ts";

/**
 * What the root's /etc holds under a name: the bytes of a regular file (at
 * most `limit` + 1 of them: more than `limit` says it is bigger), "missing"
 * where /etc is a directory without that name, "unusable" for anything else
 * (no /etc directory, a link, a FIFO, a device).
 */
export type EtcFile = Uint8Array<ArrayBuffer> | "missing" | "unusable";

/**
 * Reads `rootDir`/etc/`name` (`rootDir` is the host directory that becomes
 * "/") without trusting the image, which may be anyone's: no link is
 * followed in `etc` or `name` (an image whose /etc leads to a host
 * directory would show a host file), a FIFO does not block (O_NONBLOCK, and
 * only a regular file is read), and no more than `limit` + 1 bytes are
 * read (a link to /dev/zero would be all of memory).
 *
 * @example
 * ```ts
 * import { readEtcFile } from "./etc.ts";
 *
 * const passwd = readEtcFile("/", "passwd", 1 << 20);
 * if (passwd instanceof Uint8Array) console.log(new TextDecoder().decode(passwd).split("\n")[0]);
 * ```
 */
export function readEtcFile(rootDir: string, name: string, limit: number): EtcFile {
  const etc = tryOpen(`${rootDir === "/" ? "" : rootDir}/etc`, O.RDONLY | O.DIRECTORY | O.NOFOLLOW);
  if (etc < 0) return "unusable";
  try {
    const fd = tryOpen(`/proc/self/fd/${etc}/${name}`, O.RDONLY | O.NONBLOCK | O.NOFOLLOW);
    if (fd === -ENOENT) return "missing";
    if (fd < 0) return "unusable";
    try {
      if (!stat(`/proc/self/fd/${fd}`)?.isFile) return "unusable";
      return readAll(fd, `${rootDir}/etc/${name}`, limit);
    } finally {
      close(fd);
    }
  } finally {
    close(etc);
  }
}

/**
 * The text of the root's /etc/`name` that `sbox run` rewrites, `whenMissing`
 * where /etc has no such name, or undefined where the file is left as it
 * is: no /etc directory, a link, something other than a regular file, or
 * one the host's root binds rather than copies (host_root.ts's
 * copyableText, the one rule: over 1 MiB, not UTF-8, a NUL), which could not be
 * replaced. The same rule for an image's root, which binds nothing.
 */
function rewrittenEtcText(rootDir: string, name: string, whenMissing: string): string | undefined {
  const file = readEtcFile(rootDir, name, COPY_MAX_BYTES);
  if (file === "unusable") return undefined;
  return file === "missing" ? whenMissing : copyableText(file);
}

/** Where the container's hosts file is. */
export const HOSTS_PATH = "/etc/hosts";

/** /etc/hosts for a root without one: what Debian's netbase writes. */
const DEFAULT_HOSTS = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n";

/**
 * The address of the hostname line: on the loopback, so that it resolves
 * with or without a network, as Debian's installer puts a host without a
 * fixed address there.
 */
const HOSTNAME_ADDRESS = "127.0.1.1";

/**
 * The container's /etc/hosts: the root's own (`rootDir`/etc/hosts, or
 * {@linkcode DEFAULT_HOSTS} where /etc has none) with a line that makes
 * `hostname` resolve (`hostname -f`, Python's `gethostbyname(gethostname())`,
 * Java's `InetAddress.getLocalHost()`), as Docker and Podman add one.
 * Undefined where no line is needed (one names it already) or none can be
 * added to what is there: no /etc directory, a link, something other than
 * a regular file, a file over 1 MiB, not UTF-8, or with a NUL byte.
 *
 * @example
 * ```ts
 * import { hostsWithHostname } from "./etc.ts";
 *
 * console.log(hostsWithHostname("/", "sbox")); // the host's lines and "127.0.1.1\tsbox"
 * ```
 */
export function hostsWithHostname(rootDir: string, hostname: string): string | undefined {
  const text = rewrittenEtcText(rootDir, "hosts", DEFAULT_HOSTS);
  if (text === undefined || namesHost(text, hostname)) return undefined;
  const separator = text === "" || text.endsWith("\n") ? "" : "\n";
  return `${text}${separator}${HOSTNAME_ADDRESS}\t${hostname}\n`;
}

/** Whether a line of hosts file `text` gives `hostname` an address (names are case-insensitive). */
function namesHost(text: string, hostname: string): boolean {
  const wanted = hostname.toLowerCase();
  return text.split("\n").some((line) => {
    const [, ...names] = line.replace(/#.*/, "").trim().split(/\s+/);
    return names.some((name) => name.toLowerCase() === wanted);
  });
}

/** Where the container's hostname file is. */
export const HOSTNAME_PATH = "/etc/hostname";

/**
 * The container's /etc/hostname: the hostname and a newline, as Docker and
 * Podman write it, so that a program that reads the file rather than
 * calling gethostname(2) (`hostname -F`, a service's configuration) sees
 * the container's name, not the host's or the image's. Written where the
 * root has none too. Undefined where the root's file is left as it is, as
 * its /etc/hosts would be: no /etc directory, a link, something other than
 * a regular file, over 1 MiB, not UTF-8 or with a NUL byte (the host's root binds such a
 * file rather than copy it, and a bound file cannot be replaced).
 *
 * @example
 * ```ts
 * import { hostnameFile } from "./etc.ts";
 *
 * console.log(hostnameFile("/", "judge-7")); // "judge-7\n"
 * ```
 */
export function hostnameFile(rootDir: string, hostname: string): string | undefined {
  // Its text is replaced, not kept: only whether it may be.
  return rewrittenEtcText(rootDir, "hostname", "") === undefined ? undefined : `${hostname}\n`;
}

/**
 * A file of the container's /etc that `sbox run` writes: /etc/hosts (see
 * {@linkcode hostsWithHostname}) or /etc/hostname (see
 * {@linkcode hostnameFile}). Written on the root's temporary upper layer
 * after the root's mounts and before the user's (a `--bind` onto it still
 * wins). Where the container's root may not write /etc (rootless, an image
 * whose /etc belongs to host root), the root's own stays.
 *
 * @example
 * ```ts
 * import { HOSTS_PATH, WrittenEtcFile } from "./etc.ts";
 *
 * const hosts = new WrittenEtcFile(HOSTS_PATH, "127.0.0.1\tlocalhost\n127.0.1.1\tsbox\n");
 * console.log(hosts.target); // "/etc/hosts"
 * ```
 */
export class WrittenEtcFile implements Mount {
  /** Where it is written. */
  readonly target: string;
  /** What it holds. */
  readonly text: string;

  /** A file at `target` (an absolute path in /etc) that holds `text`. */
  constructor(target: string, text: string) {
    this.target = target;
    this.text = text;
  }

  /** Nothing to check: the text comes from the root and a checked hostname. */
  validate(): void {}

  /** Appends the write, resolved inside the root, skipped where /etc may not be written. */
  compile(b: ProgramBuilder, rootfs: string): void {
    b.writeFile(containerPath(rootfs, this.target), this.text, 0o644, { optional: true });
  }
}
