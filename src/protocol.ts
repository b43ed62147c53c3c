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
 * A `reaper` op (a minimal pid 1 that runs the command as its child) keeps
 * the pipe open for the container's life: it writes `setupCpu` (the CPU time
 * of the setup, all done by pid 1), `startedAt` (its clock), `killToken` (the
 * value InitProcess.killCommand's request must carry) and `started` once the
 * command has exec'd, and at the end `exitedAt`, then `maxRss`,
 * `userTime` and `systemTime` (what its reaped children used: getrusage's
 * RUSAGE_CHILDREN), then `exited` with the command's wait status.
 *
 * @module
 */

import { reactor } from "./reactor.ts";
import { check, EAGAIN, EINTR, tryRead } from "./sys.ts";

/** A decoded record from the child (see `Record` in helper/program.zig). */
export type ChildRecord =
  | { kind: "failed"; opIndex: number; opCode: number; errno: number }
  | { kind: "forked"; opIndex: number; pid: number }
  | { kind: "started"; opIndex: number; pid: number }
  | { kind: "exited"; opIndex: number; waitStatus: number }
  | { kind: "setupCpu"; opIndex: number; usec: number }
  | { kind: "startedAt" | "exitedAt"; opIndex: number; usec: number }
  | { kind: "maxRss"; opIndex: number; kib: number }
  | { kind: "userTime" | "systemTime"; opIndex: number; usec: number }
  | { kind: "killToken"; opIndex: number; token: bigint };

const RECORD_BYTES = 16;
/** `RecordKind` of helper/program.zig, by number - 1; tests/program_test.ts keeps them equal. */
const KINDS = [
  "failed",
  "forked",
  "started",
  "exited",
  "setupCpu",
  "startedAt",
  "exitedAt",
  "maxRss",
  "userTime",
  "systemTime",
  "killToken",
] as const;

/**
 * Decodes one record; throws on an unknown kind (a helper/TS mismatch).
 *
 * @internal Exported for tests only.
 */
export function decodeRecord(bytes: Uint8Array): ChildRecord {
  const view = new DataView(bytes.buffer, bytes.byteOffset, RECORD_BYTES);
  const kind = KINDS[view.getUint32(0, true) - 1];
  const opIndex = view.getUint32(4, true);
  const opCode = view.getUint32(8, true);
  const value = view.getInt32(12, true);
  switch (kind) {
    case "failed":
      return { kind, opIndex, opCode, errno: value };
    case "forked":
    case "started":
      return { kind, opIndex, pid: value };
    case "exited":
      return { kind, opIndex, waitStatus: value };
    case "setupCpu":
    case "startedAt":
    case "exitedAt":
      return { kind, opIndex, usec: value };
    case "maxRss":
      return { kind, opIndex, kib: value };
    case "userTime":
    case "systemTime":
      // 64 bits: the high half where other records have their op code.
      return { kind, opIndex, usec: opCode * 2 ** 32 + (value >>> 0) };
    case "killToken":
      return { kind, opIndex, token: (BigInt(opCode) << 32n) | BigInt(value >>> 0) };
  }
  throw new Error(`sbox internal error: unknown record kind ${view.getUint32(0, true)}`);
}

/** Reads records from the nonblocking result pipe, one at a time. */
export class RecordReader {
  readonly fd: number;
  readonly #buf = new Uint8Array(RECORD_BYTES * 4);
  #pending = new Uint8Array(0);

  /** Reads from `fd`, which must be nonblocking. */
  constructor(fd: number) {
    this.fd = fd;
  }

  /** The next record, or `undefined` at end-of-file. */
  async next(): Promise<ChildRecord | undefined> {
    while (this.#pending.length < RECORD_BYTES) {
      const n = tryRead(this.fd, this.#buf);
      if (n === -EAGAIN) {
        await reactor().readable(this.fd);
        continue;
      }
      if (n === -EINTR) continue;
      check(n, "result", "cannot read the result pipe");
      if (n === 0) return undefined;
      const joined = new Uint8Array(this.#pending.length + n);
      joined.set(this.#pending);
      joined.set(this.#buf.subarray(0, n), this.#pending.length);
      this.#pending = joined;
    }
    const record = decodeRecord(this.#pending.subarray(0, RECORD_BYTES));
    this.#pending = this.#pending.slice(RECORD_BYTES);
    return record;
  }
}
