/**
 * The seccomp compiler, checked without a kernel: a small classic-BPF
 * interpreter runs the generated filters on sample struct seccomp_data, for
 * both architectures. The same filters run in real containers in
 * tests/escape_test.ts. Also the capability and rlimit option checks.
 */

import assert from "node:assert/strict";
import { SboxError } from "../mod.ts";
import { capabilityMask, capabilityNamesOf, DEFAULT_CAPABILITIES } from "../src/security/capabilities.ts";
import { DEFAULT_SECCOMP_POLICY, type SeccompPolicy } from "../src/security/policy.ts";
import { checkRlimits } from "../src/security/rlimits.ts";
import { describeErrno, errnoName, errnoNumber } from "../src/errno.ts";
import { opFailure } from "../src/launch_hints.ts";
import { ProgramBuilder } from "../src/program.ts";
import { DEFAULT_FILTER_BASE64 } from "../src/security/default_filter.ts";
import { AUDIT_ARCH, BPF, compileSeccomp, SECCOMP_RET } from "../src/security/seccomp.ts";
import { type SeccompArch, syscallTable } from "../src/security/syscalls.ts";

interface SeccompData {
  nr: number;
  arch: number;
  args?: bigint[];
}

/** Runs a classic BPF program as the kernel's seccomp does; returns its verdict. */
function runFilter(filter: Uint8Array, data: SeccompData): number {
  const view = new DataView(filter.buffer, filter.byteOffset, filter.byteLength);
  const packet = new DataView(new ArrayBuffer(64));
  packet.setUint32(0, data.nr, true);
  packet.setUint32(4, data.arch, true);
  (data.args ?? []).forEach((arg, i) => packet.setBigUint64(16 + 8 * i, BigInt.asUintN(64, arg), true));
  let acc = 0;
  let pc = 0;
  for (let steps = 0; steps < 10_000; steps++) {
    assert.ok(pc < filter.length / 8, `pc ${pc} ran off the end`);
    const code = view.getUint16(pc * 8, true);
    const jt = view.getUint8(pc * 8 + 2);
    const jf = view.getUint8(pc * 8 + 3);
    const k = view.getUint32(pc * 8 + 4, true);
    pc++;
    switch (code) {
      case BPF.LD_W_ABS:
        assert.ok(k % 4 === 0 && k < 64, `load at ${k}`);
        acc = packet.getUint32(k, true);
        break;
      case BPF.ALU_AND_K:
        acc = (acc & k) >>> 0;
        break;
      case BPF.JMP_JA:
        pc += k;
        break;
      case BPF.JMP_JEQ_K:
        pc += acc === k ? jt : jf;
        break;
      case BPF.JMP_JGT_K:
        pc += acc > k ? jt : jf;
        break;
      case BPF.JMP_JGE_K:
        pc += acc >= k ? jt : jf;
        break;
      case BPF.JMP_JSET_K:
        pc += (acc & k) !== 0 ? jt : jf;
        break;
      case BPF.RET_K:
        return k;
      default:
        assert.fail(`unknown BPF opcode ${code.toString(16)}`);
    }
  }
  assert.fail("the filter did not return");
}

const EPERM = SECCOMP_RET.ERRNO | 1;
const ENOSYS = SECCOMP_RET.ERRNO | 38;
const ENOPROTOOPT = SECCOMP_RET.ERRNO | 92;
const EINVAL = SECCOMP_RET.ERRNO | 22;
const { ALLOW, KILL_PROCESS } = SECCOMP_RET;
const CLONE_NEWUSER = 0x10000000n;
const SIGCHLD = 17n;

function verdict(arch: SeccompArch, filter: Uint8Array, name: string, args: bigint[] = []): number {
  const nr = syscallTable(arch).get(name);
  assert.ok(nr !== undefined, `${name} on ${arch}`);
  return runFilter(filter, { nr, arch: AUDIT_ARCH[arch], args });
}

for (const arch of ["x86_64", "aarch64"] as const) {
  Deno.test(`seccomp default profile (${arch}): denied, allowed and conditional syscalls`, () => {
    const filter = compileSeccomp(DEFAULT_SECCOMP_POLICY, arch);
    const v = (name: string, ...args: bigint[]) => verdict(arch, filter, name, args);
    for (
      const name of ["read", "write", "openat", "execve", "mmap", "futex", "exit_group", "wait4", "chroot"]
    ) {
      assert.equal(v(name), ALLOW, name);
    }
    for (
      const name of ["keyctl", "add_key", "bpf", "perf_event_open", "ptrace", "mount", "umount2", "setns"]
    ) {
      assert.equal(v(name), EPERM, name);
    }
    for (
      const name of ["finit_module", "kexec_load", "reboot", "swapon", "pivot_root", "userfaultfd", "fsopen"]
    ) {
      assert.equal(v(name), EPERM, name);
    }
    assert.equal(v("clone3"), ENOSYS);
    assert.equal(v("clone", SIGCHLD), ALLOW, "fork");
    assert.equal(v("clone", 0x3d0f00n), ALLOW, "pthread_create's flags");
    assert.equal(v("clone", CLONE_NEWUSER | SIGCHLD), EPERM);
    assert.equal(v("clone", 0x20000000n | SIGCHLD), EPERM, "CLONE_NEWPID");
    assert.equal(v("clone", 0x4100n | SIGCHLD), ALLOW, "posix_spawn's CLONE_VM | CLONE_VFORK");
    // A sibling of its maker: of the Deno process, for an exec()'d process.
    assert.equal(v("clone", 0x8000n), EPERM, "CLONE_PARENT");
    assert.equal(v("clone", 0x8000n | 0x4100n | SIGCHLD), EPERM, "CLONE_PARENT with others");
    assert.equal(v("unshare", CLONE_NEWUSER), EPERM);
    assert.equal(v("unshare", 0x80n), EPERM, "CLONE_NEWTIME");
    assert.equal(v("unshare", 0x400n), ALLOW, "CLONE_FILES");
    // unshare's flags are an int: a high half must not hide the flag.
    assert.equal(v("unshare", (1n << 32n) | CLONE_NEWUSER), EPERM);
    assert.equal(v("ioctl", 0n, 0x5412n), EPERM, "TIOCSTI");
    assert.equal(v("ioctl", 0n, (1n << 32n) | 0x5412n), EPERM, "TIOCSTI with the high half set");
    assert.equal(v("ioctl", 0n, 0x541cn), EPERM, "TIOCLINUX");
    assert.equal(v("ioctl", 0n, 0x5401n), ALLOW, "TCGETS");
    // fscrypt's keyring, whose key claims are by kuid: the host root's, for the container's root.
    assert.equal(v("ioctl", 0n, 0xc0506617n), EPERM, "FS_IOC_ADD_ENCRYPTION_KEY");
    assert.equal(v("ioctl", 0n, 0xc0406618n), EPERM, "FS_IOC_REMOVE_ENCRYPTION_KEY");
    assert.equal(v("ioctl", 0n, 0xc0406619n), EPERM, "FS_IOC_REMOVE_ENCRYPTION_KEY_ALL_USERS");
    assert.equal(v("ioctl", 0n, (1n << 32n) | 0xc0406618n), EPERM, "the high half of the request is ignored");
    assert.equal(v("ioctl", 0n, 0xc080661an), ALLOW, "FS_IOC_GET_ENCRYPTION_KEY_STATUS");
    assert.equal(v("ioctl", 0n, 0x80086601n), ALLOW, "FS_IOC_GETFLAGS");
    assert.equal(v("personality", 0n), ALLOW);
    assert.equal(v("personality", 0xffffffffn), ALLOW);
    assert.equal(v("personality", 0x40000n), EPERM, "ADDR_NO_RANDOMIZE");
    // setsockopt(fd, level, optname): the options that attach a BPF program
    // to a socket, whose JIT memory (net.core.bpf_jit_limit) is one pool
    // for the whole machine, fail as on a kernel without them.
    const SOL_SOCKET = 1n;
    assert.equal(v("setsockopt", 3n, SOL_SOCKET, 26n), ENOPROTOOPT, "SO_ATTACH_FILTER");
    assert.equal(v("setsockopt", 3n, SOL_SOCKET, 50n), ENOPROTOOPT, "SO_ATTACH_BPF");
    assert.equal(v("setsockopt", 3n, SOL_SOCKET, 51n), ENOPROTOOPT, "SO_ATTACH_REUSEPORT_CBPF");
    assert.equal(v("setsockopt", 3n, SOL_SOCKET, 52n), ENOPROTOOPT, "SO_ATTACH_REUSEPORT_EBPF");
    assert.equal(v("setsockopt", 3n, 263n, 22n), ENOPROTOOPT, "SOL_PACKET, PACKET_FANOUT_DATA");
    // level and optname are ints: a high half must not hide the option.
    assert.equal(
      v("setsockopt", 3n, (1n << 32n) | SOL_SOCKET, (7n << 32n) | 26n),
      ENOPROTOOPT,
      "high halves",
    );
    assert.equal(v("setsockopt", 3n, SOL_SOCKET, 2n), ALLOW, "SO_REUSEADDR");
    assert.equal(v("setsockopt", 3n, SOL_SOCKET, 15n), ALLOW, "SO_REUSEPORT");
    assert.equal(v("setsockopt", 3n, SOL_SOCKET, 27n), ALLOW, "SO_DETACH_FILTER");
    assert.equal(v("setsockopt", 3n, 6n, 26n), ALLOW, "IPPROTO_TCP's option 26 is not SO_ATTACH_FILTER");
    assert.equal(v("setsockopt", 3n, 263n, 18n), ALLOW, "PACKET_FANOUT itself");
    assert.equal(v("getsockopt", 3n, SOL_SOCKET, 26n), ALLOW, "SO_GET_FILTER reads");
    // fcntl(fd, cmd, arg): a lease would hold the host's writers of a bound file.
    assert.equal(v("fcntl", 3n, 1024n), EINVAL, "F_SETLEASE");
    assert.equal(v("fcntl", 3n, (1n << 32n) | 1024n), EINVAL, "F_SETLEASE with the high half set");
    assert.equal(v("fcntl", 3n, 1025n), ALLOW, "F_GETLEASE");
    assert.equal(v("fcntl", 3n, 6n), ALLOW, "F_SETLK");
    assert.equal(v("fcntl", 3n, 4n), ALLOW, "F_SETFL");
  });

  Deno.test(`seccomp (${arch}): every unconditional rule of the default profile holds`, () => {
    const filter = compileSeccomp(DEFAULT_SECCOMP_POLICY, arch);
    const table = syscallTable(arch);
    let checked = 0;
    for (const rule of DEFAULT_SECCOMP_POLICY.rules) {
      if (rule.args) continue;
      for (const name of rule.syscalls) {
        if (!table.has(name)) continue;
        const expected = rule.action === "errno" ? EPERM : rule.action === "allow" ? ALLOW : ENOSYS;
        // personality's catch-all comes after its allowed values.
        const args = name === "personality" ? [0x40000n] : [];
        assert.equal(verdict(arch, filter, name, args), expected, name);
        checked++;
      }
    }
    assert.ok(checked > 40, `checked ${checked}`);
    // Every other known syscall is allowed.
    const listed = new Set(DEFAULT_SECCOMP_POLICY.rules.flatMap((r) => r.syscalls));
    for (const [name, nr] of table) {
      if (!listed.has(name)) assert.equal(runFilter(filter, { nr, arch: AUDIT_ARCH[arch] }), ALLOW, name);
    }
  });

  Deno.test(`seccomp (${arch}): a foreign architecture is killed, unknown numbers get ENOSYS`, () => {
    const filter = compileSeccomp(DEFAULT_SECCOMP_POLICY, arch);
    const read = syscallTable(arch).get("read")!;
    assert.equal(runFilter(filter, { nr: read, arch: 0x40000003 }), KILL_PROCESS, "i386");
    const other = arch === "x86_64" ? "aarch64" : "x86_64";
    assert.equal(runFilter(filter, { nr: read, arch: AUDIT_ARCH[other] }), KILL_PROCESS, other);
    const max = Math.max(...syscallTable(arch).values());
    assert.equal(runFilter(filter, { nr: max + 1, arch: AUDIT_ARCH[arch] }), ENOSYS);
    assert.equal(runFilter(filter, { nr: 0x3fffffff, arch: AUDIT_ARCH[arch] }), ENOSYS);
    if (arch === "x86_64") {
      assert.equal(runFilter(filter, { nr: 0x40000000 | read, arch: AUDIT_ARCH[arch] }), KILL_PROCESS, "x32");
      assert.equal(runFilter(filter, { nr: 0xffffffff, arch: AUDIT_ARCH[arch] }), KILL_PROCESS, "nr -1");
    }
  });
}

Deno.test("seccomp: a custom allow-list policy with 64-bit, masked and ne conditions", () => {
  const policy: SeccompPolicy = {
    defaultAction: { errno: "EACCES" },
    rules: [
      { syscalls: ["read", "write", "exit_group"], action: "allow" },
      { syscalls: ["openat"], action: "allow", args: [{ arg: 2, op: "masked_eq", mask: 3, value: 0 }] },
      { syscalls: ["kill"], action: "kill", args: [{ arg: 1, op: "eq", value: "0x100000009" }] },
      { syscalls: ["kill"], action: "allow", args: [{ arg: 1, op: "ne", value: 9 }] },
      { syscalls: ["getpid"], action: "trap" },
      { syscalls: ["getppid"], action: "log" },
    ],
  };
  const filter = compileSeccomp(policy, "x86_64");
  const v = (name: string, ...args: bigint[]) => verdict("x86_64", filter, name, args);
  const EACCES = SECCOMP_RET.ERRNO | 13;
  assert.equal(v("read"), ALLOW);
  assert.equal(v("close"), EACCES);
  assert.equal(v("openat", 0n, 0n, 0o2000000n), ALLOW, "O_RDONLY|O_CLOEXEC");
  assert.equal(v("openat", 0n, 0n, 1n), EACCES, "O_WRONLY");
  assert.equal(v("kill", 1n, 0x100000009n), KILL_PROCESS);
  assert.equal(v("kill", 1n, 9n), EACCES, "64-bit ne: 9 equals 9");
  assert.equal(v("kill", 1n, 15n), ALLOW);
  assert.equal(v("kill", 1n, 0x200000009n), ALLOW, "the high half differs");
  assert.equal(v("getpid"), SECCOMP_RET.TRAP);
  assert.equal(v("getppid"), SECCOMP_RET.LOG);
  // A name only the other architecture has is skipped, not an error.
  assert.ok(
    compileSeccomp({ defaultAction: "allow", rules: [{ syscalls: ["iopl"], action: "errno" }] }, "aarch64"),
  );
});

/** What `policy` says for one syscall, worked out from the policy itself: the test oracle. */
function expectedVerdict(policy: SeccompPolicy, arch: SeccompArch, data: SeccompData): number {
  const value = (action: SeccompPolicy["defaultAction"]): number => {
    if (typeof action === "object") {
      return SECCOMP_RET.ERRNO | ({ EPERM: 1, EACCES: 13, ENOSYS: 38 })[action.errno]!;
    }
    return ({
      allow: ALLOW,
      errno: EPERM,
      kill: KILL_PROCESS,
      kill_thread: 0,
      trap: SECCOMP_RET.TRAP,
      log: SECCOMP_RET.LOG,
    })[action];
  };
  if (data.arch !== AUDIT_ARCH[arch]) return KILL_PROCESS;
  if (arch === "x86_64" && data.nr >= 0x40000000) return KILL_PROCESS;
  const table = syscallTable(arch);
  if (data.nr > Math.max(...table.values())) return value(policy.unknownAction ?? policy.defaultAction);
  const args = (data.args ?? []).map((a) => BigInt.asUintN(64, a));
  for (const rule of policy.rules) {
    if (!rule.syscalls.some((name) => table.get(name) === data.nr)) continue;
    const holds = (rule.args ?? []).every((c) => {
      let arg = args[c.arg] ?? 0n;
      if (c.bits === 32) arg &= 0xffffffffn;
      const v = BigInt(c.value);
      switch (c.op) {
        case "eq":
          return arg === v;
        case "ne":
          return arg !== v;
        case "masked_eq":
          return (arg & BigInt(c.mask!)) === v;
        case "has_any":
          return (arg & v) !== 0n;
      }
    });
    if (holds) return value(rule.action);
  }
  return value(policy.defaultAction);
}

/** Every syscall number (and some beyond), each with a few argument vectors, against the oracle. */
function assertMatchesOracle(policy: SeccompPolicy, arch: SeccompArch, filter: Uint8Array): void {
  const max = Math.max(...syscallTable(arch).values());
  const argSets: bigint[][] = [[], [0n, 0x5412n], [0x10000000n], [0x80n], [0x40000n], [1n, 9n], [
    1n,
    0x100000009n,
  ]];
  const numbers = [...Array(max + 3).keys(), 0x3fffffff, 0x40000000, 0x40000001, 0xfffffffe, 0xffffffff];
  for (const nr of numbers) {
    for (const args of argSets) {
      const data = { nr, arch: AUDIT_ARCH[arch], args };
      assert.equal(runFilter(filter, data), expectedVerdict(policy, arch, data), `nr ${nr} args ${args}`);
    }
  }
}

for (const arch of ["x86_64", "aarch64"] as const) {
  Deno.test(`seccomp (${arch}): the default profile agrees with the policy for every syscall number`, () => {
    const filter = compileSeccomp(DEFAULT_SECCOMP_POLICY, arch);
    assertMatchesOracle(DEFAULT_SECCOMP_POLICY, arch, filter);
    // Its cost at start grows with its length (the kernel translates, JIT-compiles
    // and runs it for every number once): runs and shared blocks keep it short.
    // 142 (x86_64) and 147 (aarch64) with the socket filter, lease and fscrypt rules.
    assert.ok(filter.length / 8 < 160, `${filter.length / 8} instructions`);
  });

  Deno.test(`seccomp (${arch}): a policy with hundreds of runs needs long jumps and still agrees`, () => {
    // Alternating outcomes: every number is its own run, too many for 8-bit jumps.
    const names = [...syscallTable(arch).keys()];
    const policy: SeccompPolicy = {
      defaultAction: { errno: "EACCES" },
      rules: [
        { syscalls: ["kill"], action: "kill", args: [{ arg: 1, op: "eq", value: "0x100000009" }] },
        ...names.map((name, i) => ({ syscalls: [name], action: i % 2 ? "allow" as const : "trap" as const })),
      ],
    };
    const filter = compileSeccomp(policy, arch);
    assertMatchesOracle(policy, arch, filter);
  });
}

Deno.test("seccomp: the default filter shipped compiled is what the compiler makes of the default policy", () => {
  for (const arch of ["x86_64", "aarch64"] as const) {
    const shipped = Uint8Array.from(atob(DEFAULT_FILTER_BASE64[arch]), (c) => c.charCodeAt(0));
    assert.deepEqual(
      shipped,
      compileSeccomp(DEFAULT_SECCOMP_POLICY, arch),
      `src/security/default_filter.ts is stale for ${arch}: run tools/gen-default-filter.ts`,
    );
  }
});

Deno.test("seccomp: an install that fails with ENOTSUPP (524) names net.core.bpf_jit_limit", () => {
  // The kernel's own errno, which C libraries call "Unknown error 524": seccomp(2)
  // gives it when the kernel must JIT-compile the filter and cannot, as when other
  // processes' BPF filters have used up bpf_jit_limit.
  assert.equal(errnoName(524), "ENOTSUPP");
  assert.equal(describeErrno(524), "ENOTSUPP (524, the kernel's own errno: Operation is not supported)");
  assert.throws(() => errnoNumber("ENOTSUPP"), RangeError, "not an errno a policy may return");
  const b = new ProgramBuilder().seccomp(compileSeccomp(DEFAULT_SECCOMP_POLICY, "x86_64"));
  const program = b.exec("/bin/true", ["true"], [], null).build();
  const err = opFailure(program, 0, 524);
  assert.equal(err.step, "seccomp");
  assert.equal(err.errno, "ENOTSUPP");
  assert.equal(err.errnoNumber, 524);
  assert.match(
    err.message,
    /^cannot install the seccomp filter: ENOTSUPP \(524, the kernel's own errno: Operation is not supported\): the kernel refused to JIT-compile the filter, which it must here: is net\.core\.bpf_jit_limit used up\?/,
  );
  assert.match(err.message, /socket filters and seccomp filters count against it/);
  // Other errnos keep their plain message.
  assert.equal(
    opFailure(program, 0, 22).message,
    "cannot install the seccomp filter: EINVAL (Invalid argument)",
  );
});

Deno.test("seccomp: invalid policies are rejected naming the option", () => {
  const bad: unknown[] = [
    null,
    { defaultAction: "allow" },
    { defaultAction: "deny", rules: [] },
    { defaultAction: "allow", rules: [{ syscalls: ["no_such_call"], action: "errno" }] },
    { defaultAction: "allow", rules: [{ syscalls: [], action: "errno" }] },
    { defaultAction: "allow", rules: [{ syscalls: ["read"], action: { errno: "EWHAT" } }] },
    {
      defaultAction: "allow",
      rules: [{ syscalls: ["read"], action: "errno", args: [{ arg: 6, op: "eq", value: 0 }] }],
    },
    {
      defaultAction: "allow",
      rules: [{ syscalls: ["read"], action: "errno", args: [{ arg: 0, op: "lt", value: 0 }] }],
    },
    {
      defaultAction: "allow",
      rules: [{ syscalls: ["read"], action: "errno", args: [{ arg: 0, op: "eq", value: -1 }] }],
    },
    {
      defaultAction: "allow",
      rules: [{
        syscalls: ["read"],
        action: "errno",
        args: [{ arg: 0, op: "eq", value: "0x100000000", bits: 32 }],
      }],
    },
    // Misspelled keys: each would have dropped what it says without a word.
    {
      defaultAction: "errno",
      rules: [{ syscalls: ["mkdir"], action: "allow", argz: [{ arg: 1, op: "eq", value: 0o700 }] }],
    },
    { defaultActoin: "allow", defaultAction: "errno", rules: [] },
    {
      defaultAction: "allow",
      rules: [{ syscalls: ["read"], action: "errno", args: [{ arg: 0, op: "eq", vaule: 3 }] }],
    },
  ];
  for (const policy of bad) {
    assert.throws(
      () => compileSeccomp(policy as SeccompPolicy, "x86_64"),
      (err) => err instanceof SboxError && err.step === "options" && err.message.includes("seccomp"),
      JSON.stringify(policy),
    );
  }
});

Deno.test("seccomp: a misspelled key is named, with the key it most likely meant", () => {
  const policy = {
    defaultAction: "errno",
    rules: [{ syscalls: ["mkdir"], action: "allow", argz: [{ arg: 1, op: "eq", value: 0o700 }] }],
  };
  assert.throws(
    () => compileSeccomp(policy as SeccompPolicy, "x86_64"),
    /unknown option argz \(did you mean args\?\)/,
  );
  // In an errno action too, which was not checked: "code" would be ignored.
  const action = {
    defaultAction: "allow",
    rules: [{ syscalls: ["mkdir"], action: { errno: "EPERM", code: 1 } }],
  };
  assert.throws(
    () => compileSeccomp(action as SeccompPolicy, "x86_64"),
    /^SboxError: invalid option seccomp: unknown option code$/,
  );
  // A comment is welcome at every level.
  const commented: SeccompPolicy = {
    comment: "mkdir only with mode 0700",
    defaultAction: "allow",
    rules: [{
      comment: "why",
      syscalls: ["mkdir"],
      action: "errno",
      args: [{ comment: "the mode", arg: 1, op: "ne", value: 0o700 }],
    }],
  };
  assert.ok(compileSeccomp(commented, "x86_64").length > 0);
});

Deno.test("seccomp: a Docker/OCI profile is refused as one, not as a misspelled key", () => {
  const cases: [object, string][] = [
    [
      { defaultAction: "SCMP_ACT_ERRNO", architectures: ["SCMP_ARCH_X86_64"], syscalls: [] },
      'it has "syscalls"', // the first of its own keys, in sbox's order
    ],
    [
      { defaultAction: "SCMP_ACT_ALLOW", syscalls: [{ names: ["mkdir"], action: "SCMP_ACT_ERRNO" }] },
      'it has "syscalls"',
    ],
    [{ defaultAction: "SCMP_ACT_ALLOW", rules: [] }, 'its defaultAction is "SCMP_ACT_ALLOW"'],
  ];
  for (const [profile, sign] of cases) {
    assert.throws(
      () => compileSeccomp(profile as SeccompPolicy, "x86_64"),
      (e) =>
        e instanceof SboxError &&
        e.message === `invalid option seccomp: this looks like a Docker/OCI seccomp profile (${sign}), ` +
            "which sbox does not read: an sbox policy has a format of its own, " +
            '{"defaultAction": "allow", "rules": [{"syscalls": [...], "action": "errno"}]} (docs/security.md)',
      sign,
    );
  }
  // A key of neither format is still a misspelling.
  assert.throws(
    () => compileSeccomp({ defaultAction: "allow", rules: [], rulez: [] } as SeccompPolicy, "x86_64"),
    /unknown option rulez \(did you mean rules\?\)/,
  );
});

Deno.test("capabilities: default set, add, drop, ALL", () => {
  assert.deepEqual(
    capabilityNamesOf(capabilityMask(undefined, undefined)).sort(),
    [...DEFAULT_CAPABILITIES].sort(),
  );
  const added = capabilityNamesOf(capabilityMask(["CAP_NET_RAW", "sys_ptrace"], ["SETUID"]));
  assert.ok(added.includes("NET_RAW") && added.includes("SYS_PTRACE") && !added.includes("SETUID"));
  assert.deepEqual(capabilityNamesOf(capabilityMask(["KILL"], ["ALL"])), ["KILL"]);
  assert.equal(capabilityMask(["ALL"], undefined), (1n << 64n) - 1n);
  assert.ok(!capabilityNamesOf(capabilityMask(undefined, undefined)).includes("SYS_ADMIN"));
  assert.throws(() => capabilityMask(["SYS_GOD"], undefined), /invalid option capAdd: unknown capability/);
  assert.throws(() => capabilityMask(undefined, "ALL"), /invalid option capDrop/);
});

Deno.test("capabilities: capAdd ALL keeps all but capDrop; a name in both lists is refused, never kept", () => {
  const all = (1n << 64n) - 1n;
  // Docker's rule: ALL added, the drops still go (the old code kept SYS_ADMIN).
  assert.equal(capabilityMask(["ALL"], ["SYS_ADMIN"]), all & ~(1n << 21n));
  assert.equal(capabilityMask(["all"], ["CAP_SYS_ADMIN", "net_raw"]), all & ~(1n << 21n) & ~(1n << 13n));
  // ALL dropped: only what capAdd names.
  assert.deepEqual(capabilityNamesOf(capabilityMask(["KILL", "CAP_CHOWN"], ["ALL"])), ["CHOWN", "KILL"]);
  assert.deepEqual(capabilityNamesOf(capabilityMask(["KILL"], ["ALL", "CHOWN"])), ["KILL"]);
  // Named both ways, in any spelling capabilityName accepts, or ALL in both.
  const refused = (add: string[], drop: string[], name: string) =>
    assert.throws(
      () => capabilityMask(add, drop),
      (e) =>
        e instanceof SboxError && e.step === "options" &&
        e.message.startsWith(`invalid option capDrop: ${name} is in capAdd too: `),
      `${add} / ${drop}`,
    );
  refused(["SYS_ADMIN"], ["SYS_ADMIN"], "SYS_ADMIN");
  refused(["CAP_SYS_ADMIN"], ["sys_admin"], "SYS_ADMIN");
  refused(["NET_RAW", "sys_admin"], ["ALL", "Cap_Sys_Admin"], "SYS_ADMIN");
  refused(["ALL"], ["ALL"], "ALL");
  refused(["ALL", "CHOWN"], ["chown"], "CHOWN");
  // The message says how to keep everything but one.
  assert.throws(
    () => capabilityMask(["SYS_ADMIN"], ["SYS_ADMIN"]),
    /\(capAdd \["ALL"\] with capDrop \["SYS_ADMIN"\] keeps every capability but SYS_ADMIN\)$/,
  );
});

Deno.test("rlimits: CORE=0 and NOFILE 1024 by default, names, pairs, errors", () => {
  const hardFiles = /^Max open files\s+\S+\s+(\S+)/m.exec(Deno.readTextFileSync("/proc/self/limits"))?.[1];
  const hard = hardFiles === "unlimited" ? (1n << 64n) - 1n : BigInt(hardFiles!);
  assert.deepEqual(checkRlimits(undefined), [
    { name: "CORE", resource: 4, soft: 0n, hard: 0n },
    { name: "NOFILE", resource: 7, soft: hard < 1024n ? hard : 1024n, hard },
  ]);
  assert.deepEqual(checkRlimits({ nofile: 64, RLIMIT_CORE: "unlimited", STACK: { soft: 8, hard: 16 } }), [
    { name: "STACK", resource: 3, soft: 8n, hard: 16n },
    { name: "CORE", resource: 4, soft: (1n << 64n) - 1n, hard: (1n << 64n) - 1n },
    { name: "NOFILE", resource: 7, soft: 64n, hard: 64n },
  ]);
  assert.throws(() => checkRlimits({ FILES: 1 }), /invalid option rlimits: unknown resource "FILES"/);
  assert.throws(() => checkRlimits({ NOFILE: -1 }), /NOFILE must be a non-negative integer/);
  assert.throws(() => checkRlimits({ NOFILE: { soft: 9, hard: 8 } }), /soft limit above the hard limit/);
  // A misspelled key of a pair was ignored without a word.
  assert.throws(
    () => checkRlimits({ NOFILE: { soft: 10, hard: 20, hrad: 5 } }),
    /^SboxError: invalid option rlimits: unknown option hrad \(did you mean hard\?\)$/,
  );
  assert.throws(
    () => checkRlimits({ NOFILE: { soft: 10 } }),
    /^SboxError: invalid option rlimits: NOFILE\.hard must be a non-negative integer or "unlimited", got undefined$/,
  );
  assert.throws(() => checkRlimits({ NOFILE: [10, 20] }), /NOFILE must be .*, got \[10,20\]$/);
  assert.throws(() => checkRlimits([1]), /invalid option rlimits/);
  // A Map has no entries for Object.entries: it would give the defaults, silently.
  assert.throws(
    () => checkRlimits(new Map([["NOFILE", 10]])),
    /^SboxError: invalid option rlimits: must be a plain object such as \{ NOFILE: 64 \}, got a Map$/,
  );
  assert.deepEqual(checkRlimits(Object.assign(Object.create(null), { CORE: 1 }))[0].soft, 1n);
});
