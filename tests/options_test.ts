/**
 * Bad input to `Container.create()`, `start()` and `exec()`, and to the
 * mounts, mappers and networks they take, refused before any process
 * exists with an SboxError of step "options" that names what was wrong:
 * orders of mounts that cannot work, paths the kernel would refuse or get
 * changed, arrays with holes, fields changed after their constructor
 * checked them, custom mappers' maps. Where a start is refused, the
 * mapper's map() (called once the child exists) shows that none was made.
 */

import assert from "node:assert/strict";
import {
  BaseMounts,
  BindMount,
  Container,
  type IdMapEntry,
  type Mount,
  OverlayMount,
  PastaManager,
  ProcUserMapper,
  SboxError,
  Slirp4NetnsManager,
  TmpfsMount,
  type UserMapper,
} from "../mod.ts";
import { hasUnwritableSurrogate, NAME_MAX, PATH_MAX, pathLengthProblem } from "../src/path.ts";
import { busyboxImage, identityMapper, scratchDir, skipWithout, text } from "./fixtures.ts";

/** Lists holes where TypeScript would not: `[a, , b]` as a lint-free value. */
function sparse<T>(length: number, entries: Record<number, T>): T[] {
  const array = new Array<T>(length);
  for (const [i, value] of Object.entries(entries)) array[Number(i)] = value;
  return array;
}

/** Built elsewhere (JSON, `any`), where TypeScript cannot tell. */
const loose = <T>(value: unknown) => value as T;

/** `fn`'s SboxError (thrown or rejected), asserted to be of step "options" for `option`, with `pattern`. */
async function refused(fn: () => unknown, option: string, pattern: RegExp): Promise<SboxError> {
  const err = await Promise.resolve().then(fn).then(() => undefined, (e) => e);
  assert.ok(err instanceof SboxError, `${option}: expected an SboxError, got ${err?.stack ?? err}`);
  assert.equal(err.step, "options", err.message);
  assert.equal(err.option, option, err.message);
  assert.match(err.message, pattern);
  return err;
}

/** An identity mapper that counts its map() calls: one is made for each process the container creates. */
function countingMapper(): UserMapper & { calls: number } {
  const inner = identityMapper();
  return {
    calls: 0,
    get uidMap() {
      return inner.uidMap;
    },
    get gidMap() {
      return inner.gidMap;
    },
    get setgroupsAllowed() {
      return inner.setgroupsAllowed;
    },
    map(pid: number) {
      this.calls++;
      return inner.map(pid);
    },
  };
}

/** A directory for a rootfs, and a cleanup. */
function rootDir(prefix: string): { dir: string; rootfs: string } & Disposable {
  const dir = scratchDir(prefix);
  Deno.mkdirSync(`${dir}/root`);
  return { dir, rootfs: `${dir}/root`, [Symbol.dispose]: () => Deno.removeSync(dir, { recursive: true }) };
}

Deno.test("mounts: the root first and alone, one BaseMounts; a mount over an earlier one's target is the caller's", async () => {
  using scratch = rootDir("order-");
  const { rootfs } = scratch;
  const image = busyboxImage();
  const userMapper = identityMapper();
  const create = (mounts: Mount[]) => () => Container.create({ rootfs, userMapper, mounts });
  const overlay = new OverlayMount([image]);
  // It would hide /proc and /dev, and leave their mount points in the rootfs directory.
  await refused(create([new BaseMounts(), overlay]), "mounts[1]", /in place of the root: it must come first/);
  await refused(
    create([overlay, new BaseMounts(), overlay]),
    "mounts[2]",
    /mounts\[0\] is a mount on "\/" already/,
  );
  await refused(
    create([overlay, new BaseMounts(), new TmpfsMount("/tmp"), new BaseMounts()]),
    "mounts[3]",
    /^invalid option mounts\[3\]: a second BaseMounts \(mounts\[1\] is one\)/,
  );
  const base = new BaseMounts();
  await refused(create([overlay, base, base]), "mounts[2]", /a second BaseMounts/);
  // A custom mount on "/" that says it mounts only below it goes anywhere.
  const below: Mount = { target: "/", mountsOnRoot: false, validate() {}, compile() {} };
  await (await create([overlay, new BaseMounts(), below])()).destroy();

  // Legitimate: a tmpfs on /tmp and a bind inside it; a tmpfs over an earlier one (sbox run's bigger /tmp).
  const source = `${scratch.dir}/shared`;
  Deno.mkdirSync(source);
  Deno.writeTextFileSync(`${source}/file`, "bound\n");
  await using container = await create([
    overlay,
    new BaseMounts(),
    new TmpfsMount("/tmp"),
    new BindMount(source, "/tmp/shared"),
    new TmpfsMount("/var/x", { size: 1 << 20 }),
    new TmpfsMount("/var/x", { size: 2 << 20 }),
  ])();
  const init = await container.start({
    command: [
      "/bin/sh",
      "-c",
      "cat /tmp/shared/file; test -e /proc/self/status && echo proc; grep -c ' /var/x ' /proc/mounts",
    ],
    stdout: "piped",
  });
  const out = await init.output();
  assert.equal(out.code, 0);
  assert.equal(text(out.stdout), "bound\nproc\n2\n");
});

const RESOLV_CONF_TEST =
  "with a network, a mount that says it binds a host path (bindSource) on /etc or its resolv.conf is refused, as a BindMount is";
Deno.test(RESOLV_CONF_TEST, {
  ignore: skipWithout("/usr/bin/slirp4netns", RESOLV_CONF_TEST, "slirp4netns"),
}, async () => {
  using scratch = rootDir("resolv-");
  const { dir, rootfs } = scratch;
  Deno.mkdirSync(`${dir}/etc`);
  Deno.writeTextFileSync(`${dir}/etc/resolv.conf`, "the host's own\n");
  const userMapper = identityMapper();
  // A mount kind of its own (not a BindMount) that binds a host path and says so.
  const custom = (bindSource: unknown, target: string) =>
    loose<Mount>({ target, bindSource, validate() {}, compile() {} });
  const create = (mount: Mount, network = new Slirp4NetnsManager()) => () =>
    Container.create({ rootfs, userMapper, network, mounts: [mount] });
  for (
    const [mount, source, target] of [
      [new BindMount(`${dir}/etc`, "/etc"), `${dir}/etc`, "/etc"],
      [custom(`${dir}/etc`, "/etc/"), `${dir}/etc`, "/etc/"],
      [
        custom(`${dir}/etc/resolv.conf`, "/etc/./resolv.conf"),
        `${dir}/etc/resolv.conf`,
        "/etc/./resolv.conf",
      ],
    ] as const
  ) {
    const err = await refused(create(mount), "mounts", /would take the network's \/etc\/resolv\.conf/);
    assert.ok(
      err.message.startsWith(`invalid option mounts: the bind of ${source} on ${target} would`),
      err.message,
    );
  }
  // What binds nothing of the host's (a file system of its own), and any
  // bind without a network, are the caller's to make.
  await (await create(custom(undefined, "/etc"))()).destroy();
  await (await Container.create({ rootfs, userMapper, mounts: [custom(`${dir}/etc`, "/etc")] })).destroy();
  await refused(create(custom(5, "/x")), "mounts[0]", /bindSource must be a string, got 5/);
});

Deno.test("paths the kernel would refuse (NAME_MAX, PATH_MAX) name their option, not step stat or a child's ENAMETOOLONG", async () => {
  using scratch = rootDir("lengths-");
  const { rootfs } = scratch;
  const userMapper = ProcUserMapper.newRoot();
  const longName = "c".repeat(NAME_MAX + 1);
  const longPath = `/${"a/".repeat(PATH_MAX / 2)}`;
  // The boundary itself is taken.
  assert.equal(new TmpfsMount(`/${"c".repeat(NAME_MAX)}`).target.length, NAME_MAX + 1);
  assert.equal(pathLengthProblem(`/${"c".repeat(NAME_MAX)}`), undefined);
  // Bytes count, not UTF-16 units: 128 "é" are 256 bytes.
  assert.match(pathLengthProblem(`/${"é".repeat(128)}`) ?? "", /^a file name of 256 bytes/);
  await refused(
    () => new TmpfsMount(`/x/${longName}`),
    "TmpfsMount",
    /target is too long .*a file name of 256 bytes/,
  );
  await refused(
    () => new BindMount("/etc", `/${"é".repeat(128)}`),
    "BindMount",
    /target is too long for the kernel \(ENAMETOOLONG\): a file name of 256 bytes/,
  );
  // A custom mount's target is checked by create() alone.
  const custom: Mount = { target: `/${longName}`, validate() {}, compile() {} };
  await refused(
    () => Container.create({ rootfs, userMapper, mounts: [custom] }),
    "mounts[0]",
    /target is too long .*at most 255/,
  );
  await refused(
    () => Container.create({ rootfs: `${rootfs}${longPath}`, userMapper }),
    "rootfs",
    /^invalid option rootfs: is too long for the kernel \(ENAMETOOLONG\): a path of \d+ bytes, .*: at most 4095$/,
  );
  await refused(
    () => Container.create({ rootfs, userMapper, mounts: [new BindMount(`/etc${longPath}`, "/x")] }),
    "BindMount",
    /source is too long .*a path of/,
  );
  await refused(
    () =>
      Container.create({ rootfs, userMapper, mounts: [new OverlayMount([busyboxImage(), `/${longName}`])] }),
    "OverlayMount",
    /lowerDirs\[1\] is too long .*a file name of 256 bytes/,
  );
  // Another stat failure of a host path names the option and the path's role too.
  const err = await refused(
    () => Container.create({ rootfs, userMapper, mounts: [new BindMount("/etc/passwd/x", "/x")] }),
    "BindMount",
    /^invalid option BindMount: cannot stat source \/etc\/passwd\/x: ENOTDIR/,
  );
  assert.equal(err.errno, "ENOTDIR");
  const container = await Container.create({ rootfs, userMapper });
  await refused(() => container.start({ command: ["/bin/true"], cwd: longPath }), "cwd", /too long/);
  await container.destroy();
});

Deno.test("lone surrogates in paths are refused, as in command and env; an escaped byte (U+DC80-U+DCFF) is a byte", async () => {
  using scratch = rootDir("surrogates-");
  const { rootfs } = scratch;
  const userMapper = countingMapper();
  await refused(() => new TmpfsMount("/t\udc00"), "TmpfsMount", /target holds a lone surrogate.*U\+FFFD/);
  await refused(() => new BindMount("/etc", "/b\ud800"), "BindMount", /target holds a lone surrogate/);
  await refused(
    () => Container.create({ rootfs, userMapper, mounts: [new BindMount("/etc\ud800", "/b")] }),
    "BindMount",
    /source holds a lone surrogate/,
  );
  await refused(
    () => Container.create({ rootfs, userMapper, mounts: [new OverlayMount([`${busyboxImage()}\udfff`])] }),
    "OverlayMount",
    /lowerDirs\[0\] holds a lone surrogate/,
  );
  await refused(
    () => Container.create({ rootfs: `${rootfs}\ud800`, userMapper }),
    "rootfs",
    /holds a lone surrogate/,
  );
  const custom: Mount = { target: "/c\ud800", validate() {}, compile() {} };
  await refused(
    () => Container.create({ rootfs, userMapper, mounts: [custom] }),
    "mounts[0]",
    /lone surrogate/,
  );
  await using container = await Container.create({
    rootfs,
    userMapper,
    mounts: [new OverlayMount([busyboxImage()]), new TmpfsMount("/\ufffd")],
  });
  // It ran in /\ufffd, the tmpfs: a directory other than the one given.
  await refused(() => container.start({ command: ["/bin/pwd"], cwd: "/\ud800" }), "cwd", /lone surrogate/);
  assert.equal(userMapper.calls, 0, "no process was created");

  // A pair is one character, and an escaped byte the byte it stands for.
  assert.equal(hasUnwritableSurrogate("/\ud83d\ude00/\udcfe"), false);
  assert.equal(hasUnwritableSurrogate("/\udc7f"), true);
  assert.equal(new TmpfsMount("/m\udcfe").target, "/m\udcfe");
  const init = await container.start({ command: ["/bin/pwd"], cwd: "/\ufffd", stdout: "piped" });
  assert.equal(text((await init.output()).stdout), "/\ufffd\n");
});

Deno.test("arrays with holes are refused naming the option, not with a TypeError or another option's name", async () => {
  using scratch = rootDir("holes-");
  const { rootfs } = scratch;
  const userMapper = countingMapper();
  const image = busyboxImage();
  const hole = /has a hole at index 0/;
  await refused(
    () => Container.create({ rootfs, userMapper, capAdd: sparse(2, { 1: "NET_RAW" }) }),
    "capAdd",
    hole,
  );
  await refused(() => Container.create({ rootfs, userMapper, capDrop: new Array(1) }), "capDrop", hole);
  await refused(
    () =>
      Container.create({
        rootfs,
        userMapper,
        mounts: sparse<Mount>(3, { 0: new OverlayMount([image]), 2: new BaseMounts() }),
      }),
    "mounts",
    /has a hole at index 1/,
  );
  await refused(
    () => new OverlayMount(sparse(2, { 1: image })),
    "OverlayMount",
    /lowerDirs has a hole at index 0/,
  );
  const map = [{ containerId: 0, hostId: 0, size: 1 }];
  await refused(
    () => new ProcUserMapper({ uidMap: sparse(2, { 1: map[0] }), gidMap: map }),
    "uidMap",
    /an entry must be/,
  );
  await refused(
    () =>
      Container.create({
        rootfs,
        userMapper,
        seccomp: { defaultAction: "allow", rules: sparse(1, {}) },
      }),
    "seccomp",
    /rules has a hole at index 0/,
  );
  // The constructor checks its options before it looks for pasta.
  await refused(() => new PastaManager({ publish: sparse(1, {}) }), "publish", hole);
  await using container = await Container.create({ rootfs, userMapper, mounts: [new OverlayMount([image])] });
  // It named ProgramBuilder.setgroups(), the method of the setup that the hole reached.
  await refused(
    () => container.start({ command: ["/bin/true"], groups: sparse(2, { 1: 0 }) }),
    "groups",
    hole,
  );
  await refused(
    () => container.start({ command: sparse(3, { 0: "/bin/sh", 2: "x" }) }),
    "command",
    /has a hole at index 1/,
  );
  assert.equal(userMapper.calls, 0, "no process was created");
});

Deno.test("an array as the options object: options must be an object", async () => {
  using scratch = rootDir("array-options-");
  await refused(
    () => Container.create(loose([[]])),
    "options",
    /^invalid option options: must be an object, got an array$/,
  );
  await using container = await Container.create({
    rootfs: scratch.rootfs,
    userMapper: ProcUserMapper.newRoot(),
  });
  await refused(() => container.start(loose([["/bin/true"]])), "options", /must be an object, got an array/);
});

Deno.test("custom mappers' maps are checked as sbox's are, and sbox's again at create() and start()", async () => {
  using scratch = rootDir("maps-");
  const { rootfs } = scratch;
  const custom = (uidMap: unknown): UserMapper => ({
    uidMap: loose(uidMap),
    gidMap: [{ containerId: 0, hostId: 0, size: 1 }],
    setgroupsAllowed: false,
    map() {},
  });
  const cases: [unknown, RegExp][] = [
    [
      [null],
      /^invalid option userMapper: uidMap: an entry must be \{ containerId, hostId, size \}, got null$/,
    ],
    [[-1], /uidMap: an entry must be .* got -1$/],
    [[{ containerId: 0, hostId: -1, size: 1 }], /uidMap: hostId must be an integer id, got -1$/],
    [[{ containerId: 0, hostId: 0, size: NaN }], /uidMap: size must be an integer id, got NaN$/],
    [[{ containerId: 0, hostId: 0, size: 0 }], /uidMap: size must be at least 1$/],
    [
      [{ containerId: 0, hostId: 0, size: 10 }, { containerId: 5, hostId: 100, size: 1 }],
      /uidMap: entries overlap at container id 5$/,
    ],
    [[], /uidMap: the map is empty$/],
    [sparse(2, { 1: { containerId: 0, hostId: 0, size: 1 } }), /uidMap: an entry must be .* got undefined$/],
  ];
  for (const [uidMap, pattern] of cases) {
    await refused(() => Container.create({ rootfs, userMapper: custom(uidMap) }), "userMapper", pattern);
  }
  // Changed after construction: read-only to TypeScript alone.
  const changed = new ProcUserMapper({
    uidMap: [{ containerId: 0, hostId: 0, size: 65536 }],
    gidMap: [{ containerId: 0, hostId: 0, size: 65536 }],
  });
  (changed.uidMap[0] as IdMapEntry).hostId = 2 ** 32;
  await refused(
    () => Container.create({ rootfs, userMapper: changed }),
    "userMapper",
    /uidMap: hostId must be/,
  );

  // After create(): refused by start(), before its child exists (it got EINVAL writing uid_map).
  const counting = countingMapper();
  await using container = await Container.create({
    rootfs,
    userMapper: counting,
    mounts: [new OverlayMount([busyboxImage()])],
  });
  const entry = counting.uidMap[0] as IdMapEntry;
  const hostId = entry.hostId;
  entry.hostId = 0xffffffff; // the invalid id
  try {
    await refused(
      () => container.start({ command: ["/bin/true"] }),
      "userMapper",
      /uidMap: hostId must be an integer id/,
    );
  } finally {
    entry.hostId = hostId;
  }
  assert.equal(counting.calls, 0, "no process was created");
  const init = await container.start({ command: ["/bin/true"] });
  assert.equal((await init.status).code, 0);
});

Deno.test("fields changed after their constructor checked them are checked again by create()", async () => {
  using scratch = rootDir("changed-");
  const { rootfs } = scratch;
  const userMapper = ProcUserMapper.newRoot();
  const overlay = new OverlayMount([busyboxImage()]);
  (overlay as { lowerDirs: unknown }).lowerDirs = "/images/busybox";
  await refused(
    () => Container.create({ rootfs, userMapper, mounts: [overlay] }),
    "OverlayMount",
    /lowerDirs must be an array of directories, got "\/images\/busybox"/,
  );
  (overlay as { lowerDirs: unknown }).lowerDirs = sparse(2, { 1: busyboxImage() });
  await refused(() => Container.create({ rootfs, userMapper, mounts: [overlay] }), "OverlayMount", /hole/);
  for (const Manager of [Slirp4NetnsManager, PastaManager]) {
    if (
      skipWithout(Manager === PastaManager ? "/usr/bin/pasta" : "/usr/bin/slirp4netns", Manager.name, "it")
    ) {
      continue;
    }
    const port = new Manager({ publish: [{ hostPort: 8080, containerPort: 80 }] });
    (port.publish[0] as { containerPort: unknown }).containerPort = undefined;
    await refused(
      () => Container.create({ rootfs, userMapper, network: port }),
      "publish",
      /containerPort must be a port from 1 to 65535, got undefined/,
    );
    for (const timeout of [NaN, "10", undefined]) {
      const slow = new Manager();
      (slow as { readyTimeoutMs: unknown }).readyTimeoutMs = timeout;
      await refused(
        () => Container.create({ rootfs, userMapper, network: slow }),
        "readyTimeoutMs",
        timeout === undefined ? /is undefined/ : /must be a number of milliseconds/,
      );
    }
  }
});

Deno.test("a lower layer removed or made a file after create(): the start's error names the layer", async () => {
  using scratch = rootDir("gone-layer-");
  const { dir, rootfs } = scratch;
  for (const change of ["removed", "a file"] as const) {
    const extra = `${dir}/extra`;
    Deno.mkdirSync(extra);
    await using container = await Container.create({
      rootfs,
      userMapper: identityMapper(),
      mounts: [new OverlayMount([extra, busyboxImage()]), new BaseMounts()],
    });
    Deno.removeSync(extra);
    if (change === "a file") Deno.writeTextFileSync(extra, "");
    const err = await container.start({ command: ["/bin/true"] }).then(() => undefined, (e) => e);
    if (change === "a file") Deno.removeSync(extra);
    assert.ok(err instanceof SboxError, String(err));
    assert.equal(err.step, "mount", err.message);
    const said = change === "removed" ? "no longer exists" : "is no longer a directory";
    assert.match(
      err.message,
      new RegExp(`^cannot mount overlay on /: E[A-Z]+ .*: lowerDirs\\[0\\] ${extra} ${said}`),
    );
  }
});
