/**
 * Starts a busybox container whose init is a reaper, exec()s a process
 * into it, and prints as JSON what that process reads of itself, of pid 1
 * (the reaper) and of pid 2 (the init's command): oom_score_adj, nice
 * value, scheduling policy and I/O priority; and the container's NIS
 * domain name; and this process's own oom_score_adj after both starts.
 * tests/container_test.ts runs it under `choom`, `nice`, `chrt` and
 * `ionice`, in a UTS namespace with a domain name set, to check what the
 * container does not inherit (src/security/neutral.ts).
 *
 * With PROBE_OOM_SCORE_ADJ=N, sbox takes N for this process's
 * oom_score_adj: a kernel lets only a process with CAP_SYS_RESOURCE set a
 * negative one, which a test host may not give.
 *
 *   deno run --allow-all tests/programs/neutral_probe.ts
 */

import { setOomScoreAdjReader } from "../../src/security/neutral.ts";
import { busyboxContainer } from "../fixtures.ts";

const fake = Deno.env.get("PROBE_OOM_SCORE_ADJ");
if (fake !== undefined) setOomScoreAdjReader(() => Number(fake));

/** One line per pid: oom_score_adj, nice, policy, and busybox ionice's "class: prio N". */
const SCRIPT = "for p in $$ 1 2; do " +
  'echo "$(cat /proc/$p/oom_score_adj) $(cut -d" " -f19,41 /proc/$p/stat) $(ionice -p $p)"; ' +
  "done; cat /proc/sys/kernel/domainname";

await using setup = await busyboxContainer();
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
console.log(JSON.stringify({
  code: output.code,
  stderr: new TextDecoder().decode(output.stderr),
  exec: self,
  pid1,
  pid2,
  domainname,
  caller: Deno.readTextFileSync("/proc/self/oom_score_adj").trim(),
}));
