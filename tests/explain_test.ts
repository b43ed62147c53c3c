/**
 * What sbox says when the kernel refuses something, from the facts given
 * (a mount table, an id map, limits): the layer an overlay stacks on, the
 * hints of a failed clone, fork or unshare, the ids a user namespace lacks.
 */

import assert from "node:assert/strict";
import { cloneHint, type CloneLimits, opFailure } from "../src/launch_hints.ts";
import { overlayLayerPaths, overlayStackingProblem } from "../src/mount_refusals.ts";
import { CLONE, ProgramBuilder } from "../src/program.ts";
import { SboxError } from "../src/error.ts";
import { errnoNumber } from "../src/errno.ts";
import { explainMapFailure } from "../src/user.ts";
import { mountAt, parseMountInfo } from "../src/mountinfo.ts";
import { OverlayMount } from "../src/mount.ts";
import { TemporaryLayers } from "../src/temporary_layers.ts";
import { containerMounts } from "../src/cli/mounts.ts";
import { busyboxImage, commandInOwnMountNamespace, scratchDir, skipUnlessRoot } from "./fixtures.ts";

// The kernel writes an overlay's options with mountinfo's octal escapes
// over overlayfs's own: the layer "l a:b,c" of a lowerdir is
// "l\040a\134:b\134\054c". Read with the escapes kept, the path named
// nothing, and a stacked layer was "probably" one instead of named.
Deno.test("overlayStackingProblem names a stacked layer whose path has a space, a colon or a comma", () => {
  const mounts = parseMountInfo([
    "1 1 0:1 / / rw - ext4 /dev/sda rw",
    "60 1 0:40 / /d rw - tmpfs t rw",
    // An overlay at "/d/o 1" (its layers on the tmpfs), then one with a layer inside it.
    "69 60 0:41 / /d/o\\0401 rw,relatime - overlay overlay rw,lowerdir=/d/img,upperdir=/d/u1,workdir=/d/w1",
    "70 60 0:42 / /d/o2 rw,relatime - overlay overlay " +
    "rw,lowerdir=/d/o\\0401/x\\134:y\\134\\054z:/d/plain,upperdir=/d/u\\0402,workdir=/d/w2,uuid=on",
  ].join("\n"));
  assert.deepEqual(overlayLayerPaths(mounts[3].superOptions), [
    "/d/o 1/x:y,z",
    "/d/plain",
    "/d/u 2",
    "/d/w2",
  ]);
  const problem = overlayStackingProblem([["the image", "/d/o2/sub"]], [], mounts, undefined, (p) => p);
  assert.match(
    problem!,
    /\(mounted on \/d\/o2\), which has an overlay among its own layers \(\/d\/o 1\/x:y,z\)/,
  );
});

// "The mount that holds a path" was written twice (cgroup.ts for
// checkOnCgroup2, mount_refusals.ts for the overlay-stacking hints): one
// rule now, by the text of the path.
Deno.test("mountAt: the deepest mount point on the path's way, the last listed of a stack", () => {
  const table = parseMountInfo([
    "1 1 0:1 / / rw - ext4 /dev/sda rw",
    "2 1 0:2 / /sys rw - sysfs sysfs rw",
    "3 2 0:3 / /sys/fs/cgroup rw - tmpfs tmpfs rw",
    // Mounted over the tmpfs at the same point: the top of the stack.
    "4 3 0:4 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw",
    "5 1 0:5 / /d\\040e rw - tmpfs t rw",
  ].join("\n"));
  const at = (path: string) => mountAt(path, table)?.id;
  assert.equal(at("/sys/fs/cgroup"), 4);
  assert.equal(at("/sys/fs/cgroup/judge/w1"), 4);
  // A prefix of the text is not a parent directory.
  assert.equal(at("/sys/fs/cgroupx"), 2);
  assert.equal(at("/sys"), 2);
  assert.equal(at("/system"), 1);
  assert.equal(at("/"), 1);
  assert.equal(at("/d e/f"), 5);
  // Nothing holds a path where the table has no "/".
  assert.equal(mountAt("/sys/kernel", table.slice(1)), table[1]);
  assert.equal(mountAt("/usr", table.slice(1)), undefined);
});

Deno.test("overlay layer paths: data layers, lowerdir+ and datadir+ as they are, escaped escapes", () => {
  // "::" marks data layers (no empty layer); a "\\" escaped before a ":" ends a layer.
  assert.deepEqual(overlayLayerPaths("rw,lowerdir=/a\\134\\134:/b::/data,upperdir=/u,workdir=/w"), [
    "/a\\",
    "/b",
    "/data",
    "/u",
    "/w",
  ]);
  // lowerdir+ and datadir+ take a path each, with no escapes of overlayfs:
  // a ":" or "\\" is part of the name.
  assert.deepEqual(
    overlayLayerPaths("rw,lowerdir+=/l\\0401:2,lowerdir+=/x\\134y,datadir+=/d\\054e,upperdir=/u,workdir=/w"),
    ["/l 1:2", "/x\\y", "/d,e", "/u", "/w"],
  );
  // A newline in a path (\012) is a path too.
  assert.deepEqual(overlayLayerPaths("rw,upperdir=/u\\012v,workdir=/w"), ["/u\nv", "/w"]);
});

const KERNEL_OVERLAY_TEST = "overlay layer paths are read back from the options the kernel really writes";
Deno.test({
  name: KERNEL_OVERLAY_TEST,
  ignore: skipUnlessRoot(KERNEL_OVERLAY_TEST, "it mounts an overlay in a mount namespace of its own"),
}, async () => {
  const dir = scratchDir("overlay-names-");
  try {
    const layers = [`${dir}/l a:b,c\\d`, `${dir}/tab\there`, `${dir}/u p`, `${dir}/w`];
    for (const layer of [...layers, `${dir}/m`]) Deno.mkdirSync(layer);
    // overlayfs's own escapes for a lowerdir, upperdir and workdir: "\" before ":", "," and "\".
    const escape = (path: string) => path.replace(/[\\:,]/g, "\\$&");
    const options = `lowerdir=${escape(layers[0])}:${escape(layers[1])},upperdir=${escape(layers[2])},` +
      `workdir=${escape(layers[3])}`;
    const output = await commandInOwnMountNamespace([
      "sh",
      "-c",
      'mount -t overlay overlay -o "$1" "$2" && cat /proc/self/mountinfo',
      "sh",
      options,
      `${dir}/m`,
    ], {
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
    const overlay = parseMountInfo(new TextDecoder().decode(output.stdout)).find((m) =>
      m.path === `${dir}/m`
    );
    assert.ok(overlay, "the overlay in mountinfo");
    assert.deepEqual(overlayLayerPaths(overlay.superOptions), layers);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

// A library user of HostRootMount was told to "run ... with --rootfs
// instead", the CLI's option: TemporaryLayers picked its words by comparing
// its option with "--rootfs". The library's way out is an OverlayMount of an
// image directory. PlannedHostRoot is what HostRootMount.compile builds, on a
// plan of the whole host; here a plan of one directory.
const LIBRARY_STACKING_TEST =
  "a HostRootMount's overlay stacked too deep names the library's way out, not --rootfs";
Deno.test({
  name: LIBRARY_STACKING_TEST,
  ignore: skipUnlessRoot(LIBRARY_STACKING_TEST, "it mounts overlays in a mount namespace of its own"),
}, async () => {
  const dir = scratchDir("library-stacking-");
  try {
    const src = (path: string) => new URL(`../src/${path}`, import.meta.url).href;
    // o1 on the tmpfs, o2 on o1: o2 has an overlay among its layers.
    const mounts = `mount -t tmpfs tmpfs "$1" && cd "$1" && mkdir -p l1/usr u1 w1 o1 u2 w2 o2 layers && ` +
      "mount -t overlay overlay -o lowerdir=l1,upperdir=u1,workdir=w1 o1 && " +
      `mount -t overlay overlay -o lowerdir="$1"/o1,upperdir=u2,workdir=w2 o2 && exec "$2" eval "$3" "$1"`;
    const script = `
import { ProgramBuilder } from "${src("program.ts")}";
import { PlannedHostRoot } from "${src("host_root.ts")}";
import { TemporaryLayers } from "${src("temporary_layers.ts")}";
const dir = Deno.args[0];
const b = new ProgramBuilder();
new PlannedHostRoot([{ kind: "overlay", path: \`\${dir}/o2/usr\` }], new TemporaryLayers(\`\${dir}/layers\`, 1 << 20))
  .compile(b, \`\${dir}/root\`);
const program = b.exec("/bin/true", ["true"], [], null).build();
for (let i = 0;; i++) {
  const { what, explain } = program.describe(i);
  if (what.startsWith("cannot mount overlay")) {
    console.log(explain?.("EINVAL"));
    break;
  }
}`;
    const output = await commandInOwnMountNamespace(
      ["sh", "-c", mounts, "sh", dir, Deno.execPath(), script],
      {
        stdout: "piped",
        stderr: "piped",
      },
    ).output();
    const text = new TextDecoder().decode(output.stdout);
    assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
    assert.match(
      text,
      new RegExp(
        `^the host's directory ${dir}/o2/usr is on an overlayfs \\(mounted on ${dir}/o2\\), which has an ` +
          `overlay among its own layers \\(${dir}/o1\\), so it cannot be stacked on again: .*: give the ` +
          "container an image directory on a disk file system or a tmpfs instead \\(an OverlayMount of it on /\\)$",
        "m",
      ),
    );
    assert.doesNotMatch(text, /--rootfs|sbox run/);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

// The exec's fork op clones with CLONE_VM | CLONE_PARENT and makes no
// namespace: its EPERM or ENOSPC was explained as a namespace's.
Deno.test("a failed fork op gets no namespace hints; a failed unshare does", () => {
  const program = new ProgramBuilder()
    .fork(CLONE.VM | CLONE.PARENT, -1)
    .unshare(CLONE.NEWCGROUP, "cannot create a cgroup namespace")
    .exec("/bin/true", ["true"], [], null)
    .build();
  const EPERM = errnoNumber("EPERM"), ENOSPC = errnoNumber("ENOSPC");
  const fork = 0; // op 0; the unshare is op 1
  for (const errno of [EPERM, ENOSPC]) {
    const error = opFailure(program, fork, errno);
    assert.equal(error.step, "fork");
    assert.doesNotMatch(error.message, /namespace/, error.message);
  }
  assert.match(opFailure(program, 1, EPERM).message, /\(creating namespaces is not permitted here: /);
  assert.match(opFailure(program, 1, ENOSPC).message, /\(a limit on namespaces: /);
});

/** The indices of the ops of `program` whose message is `what`. */
function opsNamed(program: ReturnType<ProgramBuilder["build"]>, what: string): number[] {
  const found: number[] = [];
  for (let i = 0;; i++) {
    let op;
    try {
      op = program.describe(i);
    } catch {
      return found; // past the last op
    }
    if (op.what === what) found.push(i);
  }
}

// opFailure picked an overlay's ELOOP hint by the words of its message
// ("cannot mount overlay "): sbox run's image root, "cannot mount the
// overlay of the image on /", got the hint of /dev, /proc and /sys, which
// leaves out layers that overlap. Each overlay op now explains its ELOOP.
Deno.test("every overlay op explains its ELOOP itself, whatever its message says: sbox run's image root too", () => {
  const b = new ProgramBuilder();
  const layers = new TemporaryLayers("/sbox-test/layers", 1 << 20);
  const [imageRoot] = containerMounts(busyboxImage(), [], layers, { hostname: "h" });
  imageRoot.compile(b, "/sbox-test/root");
  layers.overlay(b, "/usr", "./usr", 0, "cannot stack a layer on /usr", { option: "test" });
  new OverlayMount(["/sbox-test/image"], "/sbox-test/upper", "/sbox-test/work", { target: "/kept" })
    .compile(b, ".");
  new OverlayMount(["/sbox-test/image"], undefined, undefined, { target: "/temporary" }).compile(b, ".");
  const program = b.exec("/bin/true", ["true"], [], null).build();
  const whats = [
    "cannot mount the overlay of the image on /",
    "cannot stack a layer on /usr",
    "cannot mount overlay on /kept",
    "cannot mount overlay on /temporary",
  ];
  const overlayHint = new RegExp(
    "ELOOP .*a symbolic link on the way: an overlay is mounted only on a path of the image, or of a kept " +
      "upper layer, that has none; or layers that overlap: overlayfs refuses a lower, upper or work directory " +
      "that is, holds or lies inside another",
  );
  const withoutHint = whats.filter((what) => {
    const [op] = opsNamed(program, what);
    assert.ok(op !== undefined, `no op "${what}"`);
    const error = opFailure(program, op, errnoNumber("ELOOP"));
    assert.deepEqual([error.step, error.errno], ["mount", "ELOOP"]);
    assert.ok(error.message.startsWith(`${what}: ELOOP `), error.message);
    return !overlayHint.test(error.message);
  });
  assert.deepEqual(withoutHint, []);
});

// Only a writeFile with noLink refuses a link on the way; without it, an
// ELOOP is a loop of links, which the hint of a refused link misnamed.
Deno.test("a written file's ELOOP says its directory is a link only where the op refuses links", () => {
  const program = new ProgramBuilder()
    .writeFile("./etc/resolv.conf", "", 0o644, { noLink: true })
    .writeFile("./etc/hosts", "", 0o644, { optional: true })
    .exec("/bin/true", ["true"], [], null)
    .build();
  const ELOOP = errnoNumber("ELOOP");
  assert.match(
    opFailure(program, 0, ELOOP).message,
    /^cannot write \/etc\/resolv\.conf: ELOOP .*its directory is a symbolic link, which the setup does not follow/,
  );
  assert.doesNotMatch(opFailure(program, 1, ELOOP).message, /its directory is a symbolic link/);
});

// RLIMIT_NPROC is waived for the host's root, not for uid 0 of a user
// namespace of its own (a rootless container): there the EAGAIN hint left
// out the limit that is most likely reached.
Deno.test("cloneHint's EAGAIN names RLIMIT_NPROC for uid 0 of a user namespace other than the host's", () => {
  const EAGAIN = errnoNumber("EAGAIN");
  const limits = (over: Partial<CloneLimits>) => (): CloneLimits => ({
    euid: 0,
    nproc: 100n,
    zeroNamespaceLimits: [],
    ...over,
  });
  assert.match(
    cloneHint(EAGAIN, true, limits({ nestedUserNamespace: true })),
    /^ \(a limit on processes is reached: RLIMIT_NPROC \(`ulimit -u`, here 100\), which counts every process and thread of uid 0 in this user namespace, sbox's own included; the pids\.max /,
  );
  assert.match(
    cloneHint(EAGAIN, true, limits({ euid: 1000, nestedUserNamespace: true })),
    /RLIMIT_NPROC .* of uid 1000 in this user namespace/,
  );
  for (const host of [{ nestedUserNamespace: false }, {}]) {
    assert.match(
      cloneHint(EAGAIN, true, limits(host)),
      /^ \(a limit on processes is reached: the pids\.max /,
    );
  }
  assert.doesNotMatch(cloneHint(EAGAIN, true, limits({ nestedUserNamespace: true, nproc: -1n })), /RLIMIT/);
});

/**
 * cloneHint(EAGAIN) with this host's limits, as a Deno started by `command`
 * says it, with its own DENO_DIR (the user it runs as may not write root's).
 */
async function eagainHintOf(command: string[]): Promise<string> {
  const code = `import { cloneHint } from ${
    JSON.stringify(new URL("../src/launch_hints.ts", import.meta.url).href)
  };
console.log(cloneHint(${errnoNumber("EAGAIN")}, true));`;
  const denoDir = Deno.makeTempDirSync({ prefix: "sbox-explain-" });
  try {
    Deno.chmodSync(denoDir, 0o777);
    const output = await new Deno.Command(command[0], {
      args: [...command.slice(1), Deno.execPath(), "eval", code],
      env: { DENO_DIR: denoDir },
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(60_000),
    }).output();
    assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
    return new TextDecoder().decode(output.stdout);
  } finally {
    Deno.removeSync(denoDir, { recursive: true });
  }
}

const NESTED_ROOT_TEST =
  "as uid 0 of a rootless container, sbox's EAGAIN hint names RLIMIT_NPROC; as the host's root not";
Deno.test({
  name: NESTED_ROOT_TEST,
  ignore: skipUnlessRoot(NESTED_ROOT_TEST, "it becomes uid 100000 of the host and root of a user namespace"),
}, async () => {
  // A soft limit to name (root's is often unlimited, which binds no one).
  const limited = ["prlimit", "--nproc=4000:"];
  assert.doesNotMatch(await eagainHintOf(limited), /RLIMIT_NPROC/, "the host's root");
  // Uid 0 of a user namespace that is uid 100000 of the host, as in a rootless container.
  const rootless = [
    ...limited,
    "setpriv",
    "--reuid=100000",
    "--regid=100000",
    "--clear-groups",
    "unshare",
    "-U",
    "-r",
  ];
  assert.match(
    await eagainHintOf(rootless),
    /RLIMIT_NPROC \(`ulimit -u`, here 4000\), which counts every process and thread of uid 0 in this user namespace/,
  );
});

// An entry of a container's map may span two adjacent lines of this
// process's own map: it was reported as not mapped.
Deno.test("explainMapFailure: ids mapped across adjacent lines of the own map are mapped", () => {
  const eperm = new SboxError("cannot write /proc/1/uid_map: operation not permitted", {
    step: "open",
    errno: errnoNumber("EPERM"),
  });
  const all = [{ containerId: 0, hostId: 0, size: 65536 }];
  const own = (uid: string, gid = uid) => (file: "uid_map" | "gid_map") => file === "uid_map" ? uid : gid;
  // As root (these are about the caller's own user namespace, not the rule for users).
  const root = { euid: 0, egid: 0 };
  const split = "         0          0       1000\n      1000       1000      64536\n";
  assert.equal(explainMapFailure(eperm, all, all, own(split), root), eperm, "mapped: the error as it was");
  // Out of order, overlapping: the same.
  assert.equal(
    explainMapFailure(eperm, all, all, own("1000 1000 64536\n0 0 1000\n500 500 600\n"), root),
    eperm,
  );
  // A gap (1000 unmapped), or an end short of the entry: named.
  const gap = explainMapFailure(eperm, all, all, own("0 0 1000\n1001 1001 64535\n"), root);
  assert.match(
    String(gap),
    /: this process runs in a user namespace that maps only uids 0-999, 1001-65535 \(\/proc\/self\/uid_map\), and a container can be given only ids mapped there, not 0-65535/,
  );
  const short = explainMapFailure(eperm, all, all, own("0 0 1000\n1000 1000 6000\n"), root);
  assert.match(String(short), /maps only uids 0-999, 1000-6999 /);
  // The gid map is read as well.
  assert.match(
    String(explainMapFailure(eperm, all, all, own(split, "0 0 1000\n"), root)),
    /maps only gids 0-999 /,
  );
});

// As a user: newuidmap's refusals say which range; the kernel's EPERM for
// maps a user writes itself said nothing.
Deno.test("explainMapFailure: a user's ProcUserMapper of ids other than their own says what a user may map", () => {
  const eperm = new SboxError("cannot write /proc/1/uid_map: EPERM (Operation not permitted)", {
    step: "open",
    errno: errnoNumber("EPERM"),
  });
  const initial = () => "0 0 4294967295\n"; // the host's own namespace
  const me = { euid: 1000, egid: 1000 };
  const all = [{ containerId: 0, hostId: 0, size: 65536 }];
  const own = (id: number) => [{ containerId: 0, hostId: id, size: 1 }];
  assert.equal(
    String(explainMapFailure(eperm, all, own(1000), initial, me)),
    "SboxError: cannot write /proc/1/uid_map: EPERM (Operation not permitted): a user may map only their own uid " +
      "and gid this way, one id each (here uid 1000, gid 1000), not host uids 0-65535: give the user /etc/subuid " +
      "and /etc/subgid entries for more ids (docs/rootless.md), and map them with BinNewIdMapper, which runs " +
      "newuidmap and newgidmap",
  );
  assert.match(String(explainMapFailure(eperm, own(1000), own(0), initial, me)), /, not host gids 0: /);
  // Its own ids only: the EPERM is something else, left as it was; so for root.
  assert.equal(explainMapFailure(eperm, own(1000), own(1000), initial, me), eperm);
  assert.equal(explainMapFailure(eperm, all, all, initial, { euid: 0, egid: 0 }), eperm);
});
