/**
 * The op compiler's rules that the helper's link() also enforces, checked
 * on the encoded program: a network thread is joined before the first op
 * that needs its namespace or its stack, or that may take away the
 * privilege to join it.
 */

import assert from "node:assert/strict";
import {
  type IdMaps,
  type MountOpOptions,
  MS,
  OP_BYTES,
  OpCode,
  PROGRAM_LIMITS,
  ProgramBuilder,
  UNCHANGED_ID,
} from "../src/program.ts";
import { decodeRecord } from "../src/protocol.ts";
import { decodeName, encodeUtf8Into, printable } from "../src/cstring.ts";
import { SboxError } from "../src/error.ts";
import { BaseMounts, OverlayMount } from "../src/mount.ts";
import { TemporaryLayers } from "../src/temporary_layers.ts";
import { PlannedHostRoot } from "../src/host_root.ts";
import { containerMounts } from "../src/cli/mounts.ts";
import {
  compileNeutralOomScoreAdj,
  compileNeutralScheduling,
  neutralOomScoreAdj,
  resetOomScoreAdj,
  setOomScoreAdjReader,
} from "../src/security/neutral.ts";

const HEADER_BYTES = 16;

/** The op codes of an encoded program, in order. */
function opCodes(bytes: Uint8Array): number[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const count = view.getUint32(8, true);
  return Array.from({ length: count }, (_, i) => view.getUint32(HEADER_BYTES + i * OP_BYTES, true));
}

const exec = (b: ProgramBuilder) => b.exec("/bin/true", ["true"], [], null).build().bytes;

/** A value TypeScript would refuse, as from JSON or `any`. */
const loose = <T>(value: unknown) => value as T;

Deno.test("ProgramBuilder joins the network thread before sysfs, fork, reaper, exec and privilege drops, once", () => {
  const { net_spawn: spawn, net_join: join, mount, mkdir, fork, reaper, exec: execOp } = OpCode;
  let b = new ProgramBuilder().spawnNetwork().mkdir("proc");
  b.mount("proc", "proc", "proc", 0, null, "proc").mount("sysfs", "sys", "sysfs", MS.RDONLY, null, "sysfs");
  b.mount("cgroup2", "sys/fs/cgroup", "cgroup2", 0, null, "cgroup2");
  assert.deepEqual(opCodes(exec(b)), [spawn, mkdir, mount, join, mount, mount, execOp]);

  b = new ProgramBuilder().spawnNetwork().fork(0n, -1);
  assert.deepEqual(opCodes(exec(b)), [spawn, join, fork, execOp]);
  b = new ProgramBuilder().spawnNetwork().reaper();
  assert.deepEqual(opCodes(exec(b)), [spawn, join, reaper, execOp]);
  b = new ProgramBuilder().spawnNetwork();
  assert.deepEqual(opCodes(exec(b)), [spawn, join, execOp]);
  // The join's setns needs CAP_SYS_ADMIN: before the ops that can take it away.
  const { setuid, capset, seccomp } = OpCode;
  b = new ProgramBuilder().spawnNetwork().setuid(1000);
  assert.deepEqual(opCodes(exec(b)), [spawn, join, setuid, execOp]);
  b = new ProgramBuilder().spawnNetwork().capset(0n);
  assert.deepEqual(opCodes(exec(b)), [spawn, join, capset, execOp]);
  b = new ProgramBuilder().spawnNetwork().seccomp(new Uint8Array(8));
  assert.deepEqual(opCodes(exec(b)), [spawn, join, seccomp, execOp]);
  // Nothing to join: no op.
  assert.deepEqual(opCodes(exec(new ProgramBuilder().joinNetwork())), [execOp]);
});

Deno.test("ProgramBuilder makes one network thread per program", () => {
  assert.throws(() => new ProgramBuilder().spawnNetwork().spawnNetwork(), /a second network thread/);
  assert.throws(
    () => new ProgramBuilder().spawnNetwork().joinNetwork().spawnNetwork(),
    /a second network thread/,
  );
});

// link() refuses a second (one fork slot per program), which reached the
// caller as "cannot create the process (clone3): EINVAL".
Deno.test("ProgramBuilder makes one fork op per program", () => {
  const b = new ProgramBuilder().fork(0n, -1);
  assert.throws(() => b.fork(0n, -1), /sbox internal error: a second fork op in one program/);
});

Deno.test("PROGRAM_LIMITS are the helper's, and a program past them is an error that says why", () => {
  const zig = Deno.readTextFileSync(new URL("../helper/program.zig", import.meta.url));
  const limit = (name: string) => {
    const expression = new RegExp(`pub const ${name}: \\w+ = ([\\d *]+);`).exec(zig)?.[1];
    assert.ok(expression, `${name} not found in helper/program.zig`);
    return expression.split("*").reduce((product, factor) => product * Number(factor.trim()), 1);
  };
  assert.deepEqual(PROGRAM_LIMITS, {
    ops: limit("max_ops"),
    bytes: limit("max_bytes"),
    arrayEntries: limit("max_array_len"),
  });

  const tooMany = new ProgramBuilder();
  for (let i = 0; i < PROGRAM_LIMITS.ops; i++) tooMany.mkdir(`d${i}`);
  assert.throws(
    () => exec(tooMany),
    (err: unknown) => {
      assert.ok(err instanceof SboxError && err.step === "options", String(err));
      assert.match(
        err.message,
        new RegExp(
          `^the setup program has ${
            PROGRAM_LIMITS.ops + 1
          } steps, at most ${PROGRAM_LIMITS.ops}: too many mounts`,
        ),
      );
      // The library's own advice: sbox run's --rootfs is the CLI's to give (cli/run.ts).
      assert.doesNotMatch(err.message, /--rootfs|sbox run/);
      assert.match(err.message, /HostRootMount .* OverlayMount/);
      return true;
    },
  );
  const tooLong = new ProgramBuilder().mkdir("x".repeat(PROGRAM_LIMITS.bytes));
  assert.throws(() => exec(tooLong), /the setup program is \d+ bytes, at most 8388608/);
});

// ProgramBuilder is public (a custom Mount's compile() calls it): a value it
// cannot encode is an SboxError of step "options" naming the method, as
// README promises of every error, not a RangeError.
Deno.test("ProgramBuilder refuses a value it cannot encode with an SboxError of step options naming the method", () => {
  const refusals: [string, (b: ProgramBuilder) => ProgramBuilder, RegExp][] = [
    ["nice 50", (b) => b.setpriority(50), /^ProgramBuilder\.setpriority\(\): the nice value .* got 50$/],
    ["nice 1.5", (b) => b.setpriority(1.5), /^ProgramBuilder\.setpriority\(\): .* got 1\.5$/],
    ["a 3-byte filter", (b) => b.seccomp(new Uint8Array(3)), /^ProgramBuilder\.seccomp\(\): .* got 3 bytes$/],
    ["an empty filter", (b) => b.seccomp(new Uint8Array(0)), /^ProgramBuilder\.seccomp\(\): .* got 0 bytes$/],
    [
      "soft above hard",
      (b) => b.rlimit(7, 10n, 5n, "nofile"),
      /^ProgramBuilder\.rlimit\(\): nofile: the soft limit 10 is above the hard limit 5$/,
    ],
    ["group -1", (b) => b.setgroups([5, -1]), /^ProgramBuilder\.setgroups\(\): a group id .* got -1$/],
    // A custom Mount's calls, from values TypeScript did not see: a RangeError
    // of BigInt's, a TypeError "str.includes is not a function".
    [
      "NaN flags",
      (b) => b.mount("tmpfs", "./c", "tmpfs", NaN, null, "x"),
      /^ProgramBuilder\.mount\(\): a number must be an integer, got NaN$/,
    ],
    [
      "1.5 as a mode",
      (b) => b.mkdir("./c", 1.5),
      /^ProgramBuilder\.mkdir\(\): a number must be .* got 1\.5$/,
    ],
    [
      "numbers as paths",
      (b) => b.mount(loose(1), loose(2), loose(3), 4, loose(5), "x"),
      /^ProgramBuilder\.mount\(\): a path or text must be a string, got 1$/,
    ],
    [
      "an undefined path",
      (b) => b.writeFile(loose(undefined), "x"),
      /^ProgramBuilder\.writeFile\(\): a path or text must be a string, got undefined$/,
    ],
    [
      "a NUL byte",
      (b) => b.symlink("/a", "./b\0c"),
      /^ProgramBuilder\.symlink\(\): a path or text contains a NUL byte: "\.\/b\\u0000c"$/,
    ],
    [
      "a hole in argv",
      (b) => b.exec("/bin/sh", loose(["sh", , "x"]), [], null),
      /^ProgramBuilder\.exec\(\): every text of an array must be a string, got undefined$/,
    ],
    [
      "a bad mount option",
      (b) => b.mount("/a", "./b", null, MS.BIND, null, "x", { hostSource: loose("socket") }),
      /^ProgramBuilder\.mount\(\): an argument must be a number, a string or null, got undefined$/,
    ],
    [
      "a number as the message",
      (b) => b.mkdir("./c", 0o755, undefined).touch("./d", 0o644).chdir(loose(7)),
      /^ProgramBuilder\.chdir\(\): a path or text must be a string, got 7$/,
    ],
    [
      "explain not a function",
      (b) => b.writeExisting("/proc/sys/x", "1", { explain: loose("why") }),
      /^ProgramBuilder\.writeExisting\(\): explain must be a function, got "why"$/,
    ],
    [
      "group 2^32",
      (b) => b.setgroups([2 ** 32]),
      /^ProgramBuilder\.setgroups\(\): a group id .* got 4294967296$/,
    ],
  ];
  for (const [what, call, message] of refusals) {
    assert.throws(() => exec(call(new ProgramBuilder())), (err: unknown) => {
      assert.ok(err instanceof SboxError, `${what}: ${err}`);
      assert.equal(err.step, "options", what);
      assert.match(err.message, message, what);
      return true;
    });
  }
  // The bounds themselves are taken.
  const b = new ProgramBuilder().setpriority(-20).setpriority(19).seccomp(new Uint8Array(8 * 4096));
  exec(b.rlimit(7, 5n, 5n, "nofile").setgroups([0, 0xffffffff]));
});

// A setup that becomes container root for the IPC sysctls alone, then its
// own uid again (asContainerRoot): the helper keeps the capability sets
// across such a setuid only with the op's flag bit 0 set.
Deno.test("ProgramBuilder.setuid sets the keep-capabilities flag only when asked", () => {
  const setuidFlags = (b: ProgramBuilder) => {
    const bytes = exec(b);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    assert.equal(view.getUint32(HEADER_BYTES, true), OpCode.setuid);
    return view.getUint32(HEADER_BYTES + 4, true);
  };
  assert.equal(setuidFlags(new ProgramBuilder().setuid(0, { keepCapabilities: true })), 1);
  assert.equal(setuidFlags(new ProgramBuilder().setuid(1000)), 0);
});

// The helper refuses a link at every overlay's target, flag or not; the
// flag on each overlay op says so in the op list (and is the rule the docs
// of MountOpOptions.targetNoLink give), as it does for /dev, /proc and /sys.
Deno.test("sbox's overlays, and /dev, /proc and /sys, are mount ops with targetNoLink; a tmpfs or bind is not", () => {
  const zig = Deno.readTextFileSync(new URL("../helper/program.zig", import.meta.url));
  const noLink = Number(/^pub const mount_target_no_link: u32 = (\d+);$/m.exec(zig)?.[1]);
  assert.ok(noLink > 0, "mount_target_no_link not found in helper/program.zig");
  const b = new ProgramBuilder();
  new OverlayMount(["/sbox-test/image"], "/sbox-test/upper", "/sbox-test/work", { target: "/kept" })
    .compile(b, ".");
  new OverlayMount(["/sbox-test/image"], undefined, undefined, { target: "/temporary" }).compile(b, ".");
  const layers = new TemporaryLayers("/sbox-test/layers", 1 << 20);
  layers.mountTmpfs(b);
  layers.overlay(b, "/usr", "./usr", 0, "cannot stack a layer on /usr", { option: "test" });
  new BaseMounts().compile(b, ".");
  const program = b.exec("/bin/true", ["true"], [], null).build();
  const view = new DataView(program.bytes.buffer);
  const flagsOf = new Map<string, number>();
  for (let i = 0; view.getUint32(HEADER_BYTES + i * OP_BYTES, true) !== OpCode.exec; i++) {
    if (view.getUint32(HEADER_BYTES + i * OP_BYTES, true) !== OpCode.mount) continue;
    flagsOf.set(program.describe(i).what, view.getUint32(HEADER_BYTES + i * OP_BYTES + 4, true));
  }
  const refusesLinks = (what: string) => {
    const flags = flagsOf.get(what);
    assert.ok(flags !== undefined, `no mount op "${what}"`);
    return (flags & noLink) !== 0;
  };
  for (
    const what of [
      "cannot mount overlay on /kept",
      "cannot mount overlay on /temporary",
      "cannot stack a layer on /usr",
      "cannot mount tmpfs on /dev",
      "cannot mount proc on /proc",
    ]
  ) {
    assert.ok(refusesLinks(what), what);
  }
  for (const what of ["cannot mount tmpfs on ./temporary", "cannot mount the tmpfs of the upper layers"]) {
    assert.ok(!refusesLinks(what), what);
  }
});

/** A ProgramBuilder that also keeps its mkdir and mount calls: the options of a mount as the names of those set. */
class CallRecorder extends ProgramBuilder {
  readonly calls: unknown[][] = [];

  override mkdir(path: string, mode?: number, owner?: { uid: number; gid: number }): this {
    this.calls.push(["mkdir", path, mode, owner]);
    return super.mkdir(path, mode, owner);
  }

  override mount(...args: Parameters<ProgramBuilder["mount"]>): this {
    const [source, target, fstype, flags, data, what, options = {}] = args;
    const set = Object.entries(options).filter(([, value]) => value).map(([name]) => name).sort();
    this.calls.push(["mount", source, target, fstype, flags, data, what, set]);
    return super.mount(...args);
  }
}

// OverlayMount's temporary upper layer and TemporaryLayers (sbox run's
// image root, the host root's overlays) are one implementation
// (mount.ts, compileTemporaryOverlay): what each compiles, as it did when
// they were written apart. The tmpfs: 0755 on the overlay's own target,
// bounded only when a size is given, or 0700 and bounded on the layers'
// directory; the upper layer's root of the top lower's mode and owner (in
// the container's ids), of the first of several lowers too; the overlay
// refusing a link at its target and a read-only result.
Deno.test("every temporary overlay compiles to its tmpfs, an upper like the top lower, a work directory and the overlay", () => {
  const dir = Deno.makeTempDirSync({ prefix: "sbox-temporary-overlay-" });
  try {
    const top = `${dir}/top`, image = `${dir}/image`;
    Deno.mkdirSync(top, { mode: 0o750 });
    Deno.mkdirSync(image, { mode: 0o711 });
    Deno.chmodSync(top, 0o750);
    Deno.chmodSync(image, 0o711);
    const { uid, gid } = Deno.statSync(top);
    const maps: IdMaps = {
      uidMap: [{ containerId: 5000, hostId: uid!, size: 1 }],
      gidMap: [{ containerId: 5001, hostId: gid!, size: 1 }],
    };
    const owner = { uid: 5000, gid: 5001 };
    const tmpfsFlags = MS.NOSUID | MS.NODEV;
    const overlayOptions = ["checkWritable", "explain", "targetNoLink"];
    const callsOf = (compile: (b: CallRecorder) => void) => {
      const b = new CallRecorder(maps);
      compile(b);
      const explain = b.exec("/bin/true", ["true"], [], null).build().describe(b.calls.length - 1).explain;
      assert.match(explain?.("ELOOP") ?? "", /^a symbolic link on the way: .* or layers that overlap/);
      return b.calls;
    };

    const temporary = (size?: number) =>
      callsOf((b) =>
        new OverlayMount([top, image], undefined, undefined, { target: "/t", size }).compile(b, ".")
      );
    const overlayMountCalls = (tmpfsData: string) => [
      ["mkdir", "./t", undefined, undefined],
      ["mount", "tmpfs", "./t", "tmpfs", tmpfsFlags, tmpfsData, "cannot mount tmpfs on ./t", []],
      ["mkdir", "./t/upper", 0o750, owner],
      ["mkdir", "./t/work", undefined, undefined],
      [
        "mount",
        "overlay",
        "./t",
        "overlay",
        0,
        `lowerdir=${top}:${image},upperdir=./t/upper,workdir=./t/work,userxattr`,
        "cannot mount overlay on /t",
        overlayOptions,
      ],
    ];
    assert.deepEqual(temporary(), overlayMountCalls("mode=755"));
    assert.deepEqual(temporary(1 << 20), overlayMountCalls("mode=755,size=1048576,nr_inodes=1024"));

    const layersTmpfs = [
      "mount",
      "tmpfs",
      "/sbox-test/layers",
      "tmpfs",
      tmpfsFlags,
      "mode=700,size=16777216,nr_inodes=4096",
      "cannot mount the tmpfs of the upper layers",
      [],
    ];
    const layerDirs = (n: number, like: number) => [
      ["mkdir", `/sbox-test/layers/upper-${n}`, like, owner],
      ["mkdir", `/sbox-test/layers/work-${n}`, undefined, undefined],
    ];
    const layerOptions = (lower: string, n: number) =>
      `lowerdir=${lower},upperdir=/sbox-test/layers/upper-${n},workdir=/sbox-test/layers/work-${n},userxattr`;
    const imageRoot = callsOf((b) => {
      const layers = new TemporaryLayers("/sbox-test/layers", 1 << 24);
      containerMounts(image, [], layers, { hostname: "h" })[0].compile(b, "/sbox-test/root");
    });
    assert.deepEqual(imageRoot, [
      layersTmpfs,
      ...layerDirs(0, 0o711),
      [
        "mount",
        "overlay",
        "/sbox-test/root",
        "overlay",
        0,
        layerOptions(image, 0),
        "cannot mount the overlay of the image on /",
        overlayOptions,
      ],
    ]);

    const hostRoot = callsOf((b) => {
      const entries = [{ kind: "overlay" as const, path: image }, { kind: "overlay" as const, path: top }];
      new PlannedHostRoot(entries, new TemporaryLayers("/sbox-test/layers", 1 << 24)).compile(
        b,
        "/sbox-test/root",
      );
    });
    const hostOverlay = (lower: string, n: number, like: number) => [
      ["mkdir", `/sbox-test/root${lower}`, undefined, undefined],
      ...layerDirs(n, like),
      [
        "mount",
        "overlay",
        `/sbox-test/root${lower}`,
        "overlay",
        MS.NOSUID,
        layerOptions(lower, n),
        `cannot mount overlay on ${lower}`,
        ["checkWritable", "explain", "skipGoneLower", "targetNoLink"],
      ],
    ];
    assert.deepEqual(hostRoot, [
      layersTmpfs,
      ["mkdir", "/sbox-test/layers/root", 0o755, { uid: UNCHANGED_ID, gid: UNCHANGED_ID }],
      [
        "mount",
        "/sbox-test/layers/root",
        "/sbox-test/root",
        null,
        MS.BIND,
        null,
        "cannot bind the root's directory on /",
        [],
      ],
      ...hostOverlay(image, 0, 0o711),
      ...hostOverlay(top, 1, 0o750),
    ]);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

// Host names are bytes: decodeName must give back the very bytes once
// encoded (a name that is not UTF-8 was lost as U+FFFD, and a leading byte
// order mark dropped), and leave UTF-8 and well-formed strings as
// TextDecoder and TextEncoder have them.
Deno.test("decodeName and encodeUtf8Into give back any bytes; UTF-8 and well-formed strings are as TextDecoder's and TextEncoder's", () => {
  const encoded = (str: string) => {
    const out = new Uint8Array(str.length * 3);
    return out.slice(0, encodeUtf8Into(str, out, 0));
  };
  const cases = [
    [0x6d, 0x6e, 0x74, 0xfe],
    [0xef, 0xbb, 0xbf, 0x62], // a byte order mark first
    [0xef, 0xbf, 0xbd, 0xfe], // U+FFFD itself, then 0xfe: two names, two strings
    [0xc3], // cut short
    [0xc0, 0xaf], // overlong "/"
    [0xed, 0xb3, 0xbe], // the surrogate U+DCFE, as CESU-8 writes it
    [0xf4, 0x90, 0x80, 0x80], // past U+10FFFF
    [0xf0, 0x9f, 0x98, 0x80, 0xfe, 0xe2, 0x82], // an emoji, then bytes that are not
  ].map((bytes) => new Uint8Array(bytes));
  let seed = 7;
  for (let n = 0; n < 2000; n++) {
    const bytes = new Uint8Array(1 + (n % 24));
    for (let i = 0; i < bytes.length; i++) bytes[i] = (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24;
    cases.push(bytes);
  }
  const names = new Set<string>();
  for (const bytes of cases) {
    const name = decodeName(bytes);
    assert.deepEqual(encoded(name), bytes, `${bytes}`);
    names.add(name);
    try {
      const text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
      assert.equal(name, text);
    } catch {
      assert.match(name, /(?<![\uD800-\uDBFF])[\uDC80-\uDCFF]/);
    }
  }
  assert.equal(names.size, new Set(cases.map((bytes) => bytes.join())).size, "two byte strings, one name");
  for (const str of ["plain", "café /ü", "😀 \uD800\uDC80", "lone \uD800 and \uDC00"]) {
    assert.deepEqual(encoded(str), new TextEncoder().encode(str), str);
  }
  assert.equal(printable(decodeName(new Uint8Array([0x2f, 0x6d, 0xfe, 0xc3, 0xa9]))), "/m\\376é");
});

// decodeName escaped a text with one byte that is not UTF-8 by building the
// whole string a code point at a time (185-370 ms for a 2 MB mountinfo).
// It now decodes the runs between bad bytes whole: what it gives must still
// be exactly the runs, each escape at its place, a byte order mark and a
// real U+FFFD in a run kept.
Deno.test("decodeName of 2 MB with one byte that is not UTF-8: the runs around it as they are, the byte escaped", () => {
  const line = (i: number) =>
    `${100 + i} 1 0:${i} / /var/lib/kubelet/pods/0123/volumes/v${i} rw,relatime - tmpfs tmpfs rw\n`;
  const head = Array.from({ length: 12000 }, (_, i) => line(i)).join("") + "café \uFEFF \uFFFD 😀 /m";
  const tail = "\uFEFF" + Array.from({ length: 12000 }, (_, i) => line(12000 + i)).join("") + "é";
  const concat = (...parts: Uint8Array[]) => {
    const out = new Uint8Array(parts.reduce((n, part) => n + part.length, 0));
    parts.reduce((at, part) => (out.set(part, at), at + part.length), 0);
    return out;
  };
  const [headBytes, tailBytes] = [head, tail].map((text) => new TextEncoder().encode(text));
  const bytes = concat(headBytes, new Uint8Array([0xfe]), tailBytes);
  assert.ok(bytes.length > 2_000_000, `${bytes.length} bytes`);

  const name = decodeName(bytes);
  assert.equal(name.length, head.length + 1 + tail.length);
  assert.ok(name === `${head}\udcfe${tail}`, "the runs decoded whole, the one byte escaped");
  const back = new Uint8Array(name.length * 3);
  assert.deepEqual(back.subarray(0, encodeUtf8Into(name, back, 0)), bytes);
  // The same text without the odd byte: TextDecoder's own string.
  const whole = concat(headBytes, tailBytes);
  assert.ok(decodeName(whole) === new TextDecoder("utf-8", { ignoreBOM: true }).decode(whole));
});

// The same against the plain definition (the code before: a strict decode,
// else each well-formed sequence as its code point and each other byte
// escaped), on bytes mixed of UTF-8 and pieces that are not.
Deno.test("decodeName is the byte-by-byte definition on mixes of UTF-8, cut sequences and stray bytes", () => {
  const strict = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
  const reference = (bytes: Uint8Array): string => {
    try {
      return strict.decode(bytes);
    } catch {
      // escaped below
    }
    let out = "";
    for (let i = 0; i < bytes.length;) {
      let length = 0;
      for (const n of [1, 2, 3, 4]) {
        try {
          strict.decode(bytes.subarray(i, i + n));
          length = n;
          break;
        } catch {
          // not a sequence of n bytes
        }
      }
      out += length === 0
        ? String.fromCharCode(0xdc00 + bytes[i])
        : strict.decode(bytes.subarray(i, i + length));
      i += Math.max(length, 1);
    }
    return out;
  };
  const pieces = [
    [0x61],
    [0x2f, 0x20],
    [0xc3, 0xa9], // é
    [0xe2, 0x82, 0xac], // €
    [0xf0, 0x9f, 0x98, 0x80], // 😀
    [0xef, 0xbb, 0xbf], // a byte order mark
    [0xef, 0xbf, 0xbd], // U+FFFD itself
    [0xfe],
    [0x80],
    [0xc3], // cut short
    [0xe2, 0x82],
    [0xf0, 0x9f, 0x98],
    [0xed, 0xa0, 0x80], // a surrogate
    [0xc0, 0xaf], // overlong
  ];
  let seed = 11;
  const random = (n: number) => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) % n;
  for (let n = 0; n < 1000; n++) {
    const bytes = new Uint8Array(
      Array.from({ length: 1 + random(12) }, () => pieces[random(pieces.length)]).flat(),
    );
    assert.equal(decodeName(bytes), reference(bytes), `${bytes}`);
  }
});

// KILL_REQUEST_SIGNAL (src/process.ts) and kill_request (helper/reaper.zig)
// must be one signal: a request the other side does not take as one is
// forwarded to the command, and the rest of the container lives on.
Deno.test("the kill request's signal is the same number in process.ts and reaper.zig", () => {
  const source = (path: string) => Deno.readTextFileSync(new URL(path, import.meta.url));
  const ts = /^const KILL_REQUEST_SIGNAL = (\d+);$/m.exec(source("../src/process.ts"))?.[1];
  const zig = /^pub const kill_request: u32 = (\d+);$/m.exec(source("../helper/reaper.zig"))?.[1];
  assert.ok(ts, "KILL_REQUEST_SIGNAL not found in src/process.ts");
  assert.ok(zig, "kill_request not found in helper/reaper.zig");
  assert.equal(Number(ts), Number(zig));
});

// What pid 1 sends to the command's process group rather than to the
// command alone is told in three places, for the library's users and for
// sbox's readers; each once left out a signal that reaper.zig sends.
Deno.test("the docs name every signal that reaper.zig sends to the command's process group", () => {
  const source = (path: string) => Deno.readTextFileSync(new URL(path, import.meta.url));
  const branch =
    /\} else if \(((?:\s*signo == linux\.SIG\.\w+\s*(?:or)?)+)\)\s*\{(?:\s*\/\/.*)*\s*toGroup\(watch\.child, signo\);/
      .exec(source("../helper/reaper.zig"))?.[1];
  assert.ok(
    branch,
    "the branch of forwardSignals that calls toGroup(watch.child, signo) not found in helper/reaper.zig",
  );
  const signals = [...branch.matchAll(/SIG\.(\w+)/g)].map(([, name]) => `SIG${name}`);
  assert.ok(signals.includes("SIGWINCH"), `${signals}`);
  for (const path of ["../docs/architecture.md", "../docs/security.md", "../src/process.ts"]) {
    // Each list names SIGCONT next to "process group": the text around it.
    const text = source(path).replace(/\s+\*?\s*/g, " ");
    const lists = [...text.matchAll(/SIGCONT/g)].map(({ index }) => text.slice(index - 100, index + 100))
      .filter((around) => around.includes("process group"));
    assert.ok(lists.length > 0, `no list of the signals sent to the command's process group in ${path}`);
    for (const list of lists) {
      for (const signal of signals) assert.ok(list.includes(signal), `${path} leaves out ${signal}: ${list}`);
    }
  }
});

// The two lists are kept by hand: an op added to one side only, or out of
// order, runs as another op in the helper.
Deno.test("OpCode is helper/program.zig's Code, name for name and number for number", () => {
  const zig = Deno.readTextFileSync(new URL("../helper/program.zig", import.meta.url));
  const body = /pub const Code = enum\(u32\) \{([\s\S]*?)\n {4}pub fn/.exec(zig)?.[1];
  assert.ok(body, "Code not found in helper/program.zig");
  const codes = Object.fromEntries(
    [...body.matchAll(/^ {4}(\w+) = (\d+),$/gm)].map(([, name, n]) => [name, Number(n)]),
  );
  assert.deepEqual(codes, { ...OpCode });
});

/** The members `name = n,` of `pub const <type> = enum(u32) {...};` in a helper source file. */
function zigEnum(file: string, type: string): Record<string, number> {
  const zig = Deno.readTextFileSync(new URL(`../helper/${file}`, import.meta.url));
  const body = new RegExp(`pub const ${type} = enum\\(u32\\) \\{([\\s\\S]*?)\\n\\};`).exec(zig)?.[1];
  assert.ok(body, `${type} not found in helper/${file}`);
  const members = [...body.matchAll(/^ {4}(\w+) = (\d+),$/gm)].map(([, name, n]) => [name, Number(n)]);
  assert.ok(members.length > 0, `no members of ${type} read in helper/${file}`);
  return Object.fromEntries(members);
}

/** The value of `pub const <name>: <type> = <n>;` in helper/program.zig. */
function zigConstant(name: string): number {
  const zig = Deno.readTextFileSync(new URL("../helper/program.zig", import.meta.url));
  const value = new RegExp(`^pub const ${name}: \\w+ = (\\d+);$`, "m").exec(zig)?.[1];
  assert.ok(value, `${name} not found in helper/program.zig`);
  return Number(value);
}

// protocol.ts decodes a record's kind by its place in a list: a kind out of
// order in either file reads a wait status as a pid, or a time as a token.
Deno.test("decodeRecord names each of helper/program.zig's RecordKind numbers as the helper does, and no other", () => {
  const kinds = zigEnum("program.zig", "RecordKind");
  const record = (kind: number) => {
    const bytes = new Uint8Array(16);
    new DataView(bytes.buffer).setUint32(0, kind, true);
    return decodeRecord(bytes);
  };
  const camel = (name: string) => name.replace(/_(\w)/g, (_, c: string) => c.toUpperCase());
  for (const [name, n] of Object.entries(kinds)) {
    assert.equal(record(n).kind, camel(name), `RecordKind.${name} = ${n}`);
  }
  const highest = Math.max(...Object.values(kinds));
  assert.throws(() => record(highest + 1), /unknown record kind/);
  assert.throws(() => record(0), /unknown record kind/);
});

// The flags field of an op is a set of bits that the builder and child.zig
// read alike: a bit that differs turns one option into another (a mount's
// "target without links" into "keep the locked flags").
Deno.test("each op flag the builder sets is helper/program.zig's bit of that name, and each of the helper's flags has one", () => {
  const flagsOf = (b: ProgramBuilder, code: number) => {
    const bytes = exec(b);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    assert.equal(view.getUint32(HEADER_BYTES, true), code);
    return view.getUint32(HEADER_BYTES + 4, true);
  };
  const mount = (options: MountOpOptions) =>
    flagsOf(new ProgramBuilder().mount("/a", "/b", null, MS.BIND, null, "bind", options), OpCode.mount);
  const builders: Record<string, () => number> = {
    mount_keep_locked_flags: () => mount({ keepLockedFlags: true }),
    mount_ignore_missing: () => mount({ ignoreMissing: true }),
    mount_target_no_link: () => mount({ targetNoLink: true }),
    mount_host_source: () => mount({ hostSource: "directory" }),
    mount_skip_gone_lower: () => mount({ skipGoneLower: true }),
    mount_check_writable: () => mount({ checkWritable: true }),
    mount_host_atime: () => mount({ atimeOf: "/proc" }),
    mkdir_owned: () => flagsOf(new ProgramBuilder().mkdir("d", 0o755, { uid: 0, gid: 0 }), OpCode.mkdir),
    write_file_optional: () =>
      flagsOf(new ProgramBuilder().writeFile("f", "", 0o644, { optional: true }), OpCode.write_file),
    write_file_no_link: () =>
      flagsOf(new ProgramBuilder().writeFile("f", "", 0o644, { noLink: true }), OpCode.write_file),
    chdir_no_magic_links: () => flagsOf(new ProgramBuilder().chdir("/", true), OpCode.chdir),
    setuid_keep_capabilities: () =>
      flagsOf(new ProgramBuilder().setuid(0, { keepCapabilities: true }), OpCode.setuid),
  };
  // Every flag constant of the helper: a u32 named after an op.
  const zig = Deno.readTextFileSync(new URL("../helper/program.zig", import.meta.url));
  const prefixes = Object.keys(zigEnum("program.zig", "Code"));
  const names = [...zig.matchAll(/^pub const (\w+): u32 = \d+;$/gm)].map(([, name]) => name)
    .filter((name) => prefixes.some((op) => name.startsWith(`${op}_`)));
  assert.deepEqual(names.toSorted(), Object.keys(builders).toSorted());
  for (const [name, build] of Object.entries(builders)) assert.equal(build(), zigConstant(name), name);
  // And without the option, no bit.
  assert.equal(mount({}), 0);
  assert.equal(flagsOf(new ProgramBuilder().mkdir("d"), OpCode.mkdir), 0);
  assert.equal(flagsOf(new ProgramBuilder().writeFile("f", ""), OpCode.write_file), 0);
  assert.equal(flagsOf(new ProgramBuilder().chdir("/"), OpCode.chdir), 0);
});

// link() refuses a filter past max_filter_len with EINVAL, which says less
// than the builder's own error before any process exists.
Deno.test("ProgramBuilder.seccomp takes a filter up to helper/program.zig's max_filter_len instructions, and no more", () => {
  const limit = zigConstant("max_filter_len");
  const filter = (instructions: number) => new Uint8Array(8 * instructions);
  assert.doesNotThrow(() => exec(new ProgramBuilder().seccomp(filter(limit))));
  assert.throws(
    () => new ProgramBuilder().seccomp(filter(limit + 1)),
    new RegExp(`1 to ${limit} 8-byte instructions`),
  );
});

// The ABI version holds only the highest sbox_call number: two calls swapped
// in one list would pass it, and each would run the other.
Deno.test("CALL in src/ffi.ts is helper/lib.zig's Call, name for name and number for number", () => {
  const ts = Deno.readTextFileSync(new URL("../src/ffi.ts", import.meta.url));
  const body = /^const CALL = \{([\s\S]*?)\n\} as const;$/m.exec(ts)?.[1];
  assert.ok(body, "CALL not found in src/ffi.ts");
  const calls = Object.fromEntries(
    [...body.matchAll(/^ {2}(\w+): (\d+),$/gm)].map(([, name, n]) => [name, Number(n)]),
  );
  assert.ok(Object.keys(calls).length > 0, "no entries of CALL read in src/ffi.ts");
  assert.deepEqual(calls, zigEnum("lib.zig", "Call"));
});

// src/security/neutral.ts: what is above neutral is reset, and only that.
Deno.test("compileNeutralScheduling resets a real-time or deadline policy, a negative nice and the realtime I/O class alone", () => {
  const ops = (caller: Parameters<typeof compileNeutralScheduling>[1]) => {
    const b = new ProgramBuilder();
    compileNeutralScheduling(b, caller);
    return opCodes(exec(b)).slice(0, -1);
  };
  const { sched_setscheduler: policy, setpriority: nice, ioprio_set: ioprio } = OpCode;
  const ioprioOf = (ioClass: number, level: number) => ioClass << 13 | level;
  // SCHED_OTHER at nice 0, I/O class none: the fast path, no op.
  assert.deepEqual(ops({ nice: 0, policy: 0, ioprio: 0 }), []);
  // SCHED_FIFO, SCHED_RR, SCHED_DEADLINE; nice -1; the realtime class at any level.
  for (const rt of [1, 2, 6]) assert.deepEqual(ops({ nice: 0, policy: rt, ioprio: 0 }), [policy]);
  assert.deepEqual(ops({ nice: -1, policy: 0, ioprio: 0 }), [nice]);
  assert.deepEqual(ops({ nice: 0, policy: 0, ioprio: ioprioOf(1, 7) }), [ioprio]);
  assert.deepEqual(ops({ nice: -20, policy: 1, ioprio: ioprioOf(1, 0) }), [policy, nice, ioprio]);
  // Below neutral, or not known: kept. SCHED_BATCH, SCHED_IDLE, nice 19,
  // best-effort at the highest level (which any user may set), idle.
  for (const low of [3, 5]) assert.deepEqual(ops({ nice: 19, policy: low, ioprio: ioprioOf(2, 0) }), []);
  assert.deepEqual(ops({ nice: 5, policy: 0, ioprio: ioprioOf(3, 0) }), []);
  assert.deepEqual(ops({ nice: undefined, policy: undefined, ioprio: undefined }), []);
});

// One failure, one step: the exec path resets oom_score_adj with the
// write_existing op (compileNeutralOomScoreAdj), the init path from this
// process (resetOomScoreAdj), which said "oom_score_adj".
Deno.test("resetOomScoreAdj fails with step write_existing, as the exec path's op does", () => {
  const b = new ProgramBuilder();
  compileNeutralOomScoreAdj(b, 0);
  const program = b.exec("/bin/true", ["true"], [], null).build();
  assert.equal(program.describe(0).step, "write_existing");
  // Above pid_max's highest value (2^22): no such process, ENOENT.
  const gone = 2 ** 31 - 1;
  assert.throws(() => resetOomScoreAdj(gone, 0), (err: unknown) => {
    assert.ok(err instanceof SboxError, String(err));
    assert.deepEqual([err.step, err.errno], ["write_existing", "ENOENT"]);
    assert.match(err.message, new RegExp(`^cannot open /proc/${gone}/oom_score_adj: ENOENT`));
    return true;
  });
});

Deno.test("neutralOomScoreAdj: 0 for a negative oom_score_adj, read once unless negative", () => {
  try {
    const reads: number[] = [];
    const reading = (...values: (number | undefined)[]) => () => {
      reads.push(reads.length);
      return values[Math.min(reads.length - 1, values.length - 1)];
    };
    for (const [value, expected] of [[-1000, 0], [-1, 0], [0, undefined], [500, undefined]] as const) {
      setOomScoreAdjReader(() => value);
      assert.equal(neutralOomScoreAdj(), expected, String(value));
    }
    // Unknown (no /proc): left as it is.
    setOomScoreAdjReader(() => undefined);
    assert.equal(neutralOomScoreAdj(), undefined);
    // 0 or more: read at the first start alone.
    reads.length = 0;
    setOomScoreAdjReader(reading(0, -500));
    assert.deepEqual([neutralOomScoreAdj(), neutralOomScoreAdj(), reads.length], [undefined, undefined, 1]);
    // Negative: read again on each start, as the caller may have raised it.
    reads.length = 0;
    setOomScoreAdjReader(reading(-500, -500, 200));
    assert.deepEqual([neutralOomScoreAdj(), neutralOomScoreAdj(), neutralOomScoreAdj()], [0, 0, undefined]);
    assert.equal(reads.length, 3);
  } finally {
    setOomScoreAdjReader();
  }
});
