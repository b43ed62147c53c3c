/**
 * Networking: `--net none|slirp4netns|pasta`, `--allow-host-loopback` and
 * `--publish`, through the command line and the library. Traffic goes only
 * to 127.0.0.1 and into namespaces the tests make: the checks that the
 * host's loopback is unreachable run sbox in a network namespace of their
 * own (root only), so that a connection to 10.0.2.2 cannot leave the machine.
 *
 * After every test no slirp4netns or pasta process of the test may be left.
 */

import assert from "node:assert/strict";
import { checkTunDevice, PastaManager, Slirp4NetnsManager } from "../src/network.ts";
import { SboxError } from "../src/error.ts";
import { Container } from "../src/container.ts";
import { BindMount } from "../src/mount.ts";
import { close, dupCloexec, pidfdOpen } from "../src/sys.ts";
import { findHostProgram } from "../src/user.ts";
import {
  busyboxContainer,
  busyboxImage,
  COMMAND_TIMEOUT_MS,
  commandAsNobody,
  identityMapper,
  isRoot,
  neutralProbe,
  sboxArgv,
  sboxOnBusybox,
  sboxOnBusyboxArgv,
  scratchDir,
  shellQuote,
  skipUnlessRoot,
  text,
} from "./fixtures.ts";
import { type CommandResult as Result, outputOf, runCommand } from "./command.ts";

const BACKENDS = ["slirp4netns", "pasta"] as const;
const MANAGERS = [["slirp4netns", Slirp4NetnsManager], ["pasta", PastaManager]] as const;

/** `deno run --allow-ffi sbox.ts run --rootfs <busybox> ARGS...` to the end. */
function busybox(args: string[]): Promise<Result> {
  return outputOf(sboxOnBusybox(args));
}

/** The parent of process `pid`, or undefined once it is gone. */
function parentOf(pid: string): string | undefined {
  try {
    // The fields after the command's name, which may hold spaces and ")".
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1];
  } catch {
    return undefined;
  }
}

/**
 * Pids of the slirp4netns and pasta processes running now below this test
 * process (started by the library here, or by an sbox command it runs):
 * another test run on the machine has daemons of its own.
 */
function networkDaemons(): Set<string> {
  const pids = new Set<string>();
  const ours = (pid: string) => {
    for (let p: string | undefined = parentOf(pid); p !== undefined && p !== "0"; p = parentOf(p)) {
      if (p === String(Deno.pid)) return true;
    }
    return false;
  };
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const program = Deno.readTextFileSync(`/proc/${entry.name}/cmdline`).split("\0")[0];
      if (/(^|\/)(slirp4netns|pasta)$/.test(program) && ours(entry.name)) pids.add(entry.name);
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

/** A test that also checks that it leaves no network daemon behind. */
function netTest(name: string, fn: () => Promise<void>, ignore = false): void {
  Deno.test({
    name,
    ignore,
    async fn() {
      const before = networkDaemons();
      await fn();
      const left = [...networkDaemons()].filter((pid) => !before.has(pid));
      assert.deepEqual(left, [], `network daemons left behind: ${left.join(", ")}`);
    },
  });
}

/** The fd of this process that is a pidfd of `pid` (its fdinfo names the pid). */
function pidfdOf(pid: string): number {
  for (const { name } of Deno.readDirSync("/proc/self/fd")) {
    try {
      if (new RegExp(`^Pid:\\s+${pid}$`, "m").test(Deno.readTextFileSync(`/proc/self/fdinfo/${name}`))) {
        return Number(name);
      }
    } catch {
      // closed meanwhile (the directory's own fd)
    }
  }
  assert.fail(`no pidfd of ${pid}`);
}

/** Waits (a generous bound, against hangs only) until `pid` no longer exists. */
async function waitGone(pid: string): Promise<void> {
  for (let i = 0; i < 3000; i++) {
    try {
      Deno.statSync(`/proc/${pid}`);
    } catch {
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  assert.fail(`process ${pid} is still running`);
}

/** An HTTP server on the host's 127.0.0.1 that answers `body`. */
function hostServer(body: string): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, () => new Response(body));
}

/** A free TCP port of 127.0.0.1. */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/** Reads `child`'s stdout until it has printed "ready\n" (and nothing else). */
async function untilReady(child: Deno.ChildProcess): Promise<void> {
  const reader = child.stdout.getReader();
  let seen = "";
  while (!seen.includes("ready\n")) {
    const { value, done } = await reader.read();
    if (done) break;
    seen += text(value);
  }
  reader.releaseLock();
  assert.equal(seen, "ready\n");
}

/**
 * Runs `sbox run --net NET -p PUBLISH... -- sh -c SCRIPT`; once the script
 * (which starts servers in the background) has succeeded, runs `check`, then
 * stops sbox with SIGTERM, which kills the container and cleans up.
 */
async function whilePublished(
  net: string,
  publish: string[],
  script: string,
  check: () => void | Promise<void>,
): Promise<void> {
  const child = sboxOnBusybox([
    "--net",
    net,
    ...publish.flatMap((p) => ["-p", p]),
    "--",
    "sh",
    "-c",
    `${script} && echo ready && exec sleep 1000`,
  ]).spawn();
  let failure: unknown;
  try {
    await untilReady(child);
    await check();
  } catch (err) {
    failure = err;
  }
  try {
    child.kill("SIGTERM");
  } catch {
    // it has ended already: its output says why
  }
  const output = await child.output();
  if (failure) throw failure;
  assert.equal(output.code, 128 + 15, text(output.stderr));
}

/** Body of an HTTP GET of 127.0.0.1:`port`, or the error of the attempt. */
async function fetchBody(port: number, path = "/"): Promise<string> {
  try {
    return await (await fetch(`http://127.0.0.1:${port}${path}`)).text();
  } catch (err) {
    return `failed: ${err}`;
  }
}

for (const net of BACKENDS) {
  netTest(
    `${net}: --allow-host-loopback reaches an HTTP server on the host's 127.0.0.1 at 10.0.2.2`,
    async () => {
      await using server = hostServer("hello from the host\n");
      const result = await busybox([
        "--net",
        net,
        "--allow-host-loopback",
        "--",
        "wget",
        "-q",
        "-O-",
        `http://10.0.2.2:${server.addr.port}/`,
      ]);
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdout, "hello from the host\n");
    },
  );

  netTest(`${net}: --publish forwards a host loopback port to a server in the container`, async () => {
    const hostPort = freePort();
    await whilePublished(
      net,
      [`${hostPort}:8080`],
      "mkdir /www && echo published > /www/index.html && httpd -p 8080 -h /www",
      async () => assert.equal(await fetchBody(hostPort), "published\n"),
    );
  });

  // Each daemon parses every packet the container sends: it must not run
  // with the caller's full root (pasta confines itself; slirp4netns needs
  // --enable-sandbox and --enable-seccomp).
  netTest(
    `${net}: the network daemon runs under a seccomp filter, no_new_privs and few capabilities`,
    async () => {
      const hostPort = freePort();
      await whilePublished(net, [`${hostPort}:8080`], "true", () => {
        const daemons = [...networkDaemons()];
        assert.equal(daemons.length, 1, `daemons: ${daemons}`);
        const status = Deno.readTextFileSync(`/proc/${daemons[0]}/status`);
        const field = (name: string) => new RegExp(`^${name}:\\s+(\\S+)$`, "m").exec(status)?.[1];
        assert.equal(field("Seccomp"), "2", `${net} has no seccomp filter`);
        assert.equal(field("NoNewPrivs"), "1", `${net} may gain privileges`);
        const effective = BigInt(`0x${field("CapEff")}`);
        const netBindService = 1n << 10n;
        assert.equal(
          effective & ~netBindService & ~(1n << 21n),
          0n,
          `${net} keeps capabilities ${field("CapEff")}`,
        );
      });
    },
  );

  // The daemon is sbox's business: a file of its name that no one may
  // execute is passed over (as execvp does), and one that fails to exec is
  // sbox's failure (125, XX), not the command's "not found" (127, RE).
  netTest(
    `${net}: a daemon in PATH that cannot be executed is skipped, or fails the run as sbox's own`,
    async () => {
      const dir = scratchDir("net-path-");
      try {
        const run = (extra: string) =>
          sboxOnBusybox(["--net", net, "--report", "-", "--", "echo", "ran"], {
            PATH: `${extra}:/usr/local/bin:/usr/bin:/bin`,
          }).output();
        Deno.mkdirSync(`${dir}/plain`);
        Deno.writeTextFileSync(`${dir}/plain/${net}`, "not a program\n", { mode: 0o644 });
        const skipped = await run(`${dir}/plain`);
        assert.deepEqual([skipped.code, text(skipped.stdout)], [0, "ran\n"], text(skipped.stderr));
        Deno.mkdirSync(`${dir}/broken`);
        Deno.writeTextFileSync(`${dir}/broken/${net}`, "#!/nonexistent/interpreter\n", { mode: 0o755 });
        const broken = await run(`${dir}/broken`);
        const stderr = text(broken.stderr);
        assert.equal(broken.code, 125, stderr);
        assert.match(stderr, new RegExp(`^sbox: cannot exec ${dir}/broken/${net}: ENOENT`));
        assert.equal(JSON.parse(stderr.trim().split("\n").at(-1)!).status, "XX");
      } finally {
        Deno.removeSync(dir, { recursive: true });
      }
    },
  );

  // With a packet socket (NET_RAW) or its own routes (NET_ADMIN) the
  // container can hand the daemon frames for 127.0.0.1, which it delivers
  // to the host's loopback: such a container needs allowHostLoopback.
  Deno.test(`${net}: NET_RAW or NET_ADMIN with a network needs allowHostLoopback`, async () => {
    const Manager = MANAGERS.find(([name]) => name === net)![1];
    const dir = scratchDir("net-raw-");
    try {
      const base = { rootfs: dir, userMapper: identityMapper() };
      for (const cap of ["NET_RAW", "NET_ADMIN", "ALL"]) {
        const err = await Container.create({ ...base, network: new Manager(), capAdd: [cap] }).catch((e) =>
          e
        );
        assert.ok(err instanceof SboxError && err.step === "options", `${cap}: ${err}`);
        assert.match(
          err.message,
          /^invalid option capAdd: NET_(RAW|ADMIN) with a network .* allowHostLoopback: true/,
        );
        await Container.create({ ...base, network: new Manager({ allowHostLoopback: true }), capAdd: [cap] });
        await Container.create({ ...base, capAdd: [cap] });
      }
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  });

  // The library's refusal is in its own words: it named sbox run's
  // --allow-host-loopback, a flag a library caller does not have.
  Deno.test(`${net}: the library's refusal of NET_RAW without allowHostLoopback names only its own options`, async () => {
    const Manager = MANAGERS.find(([name]) => name === net)![1];
    const dir = scratchDir("net-raw-words-");
    try {
      const err = await Container.create({
        rootfs: dir,
        userMapper: identityMapper(),
        network: new Manager(),
        capAdd: ["NET_RAW"],
      }).catch((e) => e);
      assert.ok(err instanceof SboxError, String(err));
      const problem = "NET_RAW with a network lets the container send frames to 127.0.0.1 that the network " +
        "daemon delivers to the host's loopback: give the network allowHostLoopback: true to accept that";
      assert.equal(err.message, `invalid option capAdd: ${problem}`);
      assert.deepEqual([err.step, err.option, err.problem], ["options", "capAdd", problem]);
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  });

  // The same refusal from sbox run names the command line's options, not the library's.
  Deno.test(`${net}: sbox run refuses --cap-add NET_RAW or NET_ADMIN without --allow-host-loopback, naming both`, async () => {
    for (
      const [caps, shown] of [["NET_RAW", "NET_RAW"], ["chown,cap_net_admin", "NET_ADMIN"], [
        "ALL",
        "ALL \\(which includes NET_RAW\\)",
      ]]
    ) {
      const refused = await busybox(["--net", net, "--cap-add", caps, "--", "true"]);
      assert.equal(refused.code, 125, refused.stderr);
      assert.match(
        refused.stderr,
        new RegExp(
          `^sbox: invalid option --cap-add: ${shown} with --net ${net} .* add --allow-host-loopback to accept that\n$`,
        ),
      );
    }
    // Accepted: the run goes on past the check.
    const accepted = await busybox([
      "--net",
      net,
      "--allow-host-loopback",
      "--cap-add",
      "NET_RAW",
      "--",
      "true",
    ]);
    assert.doesNotMatch(accepted.stderr, /--cap-add/);
  });

  // pasta took one -t for all ports, which Debian 12's pasta rejects.
  netTest(`${net}: two published ports each reach their own server`, async () => {
    const [first, second] = [freePort(), freePort()];
    await whilePublished(
      net,
      [`${first}:8080`, `${second}:8081`],
      "mkdir /a /b && echo first > /a/index.html && echo second > /b/index.html && " +
        "httpd -p 8080 -h /a && httpd -p 8081 -h /b",
      async () =>
        assert.deepEqual([await fetchBody(first), await fetchBody(second)], ["first\n", "second\n"]),
    );
  });

  // What docs/network.md says: slirp4netns delivers a published port's
  // connections to eth0 from the gateway; pasta (splice(2), no option to
  // turn it off in this version) to the container's loopback from 127.0.0.1,
  // so a server bound to the container's 127.0.0.1 only is reachable.
  netTest(`${net}: where a published port's connections arrive in the container`, async () => {
    const [all, loopbackOnly] = [freePort(), freePort()];
    const cgi = '#!/bin/sh\necho "Content-Type: text/plain"\necho\necho "$REMOTE_ADDR"\n';
    const script = `mkdir -p /www/cgi-bin /lo && printf '%s' '${cgi}' > /www/cgi-bin/peer && ` +
      "chmod +x /www/cgi-bin/peer && echo loopback-only > /lo/index.html && " +
      "httpd -p 8080 -h /www && httpd -p 127.0.0.1:8081 -h /lo";
    await whilePublished(net, [`${all}:8080`, `${loopbackOnly}:8081`], script, async () => {
      // busybox httpd writes an IPv4 peer as [::ffff:A.B.C.D].
      const peer = (await fetchBody(all, "/cgi-bin/peer")).trim().replace(/^\[(::ffff:)?|\]$/g, "");
      const loopback = await fetchBody(loopbackOnly);
      if (net === "slirp4netns") {
        assert.equal(peer, "10.0.2.2");
        assert.match(loopback, /^failed: /);
      } else {
        assert.equal(peer, "127.0.0.1");
        assert.equal(loopback, "loopback-only\n");
      }
    });
  });
}

netTest("slirp4netns and pasta give the same address, route and DNS", async () => {
  const seen: string[] = [];
  for (const net of BACKENDS) {
    const result = await busybox([
      "--net",
      net,
      "--",
      "sh",
      "-c",
      "cat /etc/resolv.conf; ip -4 -o addr show eth0; ip -4 route",
    ]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^nameserver 10\.0\.2\.3$/m);
    assert.match(result.stdout, /eth0\s+inet 10\.0\.2\.100\/24 /);
    assert.match(result.stdout, /^default via 10\.0\.2\.2 dev eth0/m);
    assert.match(result.stdout, /^10\.0\.2\.0\/24 dev eth0 .*src 10\.0\.2\.100/m);
    // The same facts, whatever each backend adds (broadcast, "proto kernel").
    seen.push(
      result.stdout.split("\n").map((line) =>
        line.replace(/ brd \S+| proto kernel|\\.*$| +valid_lft.*$/g, "").replace(/\s+/g, " ").trim()
      ).join("\n"),
    );
  }
  assert.equal(seen[0], seen[1]);
});

// Ubuntu's images link /etc/resolv.conf into /run/systemd/resolve, which a
// container lacks: the file sbox writes replaces the link.
netTest("a network's /etc/resolv.conf replaces a dangling link of the image", async () => {
  const dir = scratchDir("resolv-");
  try {
    Deno.mkdirSync(`${dir}/layer/etc`, { recursive: true });
    Deno.mkdirSync(`${dir}/root`);
    Deno.symlinkSync("../run/systemd/resolve/stub-resolv.conf", `${dir}/layer/etc/resolv.conf`);
    const { BaseMounts, Container, OverlayMount } = await import("../mod.ts");
    for (const Manager of [Slirp4NetnsManager, PastaManager]) {
      await using container = await Container.create({
        rootfs: `${dir}/root`,
        userMapper: identityMapper(),
        network: new Manager(),
        mounts: [new OverlayMount([`${dir}/layer`, busyboxImage()]), new BaseMounts()],
      });
      const init = await container.start({ command: ["/bin/cat", "/etc/resolv.conf"], stdout: "piped" });
      const output = await init.output();
      assert.equal(text(output.stdout), "nameserver 10.0.2.3\n", Manager.name);
    }
    assert.ok(Deno.lstatSync(`${dir}/layer/etc/resolv.conf`).isSymlink, "the image keeps its link");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

netTest("--net none: loopback works inside, the host cannot be reached", async () => {
  await using server = hostServer("should not be seen\n");
  const port = server.addr.port;
  const result = await busybox([
    "--",
    "sh",
    "-c",
    [
      "mkdir /www && echo inside > /www/index.html && httpd -p 127.0.0.1:8080 -h /www",
      "wget -q -O- http://127.0.0.1:8080/",
      // The gateway of the other backends, the host's port on our own loopback, the host's address.
      "for host in 10.0.2.2 127.0.0.1 192.0.2.2; do",
      `  wget -q -O- http://$host:${port}/ 2>/dev/null && echo "reached $host"`,
      "done",
      "ls /sys/class/net",
    ].join("\n"),
  ]);
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout, "inside\nlo\n");
});

/** Runs shell `script` in a new namespace of `kind` (unshare's `--net`, `--mount`: private); root only. */
function inNewNamespace(kind: "--net" | "--mount", script: string): Promise<Result> {
  return runCommand(["unshare", kind, "--", "sh", "-c", script]);
}

/**
 * Runs sbox in a network namespace of its own with an HTTP server on its
 * 127.0.0.1:8000 (busybox httpd) and an outbound interface whose routes
 * lead nowhere: what is not the host's loopback fails at once, and nothing
 * leaves the machine.
 */
async function inIsolatedHost(sboxArgs: string[]): Promise<Result> {
  const dir = scratchDir("isolated-");
  try {
    Deno.writeTextFileSync(`${dir}/index.html`, "isolated host\n");
    const script = [
      "set -e",
      "ip link set lo up",
      "ip link add sboxh0 type veth peer name sboxh1",
      "ip addr add 192.0.2.10/24 dev sboxh0",
      "ip link set sboxh0 up && ip link set sboxh1 up",
      "ip route add default via 192.0.2.1",
      "ip route add unreachable 10.0.2.0/24",
      `busybox httpd -f -p 127.0.0.1:8000 -h ${shellQuote(dir)} & server=$!`,
      "set +e",
      sboxOnBusyboxArgv(sboxArgs).map(shellQuote).join(" "),
      "status=$?",
      "kill $server",
      "exit $status",
    ].join("\n");
    return await inNewNamespace("--net", script);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

for (const net of BACKENDS) {
  const name = `${net}: the host's loopback is unreachable without --allow-host-loopback`;
  netTest(name, async () => {
    // `timeout` bounds a connection attempt that a backend drops silently.
    const fetch = ["--", "timeout", "10", "wget", "-q", "-O-", "http://10.0.2.2:8000/"];
    const denied = await inIsolatedHost(["--net", net, ...fetch]);
    assert.notEqual(denied.code, 0, `the fetch should fail: ${denied.stdout}`);
    assert.equal(denied.stdout, "");
    assert.doesNotMatch(denied.stderr, /^sbox:/m, "sbox itself should not fail");
    const allowed = await inIsolatedHost(["--net", net, "--allow-host-loopback", ...fetch]);
    assert.equal(allowed.code, 0, allowed.stderr);
    assert.equal(allowed.stdout, "isolated host\n");
  }, skipUnlessRoot(name));
}

for (const net of BACKENDS) {
  const name = `${net}: the daemon does not inherit the caller's OOM protection, negative nice, ` +
    "real-time policy or realtime I/O class; what ranks it lower is kept";
  netTest(name, async () => {
    // Each rank: oom_score_adj, nice, policy (0 SCHED_OTHER, 3 SCHED_BATCH),
    // I/O class and level, of the daemon as the host sees it. It relays
    // all the container sends: as the container's own processes
    // (container_test.ts), it starts at neutral. The probe runs under
    // `choom -n 500`, and has sbox take -1000 for that (this host's kernel
    // may refuse a negative value even to root): the daemon's 0 comes from
    // the reset, and the probe keeps its 500, so the write did not carry
    // over to the probe's memory.
    const raised = await neutralProbe("chrt -f 1 nice -n -5 ionice -c 1 -n 2", {
      fakeOomScoreAdj: -1000,
      net,
    });
    assert.deepEqual([raised.code, raised.stderr, raised.caller], [0, "", "500"]);
    assert.equal(raised.daemon, "0 0 0 none: prio 0");
    const lowered = await neutralProbe("chrt -b 0 nice -n 5 ionice -c 3", { net });
    assert.deepEqual([lowered.code, lowered.stderr, lowered.caller], [0, "", "500"]);
    assert.equal(lowered.daemon, "500 5 3 idle");
  }, skipUnlessRoot(name, "it runs sbox under chrt -f and ionice -c 1"));
}

/**
 * Runs sbox on the host's root in a mount namespace of its own whose
 * /etc/resolv.conf and /etc/hosts are bind mounts of files, as in every
 * Docker, Podman or Kubernetes container (where CI runners live): the
 * host-root view then makes /etc a directory of read-only binds.
 */
async function onDockerLikeHost(
  sboxArgs: string[],
  argv = sboxArgv(sboxArgs),
  hosts = "127.0.0.1\tlocalhost\n172.17.0.2\tf00d\n",
): Promise<Result> {
  const dir = scratchDir("etc-mounted-");
  try {
    Deno.writeTextFileSync(`${dir}/resolv.conf`, "nameserver 127.0.0.53\n");
    Deno.writeTextFileSync(`${dir}/hosts`, hosts);
    const script = [
      `mount --bind ${shellQuote(`${dir}/resolv.conf`)} /etc/resolv.conf`,
      `mount --bind ${shellQuote(`${dir}/hosts`)} /etc/hosts`,
      `exec ${argv.map(shellQuote).join(" ")}`,
    ].join(" && ");
    return await inNewNamespace("--mount", script);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

const MOUNTED_ETC_TEST = "a host whose /etc/resolv.conf and /etc/hosts are mount points: sbox writes its own";
netTest(MOUNTED_ETC_TEST, async () => {
  // The host's resolv.conf, bound read-only like the rest of /etc, without
  // a network; its hosts file with the container's hostname.
  const none = await onDockerLikeHost(["--", "cat", "/etc/resolv.conf", "/etc/hosts"]);
  assert.equal(none.code, 0, none.stderr);
  assert.equal(
    none.stdout,
    "nameserver 127.0.0.53\n127.0.0.1\tlocalhost\n172.17.0.2\tf00d\n127.0.1.1\tsbox\n",
  );
  // A hosts file of 100 KiB: copied, not bound, so the line can be added (it
  // failed with "cannot write /etc/hosts: EBUSY" when the copy's limit was
  // below the rewrite's).
  const comments = "# a long hosts file\n".repeat(5000);
  const big = await onDockerLikeHost(["--", "tail", "-n", "1", "/etc/hosts"], undefined, comments);
  assert.equal(big.code, 0, big.stderr);
  assert.equal(big.stdout, "127.0.1.1\tsbox\n");
  for (const net of BACKENDS) {
    // It failed: "cannot write /etc/resolv.conf: EBUSY", on the bind the plan made.
    const result = await onDockerLikeHost(["--net", net, "--", "cat", "/etc/resolv.conf"]);
    assert.equal(result.code, 0, `${net}: ${result.stderr}`);
    assert.equal(result.stdout, "nameserver 10.0.2.3\n", net);
  }
}, skipUnlessRoot(MOUNTED_ETC_TEST));

netTest(
  "a bind on /etc or /etc/resolv.conf with a network is refused: the network's write would go into it",
  async () => {
    const dir = scratchDir("etc-bound-");
    try {
      Deno.mkdirSync(`${dir}/etc`);
      Deno.writeTextFileSync(`${dir}/etc/resolv.conf`, "the host's own\n");
      const binds = [
        ["slirp4netns", `${dir}/etc:/etc`],
        ["pasta", `${dir}/etc:/etc/./:ro`],
        ["slirp4netns", `${dir}/etc/resolv.conf:/etc/resolv.conf`],
      ];
      for (const [net, bind] of binds) {
        const output = await sboxOnBusybox(["--net", net, "--bind", bind, "--", "true"]).output();
        const stderr = text(output.stderr);
        assert.equal(output.code, 125, `${bind}: ${stderr}`);
        // It named the library's option: "invalid option mounts: the bind of ...".
        const [source, target] = bind.split(":");
        assert.equal(
          stderr.split("\n")[0],
          `sbox: invalid option --bind: ${source}:${target} with --net ${net} would take the network's ` +
            "/etc/resolv.conf, which it writes after the mounts (into the host's files, or failing on a " +
            "read-only one): bind your own resolv.conf elsewhere, or the directory's files one by one",
        );
        // It wrote "nameserver 10.0.2.3" into the host's directory.
        assert.equal(Deno.readTextFileSync(`${dir}/etc/resolv.conf`), "the host's own\n", bind);
      }
      // The library refuses it by its own option's name.
      await assert.rejects(
        busyboxContainer({
          network: new Slirp4NetnsManager(),
          mounts: [new BindMount(`${dir}/etc`, "/etc/")],
        }),
        (err: unknown) =>
          err instanceof SboxError && err.message.startsWith(
            `invalid option mounts: the bind of ${dir}/etc on /etc would take the network's /etc/resolv.conf`,
          ),
      );
      // Without a network, the bind is the user's to make.
      const none = await sboxOnBusybox(["--bind", `${dir}/etc:/etc`, "--", "cat", "/etc/resolv.conf"])
        .output();
      assert.equal(text(none.stdout), "the host's own\n", text(none.stderr));
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
);

netTest(
  "an image whose /etc is a link into a bind: the network's resolv.conf is not written through it",
  async () => {
    const dir = scratchDir("etc-linked-");
    try {
      const image = `${dir}/image`;
      new Deno.Command("cp", { args: ["-a", busyboxImage(), image] }).outputSync();
      Deno.renameSync(`${image}/etc`, `${image}/real-etc`);
      Deno.symlinkSync("/work", `${image}/etc`);
      Deno.mkdirSync(`${image}/work`);
      Deno.mkdirSync(`${dir}/bound`);
      Deno.writeTextFileSync(`${dir}/bound/resolv.conf`, "the host's own\n");
      const [program, ...args] = sboxArgv([
        "--rootfs",
        image,
        "--net",
        "slirp4netns",
        "--bind",
        `${dir}/bound:/work`,
        "--",
        "true",
      ]);
      const output = await new Deno.Command(program, {
        args,
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).output();
      const stderr = text(output.stderr);
      assert.equal(output.code, 125, stderr);
      assert.match(
        stderr,
        /^sbox: cannot write \/etc\/resolv\.conf: ELOOP .*its directory is a symbolic link/m,
      );
      // It wrote "nameserver 10.0.2.3" over the host's file, as the container's root.
      assert.equal(Deno.readTextFileSync(`${dir}/bound/resolv.conf`), "the host's own\n");
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
);

const MOUNTED_ETC_LIBRARY_TEST =
  "HostRootMount on a host whose /etc/resolv.conf is a mount point: a network writes its own";
netTest(MOUNTED_ETC_LIBRARY_TEST, async () => {
  // The library's host root has no plan of sbox run's to leave the file
  // out: it copies it. It failed: "cannot write /etc/resolv.conf: EBUSY".
  const dir = scratchDir("hostroot-net-");
  try {
    const script = `${dir}/run.ts`;
    Deno.writeTextFileSync(
      script,
      `import { BaseMounts, Container, HostRootMount, ProcUserMapper, Slirp4NetnsManager } from ${
        JSON.stringify(new URL("../mod.ts", import.meta.url).href)
      };
const [dir, net] = Deno.args;
const container = await Container.create({
  rootfs: dir + "/root",
  userMapper: ProcUserMapper.newRoot(),
  mounts: [new HostRootMount({ layersDir: dir + "/layers" }), new BaseMounts()],
  network: net === "none" ? undefined : new Slirp4NetnsManager(),
});
try {
  const init = await container.start({ command: ["/bin/cat", "/etc/resolv.conf"], stdout: "piped" });
  await Deno.stdout.write((await init.output()).stdout);
} finally {
  await container.destroy();
}
`,
    );
    for (const sub of ["root", "layers"]) Deno.mkdirSync(`${dir}/${sub}`);
    for (
      const [net, expected] of [["none", "nameserver 127.0.0.53\n"], ["slirp4netns", "nameserver 10.0.2.3\n"]]
    ) {
      const result = await onDockerLikeHost([], [Deno.execPath(), "run", "-A", script, dir, net]);
      assert.equal(result.code, 0, `${net}: ${result.stderr}`);
      assert.equal(result.stdout, expected, net);
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}, skipUnlessRoot(MOUNTED_ETC_LIBRARY_TEST));

for (const [net, Manager] of MANAGERS) {
  netTest(`${net}: the daemon ends when the container's init is killed, before destroy()`, async () => {
    const before = networkDaemons();
    await using setup = await busyboxContainer({ network: new Manager() });
    const init = await setup.container.start({ command: ["/bin/sleep", "1000"], stdout: "null" });
    const daemons = [...networkDaemons()].filter((pid) => !before.has(pid));
    assert.equal(daemons.length, 1, `expected one daemon, found ${daemons.join(", ")}`);
    init.kill("SIGKILL");
    assert.equal((await init.status).signal, "SIGKILL");
    await waitGone(daemons[0]);
  });

  netTest(`${net}: the CLI leaves no daemon when the container's process is killed`, async () => {
    const child = sboxOnBusybox([
      "--net",
      net,
      "--",
      "sh",
      "-c",
      "echo up; exec sleep 1000",
    ]).spawn();
    const reader = child.stdout.getReader();
    assert.equal(text((await reader.read()).value!), "up\n");
    reader.releaseLock();
    // "up" comes before the shell's exec of sleep: look until sleep is there.
    const findSleeper = () =>
      [...Deno.readDirSync("/proc")].map((e) => e.name).find((pid) => {
        try {
          return Deno.readTextFileSync(`/proc/${pid}/cmdline`) === "sleep\x001000\x00" &&
            descendsFrom(pid, String(child.pid));
        } catch {
          return false;
        }
      });
    let sleeper = findSleeper();
    for (let i = 0; !sleeper && i < 500; i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      sleeper = findSleeper();
    }
    assert.ok(sleeper, "the container's process was not found");
    Deno.kill(Number(sleeper), "SIGKILL");
    const output = await child.output();
    assert.equal(output.code, 128 + 9, text(output.stderr));
  });

  Deno.test(`${net}: bad options are rejected before anything runs`, () => {
    assert.throws(
      () => new Manager({ publish: [{ hostPort: 0, containerPort: 80 }] }),
      (err) => err instanceof SboxError && /publish: hostPort must be a port/.test(err.message),
    );
    // Two container ports may share nothing on the host side.
    assert.throws(
      () =>
        new Manager({
          publish: [{ hostPort: 8080, containerPort: 80 }, { hostPort: 8081, containerPort: 80 }, {
            hostPort: 8080,
            containerPort: 81,
          }],
        }),
      (err) =>
        err instanceof SboxError &&
        err.message === "invalid option publish: host port 8080 is published more than once",
    );
    assert.throws(
      () => new Manager({ allowHostLoopback: "yes" as unknown as boolean }),
      /invalid option allowHostLoopback: must be a boolean, got "yes"/,
    );
    assert.throws(
      () => new Manager({ readyTimeoutMs: 0 }),
      (err) =>
        err instanceof SboxError && /readyTimeoutMs: must be a number of milliseconds > 0/.test(err.message),
    );
  });

  // The container stops A's daemon when A's init ends, and reaping it closes
  // the daemon's pidfd; destroy() stopped it again and sent SIGKILL through
  // that fd number, by then whatever fd got the number next: another
  // container's pidfd, say. Here that fd is a pidfd of B's init, put at the
  // number on purpose (left to chance, the next container's pidfd gets it
  // only sometimes). B must end by the SIGTERM sent to it here (forwarded by
  // its reaper to sleep), not by a SIGKILL.
  netTest(
    `${net}: destroy() of a container whose init ended signals nothing through a closed pidfd`,
    async () => {
      const before = networkDaemons();
      await using a = await busyboxContainer({ network: new Manager() });
      await using b = await busyboxContainer();
      const initA = await a.container.start({ command: ["/bin/sleep", "1000"] });
      const initB = await b.container.start({ command: ["/bin/sleep", "1000"], reaper: true });
      const daemons = [...networkDaemons()].filter((pid) => !before.has(pid));
      assert.equal(daemons.length, 1, `expected one daemon, found ${daemons.join(", ")}`);
      const stale = pidfdOf(daemons[0]);
      initA.kill("SIGKILL");
      await initA.status;
      await waitGone(daemons[0]); // reaped, so its pidfd is closed
      const opened = pidfdOpen(initB.pid);
      const reused = dupCloexec(opened, stale);
      close(opened);
      try {
        assert.equal(reused, stale, "the number of the daemon's pidfd is free again");
        await a.container.destroy();
        initB.kill("SIGTERM");
        assert.equal((await initB.status).signal, "SIGTERM");
      } finally {
        close(reused);
      }
    },
  );

  // A daemon that never configures the interface held start() and destroy()
  // forever. The fake daemon is found first in PATH, in a program of its own
  // (see never_ready.ts).
  netTest(`${net}: a daemon that never becomes ready fails the start, and nothing is left`, async () => {
    const dir = scratchDir("never-ready-");
    try {
      Deno.mkdirSync(`${dir}/bin`);
      // A daemon starts with an empty environment: the pid file's path is written in.
      const fake = `#!/bin/sh\necho $$ >> '${dir}/pids'\nexec sleep 1000\n`;
      Deno.writeTextFileSync(`${dir}/bin/${net}`, fake, { mode: 0o755 });
      Deno.writeTextFileSync(`${dir}/pids`, "");
      const program = decodeURIComponent(new URL("./programs/never_ready.ts", import.meta.url).pathname);
      const output = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", program, net, "200", `${dir}/pids`],
        env: { PATH: `${dir}/bin:${Deno.env.get("PATH") ?? "/usr/bin:/bin"}` },
        stdin: "null",
        signal: AbortSignal.timeout(COMMAND_TIMEOUT_MS),
      }).output();
      assert.equal(output.code, 0, text(output.stderr));
      assert.deepEqual(JSON.parse(text(output.stdout)), {
        error: `SboxError: cannot connect the container's network: ${dir}/bin/${net} ` +
          "did not configure the container's interface within 200 ms (killed)",
        daemonsStarted: 1,
        daemonsLeft: [],
        fdsLeft: [],
        childrenLeft: [],
      });
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  });
}

// slirp4netns says only "slirp_add_hostfwd failed" when it cannot bind the
// host port, which left the user to guess why.
netTest(
  "slirp4netns: publishing a host port in use fails the run with 125, asking whether it is in use",
  async () => {
    using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (listener.addr as Deno.NetAddr).port;
    const result = await busybox(["--net", "slirp4netns", "-p", `${port}:80`, "--", "true"]);
    assert.equal(result.code, 125, result.stderr);
    assert.match(
      result.stderr,
      new RegExp(
        `^sbox: cannot publish 127\\.0\\.0\\.1:${port} to port 80: .*\\(is the port in use\\?\\)\n$`,
      ),
    );
  },
);

// pasta says only "Failed to bind any port for '-t 127.0.0.1/PORT:80'":
// the same question, which its error lacked (slirp4netns's had it).
netTest(
  "pasta: publishing a host port in use fails the run with 125, asking whether it is in use",
  async () => {
    using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (listener.addr as Deno.NetAddr).port;
    const result = await busybox(["--net", "pasta", "-p", `${port}:80`, "--", "true"]);
    assert.equal(result.code, 125, result.stderr);
    assert.match(
      result.stderr,
      new RegExp(
        `^sbox: cannot connect the container's network: \\S+ exited with 1: .*'-t 127\\.0\\.0\\.1/${port}:80'.*` +
          `\\(is the port in use\\?\\)\n$`,
      ),
    );
  },
);

// As a user, a port below net.ipv4.ip_unprivileged_port_start: that is
// what both daemons' bare words mean then, and what sbox says.
for (const net of BACKENDS) {
  netTest(
    `${net}: a user publishing a port below ip_unprivileged_port_start is told it needs root`,
    async () => {
      const first = Number(Deno.readTextFileSync("/proc/sys/net/ipv4/ip_unprivileged_port_start").trim());
      const result = await busybox(["--net", net, "-p", `${first - 1}:80`, "--", "true"]);
      assert.equal(result.code, 125, result.stderr);
      assert.match(
        result.stderr,
        new RegExp(`\\(a port below ${first}, net\\.ipv4\\.ip_unprivileged_port_start, needs root\\)\n$`),
      );
    },
    isRoot || Number(Deno.readTextFileSync("/proc/sys/net/ipv4/ip_unprivileged_port_start").trim()) === 0,
  );
}

// slirp4netns's API socket lets whoever connects add forwards (on any host
// address and port the daemon may bind): it lives in a 0700 directory only
// until the ports are published, then goes. A run killed before that
// leaves the directory, which the next run removes.
netTest(
  "slirp4netns's API socket is gone once the ports are published; a leftover one goes with the next run",
  async () => {
    const child = sboxOnBusybox([
      "--net",
      "slirp4netns",
      "-p",
      `${freePort()}:8080`,
      "--",
      "sh",
      "-c",
      "echo ready; exec sleep 1000",
    ]).spawn();
    const leftovers = (pid: number) =>
      [...Deno.readDirSync("/tmp")].filter((e) => e.name.startsWith(`sbox-slirp4netns-${pid}-`)).length;
    try {
      await untilReady(child);
      assert.equal(leftovers(child.pid), 0, "the API socket while the container runs");
    } finally {
      child.kill("SIGKILL");
      await child.status;
      await child.stdout.cancel();
      await child.stderr.cancel();
    }
    // What a run killed before publishing leaves: the directory and a
    // socket nothing listens on.
    const dir = `/tmp/sbox-slirp4netns-${2 ** 22 + 1}-0123456789ab`;
    Deno.mkdirSync(dir, { mode: 0o700 });
    Deno.listen({ transport: "unix", path: `${dir}/api.sock` }).close();
    assert.equal(leftovers(2 ** 22 + 1), 1);
    const next = await busybox(["true"]);
    assert.equal(next.code, 0, next.stderr);
    assert.equal(leftovers(2 ** 22 + 1), 0, "the next run removes it");
  },
);

/** Whether `path` exists. */
function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** The directories of slirp4netns API sockets of process `pid` in /tmp. */
function socketDirs(pid: number): string[] {
  return [...Deno.readDirSync("/tmp")].map((e) => e.name).filter((name) =>
    name.startsWith(`sbox-slirp4netns-${pid}-`)
  );
}

// Every sbox run sweeps leftovers as it starts, and took for abandoned any
// socket directory in which nothing listened yet: that of a run whose
// slirp4netns had not yet bound its socket there, which then failed
// ("parent failed"), at random beside concurrent plain runs. Here the run's
// slirp4netns is a wrapper that waits before it execs the real one, while
// a plain run sweeps: the window is held open, not hit by chance.
netTest(
  "slirp4netns: a plain run's sweep leaves the API socket directory of a --publish run still starting",
  async () => {
    const real = findHostProgram("slirp4netns", "slirp4netns");
    const dir = scratchDir("slirp-window-");
    let child: Deno.ChildProcess | undefined;
    try {
      Deno.mkdirSync(`${dir}/bin`);
      // The daemon starts with an empty environment: the paths are written in.
      const wrapper = `#!/bin/sh\n: > '${dir}/started'\n` +
        `while [ ! -e '${dir}/go' ]; do sleep 0.01; done\nexec '${real}' "$@"\n`;
      Deno.writeTextFileSync(`${dir}/bin/slirp4netns`, wrapper, { mode: 0o755 });
      child = sboxOnBusybox(
        ["--net", "slirp4netns", "-p", `${freePort()}:8080`, "--", "true"],
        { PATH: `${dir}/bin:${Deno.env.get("PATH") ?? "/usr/bin:/bin"}` },
      ).spawn();
      for (let i = 0; !exists(`${dir}/started`); i++) {
        assert.ok(i < 6000, "the wrapper never started");
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      const mine = socketDirs(child.pid);
      assert.equal(mine.length, 1, "the run's socket directory, before slirp4netns runs");
      const sweep = await busybox(["true"]);
      assert.equal(sweep.code, 0, sweep.stderr);
      assert.deepEqual(socketDirs(child.pid), mine, "the sweep removed the starting run's socket directory");
      Deno.writeTextFileSync(`${dir}/go`, "");
      const output = await child.output();
      assert.equal(output.code, 0, text(output.stderr));
      assert.deepEqual(socketDirs(child.pid), [], "the run removed its socket directory");
    } finally {
      if (!exists(`${dir}/go`)) {
        Deno.writeTextFileSync(`${dir}/go`, "");
        await child?.output();
      }
      Deno.removeSync(dir, { recursive: true });
    }
  },
);

// A start that failed after the API socket's directory was made (EMFILE
// for slirp4netns's pipes, or for the fds it is handed) left the directory
// in /tmp: nothing but a later sbox run of the same user removed it.
netTest("slirp4netns: a start that fails for want of fds leaves no API socket directory", async () => {
  const script = decodeURIComponent(new URL("./programs/slirp_emfile.ts", import.meta.url).pathname);
  const output = await new Deno.Command("/bin/sh", {
    args: ["-c", 'ulimit -n 128 && exec "$DENO" run --allow-all "$SCRIPT" "$PORT"'],
    env: { DENO: Deno.execPath(), SCRIPT: script, PORT: String(freePort()) },
    stdin: "null",
    signal: AbortSignal.timeout(COMMAND_TIMEOUT_MS),
  }).output();
  assert.equal(output.code, 0, text(output.stderr));
  const { messages, left, before, after } = JSON.parse(text(output.stdout));
  const shown = JSON.stringify(messages, null, 1);
  // Starts that failed in attach(), once the directory was there.
  assert.ok(messages.some((m: string) => /^cannot hand \S*slirp4netns its fds: EMFILE/.test(m)), shown);
  assert.ok(messages.filter((m: string) => m.startsWith("cannot create a pipe: EMFILE")).length > 1, shown);
  assert.equal(messages.at(-1), "ok", shown);
  assert.deepEqual(left, messages.map(() => []), `socket directories left after the starts: ${shown}`);
  assert.deepEqual(after, before, "an fd was left");
});

// The check looked only at the "other" bits: a user who may open the device
// through its owning group, as its owner or through an ACL was refused.
// Root may open anything, so as root the check runs as nobody (65534, in
// group 65534) on a file of root's whose group grants access; as a user it
// runs here on a file of the user's own with no access for others.
Deno.test("the /dev/net/tun check lets whoever may open the device use it, and names why not", async () => {
  const dir = scratchDir("tun-");
  try {
    const allowed = `${dir}/allowed`, denied = `${dir}/denied`;
    Deno.writeTextFileSync(allowed, "");
    Deno.writeTextFileSync(denied, "");
    let results: string[];
    if (isRoot) {
      Deno.chmodSync(dir, 0o755);
      Deno.chownSync(allowed, 0, 65534);
      Deno.chownSync(denied, 0, 65534);
      Deno.chmodSync(allowed, 0o660); // through the group only
      Deno.chmodSync(denied, 0o600);
      const script = `const { checkTunDevice } = await import(${
        JSON.stringify(import.meta.resolve("../src/network.ts"))
      });
        for (const path of Deno.args) {
          try { checkTunDevice("slirp4netns", path); console.log("ok"); } catch (err) { console.log(err.message); }
        }`;
      const output = await commandAsNobody([
        Deno.execPath(),
        "eval",
        "--no-check",
        script,
        allowed,
        denied,
      ], {
        env: { DENO_DIR: `${dir}/deno`, NO_COLOR: "1" },
        stdin: "null",
        signal: AbortSignal.timeout(COMMAND_TIMEOUT_MS),
      }).output();
      assert.equal(output.code, 0, text(output.stderr));
      results = text(output.stdout).trim().split("\n");
    } else {
      Deno.chmodSync(allowed, 0o600); // as its owner only
      Deno.chmodSync(denied, 0o000);
      results = [allowed, denied].map((path) => {
        try {
          checkTunDevice("slirp4netns", path);
          return "ok";
        } catch (err) {
          return (err as Error).message;
        }
      });
    }
    const uid = isRoot ? 65534 : Deno.uid();
    assert.equal(results[0], "ok");
    assert.match(
      results[1],
      new RegExp(
        `^slirp4netns needs ${denied}, which uid ${uid} may not open \\(EACCES \\(Permission denied\\); mode [0-7]+, owner \\d+:\\d+; Debian's default is 666\\)$`,
      ),
    );
    assert.equal(results.length, 2);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

/** Whether `pid`'s parent chain reaches `ancestor`. */
function descendsFrom(pid: string, ancestor: string): boolean {
  for (let current = pid; current !== "0" && current !== "1";) {
    const status = Deno.readTextFileSync(`/proc/${current}/status`);
    current = /^PPid:\s+(\d+)/m.exec(status)?.[1] ?? "0";
    if (current === ancestor) return true;
  }
  return false;
}

Deno.test("--publish and --allow-host-loopback need a network; --net takes only known values", async () => {
  for (
    const [args, pattern] of [
      [["--publish", "8080:80"], /--publish: needs a network: add --net slirp4netns or --net pasta/],
      [["--allow-host-loopback"], /--allow-host-loopback: needs a network/],
      [
        ["--net", "pasta", "--publish", "8080"],
        /--publish: bad value "8080": expected HOST_PORT:CONTAINER_PORT/,
      ],
      [["--net", "slirp4netns", "--publish", "0:80"], /--publish: bad value "0:80"/],
      [
        ["--net", "pasta", "-p", "8080:80", "-p", "8081:80", "-p", "8080:81"],
        /^sbox: invalid option --publish: host port 8080 is published more than once$/m,
      ],
      [["--net", "bridge"], /--net: bad value "bridge": expected none, slirp4netns, pasta or host/],
    ] as const
  ) {
    const result = await busybox([...args, "--", "true"]);
    assert.equal(result.code, 125, result.stderr);
    assert.match(result.stderr, pattern);
  }
});
