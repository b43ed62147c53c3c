/**
 * UTF-8 encoding of the strings handed to the kernel (paths, argv, env).
 * Starting a container encodes a hundred or so, nearly all ASCII: written
 * byte by byte they cost no call into Deno's runtime, which TextEncoder
 * makes for every string.
 *
 * @module
 */

const encoder = new TextEncoder();

/**
 * Writes `str` as UTF-8 at `offset` of `target` (which must have room for
 * `str.length * 3` bytes) and returns the number of bytes written. No NUL
 * is added.
 */
export function encodeUtf8Into(str: string, target: Uint8Array, offset: number): number {
  for (let i = 0; i < str.length; i++) {
    const code = str.charCodeAt(i);
    if (code >= 0x80) return encoder.encodeInto(str, target.subarray(offset)).written;
    target[offset + i] = code;
  }
  return str.length;
}
