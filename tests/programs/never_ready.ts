/**
 * Starts a busybox container whose network daemon never becomes ready,
 * with a short readiness timeout, and calls destroy() while the start is
 * under way. Run by tests/network_test.ts with PATH leading to a fake
 * slirp4netns and pasta (the daemon is found through PATH, which a running
 * Deno process cannot change for itself); the fake appends its pid to
 * PID_FILE and sleeps. Prints one JSON line: the start's error, and the
 * fake daemons, fds and child processes still there afterwards.
 *
 *   deno run -A never_ready.ts slirp4netns|pasta TIMEOUT_MS PID_FILE
 */

import { PastaManager, Slirp4NetnsManager } from "../../mod.ts";
import { busyboxContainer, snapshot } from "../fixtures.ts";

const [net, timeout, pidFile] = Deno.args;
const Manager = net === "pasta" ? PastaManager : Slirp4NetnsManager;
const network = new Manager({ readyTimeoutMs: Number(timeout) });
{
  // What the first container sets up for good (the reactor's fds) is not a leak.
  await using warm = await busyboxContainer();
  await (await warm.container.start({ command: ["/bin/true"] })).status;
}
const before = snapshot();
const setup = await busyboxContainer({ network });
const starting = setup.container.start({ command: ["/bin/true"] });
const destroyed = setup.container.destroy();
const error = await starting.then(() => undefined, (err: Error) => `${err.name}: ${err.message}`);
await destroyed;
await setup[Symbol.asyncDispose]();
const after = snapshot();
const pids = Deno.readTextFileSync(pidFile).split("\n").filter(Boolean);
console.log(JSON.stringify({
  error,
  daemonsStarted: pids.length,
  daemonsLeft: pids.filter((pid) => {
    try {
      Deno.statSync(`/proc/${pid}`);
      return true;
    } catch {
      return false;
    }
  }),
  fdsLeft: after.fds.filter((fd) => !before.fds.includes(fd)),
  childrenLeft: after.children,
}));
