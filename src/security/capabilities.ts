/**
 * Linux capabilities of a container's processes. They are capabilities in
 * the container's user namespace: CAP_SYS_ADMIN there lets a process mount
 * over its own root or create namespaces, not administer the host, but each
 * one it holds is kernel code it can reach, so the default keeps only what
 * ordinary programs run as root expect (the set of Docker's default profile
 * without NET_RAW).
 *
 * How the sets are reduced (helper/child.zig, ops `capbset_drop`, `capset`):
 * the bounding set first, while the process still has CAP_SETPCAP; then
 * setgid/setuid; then the permitted and effective sets become at most the
 * kept set, and the inheritable and ambient sets become empty. A process
 * whose uid is 0 in the container gets the bounding set back at execve; any
 * other uid gets no capability at all (the kernel clears them at setuid and
 * no_new_privs stops set-uid programs and file capabilities from adding any).
 *
 * @module
 */

import { SboxError } from "../error.ts";
import { checkNoHoles, show } from "../options.ts";

/**
 * Capability numbers (linux/capability.h), without the `CAP_` prefix: the
 * names `capAdd` and `capDrop` accept.
 *
 * @example
 * ```ts
 * import { CAPABILITIES } from "./capabilities.ts";
 *
 * console.log(CAPABILITIES.SYS_ADMIN); // 21
 * ```
 */
export const CAPABILITIES: Readonly<Record<string, number>> = {
  CHOWN: 0,
  DAC_OVERRIDE: 1,
  DAC_READ_SEARCH: 2,
  FOWNER: 3,
  FSETID: 4,
  KILL: 5,
  SETGID: 6,
  SETUID: 7,
  SETPCAP: 8,
  LINUX_IMMUTABLE: 9,
  NET_BIND_SERVICE: 10,
  NET_BROADCAST: 11,
  NET_ADMIN: 12,
  NET_RAW: 13,
  IPC_LOCK: 14,
  IPC_OWNER: 15,
  SYS_MODULE: 16,
  SYS_RAWIO: 17,
  SYS_CHROOT: 18,
  SYS_PTRACE: 19,
  SYS_PACCT: 20,
  SYS_ADMIN: 21,
  SYS_BOOT: 22,
  SYS_NICE: 23,
  SYS_RESOURCE: 24,
  SYS_TIME: 25,
  SYS_TTY_CONFIG: 26,
  MKNOD: 27,
  LEASE: 28,
  AUDIT_WRITE: 29,
  AUDIT_CONTROL: 30,
  SETFCAP: 31,
  MAC_OVERRIDE: 32,
  MAC_ADMIN: 33,
  SYSLOG: 34,
  WAKE_ALARM: 35,
  BLOCK_SUSPEND: 36,
  AUDIT_READ: 37,
  PERFMON: 38,
  BPF: 39,
  CHECKPOINT_RESTORE: 40,
};

/**
 * What a container's processes keep unless told otherwise: enough for a
 * root user to own files, bind low ports, switch users and run set-uid-free
 * package scripts; nothing that administers the system (SYS_ADMIN,
 * SYS_PTRACE, SYS_MODULE, NET_ADMIN, NET_RAW, ...). Change it per
 * container with `capAdd` and `capDrop`.
 *
 * @example
 * ```ts
 * import { DEFAULT_CAPABILITIES } from "./capabilities.ts";
 *
 * console.log(DEFAULT_CAPABILITIES.includes("SYS_ADMIN")); // false
 * ```
 */
export const DEFAULT_CAPABILITIES: readonly string[] = [
  "CHOWN",
  "DAC_OVERRIDE",
  "FOWNER",
  "FSETID",
  "KILL",
  "SETGID",
  "SETUID",
  "SETPCAP",
  "NET_BIND_SERVICE",
  "SYS_CHROOT",
  "MKNOD",
  "AUDIT_WRITE",
  "SETFCAP",
];

/**
 * The capability `name` names, without `CAP_`, or undefined: `"CAP_NET_RAW"`,
 * `"net_raw"` and `"NET_RAW"` all name NET_RAW; `"ALL"` names every one, and
 * `"CAP_ALL"` none (no capability has that name; Docker refuses it too).
 * The library's `capAdd`/`capDrop` and `sbox run --cap-add` both read names so.
 *
 * @example
 * ```ts
 * import { capabilityName } from "./capabilities.ts";
 *
 * console.log(capabilityName("cap_net_raw"), capabilityName("CAP_ALL")); // "NET_RAW" undefined
 * ```
 */
export function capabilityName(name: string): string | undefined {
  const upper = name.toUpperCase();
  if (upper === "ALL") return upper;
  const bare = upper.replace(/^CAP_/, "");
  return bare in CAPABILITIES ? bare : undefined;
}

function capabilityNames(option: string, names: unknown): string[] {
  if (names === undefined) return [];
  if (!Array.isArray(names)) throw SboxError.invalidOption(option, "must be an array of capability names");
  checkNoHoles(option, names);
  return names.map((name) => {
    if (typeof name !== "string") {
      throw SboxError.invalidOption(option, `not a capability name: ${show(name)}`);
    }
    const bare = capabilityName(name);
    if (bare === undefined) throw SboxError.invalidOption(option, `unknown capability ${show(name)}`);
    return bare;
  });
}

function maskOf(names: readonly string[]): bigint {
  let mask = 0n;
  for (const name of names) {
    if (name === "ALL") return (1n << 64n) - 1n;
    mask |= 1n << BigInt(CAPABILITIES[name]);
  }
  return mask;
}

/**
 * The capabilities to keep, as a bit mask: the default set, plus `capAdd`,
 * minus `capDrop`. `capDrop: ["ALL"]` starts from none, so `capAdd` names
 * the whole set; `capAdd: ["ALL"]` keeps every capability but those in
 * `capDrop` (Docker's rule). A capability named in both, or ALL in both, is
 * refused: a dropped capability is never kept, and silently keeping or
 * dropping one the caller named both ways would hide a mistake either way.
 */
export function capabilityMask(capAdd: unknown, capDrop: unknown): bigint {
  // Every container start asks; BigInt arithmetic is slow enough to matter.
  defaultMask ??= maskOf(DEFAULT_CAPABILITIES);
  if (capAdd === undefined && capDrop === undefined) return defaultMask;
  const add = capabilityNames("capAdd", capAdd);
  const drop = capabilityNames("capDrop", capDrop);
  const conflict = capabilityConflict(add, drop, LIBRARY_OPTIONS);
  if (conflict) throw conflict;
  const base = drop.includes("ALL") ? 0n : defaultMask;
  // The two lists share no name, so taking the drops out last only matters
  // for capAdd ALL, whose mask holds them.
  return (base | maskOf(add)) & ~maskOf(drop.filter((name) => name !== "ALL"));
}

/** How a caller spells the two options, for {@linkcode capabilityConflict}'s message. */
export interface CapabilityOptionNames {
  /** The option that adds, e.g. `"capAdd"`. */
  add: string;
  /** The option that drops, e.g. `"capDrop"`. */
  drop: string;
  /** The options that add ALL and drop `name`, e.g. `capAdd ["ALL"] with capDrop ["SYS_ADMIN"]`. */
  allBut(name: string): string;
}

/** The library's options. */
const LIBRARY_OPTIONS: CapabilityOptionNames = {
  add: "capAdd",
  drop: "capDrop",
  allBut: (name) => `capAdd ["ALL"] with capDrop ["${name}"]`,
};

/**
 * The error for the first capability name (as `capabilityName` gives it,
 * or `"ALL"`) that both `add` and `drop` hold, or undefined when none is:
 * the library and `sbox run` refuse one alike, each naming its own options
 * (`names`).
 */
export function capabilityConflict(
  add: readonly string[],
  drop: readonly string[],
  names: CapabilityOptionNames,
): SboxError | undefined {
  const both = add.find((name) => drop.includes(name));
  if (both === undefined) return undefined;
  return SboxError.invalidOption(
    names.drop,
    `${both} is in ${names.add} too: a capability is either added or dropped` +
      (both === "ALL" ? "" : ` (${names.allBut(both)} keeps every capability but ${both})`),
  );
}

let defaultMask: bigint | undefined;

/**
 * The names of the capabilities in `mask`, for reports and error messages.
 *
 * @internal Exported for tests only.
 */
export function capabilityNamesOf(mask: bigint): string[] {
  return Object.entries(CAPABILITIES).filter(([, bit]) => (mask >> BigInt(bit)) & 1n).map(([name]) => name);
}
