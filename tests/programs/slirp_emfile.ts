/**
 * Fills this process's fd table but for `free` slots, for each `free` from
 * 0 on until three starts in a row work (a user's start needs more fds:
 * newuidmap's and newgidmap's), and tries a start with slirp4netns and a
 * published port in it: some starts find room for the container but not
 * for slirp4netns's pipes or the fds it is handed. Prints, as JSON, each
 * start's error message ("ok" for a start that worked), the slirp4netns API
 * socket directories of this process in /tmp after each start, and the
 * fds held before and after. Run by tests/network_test.ts under a low
 * `ulimit -n`, in a process of its own.
 *
 *   deno run --allow-all tests/programs/slirp_emfile.ts PORT
 */

import { Slirp4NetnsManager } from "../../mod.ts";
import { busyboxContainer, snapshot } from "../fixtures.ts";
import { startWithFreeFds } from "./fd_filler.ts";

const ENV = { PATH: "/bin:/usr/bin" };
const network = new Slirp4NetnsManager({ publish: [{ hostPort: Number(Deno.args[0]), containerPort: 80 }] });
const socketDirs = () =>
  [...Deno.readDirSync("/tmp")].map((e) => e.name).filter((name) =>
    name.startsWith(`sbox-slirp4netns-${Deno.pid}-`)
  );

// The first launch makes the reactor's epoll and eventfd.
{
  await using warm = await busyboxContainer({ cgroup: false, network });
  await (await warm.container.start({ command: ["/bin/true"], env: ENV })).status;
}
const before = snapshot().fds;
const messages: string[] = [];
const left: string[][] = [];
for (let free = 0, worked = 0; free <= 60 && worked < 3; free++) {
  await using setup = await busyboxContainer({ cgroup: false, network });
  const message = await startWithFreeFds(
    free,
    () => setup.container.start({ command: ["/bin/true"], env: ENV }),
  );
  messages.push(message);
  worked = message === "ok" ? worked + 1 : 0;
  left.push(socketDirs());
}
console.log(JSON.stringify({ messages, left, before, after: snapshot().fds, leftAtEnd: socketDirs() }));
