/**
 * Starts a busybox container whose init is a reaper, exec()s a process
 * into it, and prints as JSON what that process reads of itself, of pid 1
 * (the reaper) and of pid 2 (the init's command): oom_score_adj, nice
 * value, scheduling policy and I/O priority; and the container's NIS
 * domain name; the same four of a command run by runAsUser (`runAsUser`),
 * and of two commands that launch() runs from a program of nothing but its
 * exec (`launchWaits`, which waits for its parent first, and
 * `launchAlone`): what launch() gives every process, whoever launches it;
 * the pid of a `sleep` so launched, still running when this process ends
 * (`orphan`: it must die with it); and this process's own oom_score_adj
 * after all the starts.
 * tests/container_test.ts runs it under `choom`, `nice`, `chrt` and
 * `ionice`, in a UTS namespace with a domain name set, to check what the
 * container does not inherit (src/security/neutral.ts).
 *
 * With PROBE_OOM_SCORE_ADJ=N, sbox takes N for this process's
 * oom_score_adj: a kernel lets only a process with CAP_SYS_RESOURCE set a
 * negative one, which a test host may not give.
 *
 * With PROBE_NET=slirp4netns or pasta, the container has that network, and
 * `daemon` holds the same four of the daemon, as the host sees it
 * (tests/network_test.ts).
 *
 *   deno run --allow-all tests/programs/neutral_probe.ts
 */

import { launch, reap } from "../../src/launch.ts";
import { PastaManager, Slirp4NetnsManager } from "../../src/network.ts";
import { CLONE } from "../../src/program.ts";
import { setOomScoreAdjReader } from "../../src/security/neutral.ts";
import { runAsRoot } from "../../src/user.ts";
import { busyboxContainer, identityMapper, scratchDir } from "../fixtures.ts";

const fake = Deno.env.get("PROBE_OOM_SCORE_ADJ");
if (fake !== undefined) setOomScoreAdjReader(() => Number(fake));

/**
 * A shell word for a process's rank: its oom_score_adj, nice, policy, and
 * ionice's "class: prio N" (busybox's and util-linux's agree). `ioniceOf`:
 * the pid for ionice, 0 for its own (where `pid` is "self").
 */
const rank = (pid: string, ioniceOf = pid) =>
  `"$(cat /proc/${pid}/oom_score_adj) $(cut -d" " -f19,41 /proc/${pid}/stat) $(ionice -p ${ioniceOf})"`;

/** One line per pid, then the domain name. */
const SCRIPT = `for p in $$ 1 2; do echo ${rank("$p")}; done; cat /proc/sys/kernel/domainname`;

const net = Deno.env.get("PROBE_NET") || undefined;
const network = net === "slirp4netns"
  ? new Slirp4NetnsManager()
  : net === "pasta"
  ? new PastaManager()
  : undefined;

/** The rank of this process's child running `program`, as the host sees it (util-linux's ionice). */
async function childRank(program: string): Promise<string> {
  const children = new Map<string, string>();
  for (const { name } of Deno.readDirSync("/proc")) {
    try {
      // The fields after the command's name, which may hold spaces and ")".
      const stat = Deno.readTextFileSync(`/proc/${name}/stat`);
      if (stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1] !== String(Deno.pid)) continue;
      children.set(name, Deno.readTextFileSync(`/proc/${name}/cmdline`).split("\0")[0]);
    } catch {
      // not a process, or gone meanwhile
    }
  }
  const pid = [...children].find(([, path]) => path.endsWith(`/${program}`))?.[0];
  if (pid === undefined) {
    throw new Error(`no ${program} among the children: ${[...children.values()].join(", ")}`);
  }
  const output = await new Deno.Command("/bin/sh", { args: ["-c", `echo ${rank(pid)}`] }).output();
  return new TextDecoder().decode(output.stdout).trimEnd();
}

/** runAsUser's command's rank (it runs on the host's /proc, in a pid namespace of its own: self). */
async function runAsUserRank(): Promise<string> {
  const dir = scratchDir("neutral-");
  try {
    await runAsRoot(identityMapper(), ["/bin/sh", "-c", `echo ${rank("self", "0")} > ${dir}/rank`]);
    return Deno.readTextFileSync(`${dir}/rank`).trimEnd();
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

/**
 * The rank of a command that launch() runs on the host from a program of
 * its exec alone (and the wait for the parent, with `waits`), with
 * CLONE_VM asked for: as a new launcher would, who knows nothing of ranks.
 */
async function bareLaunchRank(waits: boolean): Promise<string> {
  const dir = scratchDir("neutral-");
  try {
    const script = `echo ${rank("self", "0")} > ${dir}/rank`;
    const launched = await launch({
      flags: CLONE.VM,
      cgroupFd: -1,
      sync: waits,
      childFds: [],
      compile: (b, sync) => {
        if (waits) b.waitParent(sync.read, sync.write);
        b.exec("/bin/sh", ["sh", "-c", script], ["PATH=/usr/bin:/bin"], null);
      },
    });
    await reap(launched.pidfd);
    return Deno.readTextFileSync(`${dir}/rank`).trimEnd();
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

/**
 * A `sleep` launched as bareLaunchRank's commands are, left running: its
 * pid. Its stdio is /dev/null: one that outlived this process would keep
 * the test's pipe open.
 */
async function orphanPid(): Promise<number> {
  const launched = await launch({
    flags: CLONE.VM,
    cgroupFd: -1,
    sync: false,
    childFds: [],
    compile: (b) => b.exec("/bin/sh", ["sh", "-c", "exec sleep 60 </dev/null >/dev/null 2>&1"], [], null),
  });
  return launched.pid;
}

await using setup = await busyboxContainer({ network });
const { container } = setup;
const init = await container.start({
  command: ["/bin/sleep", "1000"],
  env: { PATH: "/bin" },
  reaper: true,
});
const process = await container.exec(init, {
  command: ["/bin/sh", "-c", SCRIPT],
  env: { PATH: "/bin" },
  stdout: "piped",
  stderr: "piped",
});
const output = await process.output();
const [self, pid1, pid2, domainname] = new TextDecoder().decode(output.stdout).trimEnd().split("\n");
const daemon = net === undefined ? undefined : await childRank(net);
const asUser = await runAsUserRank();
const launchWaits = await bareLaunchRank(true);
const launchAlone = await bareLaunchRank(false);
const orphan = await orphanPid();
console.log(JSON.stringify({
  code: output.code,
  stderr: new TextDecoder().decode(output.stderr),
  exec: self,
  pid1,
  pid2,
  domainname,
  daemon,
  runAsUser: asUser,
  launchWaits,
  launchAlone,
  orphan,
  caller: Deno.readTextFileSync("/proc/self/oom_score_adj").trim(),
}));
