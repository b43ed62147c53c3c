/**
 * UTF-8 encoding of the strings handed to the kernel (paths, argv, env), and
 * the decoding of the names the kernel gives back (a directory's entries, a
 * link's target, a mount point), which are bytes, not text.
 *
 * Starting a container encodes a hundred or so strings, nearly all ASCII:
 * written byte by byte they cost no call into Deno's runtime, which
 * TextEncoder makes for every string.
 *
 * A Linux file name is any bytes but "/" and NUL, and not all are UTF-8
 * (a name of an older Latin-1 system, `mkdir $'\xfe'`). A plain TextDecoder
 * turns such bytes into U+FFFD, and the path encoded back names another
 * file, or none: the host-root plan (host_root.ts) lost every such entry of
 * a directory with mounts below it, mount points included. So host names
 * are decoded as Python's `os.fsdecode` does ("surrogateescape", PEP 383):
 * each byte of a sequence that is not UTF-8 becomes the lone surrogate
 * U+DC00 + byte (U+DC80-U+DCFF), which no well-formed string holds, and
 * {@linkcode encodeUtf8Into} writes it back as that byte. UTF-8 names
 * decode as TextDecoder decodes them.
 *
 * @module
 */

const encoder = new TextEncoder();
/** Keeps a leading byte order mark (a name may start with one). */
const lenientDecoder = new TextDecoder("utf-8", { ignoreBOM: true });

/**
 * A lone surrogate U+DC80-U+DCFF, not the second half of a pair: a byte
 * that {@linkcode decodeName} escaped.
 */
const ESCAPED_BYTE = /(?<![\uD800-\uDBFF])[\uDC80-\uDCFF]/;

/**
 * Writes `str` as UTF-8 at `offset` of `target` (which must have room for
 * `str.length * 3` bytes) and returns the number of bytes written. No NUL
 * is added. A lone surrogate U+DC80-U+DCFF is written as the byte it
 * escapes (see {@linkcode decodeName}), any other lone surrogate as U+FFFD,
 * as TextEncoder writes it.
 */
export function encodeUtf8Into(str: string, target: Uint8Array, offset: number): number {
  for (let i = 0; i < str.length; i++) {
    const code = str.charCodeAt(i);
    if (code >= 0x80) {
      return ESCAPED_BYTE.test(str)
        ? encodeEscapedInto(str, target, offset)
        : encoder.encodeInto(str, target.subarray(offset)).written;
    }
    target[offset + i] = code;
  }
  return str.length;
}

/** {@linkcode encodeUtf8Into} of a string with escaped bytes, unit by unit. */
function encodeEscapedInto(str: string, target: Uint8Array, offset: number): number {
  let at = offset;
  for (let i = 0; i < str.length; i++) {
    let code = str.charCodeAt(i);
    const next = str.charCodeAt(i + 1); // NaN past the end
    if (code >= 0xd800 && code <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
      code = 0x10000 + ((code - 0xd800) << 10) + (next - 0xdc00);
      i++;
    } else if (code >= 0xdc80 && code <= 0xdcff) {
      target[at++] = code - 0xdc00;
      continue;
    } else if (code >= 0xd800 && code <= 0xdfff) {
      code = 0xfffd;
    }
    if (code < 0x80) {
      target[at++] = code;
    } else if (code < 0x800) {
      target[at++] = 0xc0 | (code >> 6);
      target[at++] = 0x80 | (code & 0x3f);
    } else if (code < 0x10000) {
      target[at++] = 0xe0 | (code >> 12);
      target[at++] = 0x80 | ((code >> 6) & 0x3f);
      target[at++] = 0x80 | (code & 0x3f);
    } else {
      target[at++] = 0xf0 | (code >> 18);
      target[at++] = 0x80 | ((code >> 12) & 0x3f);
      target[at++] = 0x80 | ((code >> 6) & 0x3f);
      target[at++] = 0x80 | (code & 0x3f);
    }
  }
  return at - offset;
}

/** The number of bytes {@linkcode encodeUtf8Into} writes for `str`. */
export function encodedLength(str: string): number {
  return encodeUtf8Into(str, new Uint8Array(str.length * 3), 0);
}

/**
 * `bytes` (a file name, a path, a link's target, /proc/self/mountinfo) as a
 * string from which {@linkcode encodeUtf8Into} gives back the same bytes:
 * UTF-8 as it is (a leading byte order mark too), and each byte of a
 * sequence that is not UTF-8 as U+DC00 + byte.
 *
 * @example
 * ```ts
 * import { decodeName, encodeUtf8Into } from "./cstring.ts";
 *
 * const name = decodeName(new Uint8Array([0x6d, 0xfe, 0xc3, 0xa9])); // "m\udcfeé"
 * const bytes = new Uint8Array(name.length * 3);
 * console.log(bytes.subarray(0, encodeUtf8Into(name, bytes, 0))); // 6d fe c3 a9
 * ```
 */
export function decodeName(bytes: Uint8Array): string {
  // A non-fatal decode costs no exception for a name that is not UTF-8 (one
  // cost 20 µs, and a 2 MB mountinfo with one odd byte 200 ms to escape char
  // by char); only a text with U+FFFD in it can hold bytes to escape.
  const text = lenientDecoder.decode(bytes);
  return text.includes("\uFFFD") ? escapeNonUtf8(bytes, text) : text;
}

/**
 * {@linkcode decodeName} of `bytes`, whose plain decoding `text` has a
 * U+FFFD: a real one (EF BF BD), or a sequence that is not UTF-8. The runs
 * between bad bytes are decoded whole, so the cost is a scan of the bytes,
 * not a string built one character at a time.
 */
function escapeNonUtf8(bytes: Uint8Array, text: string): string {
  const parts: string[] = [];
  let runStart = 0;
  for (let i = 0; i < bytes.length;) {
    if (bytes[i] < 0x80) {
      i++;
      continue;
    }
    const length = utf8SequenceLength(bytes, i);
    if (length > 0) {
      i += length;
      continue;
    }
    if (runStart < i) parts.push(lenientDecoder.decode(bytes.subarray(runStart, i)));
    parts.push(String.fromCharCode(0xdc00 + bytes[i]));
    runStart = ++i;
  }
  if (runStart === 0) return text; // only real U+FFFDs
  if (runStart < bytes.length) parts.push(lenientDecoder.decode(bytes.subarray(runStart)));
  return parts.join("");
}

/**
 * The length of the well-formed UTF-8 sequence at `bytes[i]` (Unicode's
 * table 3-7: no overlong forms, surrogates or code points past U+10FFFF),
 * or 0 where there is none.
 */
function utf8SequenceLength(bytes: Uint8Array, i: number): number {
  const lead = bytes[i];
  if (lead < 0x80) return 1;
  let length, low = 0x80, high = 0xbf;
  if (lead >= 0xc2 && lead <= 0xdf) length = 2;
  else if (lead >= 0xe0 && lead <= 0xef) {
    length = 3;
    if (lead === 0xe0) low = 0xa0;
    if (lead === 0xed) high = 0x9f;
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    length = 4;
    if (lead === 0xf0) low = 0x90;
    if (lead === 0xf4) high = 0x8f;
  } else return 0;
  if (i + length > bytes.length || bytes[i + 1] < low || bytes[i + 1] > high) return 0;
  for (let k = 2; k < length; k++) {
    if (bytes[i + k] < 0x80 || bytes[i + k] > 0xbf) return 0;
  }
  return length;
}

/**
 * What {@linkcode printable} escapes: a byte that {@linkcode decodeName}
 * escaped, and every character that would end or garble a line of text: a
 * C0 control (a newline, a carriage return, ESC of a terminal's escape
 * sequences), DEL, a C1 control, U+2028 and U+2029 (Python's
 * `str.splitlines()` ends a line at U+0085, U+2028 and U+2029 too).
 */
const UNPRINTABLE = new RegExp(`[\\u0000-\\u001f\\u007f-\\u009f\\u2028\\u2029]|${ESCAPED_BYTE.source}`, "g");

/** The escapes of `ls -b` that are not octal. */
const NAMED_ESCAPES: Readonly<Record<string, string>> = {
  "\x07": "\\a",
  "\b": "\\b",
  "\t": "\\t",
  "\n": "\\n",
  "\v": "\\v",
  "\f": "\\f",
  "\r": "\\r",
};

/** `byte` as a backslash and three octal digits (`\376`). */
function octalEscape(byte: number): string {
  return `\\${byte.toString(8).padStart(3, "0")}`;
}

/**
 * `text` for a person to read, on one line, as `ls -b` shows a file name:
 * each byte that {@linkcode decodeName} escaped as a backslash and three
 * octal digits (a terminal would show U+FFFD); a newline, a tab and the
 * other controls of C's escapes as `\n`, `\t`, ...; any other control
 * character, U+2028 and U+2029 as the octal escapes of their UTF-8 bytes
 * (ESC as `\033`). So a host path or a value with a newline in it cannot
 * split a line, nor make a second line that looks like one of sbox's. A
 * backslash stays as it is (unlike `ls -b`): the messages hold values
 * quoted as JSON (`"a\nb"`), whose escapes would be doubled.
 *
 * @example
 * ```ts
 * import { printable } from "./cstring.ts";
 *
 * console.log(printable("/srv/mnt\udcfe")); // /srv/mnt\376
 * console.log(printable("/srv/a\nb")); // /srv/a\nb
 * ```
 */
export function printable(text: string): string {
  return text.replace(UNPRINTABLE, (c) => {
    const code = c.charCodeAt(0);
    if (code >= 0xdc80) return octalEscape(code - 0xdc00);
    return NAMED_ESCAPES[c] ?? [...encoder.encode(c)].map(octalEscape).join("");
  });
}
