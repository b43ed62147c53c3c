/**
 * The result protocol between the child and the parent. The child holds the
 * write end of a close-on-exec pipe; it writes one 16-byte record when a step
 * fails (or when a `fork` op made the real process), and a successful execve
 * closes the pipe. So the parent reads records until end-of-file:
 *
 * - `failed`: op index, op code, errno; the child exits right after.
 * - `forked`: the pid of the process that runs the rest of the program.
 * - end-of-file with no `failed` record: the program is running.
 *
 * @module
 */

import { reactor } from "./reactor.ts";
import { check, EAGAIN, EINTR, tryRead } from "./sys.ts";

/** A decoded record from the child (see `Record` in helper/program.zig). */
export type ChildRecord =
  | { kind: "failed"; opIndex: number; opCode: number; errno: number }
  | { kind: "forked"; opIndex: number; pid: number };

const RECORD_BYTES = 16;
const KIND_FAILED = 1;
const KIND_FORKED = 2;

/** Decodes one record; throws on an unknown kind (a helper/TS mismatch). */
export function decodeRecord(bytes: Uint8Array): ChildRecord {
  const view = new DataView(bytes.buffer, bytes.byteOffset, RECORD_BYTES);
  const kind = view.getUint32(0, true);
  const opIndex = view.getUint32(4, true);
  const opCode = view.getUint32(8, true);
  const value = view.getInt32(12, true);
  if (kind === KIND_FAILED) return { kind: "failed", opIndex, opCode, errno: value };
  if (kind === KIND_FORKED) return { kind: "forked", opIndex, pid: value };
  throw new Error(`sbox internal error: unknown record kind ${kind}`);
}

/** Reads every record from the nonblocking result pipe until end-of-file. */
export async function readRecords(fd: number): Promise<ChildRecord[]> {
  const records: ChildRecord[] = [];
  const buf = new Uint8Array(RECORD_BYTES * 4);
  let pending = new Uint8Array(0);
  for (;;) {
    const n = tryRead(fd, buf);
    if (n === -EAGAIN) {
      await reactor().readable(fd);
      continue;
    }
    if (n === -EINTR) continue;
    check(n, "result", "cannot read the result pipe");
    if (n === 0) return records;
    const joined = new Uint8Array(pending.length + n);
    joined.set(pending);
    joined.set(buf.subarray(0, n), pending.length);
    let offset = 0;
    for (; offset + RECORD_BYTES <= joined.length; offset += RECORD_BYTES) {
      records.push(decodeRecord(joined.subarray(offset, offset + RECORD_BYTES)));
    }
    pending = joined.slice(offset);
  }
}
