/**
 * One request on a UNIX stream socket, e.g. slirp4netns's API socket: the
 * helper library has no socket calls, so socket(2) and connect(2) come from
 * the C library through FFI (still nothing beyond --allow-ffi); reading and
 * writing use the helper's wrappers.
 *
 * @module
 */

import { SboxError } from "./error.ts";
import { openLibc } from "./libc.ts";
import { check, close, cstr, EINTR, tryRead, writeAll } from "./sys.ts";

const AF_UNIX = 1;
const SOCK_STREAM = 1;
const SOCK_CLOEXEC = 0o2000000;
/** sizeof(struct sockaddr_un): a 2-byte family, then 108 bytes of path. */
const SOCKADDR_UN_BYTES = 110;

const c = () => openLibc("socket");

/** The errno of the last failed libc call (as a negative number, like the helper's). */
function lastErrno(): number {
  const p = c().__errno_location();
  return p === null ? -1 : -new Deno.UnsafePointerView(p).getInt32();
}

/** A connected socket fd, or the negative errno of connect(2); throws for other failures. */
function connectTo(path: string): number {
  const address = new Uint8Array(SOCKADDR_UN_BYTES);
  const pathBytes = cstr(path);
  if (pathBytes.length > SOCKADDR_UN_BYTES - 2) {
    throw new SboxError(`socket path too long: ${path}`, { step: "network" });
  }
  new DataView(address.buffer).setUint16(0, AF_UNIX, true);
  address.set(pathBytes, 2);
  const fd = c().socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  check(fd < 0 ? lastErrno() : fd, "network", "cannot create a UNIX socket");
  let rc: number;
  do rc = c().connect(fd, address, SOCKADDR_UN_BYTES); while (rc < 0 && lastErrno() === -EINTR);
  if (rc === 0) return fd;
  const errno = lastErrno();
  close(fd);
  return errno;
}

/** Connects to the socket at `path`, writes `request`, and returns everything read until end-of-file. */
export function unixRequest(path: string, request: string): string {
  const fd = check(connectTo(path), "network", `cannot connect to ${path}`);
  try {
    writeAll(fd, new TextEncoder().encode(request), `cannot write to ${path}`);
    const chunks: string[] = [];
    const buf = new Uint8Array(4096);
    const decoder = new TextDecoder();
    for (;;) {
      const n = tryRead(fd, buf);
      if (n === -EINTR) continue;
      if (check(n, "network", `cannot read from ${path}`) === 0) break;
      chunks.push(decoder.decode(buf.subarray(0, n), { stream: true }));
    }
    return chunks.join("");
  } finally {
    close(fd);
  }
}
