/**
 * What only an unprivileged user can show (tools/test-rootless runs this
 * file as a user with subordinate ids and as one without): the mapper
 * `sbox run` picks, root file systems unpacked and removed through
 * runAsRoot, setgroups as newgidmap leaves it, and runs without a cgroup
 * of one's own. As root the user-only tests are skipped with a reason.
 */

import assert from "node:assert/strict";
import {
  BindMount,
  BinNewIdMapper,
  Cgroup,
  findCgroup2Mount,
  ProcUserMapper,
  runAsRoot,
  SboxError,
  type UserMapper,
} from "../mod.ts";
import { pickUserMapper } from "../src/cli/identity.ts";
import { IPC_LIMITS } from "../src/security/ipc_limits.ts";
import {
  type IdMapEntry,
  keepIdMaps,
  parseSubordinateId,
  setupIds,
  setupUidBesideRoot,
  subordinateRanges,
  supplementaryGroups,
} from "../src/user.ts";
import {
  busyboxContainer,
  busyboxImage,
  canMapManyIds,
  COMMAND_TIMEOUT_MS,
  hasSubordinateIds,
  identityMapper,
  isRoot,
  listenOnHostLoopback,
  processesWith,
  SBOX,
  sboxArgv,
  sboxOnBusybox,
  sboxOnBusyboxArgv,
  scratchDir,
  shellQuote,
  skipWithout,
  skipWithoutManyIds,
  text,
} from "./fixtures.ts";
import { type CommandResult, outputOf, runCommand } from "./command.ts";

function skipAsRoot(name: string): boolean {
  if (!isRoot) return false;
  console.log(`skipping "${name}": only meaningful for an unprivileged user`);
  return true;
}

/**
 * Directories tools/test-rootless makes as root before it runs this file as
 * the users. `privateDir`: 0700, with a mount below it (as Docker's 0710
 * /var/lib/docker). `aclDir`: root's, 0700, with user:USER:r-x, and a tmpfs
 * on stick/ (udisks2's /media/$USER with a USB stick mounted). `groupDir`:
 * root:sboxshared 0750, the users in that group, with `f` (0640, "shared").
 */
const ROOTLESS_FIXTURES = {
  privateDir: "/srv/sbox-rootless-private",
  aclDir: "/srv/sbox-rootless-acl",
  groupDir: "/srv/sbox-rootless-group",
};

/** Skips a test that needs one of {@linkcode ROOTLESS_FIXTURES}. */
function skipWithoutRootlessFixture(path: string, name: string): boolean {
  return skipAsRoot(name) || skipWithout(path, name, "the directory tools/test-rootless makes");
}

function sbox(args: string[]): Promise<CommandResult> {
  return outputOf(sboxOnBusybox(args));
}

/** `sbox run ARGS` without --rootfs: on the host's root, as this user sees it. */
function sboxOnHost(args: string[]): Promise<CommandResult> {
  return runCommand(sboxArgv(args));
}

Deno.test("findHostProgram skips PATH entries it cannot search, as execvp does", async () => {
  // /etc/passwd/...: ENOTDIR for anyone; /root/...: EACCES for a user (/root
  // is 0700), where newRootSubid() failed and sbox fell back to root only.
  const path = "/etc/passwd:/root/.local/bin:/usr/bin:/bin";
  const code = `
    import { findHostProgram } from ${JSON.stringify(new URL("../src/user.ts", import.meta.url).href)};
    console.log(findHostProgram("newuidmap"));
  `;
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--no-config", code],
    env: { PATH: path },
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(output.code, 0, text(output.stderr));
  assert.match(text(output.stdout), /^\/(usr\/)?bin\/newuidmap\n$/);
});

Deno.test("sbox run --verbose names the mapper it picked for this user", async () => {
  const result = await sbox(["--verbose", "--", "cat", "/proc/self/uid_map"]);
  assert.equal(result.code, 0, result.stderr);
  const expected = isRoot
    ? /user mapper: root:/
    : hasSubordinateIds
    ? /user mapper: newuidmap\/newgidmap:/
    : /user mapper: only container root/;
  assert.match(result.stderr, expected);
  const lines = result.stdout.trim().split("\n").map((l) => l.trim().split(/\s+/).map(Number));
  const picked = pickUserMapper().mapper;
  assert.deepEqual(lines, picked.uidMap.map((e) => [e.containerId, e.hostId, e.size]));
  if (!isRoot && !hasSubordinateIds) assert.ok(picked instanceof ProcUserMapper);
  if (!isRoot && hasSubordinateIds) assert.ok(picked instanceof BinNewIdMapper);
});

// newuidmap's and newgidmap's fds (and a network daemon's) were staged above
// every fd open in the Deno process: a high fd it inherited (a CI harness's
// fd 251) under a low ulimit -n (128) failed every start of them with
// "cannot hand /usr/bin/newuidmap its fds: EMFILE". Now only the fds their
// child keeps count (host.ts, placeFds). As a user with subordinate ids the
// start runs newuidmap and newgidmap; with --net slirp4netns or pasta, for
// every user, root too, a network daemon.
for (const net of ["none", "slirp4netns", "pasta"]) {
  const name = `sbox run --net ${net} starts with a high inherited fd under a low ulimit -n`;
  Deno.test({
    name,
    ignore: net !== "none" && skipWithout(`/usr/bin/${net}`, name, net),
    async fn() {
      const argv = sboxOnBusyboxArgv(["--verbose", "--net", net, "--", "echo", "started"]);
      const output = await new Deno.Command("/bin/bash", {
        // bash: dash's exec takes one-digit fds only. The fd stays open
        // across exec (no close-on-exec), above the limit, as a harness's.
        args: [
          "-c",
          'exec 251</dev/null && ulimit -n 128 && [ -e /proc/$$/fd/251 ] && exec "$@"',
          "bash",
          ...argv,
        ],
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
        signal: AbortSignal.timeout(COMMAND_TIMEOUT_MS),
      }).output();
      const stderr = text(output.stderr);
      assert.equal(output.code, 0, stderr);
      assert.equal(text(output.stdout), "started\n");
      // The path under test: newuidmap maps this user's ids.
      if (hasSubordinateIds) assert.match(stderr, /user mapper: newuidmap\/newgidmap:/);
    },
  });
}

// Sharing the caller's network namespace needs no privilege: no namespace
// is made, no daemon runs; /sys is the host's, bound (a user may not mount
// a sysfs for the host's network namespace).
Deno.test("sbox run --net host works for this user: the host's interfaces and listeners, none changed", async () => {
  using listener = listenOnHostLoopback("from the host\n");
  const result = await sbox([
    "--net",
    "host",
    "--",
    "sh",
    "-c",
    `ls /sys/class/net; nc 127.0.0.1 ${listener.port}; ip link set lo down || echo refused`,
  ]);
  assert.equal(result.code, 0, result.stderr);
  const lines = result.stdout.trim().split("\n");
  const host = [...Deno.readDirSync("/sys/class/net")].map((e) => e.name).sort();
  assert.deepEqual(lines.slice(0, host.length).sort(), host);
  assert.deepEqual(lines.slice(host.length), ["from the host", "refused"]);
  await listener.served;
});

{
  const name = "runAsRoot: a root file system unpacked as the user keeps its owners and can be removed";
  Deno.test({
    name,
    ignore: skipWithoutManyIds(name),
    async fn() {
      const dir = scratchDir("unpack-");
      const mapper = identityMapper();
      const rootfs = `${dir}/rootfs`;
      // Unpack: a copy of the image, with one file of uid 1000 and one of nobody.
      await runAsRoot(mapper, [
        "/bin/sh",
        "-c",
        `cp -a ${shellQuote(busyboxImage())} ${shellQuote(rootfs)} && cd ${shellQuote(rootfs)} && ` +
        "touch home/u home/n && chown 1000:1000 home/u && chown 65534:65534 home/n",
      ]);
      const hostId = (containerId: number) => {
        const entry = mapper.uidMap.find((e) =>
          containerId >= e.containerId && containerId < e.containerId + e.size
        )!;
        return entry.hostId + containerId - entry.containerId;
      };
      assert.equal(Deno.statSync(`${rootfs}/home/u`).uid, hostId(1000));
      assert.equal(Deno.statSync(`${rootfs}/home/n`).uid, hostId(65534));
      assert.equal(Deno.statSync(`${rootfs}/bin/busybox`).uid, hostId(0));
      // Seen from a container on that root, the owners are the container's ids again.
      await runAsRoot(mapper, [
        "/bin/sh",
        "-c",
        `test "$(stat -c %u ${shellQuote(`${rootfs}/home/u`)})" = 1000`,
      ]);
      await runAsRoot(mapper, ["rm", "-rf", rootfs]);
      assert.throws(() => Deno.statSync(rootfs), Deno.errors.NotFound);
      Deno.removeSync(dir, { recursive: true });
    },
  });
}

{
  // tools/test-rootless gives sboxsub two ranges; podman maps all of them too.
  const name = "newRootSubid maps every /etc/subuid range: an id past the first range is one of the second";
  // The files themselves say whether the user has two ranges, not the code under test.
  const entries = (file: string) =>
    Deno.readTextFileSync(file).split("\n").filter((line) => line.split(":")[0] === Deno.env.get("USER"))
      .map((line) => ({ start: Number(line.split(":")[1]), count: Number(line.split(":")[2]) }));
  const [subuids, subgids] = hasSubordinateIds ? [entries("/etc/subuid"), entries("/etc/subgid")] : [[], []];
  const twoRanges = subuids.length >= 2 && subgids.length >= 2;
  if (!twoRanges) console.log(`skipping "${name}": needs a user with two /etc/subuid and /etc/subgid ranges`);
  Deno.test({
    name,
    ignore: !twoRanges,
    async fn() {
      const mapper = identityMapper();
      const dir = scratchDir("ranges-");
      // Container ids 1.. are the first range, then the second.
      const id = 1 + subuids[0].count + 7, gid = 1 + subgids[0].count + 7;
      await runAsRoot(mapper, [
        "/bin/sh",
        "-c",
        `touch ${shellQuote(`${dir}/f`)} && chown ${id}:${gid} ${shellQuote(`${dir}/f`)}`,
      ]);
      const st = Deno.statSync(`${dir}/f`);
      assert.equal(st.uid, subuids[1].start + 7);
      assert.equal(st.gid, subgids[1].start + 7);
      await runAsRoot(mapper, ["rm", "-rf", dir]);
    },
  });
}

Deno.test("runAsRoot and runAsUser: the command and its children die with their caller, killed with SIGKILL", async () => {
  // As root and, where there are more ids, as uid 1000: a change of ids
  // clears the parent-death signal, so it is set again after it.
  for (const uid of canMapManyIds ? [0, 1000] : [0]) {
    // In the sleep's own argument too: the shell's child must go as well.
    const marker = `60.${crypto.getRandomValues(new Uint32Array(1))[0]}`;
    const code = `
      import { runAsUser } from ${JSON.stringify(new URL("../mod.ts", import.meta.url).href)};
      import { identityMapper } from ${JSON.stringify(new URL("./fixtures.ts", import.meta.url).href)};
      await runAsUser(identityMapper(), ${uid}, ${uid}, ["/bin/sh", "-c", "echo started; sleep ${marker}; :"]);
    `;
    const child = new Deno.Command(Deno.execPath(), {
      args: ["eval", code],
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const reader = child.stdout.getReader();
    let out = "";
    while (!out.includes("started\n")) {
      const { value, done } = await reader.read();
      assert.ok(!done, `the command did not start: ${out}`);
      out += text(value);
    }
    child.kill("SIGKILL");
    await child.status;
    reader.releaseLock();
    await child.stdout.cancel();
    const orphans = () =>
      [...Deno.readDirSync("/proc")].filter((e) => /^\d+$/.test(e.name)).filter((e) => {
        try {
          return Deno.readTextFileSync(`/proc/${e.name}/cmdline`).includes(marker);
        } catch {
          return false;
        }
      }).map((e) => e.name);
    for (let i = 0; i < 50 && orphans().length > 0; i++) await new Promise((r) => setTimeout(r, 20));
    const left = orphans();
    for (const pid of left) Deno.kill(Number(pid), "SIGKILL");
    assert.deepEqual(left, [], `uid ${uid}: the command outlived its caller`);
  }
});

Deno.test("runAsRoot: the command dies of a signal it does not handle, sent to it or to its pid 1", async () => {
  // In a pid namespace of its own the command must not be pid 1, which the
  // kernel shields from such signals (Ctrl-C, SIGTERM did nothing).
  for (const target of ["command", "pid 1"] as const) {
    const marker = `30.${crypto.getRandomValues(new Uint32Array(1))[0]}`;
    const run = runAsRoot(identityMapper(), ["sleep", marker]).then(() => "ended", (err) => String(err));
    let pids: number[] = [];
    while ((pids = processesWith(marker)).length === 0) await new Promise((r) => setTimeout(r, 5));
    const [command] = pids;
    const parent = Number(/^PPid:\s+(\d+)$/m.exec(Deno.readTextFileSync(`/proc/${command}/status`))![1]);
    Deno.kill(target === "command" ? command : parent, target === "command" ? "SIGTERM" : "SIGINT");
    const outcome = await run;
    assert.match(
      outcome,
      new RegExp(`sleep ${marker} was killed by ${target === "command" ? "SIGTERM" : "SIGINT"}`),
      target,
    );
  }
});

Deno.test("runAsRoot: files written as container root belong to the caller and can be removed", async () => {
  const dir = scratchDir("own-");
  await runAsRoot(identityMapper(), [
    "/bin/sh",
    "-c",
    `cd ${shellQuote(dir)} && mkdir tree && echo x > tree/file`,
  ]);
  assert.equal(Deno.statSync(`${dir}/tree/file`).uid, Deno.uid());
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("setgroups: newgidmap's choice matches the mapper's, so a container starts", async () => {
  for (
    const mapper of [BinNewIdMapper.newRoot(), ...(hasSubordinateIds || isRoot ? [identityMapper()] : [])]
  ) {
    await using setup = await busyboxContainer({ userMapper: mapper, cgroup: false });
    if (!mapper.setgroupsAllowed) {
      // No process can change its groups: an empty list would be a lie
      // (the caller's groups stay), so it is refused as any other.
      await assert.rejects(
        () => setup.container.start({ command: ["/bin/true"], groups: [] }),
        /^SboxError: invalid option groups: this user mapper denies setgroups, so processes keep the caller's supplementary groups: leave groups out$/,
      );
    }
    const init = await setup.container.start({
      command: ["/bin/cat", "/proc/self/setgroups"],
      stdout: "piped",
    });
    const output = await init.output();
    assert.equal(output.code, 0);
    assert.equal(text(output.stdout).trim(), mapper.setgroupsAllowed ? "allow" : "deny");
  }
});

Deno.test("supplementaryGroups: the user's own processes keep the user's groups, root's and other ids' have none", () => {
  const subordinate = [{ containerId: 0, hostId: 1000, size: 1 }, {
    containerId: 1,
    hostId: 100000,
    size: 65536,
  }];
  const keepId = [{ containerId: 0, hostId: 100000, size: 1000 }, {
    containerId: 1000,
    hostId: 1000,
    size: 1,
  }];
  const mapper = (map: IdMapEntry[], setgroupsAllowed = true) => ({
    uidMap: map,
    gidMap: map,
    setgroupsAllowed,
    map() {},
  });
  const user = { euid: 1000 };
  assert.equal(supplementaryGroups(mapper(subordinate), 0, undefined, user), undefined); // container root: the user
  assert.equal(supplementaryGroups(mapper(keepId), 1000, undefined, user), undefined); // --keep-id: the user
  assert.deepEqual(supplementaryGroups(mapper(subordinate), 1000, undefined, user), []); // -u 1000: host 100999
  assert.deepEqual(supplementaryGroups(mapper(keepId), 0, undefined, user), []); // container root of keep-id maps
  // Root: none, whatever the process (a judge's -u 1000, and root itself).
  const identity = [{ containerId: 0, hostId: 0, size: 65536 }];
  assert.deepEqual(supplementaryGroups(mapper(identity), 0, undefined, { euid: 0 }), []);
  assert.deepEqual(supplementaryGroups(mapper(identity), 1000, undefined, { euid: 0 }), []);
  // Asked for: exactly those. setgroups denied: nothing can change them.
  assert.deepEqual(supplementaryGroups(mapper(subordinate), 0, [5], user), [5]);
  assert.equal(supplementaryGroups(mapper([subordinate[0]], false), 0, undefined, user), undefined);
});

{
  const name =
    "a command that is the user keeps the user's supplementary groups: a group-shared directory reads as on the host";
  Deno.test({
    name,
    ignore: skipWithoutRootlessFixture(ROOTLESS_FIXTURES.groupDir, name),
    async fn() {
      const dir = ROOTLESS_FIXTURES.groupDir;
      // On the host the user reads it through the group alone (0750, 0640, root's).
      assert.equal(Deno.readTextFileSync(`${dir}/f`), "shared\n");
      // With subordinate ids setgroups([]) took the groups: EACCES for
      // container root on the host's root and through a bind, and for
      // --keep-id, the layout it is for. Without them the kernel kept them.
      const runs = [
        ["--", "cat", `${dir}/f`],
        ["--bind", `${dir}:/work`, "--", "cat", "/work/f"],
        ["--keep-id", "--bind", `${dir}:/work`, "-w", "/work", "--", "cat", "f"],
      ];
      for (const args of runs) {
        const result = await sboxOnHost(args);
        assert.equal(result.code, 0, `${args.join(" ")}: ${result.stderr}`);
        assert.equal(result.stdout, "shared\n", args.join(" "));
      }
      // runAsRoot, as the user too: it unpacks a tar that the group may read.
      await runAsRoot(pickUserMapper().mapper, ["/bin/sh", "-c", `cat ${dir}/f >/dev/null`]);
      if (!hasSubordinateIds) return;
      // Another id is not the user: none of the user's groups.
      const other = await sboxOnHost(["-u", "1000", "--", "cat", "/proc/self/status"]);
      assert.equal(other.code, 0, other.stderr);
      assert.match(other.stdout, /^Groups:\s*$/m);
    },
  });
}

{
  const name = "sbox run as root gives the command no supplementary groups, -u or not";
  Deno.test({
    name,
    ignore: !isRoot,
    async fn() {
      for (const args of [[], ["-u", "1000"]]) {
        const result = await sbox([...args, "--", "cat", "/proc/self/status"]);
        assert.equal(result.code, 0, result.stderr);
        assert.match(result.stdout, /^Groups:\s*$/m, args.join(" "));
      }
    },
  });
}

{
  const name = "the library's errors for what a user may not do say what the user may: a cgroup, an id map";
  Deno.test({
    name,
    ignore: skipAsRoot(name),
    async fn() {
      // A cgroup where the user may not make one (the hierarchy's root is
      // root's): what the CLI says too, how root delegates one.
      const denied = new Cgroup(findCgroup2Mount(), `sbox-rootless-denied-${Deno.pid}`);
      assert.throws(
        () => denied.create(),
        (err: unknown) => {
          assert.ok(err instanceof SboxError && err.errno === "EACCES", String(err));
          assert.equal(
            err.message,
            `cannot create cgroup ${denied.path}: EACCES (Permission denied): uid ${Deno.uid()} may create ` +
              `cgroups only below one delegated to it (as root, chown it and its cgroup.procs, ` +
              `cgroup.subtree_control and cgroup.threads to uid ${Deno.uid()}, as systemd's Delegate=yes does; ` +
              "docs/rootless.md); a Container needs none: without one its processes stay in the caller's cgroup",
          );
          return true;
        },
      );
      // Ids that are not the user's own, written by the user: the kernel's
      // bare EPERM, now with what a user may map and how to get more.
      const mapper = new ProcUserMapper({
        uidMap: [{ containerId: 0, hostId: 0, size: 65536 }],
        gidMap: [{ containerId: 0, hostId: 0, size: 65536 }],
      });
      await assert.rejects(
        () => runAsRoot(mapper, ["/bin/true"]),
        new RegExp(
          `^SboxError: cannot write /proc/\\d+/uid_map: EPERM \\(Operation not permitted\\): a user may map only ` +
            `their own uid and gid this way, one id each \\(here uid ${Deno.uid()}, gid ${Deno.gid()}\\), not host ` +
            "uids 0-65535: give the user /etc/subuid and /etc/subgid entries for more ids \\(docs/rootless.md\\), " +
            "and map them with BinNewIdMapper, which runs newuidmap and newgidmap$",
        ),
      );
    },
  });
}

{
  const name =
    "a --cgroup the user may not use fails with 125 naming what to delegate, with or without a limit";
  Deno.test({
    name,
    ignore: skipAsRoot(name),
    async fn() {
      const root = findCgroup2Mount();
      // It was run without one, silently (only --verbose said so): no
      // accounting, no kill, none of its limits.
      const cases: [string[], RegExp][] = [
        [[], /^sbox: --cgroup \S+ cannot be used: uid \d+ may not create cgroups in .*delegate it/],
        [["--pids", "10"], /^sbox: --pids needs a cgroup, but uid \d+ may not create cgroups in .*delegate/],
      ];
      for (const [limits, message] of cases) {
        const result = await sbox(["--cgroup", root, ...limits, "--", "echo", "ran"]);
        assert.equal(result.code, 125, result.stderr);
        assert.equal(result.stdout, "");
        assert.match(result.stderr, message);
      }
    },
  });
}

{
  const name =
    "--cgroup a group the user made below the delegated one that sbox runs in: the kernel allows the move, so sbox does";
  Deno.test({
    name,
    ignore: skipAsRoot(name),
    async fn() {
      // tools/test-rootless starts the tests in the user's delegated cgroup.
      const own = Cgroup.current();
      if (Deno.statSync(own.path).uid !== Deno.uid()) {
        console.log(`skipping "${name}": ${own.path} is not delegated to this user`);
        return;
      }
      // sbox (in `own`) starts the container in jobs/sbox-...: the common
      // ancestor of the two is `own`, whose cgroup.procs is the user's, as
      // the kernel asks. It was refused: sbox's cgroup "is outside" jobs.
      const jobs = own.child(`jobs-${Deno.pid}`);
      jobs.create();
      try {
        const result = await sbox(["--cgroup", jobs.path, "--time", "10s", "--verbose", "--", "echo", "ran"]);
        assert.equal(result.code, 0, result.stderr);
        assert.equal(result.stdout, "ran\n");
        assert.match(result.stderr, new RegExp(`^sbox: cgroup: ${jobs.path}/sbox-\\d+-`, "m"));
      } finally {
        await jobs.remove();
      }
    },
  });
}

{
  const name =
    "sbox run without a cgroup of its own: the report's CPU time and peak memory are pid 1's getrusage";
  Deno.test({
    name,
    ignore: skipAsRoot(name),
    async fn() {
      // A cgroup of the user's that sbox may not create cgroups in (its
      // directory not writable): sbox, started in it, runs without one.
      const closed = Cgroup.current().child(`sbox-rootless-closed-${Deno.pid}`);
      closed.create();
      Deno.chmodSync(closed.path, 0o555);
      try {
        const busy =
          "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; head -c 32m /dev/zero | tail >/dev/null";
        const sboxRun = [Deno.execPath(), "run", "--allow-ffi", SBOX, "run", "--verbose", "--report", "-"]
          .map(shellQuote).join(" ");
        const output = await new Deno.Command("/bin/sh", {
          args: [
            "-c",
            `echo $$ > ${closed.path}/cgroup.procs && exec ${sboxRun} -- /bin/sh -c ${shellQuote(busy)}`,
          ],
          stdin: "null",
          stdout: "piped",
          stderr: "piped",
          signal: AbortSignal.timeout(COMMAND_TIMEOUT_MS),
        }).output();
        const stderr = text(output.stderr);
        assert.equal(output.code, 0, stderr);
        assert.match(
          stderr,
          new RegExp(`^sbox: cgroup: none \\(uid \\d+ may not create cgroups in ${closed.path}\\)$`, "m"),
        );
        const report = JSON.parse(stderr.trimEnd().split("\n").at(-1)!);
        const { usageUsec, userUsec, systemUsec } = report.cpu;
        // Tenths of a second of the shell's loop, which cpu.stat is not there to count.
        assert.ok(userUsec > 10_000 && usageUsec === userUsec + systemUsec, JSON.stringify(report));
        assert.ok(report.maxRssBytes >= 32 << 20 && report.maxRssBytes < 48 << 20, JSON.stringify(report));
        assert.equal(report.memoryPeakBytes, null);
      } finally {
        Deno.removeSync(closed.path);
      }
    },
  });
}

{
  const name = "a -w directory below a host directory of an unmapped owner fails with one line that says why";
  Deno.test({
    name,
    ignore: skipAsRoot(name),
    async fn() {
      // On the host's root: /var/tmp is root's, and its overlay cannot copy
      // it up under the user's id map (EOVERFLOW).
      const result = await sboxOnHost(["-w", `/var/tmp/sbox-rootless-${Deno.pid}/new`, "--", "pwd"]);
      assert.equal(result.code, 125, result.stderr);
      assert.match(
        result.stderr,
        /^sbox: cannot create directory .*: EOVERFLOW .* outside the container's id map/,
      );
    },
  });
}

{
  const name =
    "the default root is the host's as the user sees it; writes vanish, other owners' files stay closed";
  Deno.test({
    name,
    ignore: skipAsRoot(name),
    async fn() {
      const tag = `sbox-rootless-${Deno.pid}-${Date.now()}`;
      // A file of the user's own, below directories of other owners (root's /var/tmp, ...).
      const dir = scratchDir("hostroot-");
      Deno.writeTextFileSync(`${dir}/mine`, "host\n");
      const script = [
        // The tmpfs root and the top of every overlay belong to container root, the user.
        `echo top > /${tag} && echo usr > /usr/${tag} && cat /${tag} /usr/${tag}`,
        "hostname; echo $$; id -u; ls -A /tmp | wc -l",
        // Host files of other owners show as the overflow id and keep their modes.
        "stat -c %u:%a /etc/passwd",
        "(echo x >> /etc/passwd) 2>&1 || echo refused",
        // A copy-up needs the parents' owners, which the user cannot set.
        `(echo container >> ${dir}/mine) 2>&1 || echo refused`,
        "ls /root >/dev/null 2>&1 && echo listed || echo refused",
        // HOME: /root, which a user cannot search on the host, can be written.
        'mkdir "$HOME/.cache" && echo "$HOME" writable',
      ].join("; ");
      const result = await sboxOnHost(["--", "/bin/sh", "-c", script]);
      const { stdout, stderr } = result;
      assert.equal(result.code, 0, stderr);
      const lines = stdout.trimEnd().split("\n");
      assert.deepEqual(lines.slice(0, 6), ["top", "usr", "sbox", "2", "0", "0"], stdout);
      const passwdMode = (Deno.statSync("/etc/passwd").mode! & 0o777).toString(8);
      assert.deepEqual(lines.slice(6, 9), [
        `65534:${passwdMode}`,
        "/bin/sh: 1: cannot create /etc/passwd: Permission denied",
        "refused",
      ]);
      // The top-level directory itself is the overlay's own (no copy-up); below it,
      // a directory of another owner on the way makes the copy-up fail.
      const parts = dir.split("/").filter(Boolean);
      const foreignParent = parts.slice(1).some((_, i) =>
        Deno.statSync(`/${parts.slice(0, i + 2).join("/")}`).uid !== Deno.uid()
      );
      if (foreignParent) {
        assert.deepEqual(lines.slice(9, 11), [
          `/bin/sh: 1: cannot create ${dir}/mine: Value too large for defined data type`,
          "refused",
        ]);
      }
      // Listing /root fails where the user may search it on the host but not
      // read it; one it may not search at all is the container's own, empty.
      const rootMode = Deno.statSync("/root").mode! & 0o005;
      assert.equal(lines.at(-2), rootMode === 0o001 ? "refused" : "listed", stdout);
      assert.equal(lines.at(-1), "/root writable", stderr);
      // Nothing reached the host.
      assert.throws(() => Deno.statSync(`/${tag}`), Deno.errors.NotFound);
      assert.throws(() => Deno.statSync(`/usr/${tag}`), Deno.errors.NotFound);
      assert.ok(!Deno.readTextFileSync("/etc/passwd").endsWith("x\n"), "the host's /etc/passwd changed");
      assert.equal(Deno.readTextFileSync(`${dir}/mine`), "host\n");
      Deno.removeSync(dir, { recursive: true });
    },
  });
}

{
  const name = "BinNewIdMapper: the maps configured are the container's, seen from the host as mapped ids";
  Deno.test({
    name,
    ignore: skipAsRoot(name) || skipWithoutManyIds(name),
    async fn() {
      const sub = identityMapper().uidMap[1].hostId;
      const subGid = identityMapper().gidMap[1].hostId;
      const mapper = new BinNewIdMapper({
        uidMap: [{ containerId: 0, hostId: Deno.uid()!, size: 1 }, {
          containerId: 1000,
          hostId: sub + 10,
          size: 10,
        }],
        gidMap: [{ containerId: 0, hostId: Deno.gid()!, size: 1 }, {
          containerId: 1000,
          hostId: subGid + 20,
          size: 5,
        }],
      });
      await using setup = await busyboxContainer({ userMapper: mapper, cgroup: false });
      const init = await setup.container.start({ command: ["/bin/sleep", "100"] });
      const probe = await setup.container.exec(init, {
        command: ["/bin/sh", "-c", "cat /proc/self/uid_map /proc/self/gid_map; exec sleep 100"],
        uid: 1004,
        gid: 1001,
        stdout: "piped",
      });
      const reader = probe.stdout!.getReader();
      let out = "";
      while (out.split("\n").length < 5) out += text((await reader.read()).value!);
      reader.releaseLock();
      assert.deepEqual(out.trim().split("\n").map((l) => l.trim().split(/\s+/).join(" ")), [
        `0 ${Deno.uid()} 1`,
        `1000 ${sub + 10} 10`,
        `0 ${Deno.gid()} 1`,
        `1000 ${subGid + 20} 5`,
      ]);
      const status = Deno.readTextFileSync(`/proc/${probe.pid}/status`);
      assert.match(
        status,
        new RegExp(`^Uid:\\s+${sub + 14}\\s+${sub + 14}\\s+${sub + 14}\\s+${sub + 14}$`, "m"),
      );
      assert.match(status, new RegExp(`^Gid:\\s+${subGid + 21}(\\s+${subGid + 21}){3}$`, "m"));
      probe.kill("SIGKILL");
      await probe.status;
    },
  });
}

{
  const name =
    "sbox run without --rootfs: a directory the user may not list, with a mount below it, shows empty";
  const { privateDir } = ROOTLESS_FIXTURES;
  Deno.test({
    name,
    ignore: skipWithoutRootlessFixture(privateDir, name),
    async fn() {
      // The sbox run without --rootfs, of this user.
      const result = await sboxOnHost(["--", "/bin/sh", "-c", `ls -A ${privateDir}; echo listed`]);
      assert.equal(result.code, 0, result.stderr);
      // Empty: what is below it is not the user's to see.
      assert.equal(result.stdout, "listed\n");
    },
  });
}

Deno.test("subordinateRanges: an unreadable file is an error that says so, a missing one means no entry", () => {
  const dir = scratchDir("subuid-");
  try {
    // A directory: unreadable for root too (EISDIR), as a 0600 file is for a user.
    assert.throws(
      () => subordinateRanges(dir, 4242),
      (err: unknown) =>
        err instanceof SboxError && err.errno === "EISDIR" &&
        /cannot read .*subuid-.*: EISDIR.*, so the subordinate ids of 4242 are unknown/.test(err.message),
    );
    assert.throws(
      () => subordinateRanges(`${dir}/missing`, 4242),
      /no subordinate ids for 4242 in .*missing/,
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("pickUserMapper warns when a user's subordinate ids exist but cannot be used, not when there are none", () => {
  const dir = scratchDir("subuid-");
  try {
    // A user no passwd file names: newuidmap takes its entries by number.
    const me = { euid: 4242, gid: 4343 };
    const files = { subuid: `${dir}/subuid`, subgid: `${dir}/subgid` };
    const write = (file: string, entry: string | null) => {
      try {
        Deno.removeSync(file, { recursive: true });
      } catch {
        // not there
      }
      if (entry === "dir") Deno.mkdirSync(file);
      else if (entry !== null) Deno.writeTextFileSync(file, entry + "\n");
    };
    const picked = (subuid: string | null, subgid: string | null) => {
      write(files.subuid, subuid);
      write(files.subgid, subgid);
      return pickUserMapper(me, files);
    };

    const usable = picked("4242:200000:65536", "4242:300000:65536");
    assert.ok(usable.mapper instanceof BinNewIdMapper);
    assert.deepEqual(usable.mapper.uidMap, [
      { containerId: 0, hostId: 4242, size: 1 },
      { containerId: 1, hostId: 200000, size: 65536 },
    ]);
    assert.deepEqual(usable.mapper.gidMap, [
      { containerId: 0, hostId: 4343, size: 1 },
      { containerId: 1, hostId: 300000, size: 65536 },
    ]);
    assert.equal(usable.warning, undefined);

    // Every range, one after another in the file's order; those the kernel
    // would refuse are left out: the own id, an overlap, past the last id.
    const several = picked(
      [
        "4242:200000:65536",
        "4242:1000:65536",
        "4242:210000:10",
        "4242:4294967000:1000",
        "other:500000:100",
        "4242:100000:1000",
      ].join("\n"),
      "4242:300000:65536\n4242:400000:5",
    );
    assert.ok(several.mapper instanceof BinNewIdMapper);
    assert.deepEqual(several.mapper.uidMap, [
      { containerId: 0, hostId: 4242, size: 1 },
      { containerId: 1, hostId: 200000, size: 65536 },
      { containerId: 65537, hostId: 100000, size: 1000 },
    ]);
    assert.deepEqual(several.mapper.gidMap, [
      { containerId: 0, hostId: 4343, size: 1 },
      { containerId: 1, hostId: 300000, size: 65536 },
      { containerId: 65537, hostId: 400000, size: 5 },
    ]);
    assert.equal(several.warning, undefined);
    assert.match(several.description, /uids 1-65536 are 200000-265535, 65537-66536 are 100000-100999, gids /);

    // The kernel takes a map of less than a page of text: 200 ranges are cut
    // there, where newuidmap's write failed with EINVAL.
    const many = picked(
      Array.from({ length: 200 }, (_, i) => `4242:${1000000 + i * 100000}:65536`).join("\n"),
      "4242:300000:65536",
    );
    assert.ok(many.mapper instanceof BinNewIdMapper);
    const text = many.mapper.uidMap.map((e) => `${e.containerId} ${e.hostId} ${e.size}\n`).join("");
    assert.ok(
      many.mapper.uidMap.length > 100 && text.length < 4096,
      `${many.mapper.uidMap.length}, ${text.length}`,
    );
    assert.throws(
      () =>
        new ProcUserMapper({
          uidMap: many.mapper.uidMap.concat([{ containerId: 4e9, hostId: 9e8, size: 1 }]),
          gidMap: [],
        }),
      /invalid option uidMap: 4\d\d\d bytes as text, and the kernel takes at most 4095/,
    );

    // Nothing asked for: root only, quietly (--verbose says why).
    for (const none of [picked(null, null), picked("other:200000:65536", "4242:300000:65536")]) {
      assert.ok(none.mapper instanceof ProcUserMapper);
      assert.deepEqual(none.mapper.uidMap, [{ containerId: 0, hostId: 4242, size: 1 }]);
      assert.equal(none.warning, undefined);
      assert.match(none.description, /only container root, .*no subordinate ids for 4242/);
    }

    const unusable: [string | null, string | null, RegExp][] = [
      // The range holds the user's own uid: newuidmap would map it twice.
      ["4242:1000:65536", "4242:300000:65536", /each holds uid 4242 .*first: 1000-66535.*check the entries/],
      ["4242:4294967000:1000", "4242:300000:65536", /goes past the last id.*check the entries/],
      ["4242:200000:65536", "4242:1:5000", /no subordinate gid range can be mapped.*check the entries/],
      ["4242:200000:65536", null, /no subordinate ids for 4242 in .*subgid/],
      [
        "dir",
        "4242:300000:65536",
        /cannot read .*subuid: EISDIR.*make \/etc\/subuid and \/etc\/subgid readable/,
      ],
    ];
    for (const [subuid, subgid, why] of unusable) {
      const result = picked(subuid, subgid);
      assert.ok(result.mapper instanceof ProcUserMapper, `${subuid} / ${subgid}`);
      assert.match(result.warning ?? "", /^the subordinate ids cannot be used, so only container root/);
      assert.match(result.warning ?? "", why);
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("BinNewIdMapper: newuidmap's own reason for refusing is in the error", async () => {
  // A pid that names no process: newuidmap refuses it for root too.
  const mapper = new BinNewIdMapper({
    uidMap: [{ containerId: 0, hostId: Deno.uid()!, size: 1 }],
    gidMap: [{ containerId: 0, hostId: Deno.gid()!, size: 1 }],
  });
  const noProcess = 4194304 + 1; // above pid_max's highest value
  await assert.rejects(
    () => mapper.map(noProcess),
    (err: unknown) =>
      err instanceof SboxError && err.step === "user" &&
      new RegExp(`^/\\S*newuidmap ${noProcess} 0 ${Deno.uid()} 1 exited with 1: \\S*newuidmap: .+`).test(
        err.message,
      ),
  );
});

Deno.test("subordinateRanges reads /etc/subuid as newuidmap does: lines that are not OWNER:START:COUNT are skipped", () => {
  const dir = scratchDir("subuid-");
  try {
    const uid = Deno.uid()!;
    const name = uid === 0 ? "root" : String(uid);
    const file = `${dir}/subuid`;
    Deno.writeTextFileSync(
      file,
      [
        `${name}::65536`,
        ` ${name}:100000:65536`,
        `${name}:1e5:65536`,
        `${name}:abc:65536`,
        `${name}:200000:0`,
      ]
        .concat([`${name}:300000:65536`, `${name}:400000:65536`]).join("\n") + "\n",
    );
    assert.deepEqual(subordinateRanges(file, uid), [{ start: 300000, count: 65536 }, {
      start: 400000,
      count: 65536,
    }]);
    Deno.writeTextFileSync(file, `${name}:1e5:65536\n`);
    assert.throws(() => subordinateRanges(file, uid), /no subordinate ids for .* in .*subuid/);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

// newuidmap of shadow-utils 4.13 (Debian 12) was tried with each of these
// lines in a mount namespace's own /etc/subuid: "0100000:65536" let it map
// 32768, not 100000, "0x10000:65536" 100000 (65536 + 34464), " 100000" and
// "+100000" 100000, "100000:0x10" 100000 to 100015 only.
Deno.test("subordinateRanges reads numbers as newuidmap does: strtoul with base 0, octal and hexadecimal too", () => {
  const dir = scratchDir("subuid-");
  try {
    const uid = Deno.uid()!;
    const name = uid === 0 ? "root" : String(uid);
    const file = `${dir}/subuid`;
    Deno.writeTextFileSync(
      file,
      [
        `${name}:0100000:65536`,
        `${name}:0x200000:0X100`,
        `${name}: +300000:010`,
        // Not numbers to strtoul as a whole: skipped, as newuidmap skips them.
        `${name}:0100009:65536`,
        `${name}:-1:65536`,
        `${name}:400000 :65536`,
        `${name}:0x:65536`,
        `${name}:500000:65536:extra`,
      ].join("\n") + "\n",
    );
    assert.deepEqual(subordinateRanges(file, uid), [
      { start: 32768, count: 65536 },
      { start: 0x200000, count: 256 },
      { start: 300000, count: 8 },
    ]);
    assert.equal(parseSubordinateId("0"), 0);
    assert.equal(parseSubordinateId("99999999999"), 2 ** 32);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("keepIdMaps: the user's own ids stay, the subordinate ranges fill the others from 0 around them", () => {
  const own = { uid: 4242, gid: 4343 };
  const maps = keepIdMaps(own, [{ start: 200000, count: 65536 }], [
    { start: 300000, count: 1000 },
    { start: 400000, count: 5000 },
  ]);
  assert.deepEqual(maps.uidMap, [
    { containerId: 0, hostId: 200000, size: 4242 },
    { containerId: 4242, hostId: 4242, size: 1 },
    { containerId: 4243, hostId: 204242, size: 61294 },
  ]);
  // The first range ends before the own gid: the second is split around it.
  assert.deepEqual(maps.gidMap, [
    { containerId: 0, hostId: 300000, size: 1000 },
    { containerId: 1000, hostId: 400000, size: 3343 },
    { containerId: 4343, hostId: 4343, size: 1 },
    { containerId: 4344, hostId: 403343, size: 1657 },
  ]);
  // An own id past every range stays where it is; a range that holds it is left out.
  assert.deepEqual(
    keepIdMaps({ uid: 70000, gid: 70000 }, [{ start: 60000, count: 20000 }, {
      start: 100000,
      count: 10,
    }], [{ start: 100000, count: 10 }]).uidMap,
    [
      { containerId: 0, hostId: 100000, size: 10 },
      { containerId: 70000, hostId: 70000, size: 1 },
    ],
  );
  assert.throws(
    () => keepIdMaps(own, [{ start: 4000, count: 1000 }], [{ start: 300000, count: 10 }]),
    /no subordinate uid range can be mapped: each holds uid 4242 \(the same id inside already\)/,
  );
  // The setup keeps the user's ids wherever the maps have them, and becomes
  // container root only for the IPC sysctls, where there is a root.
  const me = { euid: 4242, egid: 4343 };
  assert.deepEqual(setupIds(maps, me), { uid: undefined, gid: undefined });
  assert.equal(setupUidBesideRoot(maps, me), 4242);
  const single = [{ containerId: 4242, hostId: 4242, size: 1 }];
  const onlyOwn = { uidMap: single, gidMap: single };
  assert.deepEqual(setupIds(onlyOwn, { euid: 4242, egid: 4242 }), { uid: undefined, gid: undefined });
  assert.equal(setupUidBesideRoot(onlyOwn, { euid: 4242, egid: 4242 }), undefined);
  const root = [{ containerId: 0, hostId: 4242, size: 1 }, { containerId: 1, hostId: 200000, size: 10 }];
  const rootMaps = { uidMap: root, gidMap: root };
  assert.deepEqual(setupIds(rootMaps, { euid: 4242, egid: 4242 }), { uid: undefined, gid: undefined });
  assert.equal(setupUidBesideRoot(rootMaps, { euid: 4242, egid: 4242 }), undefined);
  // A caller the maps leave out (root with a user's keep-id maps) takes their lowest ids: root.
  assert.deepEqual(setupIds(maps, { euid: 0, egid: 0 }), { uid: 0, gid: 0 });
  assert.equal(setupUidBesideRoot(maps, { euid: 0, egid: 0 }), undefined);
  assert.deepEqual(setupIds(onlyOwn, { euid: 0, egid: 0 }), { uid: 4242, gid: 4242 });
});

Deno.test("pickUserMapper with keep-id: newuidmap's keep-id maps with subordinate ids, the own ids alone without", () => {
  const dir = scratchDir("subuid-");
  try {
    const me = { euid: 4242, gid: 4343 };
    const files = { subuid: `${dir}/subuid`, subgid: `${dir}/subgid` };
    Deno.writeTextFileSync(files.subuid, "4242:200000:65536\n");
    Deno.writeTextFileSync(files.subgid, "4242:300000:65536\n");
    const withIds = pickUserMapper(me, files, true);
    assert.ok(withIds.mapper instanceof BinNewIdMapper);
    const range = (start: number) => [{ start, count: 65536 }];
    assert.deepEqual(
      withIds.mapper.uidMap,
      keepIdMaps({ uid: 4242, gid: 4343 }, range(200000), range(300000)).uidMap,
    );
    assert.match(
      withIds.description,
      /^newuidmap\/newgidmap, keep-id: uid 4242 gid 4343 are the same ids inside; uids 0-4241 are 200000-204241, 4243-65536 are 204242-265535, gids 0-4342 are 300000-304342, /,
    );
    Deno.removeSync(files.subuid);
    const without = pickUserMapper(me, files, true);
    assert.ok(without.mapper instanceof ProcUserMapper);
    assert.deepEqual(without.mapper.uidMap, [{ containerId: 4242, hostId: 4242, size: 1 }]);
    assert.deepEqual(without.mapper.gidMap, [{ containerId: 4343, hostId: 4343, size: 1 }]);
    assert.match(
      without.description,
      /^only uid 4242 gid 4343, the same ids inside, and no container root, so the kernel's IPC limits stay/,
    );
    assert.equal(without.warning, undefined);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

{
  // As root, maps such as a user's: ids 1000 are the "user", 100000.. the subordinate ids.
  const name =
    "Container with keep-id maps: the command runs as the user's own id; IPC limits where there is a root";
  const mappers: [string, () => UserMapper][] = isRoot
    ? [
      ["own id only", () => ProcUserMapper.keepId(1000, 1000)],
      ["subordinate ids", () => {
        const range = [{ start: 100000, count: 65536 }];
        return new ProcUserMapper(keepIdMaps({ uid: 1000, gid: 1000 }, range, range));
      }],
    ]
    : [
      ["own id only", () => ProcUserMapper.keepId()],
      ...(hasSubordinateIds
        ? [["subordinate ids", () => BinNewIdMapper.keepIdSubid()] as [string, () => UserMapper]]
        : []),
    ];
  Deno.test(name, async () => {
    const [uid, gid] = isRoot ? [1000, 1000] : [Deno.uid()!, Deno.gid()!];
    for (const [kind, mapper] of mappers) {
      const userMapper = mapper();
      const project = scratchDir("keepid-");
      if (isRoot) Deno.chownSync(project, uid, gid);
      await using setup = await busyboxContainer({
        userMapper,
        cgroup: false,
        mounts: [new BindMount(project, "/w")],
      });
      // As root, the layers are root's, an id these maps leave out; a user's are the user's.
      if (isRoot) {
        for (const dir of ["", "/root", "/upper", "/work"]) Deno.chownSync(`${setup.dir}${dir}`, uid, gid);
      }
      const init = await setup.container.start({
        command: ["/bin/sh", "-c", "id -u; id -g; cat /proc/sys/kernel/shmmax; touch /w/made"],
        uid,
        gid,
        stdout: "piped",
        stderr: "piped",
      });
      const output = await init.output();
      assert.equal(output.code, 0, `${kind}: ${text(output.stderr)}`);
      const [idU, idG, shmmax] = text(output.stdout).trim().split("\n");
      assert.deepEqual([idU, idG], [String(uid), String(gid)], kind);
      const made = Deno.statSync(`${project}/made`);
      assert.deepEqual([made.uid, made.gid], [uid, gid], kind);
      // The setup wrote the IPC limits as container root, where the maps have one.
      if (kind === "subordinate ids") assert.equal(shmmax, IPC_LIMITS["kernel/shmmax"], kind);
      Deno.removeSync(project, { recursive: true });
    }
  });
}

{
  const name =
    "sbox run --keep-id: the command is the caller's uid and gid, writes a bound directory as the caller, and may refuse root";
  Deno.test({
    name,
    ignore: skipAsRoot(name),
    async fn() {
      const project = scratchDir("keepid-");
      // What initdb, makepkg and test suites do: refuse to run as root.
      const script = '[ "$(id -u)" != 0 ] || { echo "refusing root" >&2; exit 3; }; id -u; id -g; touch made';
      const result = await sbox([
        "--keep-id",
        "--bind",
        `${project}:/w`,
        "-w",
        "/w",
        "--",
        "/bin/sh",
        "-c",
        script,
      ]);
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdout, `${Deno.uid()}\n${Deno.gid()}\n`);
      const made = Deno.statSync(`${project}/made`);
      assert.deepEqual([made.uid, made.gid], [Deno.uid(), Deno.gid()]);
      Deno.removeSync(project, { recursive: true });
    },
  });
}

{
  const name =
    "sbox run --keep-id reaches a bind source, and the host's root, below a directory only an ACL opens to the user";
  const { aclDir } = ROOTLESS_FIXTURES;
  Deno.test({
    name,
    ignore: skipWithoutRootlessFixture(aclDir, name),
    async fn() {
      const dir = Deno.makeTempDirSync({ dir: `${aclDir}/stick`, prefix: "keepid-acl-" });
      try {
        Deno.writeTextFileSync(`${dir}/data`, "on the stick\n");
        // The setup mounts both as the user, whom the ACL lets search
        // aclDir. With --keep-id it was container root, a subordinate id
        // the ACL does not name: "cannot bind ...: EACCES", 125.
        for (const options of [[], ["--keep-id"]]) {
          const script = "cat data; touch made";
          const bound = await sbox([
            ...options,
            "--bind",
            `${dir}:/w`,
            "-w",
            "/w",
            "--",
            "/bin/sh",
            "-c",
            script,
          ]);
          assert.equal(bound.code, 0, `[${options}] ${bound.stderr}`);
          assert.equal(bound.stdout, "on the stick\n");
          // The stick is a mount below a directory of the host's root: an overlay of its own.
          const onHost = await sboxOnHost([...options, "--", "cat", `${dir}/data`]);
          assert.equal(onHost.code, 0, `[${options}] ${onHost.stderr}`);
          assert.equal(onHost.stdout, "on the stick\n");
        }
        const made = Deno.statSync(`${dir}/made`);
        assert.deepEqual([made.uid, made.gid], [Deno.uid(), Deno.gid()]);
      } finally {
        Deno.removeSync(dir, { recursive: true });
      }
    },
  });
}

{
  const name = "sbox run --keep-id makes a missing -w, and a mount's parents, in the user's bind as the user";
  Deno.test({
    name,
    ignore: skipAsRoot(name),
    async fn() {
      const project = scratchDir("keepid-dirs-");
      // The setup makes a/b (the -w) and t/mnt (--tmpfs's target, with its
      // parent) in the user's project on the host. As container root they
      // were a subordinate id's: the command could not write its own working
      // directory, and the user could not remove them.
      const result = await sbox([
        "--keep-id",
        "--bind",
        `${project}:/w`,
        "-w",
        "/w/a/b",
        "--tmpfs",
        "/w/t/mnt",
        "--",
        "/bin/sh",
        "-c",
        "touch made && echo wrote",
      ]);
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdout, "wrote\n");
      for (const path of ["a", "a/b", "a/b/made", "t", "t/mnt"]) {
        const made = Deno.statSync(`${project}/${path}`);
        assert.deepEqual([made.uid, made.gid], [Deno.uid(), Deno.gid()], path);
      }
      // The user's own: removed without runAsRoot.
      Deno.removeSync(project, { recursive: true });
    },
  });
}

{
  const initdb = ["/usr/local/bin/initdb", "/usr/bin/initdb"].find((path) => {
    try {
      return Deno.statSync(path).isFile;
    } catch {
      return false;
    }
  });
  const name = "sbox run --keep-id runs PostgreSQL's initdb, which refuses root, on the host's root";
  Deno.test({
    name,
    ignore: skipAsRoot(name) || skipWithout(initdb ?? "/usr/bin/initdb", name, "PostgreSQL's initdb"),
    async fn() {
      const result = await sboxOnHost([
        "--keep-id",
        "--",
        "/bin/sh",
        "-c",
        `${initdb} --no-sync -D /tmp/db >/tmp/initdb.log 2>&1 && echo initialized || cat /tmp/initdb.log`,
      ]);
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdout, "initialized\n");
    },
  });
}

Deno.test("sbox run --keep-id is refused as root, and with a -u of another uid, with 125 before anything runs", async () => {
  const cases: [string[], RegExp][] = isRoot
    ? [[
      ["--keep-id"],
      /^sbox: invalid option --keep-id: sbox runs as root, .*use -u UID\[:GID\]|run as a user with -u UID/,
    ]]
    : [
      [
        ["--keep-id", "-u", "0"],
        /^sbox: invalid option --user: uid 0 with --keep-id, which runs the command as your own uid \d+/,
      ],
      [
        ["-u", `${Deno.uid()! + 1}:${Deno.gid()}`, "--keep-id"],
        /^sbox: invalid option --user: uid \d+ with --keep-id/,
      ],
    ];
  for (const [options, message] of cases) {
    const report = `${scratchDir("keepid-report-")}/report.json`;
    const result = await sbox([...options, "--report", report, "--", "echo", "ran"]);
    assert.equal(result.code, 125, result.stderr);
    assert.equal(result.stdout, "");
    assert.match(result.stderr, message);
    assert.equal(JSON.parse(Deno.readTextFileSync(report)).status, "XX");
    Deno.removeSync(report.slice(0, report.lastIndexOf("/")), { recursive: true });
  }
});
