/**
 * Starts a container whose id mapper never finishes, prints the waiting
 * child's pid, and waits forever: tests/leak_test.ts kills this process
 * and checks that the child does not outlive it.
 */

import { Container, type UserMapper } from "../../mod.ts";

const [rootfs] = Deno.args;
const mapper: UserMapper = {
  uidMap: [{ containerId: 0, hostId: 0, size: 1 }],
  gidMap: [{ containerId: 0, hostId: 0, size: 1 }],
  setgroupsAllowed: true,
  map: (pid) => {
    console.log(pid);
    return new Promise(() => {});
  },
};
// A promise that never settles does not keep Deno alive: a timer does.
setInterval(() => {}, 60_000);
const container = await Container.create({ rootfs, userMapper: mapper });
await container.start({ command: ["/bin/true"] });
