/**
 * The seccomp compiler: a {@linkcode SeccompPolicy} (policy.ts) becomes a
 * classic BPF program for one architecture, which the helper installs right
 * before execve (op `seccomp`).
 *
 * The program, over struct seccomp_data { u32 nr; u32 arch; u64 ip; u64 args[6]; }:
 *
 *     load arch; not this architecture's audit arch → kill the process
 *     load nr;   binary search (one `jge` per level) over runs of numbers
 *                that share an outcome → that outcome's block:
 *                  numbers without rules → defaultAction
 *                  numbers above every known one → unknownAction
 *                  (x86_64) x32 syscalls, nr >= 0x40000000 → kill
 *     block:     each rule in order: its conditions, then its action;
 *                no rule matched → defaultAction. Numbers with the same
 *                rules share a block; an unconditional rule is one `ret`.
 *
 * A foreign architecture (i386 through int 0x80, x32) would have other
 * numbers for the same syscalls: a process could dodge every rule by
 * switching, so it is killed.
 *
 * @module
 */

import { SboxError } from "../error.ts";
import { errnoNumber } from "../errno.ts";
import { checkKnownKeys, checkNoHoles, isRecord, type KnownKeys, show } from "../options.ts";
import type { SeccompAction, SeccompCondition, SeccompPolicy, SeccompRule } from "./policy.ts";
import { type SeccompArch, syscallTable } from "./syscalls.ts";

export type { SeccompArch } from "./syscalls.ts";

/**
 * BPF opcodes used here (linux/bpf_common.h).
 *
 * @internal Exported for tests only.
 */
export const BPF = {
  LD_W_ABS: 0x20,
  ALU_AND_K: 0x54,
  JMP_JA: 0x05,
  JMP_JEQ_K: 0x15,
  JMP_JGT_K: 0x25,
  JMP_JGE_K: 0x35,
  JMP_JSET_K: 0x45,
  RET_K: 0x06,
} as const;

/**
 * seccomp return values (linux/seccomp.h).
 *
 * @internal Exported for tests only.
 */
export const SECCOMP_RET = {
  KILL_PROCESS: 0x80000000,
  KILL_THREAD: 0x00000000,
  TRAP: 0x00030000,
  ERRNO: 0x00050000,
  LOG: 0x7ffc0000,
  ALLOW: 0x7fff0000,
} as const;

/**
 * AUDIT_ARCH_* of each architecture (linux/audit.h).
 *
 * @internal Exported for tests only.
 */
export const AUDIT_ARCH: Readonly<Record<SeccompArch, number>> = {
  x86_64: 0xc000003e,
  aarch64: 0xc00000b7,
};

/** x32 syscalls run on x86_64 with this bit set in their number. */
const X32_SYSCALL_BIT = 0x40000000;
const OFFSET_NR = 0;
const OFFSET_ARCH = 4;
const offsetArg = (index: number, high: boolean) => 16 + 8 * index + (high ? 4 : 0);

/** One BPF instruction, before its jumps are resolved. */
interface Insn {
  code: number;
  k: number;
  /** Labels (or 0 for "next") of conditional jumps. */
  jt?: string | 0;
  jf?: string | 0;
  /** Target label of an unconditional jump. */
  ja?: string;
}

/** A jump that BPF cannot encode: backwards, or too far for a conditional jump. */
class JumpRangeError extends Error {
  constructor(target: string, distance: number) {
    super(`sbox internal error: BPF jump to ${target} out of range (${distance})`);
  }
}

/** A tiny assembler: instructions with symbolic labels, resolved at the end. */
class Assembler {
  readonly insns: Insn[] = [];
  readonly labels = new Map<string, number>();
  #next = 0;

  fresh(prefix: string): string {
    return `${prefix}#${this.#next++}`;
  }

  label(name: string): void {
    if (this.labels.has(name)) throw new Error(`sbox internal error: BPF label ${name} defined twice`);
    this.labels.set(name, this.insns.length);
  }

  load(offset: number): void {
    this.insns.push({ code: BPF.LD_W_ABS, k: offset });
  }

  and(mask: number): void {
    this.insns.push({ code: BPF.ALU_AND_K, k: mask });
  }

  jump(code: number, k: number, jt: string | 0, jf: string | 0): void {
    this.insns.push({ code, k, jt, jf });
  }

  goto(label: string): void {
    this.insns.push({ code: BPF.JMP_JA, k: 0, ja: label });
  }

  ret(value: number): void {
    this.insns.push({ code: BPF.RET_K, k: value });
  }

  /** Encodes struct sock_filter { u16 code; u8 jt; u8 jf; u32 k; } records. */
  encode(): Uint8Array {
    const out = new Uint8Array(this.insns.length * 8);
    const view = new DataView(out.buffer);
    this.insns.forEach((insn, pc) => {
      const distance = (target: string | 0 | undefined, max: number): number => {
        if (target === undefined || target === 0) return 0;
        const at = this.labels.get(target);
        if (at === undefined) throw new Error(`sbox internal error: BPF label ${target} undefined`);
        const d = at - (pc + 1);
        // BPF only jumps forward; conditional jumps reach 255 instructions.
        if (d < 0 || d > max) throw new JumpRangeError(target, d);
        return d;
      };
      view.setUint16(pc * 8, insn.code, true);
      view.setUint8(pc * 8 + 2, distance(insn.jt, 255));
      view.setUint8(pc * 8 + 3, distance(insn.jf, 255));
      view.setUint32(pc * 8 + 4, insn.ja === undefined ? insn.k >>> 0 : distance(insn.ja, 0xffffffff), true);
    });
    return out;
  }
}

/** The seccomp return value of an action; throws naming the option for a bad one. */
function actionValue(action: SeccompAction): number {
  switch (action) {
    case "allow":
      return SECCOMP_RET.ALLOW;
    case "errno":
      return SECCOMP_RET.ERRNO | errnoNumber("EPERM");
    case "kill":
      return SECCOMP_RET.KILL_PROCESS;
    case "kill_thread":
      return SECCOMP_RET.KILL_THREAD;
    case "trap":
      return SECCOMP_RET.TRAP;
    case "log":
      return SECCOMP_RET.LOG;
  }
  if (isRecord(action) && typeof action.errno === "string") {
    checkKnownKeys(action, { errno: true }, "seccomp");
    try {
      return SECCOMP_RET.ERRNO | errnoNumber(action.errno);
    } catch {
      throw SboxError.invalidOption("seccomp", `unknown errno ${show(action.errno)}`);
    }
  }
  throw SboxError.invalidOption(
    "seccomp",
    `bad action ${show(action)}: expected "allow", "errno", "kill", "kill_thread", "trap", "log" ` +
      `or { "errno": "ENOSYS" }`,
  );
}

/** A 64-bit value as its low and high 32-bit halves. */
function halves(option: string, value: unknown): { lo: number; hi: number } {
  let big: bigint;
  if (typeof value === "number" && Number.isSafeInteger(value) && value >= 0) big = BigInt(value);
  else if (typeof value === "string" && /^(0x[0-9a-fA-F]+|\d+)$/.test(value)) big = BigInt(value);
  else {
    throw SboxError.invalidOption(
      "seccomp",
      `${option} must be a non-negative integer or a string such as "0x5412", got ${show(value)}`,
    );
  }
  if (big >= 1n << 64n) {
    throw SboxError.invalidOption("seccomp", `${option} does not fit in 64 bits: ${value}`);
  }
  return { lo: Number(big & 0xffffffffn), hi: Number(big >> 32n) };
}

interface CheckedCondition {
  arg: number;
  op: SeccompCondition["op"];
  value: { lo: number; hi: number };
  mask: { lo: number; hi: number };
  bits: 32 | 64;
}

function checkCondition(condition: SeccompCondition): CheckedCondition {
  if (!condition || typeof condition !== "object") {
    throw SboxError.invalidOption("seccomp", "a condition is not an object");
  }
  checkKnownKeys(condition, CONDITION_KEYS, "seccomp");
  const { arg, op, bits = 64 } = condition;
  if (!Number.isInteger(arg) || arg < 0 || arg > 5) {
    throw SboxError.invalidOption("seccomp", `condition arg must be 0 to 5, got ${show(arg)}`);
  }
  if (!["eq", "ne", "masked_eq", "has_any"].includes(op)) {
    throw SboxError.invalidOption(
      "seccomp",
      `condition op must be eq, ne, masked_eq or has_any, got ${show(op)}`,
    );
  }
  if (bits !== 32 && bits !== 64) throw SboxError.invalidOption("seccomp", `condition bits must be 32 or 64`);
  if ((op === "masked_eq") !== (condition.mask !== undefined)) {
    throw SboxError.invalidOption("seccomp", "a mask goes with masked_eq, and only with it");
  }
  const value = halves("condition value", condition.value);
  const mask = op === "masked_eq"
    ? halves("condition mask", condition.mask)
    : { lo: 0xffffffff, hi: 0xffffffff };
  if (bits === 32 && (value.hi !== 0 || mask.hi !== 0 && op === "masked_eq")) {
    throw SboxError.invalidOption("seccomp", `a 32-bit condition has a value above 0xffffffff`);
  }
  return { arg, op, value, mask, bits };
}

/**
 * Appends the test of one condition: falls through when it holds, jumps to
 * `fail` when it does not.
 */
function emitCondition(a: Assembler, c: CheckedCondition, fail: string): void {
  const pass = a.fresh("pass");
  const wide = c.bits === 64;
  switch (c.op) {
    case "eq":
      if (wide) {
        a.load(offsetArg(c.arg, true));
        a.jump(BPF.JMP_JEQ_K, c.value.hi, 0, fail);
      }
      a.load(offsetArg(c.arg, false));
      a.jump(BPF.JMP_JEQ_K, c.value.lo, 0, fail);
      break;
    case "ne":
      if (wide) {
        a.load(offsetArg(c.arg, true));
        a.jump(BPF.JMP_JEQ_K, c.value.hi, 0, pass);
      }
      a.load(offsetArg(c.arg, false));
      a.jump(BPF.JMP_JEQ_K, c.value.lo, fail, 0);
      break;
    case "masked_eq":
      if (wide) {
        a.load(offsetArg(c.arg, true));
        a.and(c.mask.hi);
        a.jump(BPF.JMP_JEQ_K, c.value.hi, 0, fail);
      }
      a.load(offsetArg(c.arg, false));
      a.and(c.mask.lo);
      a.jump(BPF.JMP_JEQ_K, c.value.lo, 0, fail);
      break;
    case "has_any":
      if (wide && c.value.hi !== 0) {
        a.load(offsetArg(c.arg, true));
        a.jump(BPF.JMP_JSET_K, c.value.hi, pass, 0);
      }
      a.load(offsetArg(c.arg, false));
      a.jump(BPF.JMP_JSET_K, c.value.lo, 0, fail);
      break;
  }
  a.label(pass);
}

interface CheckedRule {
  action: number;
  conditions: CheckedCondition[];
}

const POLICY_KEYS: KnownKeys<SeccompPolicy> = {
  comment: true,
  defaultAction: true,
  unknownAction: true,
  rules: true,
};
const RULE_KEYS: KnownKeys<SeccompRule> = { syscalls: true, action: true, args: true, comment: true };
const CONDITION_KEYS: KnownKeys<SeccompCondition> = {
  arg: true,
  op: true,
  value: true,
  mask: true,
  bits: true,
  comment: true,
};

/** The keys of a Docker (OCI runtime-spec) seccomp profile that an sbox policy does not have. */
const DOCKER_PROFILE_KEYS = [
  "syscalls",
  "architectures",
  "archMap",
  "defaultErrnoRet",
  "flags",
  "listenerPath",
];

/**
 * Refuses a Docker/OCI seccomp profile (`{"defaultAction": "SCMP_ACT_ERRNO",
 * "syscalls": [...]}`) as such: else the first key of its own, "unknown
 * option syscalls", would be all the error said, as if a key were
 * misspelled, when the whole format is another.
 */
function refuseDockerProfile(policy: object): void {
  const action = (policy as { defaultAction?: unknown }).defaultAction;
  const key = DOCKER_PROFILE_KEYS.find((name) => Object.hasOwn(policy, name));
  const sign = key !== undefined
    ? `it has ${show(key)}`
    : typeof action === "string" && action.startsWith("SCMP_ACT_")
    ? `its defaultAction is ${show(action)}`
    : undefined;
  if (sign === undefined) return;
  throw SboxError.invalidOption(
    "seccomp",
    `this looks like a Docker/OCI seccomp profile (${sign}), which sbox does not read: ` +
      "an sbox policy has a format of its own, " +
      '{"defaultAction": "allow", "rules": [{"syscalls": [...], "action": "errno"}]} (docs/security.md)',
  );
}

/** Validates `policy` (e.g. parsed from JSON) and groups its rules by syscall number for `arch`. */
function checkPolicy(policy: SeccompPolicy, arch: SeccompArch) {
  if (!policy || typeof policy !== "object") {
    throw SboxError.invalidOption("seccomp", 'must be a policy object or "unconfined"');
  }
  refuseDockerProfile(policy);
  // A misspelled key would drop what it says without a word: a rule's
  // "argz" would allow its syscall whatever the arguments.
  checkKnownKeys(policy, POLICY_KEYS, "seccomp");
  if (!Array.isArray(policy.rules)) throw SboxError.invalidOption("seccomp", "rules must be an array");
  checkNoHoles("seccomp", policy.rules, "rules");
  const defaultAction = actionValue(policy.defaultAction);
  const unknownAction = policy.unknownAction === undefined
    ? defaultAction
    : actionValue(policy.unknownAction);
  const table = syscallTable(arch);
  const known = new Set([...syscallTable("x86_64").keys(), ...syscallTable("aarch64").keys()]);
  const byNumber = new Map<number, CheckedRule[]>();
  for (const rule of policy.rules) {
    if (!rule || typeof rule !== "object" || !Array.isArray(rule.syscalls) || rule.syscalls.length === 0) {
      throw SboxError.invalidOption("seccomp", "each rule needs a non-empty syscalls array");
    }
    checkKnownKeys(rule, RULE_KEYS, "seccomp");
    if (rule.args !== undefined && !Array.isArray(rule.args)) {
      throw SboxError.invalidOption("seccomp", "a rule's args must be an array of conditions");
    }
    checkNoHoles("seccomp", rule.syscalls, "a rule's syscalls");
    if (rule.args !== undefined) checkNoHoles("seccomp", rule.args, "a rule's args");
    const checked: CheckedRule = {
      action: actionValue(rule.action),
      conditions: (rule.args ?? []).map(checkCondition),
    };
    for (const name of rule.syscalls) {
      if (typeof name !== "string" || !known.has(name)) {
        throw SboxError.invalidOption("seccomp", `unknown syscall ${show(name)}`);
      }
      const nr = table.get(name);
      if (nr === undefined) continue; // another architecture's syscall
      const rules = byNumber.get(nr) ?? [];
      rules.push(checked);
      byNumber.set(nr, rules);
    }
  }
  return { defaultAction, unknownAction, byNumber, maxNumber: Math.max(...table.values()) };
}

/** What one syscall number leads to: the label of a block, and the block's code. */
interface Outcome {
  label: string;
  emit: (a: Assembler) => void;
}

/**
 * The blocks of a policy, one per distinct outcome: numbers whose rules are
 * the same share one block, and an unconditional rule is one `ret`, shared
 * by every number that has it.
 */
class Outcomes {
  readonly #byKey = new Map<string, Outcome>();

  constructor(readonly defaultAction: number) {}

  /** The block that returns `action`. */
  ret(action: number): Outcome {
    return this.#get(`ret ${action}`, (a) => a.ret(action));
  }

  /** The block that applies `rules` in order, then the default action. */
  rules(rules: CheckedRule[]): Outcome {
    // Rules after an unconditional one are never reached.
    const reached = rules.findIndex((rule) => rule.conditions.length === 0);
    const live = reached < 0 ? rules : rules.slice(0, reached + 1);
    if (live.length === 0) return this.ret(this.defaultAction);
    if (live[0].conditions.length === 0) return this.ret(live[0].action);
    return this.#get(JSON.stringify(live), (a) => {
      for (const rule of live) {
        const next = a.fresh("next");
        for (const condition of rule.conditions) emitCondition(a, condition, next);
        a.ret(rule.action);
        a.label(next);
      }
      a.ret(this.defaultAction);
    });
  }

  #get(key: string, emit: (a: Assembler) => void): Outcome {
    let outcome = this.#byKey.get(key);
    if (!outcome) {
      outcome = { label: `block${this.#byKey.size}`, emit };
      this.#byKey.set(key, outcome);
    }
    return outcome;
  }

  /** Emits every block, each under its label. */
  emitAll(a: Assembler): void {
    for (const outcome of this.#byKey.values()) {
      a.label(outcome.label);
      outcome.emit(a);
    }
  }
}

/** Syscall numbers from `from` up to the next run's `from` share one outcome. */
interface Run {
  from: number;
  outcome: Outcome;
}

/**
 * Compiles `policy` for `arch` (default: this machine's) into the bytes of
 * a BPF program (struct sock_filter records). Throws an SboxError naming
 * the option "seccomp" for an invalid policy. Containers do this
 * themselves; call it to check a policy file before use.
 *
 * @example Check a policy and see its size
 * ```ts
 * import { compileSeccomp } from "./seccomp.ts";
 *
 * const filter = compileSeccomp({ defaultAction: "allow", rules: [{ syscalls: ["ptrace"], action: "kill" }] }, "x86_64");
 * console.log(filter.length / 8, "instructions");
 * ```
 */
export function compileSeccomp(policy: SeccompPolicy, arch: SeccompArch = hostArch()): Uint8Array {
  const checked = checkPolicy(policy, arch);
  let bytes: Uint8Array;
  try {
    bytes = assemble(checked, arch, "short").encode();
  } catch (err) {
    // A policy with very many runs: jumps from the search tree to the
    // blocks exceed 255 instructions, so every edge goes through `ja`.
    if (!(err instanceof JumpRangeError)) throw err;
    bytes = assemble(checked, arch, "long").encode();
  }
  if (bytes.length / 8 > 4096) {
    throw SboxError.invalidOption(
      "seccomp",
      `the policy compiles to ${bytes.length / 8} BPF instructions, over 4096`,
    );
  }
  return bytes;
}

/**
 * The program. The kernel runs it on every syscall, and when it installs it
 * runs it once for every syscall number to find those always allowed (its
 * bitmap cache), besides translating and JIT-compiling it: its cost at
 * start grows with the length of the program and of the paths through it.
 * So the numbers are split into runs that share an outcome and found by a
 * binary search over the runs' bounds, one `jge` per level, and the blocks
 * are shared.
 */
function assemble(
  { defaultAction, unknownAction, byNumber, maxNumber }: ReturnType<typeof checkPolicy>,
  arch: SeccompArch,
  jumps: "short" | "long",
): Assembler {
  const outcomes = new Outcomes(defaultAction);
  const kill = outcomes.ret(SECCOMP_RET.KILL_PROCESS);
  const runs: Run[] = [];
  const addRun = (from: number, outcome: Outcome) => {
    if (runs.at(-1)?.outcome !== outcome) runs.push({ from, outcome });
  };
  const noRules = outcomes.ret(defaultAction);
  for (let nr = 0; nr <= maxNumber; nr++) {
    const rules = byNumber.get(nr);
    addRun(nr, rules ? outcomes.rules(rules) : noRules);
  }
  addRun(maxNumber + 1, outcomes.ret(unknownAction));
  // x86_64: an x32 syscall (nr >= 0x40000000) has other numbers; kill it.
  if (arch === "x86_64") addRun(X32_SYSCALL_BIT, kill);

  const a = new Assembler();
  a.load(OFFSET_ARCH);
  // A foreign architecture (i386 through int 0x80) would dodge every rule.
  if (jumps === "long") {
    const native = a.fresh("native");
    a.jump(BPF.JMP_JEQ_K, AUDIT_ARCH[arch], native, 0);
    a.goto(kill.label);
    a.label(native);
  } else {
    a.jump(BPF.JMP_JEQ_K, AUDIT_ARCH[arch], 0, kill.label);
  }
  a.load(OFFSET_NR);
  const entry = (lo: number, hi: number) => hi - lo === 1 ? runs[lo].outcome.label : a.fresh("node");
  const tree = (lo: number, hi: number, label: string) => {
    if (hi - lo === 1) {
      if (jumps === "long") {
        a.label(label);
        a.goto(runs[lo].outcome.label);
      }
      return;
    }
    a.label(label);
    const mid = (lo + hi) >> 1;
    const lower = jumps === "long" ? a.fresh("node") : entry(lo, mid);
    const upper = jumps === "long" ? a.fresh("node") : entry(mid, hi);
    if (jumps === "long") {
      a.jump(BPF.JMP_JGE_K, runs[mid].from, 0, lower);
      a.goto(upper);
    } else {
      a.jump(BPF.JMP_JGE_K, runs[mid].from, upper, lower);
    }
    tree(lo, mid, lower);
    tree(mid, hi, upper);
  };
  const root = entry(0, runs.length);
  if (runs.length === 1 && jumps === "short") a.goto(root);
  else tree(0, runs.length, root);
  outcomes.emitAll(a);
  return a;
}

/** This machine's architecture, if seccomp filters can be compiled for it. */
export function hostArch(): SeccompArch {
  const arch = Deno.build.arch;
  if (arch !== "x86_64" && arch !== "aarch64") {
    throw new SboxError(`unsupported architecture ${arch}`, { step: "options" });
  }
  return arch;
}
