/**
 * Starts containers (piped stdout and stderr) until the process's fd limit
 * stops one, then destroys them all; prints the error's message as JSON.
 * Run by tests/leak_test.ts under a low `ulimit -n`.
 *
 *   deno run --allow-all tests/programs/fd_limit.ts
 */

import { BaseMounts, Container, OverlayMount } from "../../mod.ts";
import { busyboxImage, identityMapper, scratchDir } from "../fixtures.ts";

const image = busyboxImage();
const rootfs = scratchDir("fd-limit-");
const containers: Container[] = [];
let message = "no error";
try {
  for (let i = 0; i < 200; i++) {
    const container = await Container.create({
      rootfs,
      userMapper: identityMapper(),
      mounts: [new OverlayMount([image]), new BaseMounts()],
    });
    containers.push(container);
    await container.start({ command: ["/bin/sleep", "10"], stdout: "piped", stderr: "piped" });
  }
} catch (err) {
  message = (err as Error).message;
}
for (const container of containers) await container.destroy();
Deno.removeSync(rootfs, { recursive: true });
console.log(JSON.stringify({ message, started: containers.length }));
