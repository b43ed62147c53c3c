/**
 * Fills this process's fd table but for `free` slots, for each `free` from
 * 0 to 24 (a user's start needs more: newuidmap's and newgidmap's fds),
 * and tries a start (no cgroup, stdio inherited) in it: the start
 * that finds room for its pipes but none for clone3's pidfd fails in
 * clone3. Prints each start's error message ("ok" for a start that
 * worked), and the fds held before and after, as JSON. Run by
 * tests/leak_test.ts under a low `ulimit -n`, in a process of its own.
 *
 *   deno run --allow-all tests/programs/clone_emfile.ts
 */

import { busyboxContainer, snapshot } from "../fixtures.ts";
import { startWithFreeFds } from "./fd_filler.ts";

const ENV = { PATH: "/bin:/usr/bin" };

// The first launch makes the reactor's epoll and eventfd.
{
  await using warm = await busyboxContainer({ cgroup: false });
  await (await warm.container.start({ command: ["/bin/true"], env: ENV })).status;
}
const before = snapshot().fds;
const messages: string[] = [];
for (let free = 0; free <= 24; free++) {
  await using setup = await busyboxContainer({ cgroup: false });
  messages.push(
    await startWithFreeFds(free, () => setup.container.start({ command: ["/bin/true"], env: ENV })),
  );
}
console.log(JSON.stringify({ messages, before, after: snapshot().fds }));
