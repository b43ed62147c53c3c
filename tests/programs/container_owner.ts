/**
 * For tests/escape_test.ts: a Deno process that owns containers, to be
 * killed with SIGKILL. It starts two busybox containers (one with a reaper
 * as pid 1, one whose command is pid 1), each running `sleep` in a shell
 * with a background job, and execs one more process into the first; all
 * carry the marker given as the first argument in their environment. It
 * prints "ready", its cgroups and scratch directories (for the test to
 * remove) and waits to be killed.
 *
 *   deno run --allow-ffi tests/programs/container_owner.ts MARKER
 */

import { busyboxContainer } from "../fixtures.ts";

const marker = Deno.args[0];
const env = { PATH: "/bin", SBOX_MARKER: marker };
const script = ["/bin/sh", "-c", "sleep 1000 & sleep 1000; wait"];
const withReaper = await busyboxContainer();
const init = await withReaper.container.start({ command: script, env, reaper: true });
await withReaper.container.exec(init, { command: ["/bin/sleep", "1000"], env });
const plain = await busyboxContainer();
await plain.container.start({ command: script, env });
// JSON: a checkout's path may hold spaces.
console.log("ready", JSON.stringify([withReaper.cgroup.name, withReaper.dir, plain.cgroup.name, plain.dir]));
await new Promise(() => {}); // until killed
