/**
 * Resource limits (setrlimit) of a container's processes. Inside a user
 * namespace a process can lower its limits but never raise a hard limit, so
 * these can only make the host's limits stricter; asking for a hard limit
 * above this process's fails at start with EPERM, and a message that says
 * so (see {@linkcode compileRlimits}).
 *
 * @module
 */

import { SboxError } from "../error.ts";
import { checkKnownKeys, isPlainObject, isRecord, kindOf, show } from "../options.ts";
import type { ProgramBuilder } from "../program.ts";
import { readTextFile } from "../sys.ts";

/**
 * Resource numbers (asm-generic, the same on x86_64 and aarch64).
 *
 * @example The names rlimits accept
 * ```ts
 * import { RLIMIT_RESOURCES } from "./rlimits.ts";
 *
 * console.log(Object.keys(RLIMIT_RESOURCES).includes("NOFILE")); // true
 * ```
 */
export const RLIMIT_RESOURCES: Readonly<Record<string, number>> = {
  CPU: 0,
  FSIZE: 1,
  DATA: 2,
  STACK: 3,
  CORE: 4,
  RSS: 5,
  NPROC: 6,
  NOFILE: 7,
  MEMLOCK: 8,
  AS: 9,
  LOCKS: 10,
  SIGPENDING: 11,
  MSGQUEUE: 12,
  NICE: 13,
  RTPRIO: 14,
  RTTIME: 15,
};

/** A limit: a number (soft and hard alike), `"unlimited"`, or both halves apart. */
export type RlimitValue =
  | number
  | "unlimited"
  | { soft: number | "unlimited"; hard: number | "unlimited" };

/**
 * Limits by resource name (`NOFILE`, `CORE`, `NPROC`, `FSIZE`, `STACK`, ...).
 * `NPROC` counts the processes of one uid in the container's user
 * namespace, not the host's processes of the host id it maps to, and a
 * process whose uid is the host's root (the container's root under the
 * identity map) is exempt (docs/security.md).
 *
 * @example At most 64 open files and 1 MiB per file; core dumps allowed
 * ```ts
 * import type { Rlimits } from "./rlimits.ts";
 *
 * const rlimits: Rlimits = { NOFILE: 64, FSIZE: 1 << 20, CORE: "unlimited" };
 * ```
 */
export type Rlimits = Partial<Record<keyof typeof RLIMIT_RESOURCES | string, RlimitValue>>;

/**
 * What every process gets unless its options say otherwise: no core dumps.
 * Besides these, `NOFILE`'s soft limit starts at 1024 (or the hard limit if
 * that is lower) with the hard limit as this process's: see
 * {@linkcode checkRlimits}.
 *
 * @example Keep the default and add a limit
 * ```ts
 * import { DEFAULT_RLIMITS, type Rlimits } from "./rlimits.ts";
 *
 * const rlimits: Rlimits = { ...DEFAULT_RLIMITS, NOFILE: 64 };
 * ```
 */
export const DEFAULT_RLIMITS: Readonly<Rlimits> = { CORE: 0 };

/** One checked limit, ready for the `rlimit` op. */
export interface CheckedRlimit {
  name: string;
  resource: number;
  soft: bigint;
  hard: bigint;
}

const INFINITY = (1n << 64n) - 1n;

function limitValue(name: string, value: unknown): bigint {
  if (value === "unlimited") return INFINITY;
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    throw SboxError.invalidOption(
      "rlimits",
      `${name} must be a non-negative integer or "unlimited", got ${show(value)}`,
    );
  }
  return BigInt(value);
}

/** The soft limit of open files a process starts with on Linux (`INR_OPEN_CUR`), which `select(2)` needs. */
const DEFAULT_OPEN_FILES = 1024n;

let processHardLimits: bigint[] | undefined;

/**
 * This process's hard limits, read once: Deno never changes its own, and
 * another process lowering them (prlimit) is a case not worth a read of
 * /proc/self/limits at every start.
 */
function hardLimits(): bigint[] {
  return processHardLimits ??= ownLimits("hard");
}

/**
 * Validates `rlimits` over the defaults; the result is in resource order.
 *
 * Unless `rlimits` names `NOFILE`, the soft limit of open files is put back
 * to 1024 (at most the hard limit), the hard one kept: Deno raises its own
 * soft limit to the hard one at start, which children would otherwise
 * inherit (20000 and more instead of the 1024 a shell gives). The caller's
 * soft limit from before Deno started is lost to it; a command that needs
 * more raises its soft limit itself, up to the hard one.
 */
export function checkRlimits(rlimits: unknown): CheckedRlimit[] {
  if (rlimits !== undefined && !isPlainObject(rlimits)) {
    throw SboxError.invalidOption(
      "rlimits",
      `must be a plain object such as { NOFILE: 64 }, got ${kindOf(rlimits)}`,
    );
  }
  // By resource: "nofile" and "RLIMIT_NOFILE" name NOFILE too, and a
  // caller's limit replaces the default one.
  const byName = new Map<string, CheckedRlimit>();
  for (const [key, value] of [...Object.entries(DEFAULT_RLIMITS), ...Object.entries(rlimits ?? {})]) {
    const name = key.toUpperCase().replace(/^RLIMIT_/, "");
    const resource = RLIMIT_RESOURCES[name];
    if (resource === undefined) {
      throw SboxError.invalidOption("rlimits", `unknown resource ${show(key)}`);
    }
    let soft: bigint, hard: bigint;
    if (isRecord(value)) {
      // A misspelled "hrad" would leave a limit unset without a word.
      checkKnownKeys(value, { soft: true, hard: true }, "rlimits");
      const pair = value as { soft?: unknown; hard?: unknown };
      soft = limitValue(`${name}.soft`, pair.soft);
      hard = limitValue(`${name}.hard`, pair.hard);
      if (soft > hard) throw SboxError.invalidOption("rlimits", `${name}: soft limit above the hard limit`);
    } else {
      soft = hard = limitValue(name, value);
    }
    byName.set(name, { name, resource, soft, hard });
  }
  if (!byName.has("NOFILE")) {
    const hard = hardLimits()[RLIMIT_RESOURCES.NOFILE] ?? INFINITY;
    const soft = hard < DEFAULT_OPEN_FILES ? hard : DEFAULT_OPEN_FILES;
    byName.set("NOFILE", { name: "NOFILE", resource: RLIMIT_RESOURCES.NOFILE, soft, hard });
  }
  return [...byName.values()].sort((a, b) => a.resource - b.resource);
}

/**
 * The `rlimit` ops of `limits`. The container's processes start with this
 * process's limits and cannot raise a hard one: that needs CAP_SYS_RESOURCE
 * in the host's user namespace, which no process in a container has, root
 * or not. Asked for all the same, the op fails with a bare EPERM, so its
 * message says why, with this process's hard limit.
 */
export function compileRlimits(b: ProgramBuilder, limits: readonly CheckedRlimit[]): void {
  // Only a limit above 0 may raise one (the default CORE=0 cannot).
  const own = limits.some((limit) => limit.hard > 0n) ? hardLimits() : [];
  for (const limit of limits) {
    const ownHard = own[limit.resource];
    const what = ownHard !== undefined && limit.hard > ownHard
      ? `cannot raise ${limit.name}'s hard limit to ${shownLimit(limit.hard)}, above this process's ` +
        shownLimit(ownHard)
      : `cannot set rlimit ${limit.name}`;
    b.rlimit(limit.resource, limit.soft, limit.hard, limit.name, what);
  }
}

function shownLimit(value: bigint): string {
  return value === INFINITY ? "unlimited" : String(value);
}

/** Where each column of /proc/self/limits lies in a row: the kernel prints `%-25s %-20s %-20s %-10s`. */
const LIMIT_COLUMNS = { soft: [26, 46], hard: [47, 67] } as const;

/**
 * This process's soft or hard limits by resource number, from `limits`, the
 * text of /proc/self/limits (read through the helper by default); a row
 * that cannot be read is left out. The kernel prints the rows in resource
 * order.
 *
 * @example
 * ```ts
 * import { ownLimits, RLIMIT_RESOURCES } from "./rlimits.ts";
 *
 * console.log(ownLimits("hard")[RLIMIT_RESOURCES.NOFILE]); // e.g. 524288n
 * ```
 */
export function ownLimits(
  column: "soft" | "hard",
  limits: string = readTextFile("/proc/self/limits"),
): bigint[] {
  const [from, to] = LIMIT_COLUMNS[column];
  const values: bigint[] = [];
  limits.split("\n").slice(1, 1 + Object.keys(RLIMIT_RESOURCES).length).forEach((row, resource) => {
    const value = row.slice(from, to).trim();
    if (value === "unlimited") values[resource] = INFINITY;
    else if (/^\d+$/.test(value)) values[resource] = BigInt(value);
  });
  return values;
}
