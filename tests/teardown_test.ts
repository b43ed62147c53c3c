/**
 * Container teardown (src/teardown.ts): the last reference to a container's
 * mount namespace is closed on a pool thread, after the exit was reported,
 * and not while a child started since may hold a copy; but no more than
 * MAX_DEFERRED wait for that.
 */

import assert from "node:assert/strict";
import { beginLaunch, endLaunch, MAX_DEFERRED, pendingCloses } from "../src/teardown.ts";
import { busyboxContainer } from "./fixtures.ts";

/** Our fds that hold a mount namespace. */
function mountNamespaceFds(): number {
  return [...Deno.readDirSync("/proc/self/fd")].filter((e) => {
    try {
      return Deno.readLinkSync(`/proc/self/fd/${e.name}`).startsWith("mnt:[");
    } catch {
      return false;
    }
  }).length;
}

async function settled(): Promise<void> {
  for (let i = 0; i < 500 && pendingCloses() > 0; i++) await new Promise((r) => setTimeout(r, 2));
  assert.equal(pendingCloses(), 0, "every teardown finished");
}

async function runOne(): Promise<void> {
  await using setup = await busyboxContainer();
  const status = await (await setup.container.start({ command: ["/bin/true"] })).status;
  assert.equal(status.code, 0);
}

Deno.test("teardown: a container's mount namespace is let go once its exit is reported", async () => {
  await settled();
  const before = mountNamespaceFds();
  for (let i = 0; i < 5; i++) await runOne();
  await settled();
  assert.equal(mountNamespaceFds(), before);
});

Deno.test("teardown: Container.destroy returns once the container's file systems are gone", async () => {
  await settled();
  const before = mountNamespaceFds();
  const setup = await busyboxContainer();
  const status = await (await setup.container.start({ command: ["/bin/true"] })).status;
  assert.equal(status.code, 0);
  // Even while another start is under way, which would defer the close.
  await beginLaunch();
  try {
    await setup.container.destroy();
  } finally {
    endLaunch();
  }
  // No waiting here: destroy waited for the teardown.
  assert.equal(mountNamespaceFds(), before);
  await setup[Symbol.asyncDispose]();
});

Deno.test("teardown: while launches go on, at most MAX_DEFERRED containers wait for theirs", async () => {
  await settled();
  const before = mountNamespaceFds();
  const setups: Awaited<ReturnType<typeof busyboxContainer>>[] = [];
  // As if another start were always under way.
  await beginLaunch();
  try {
    for (let i = 0; i < MAX_DEFERRED + 6; i++) {
      const setup = await busyboxContainer();
      setups.push(setup);
      const status = await (await setup.container.start({ command: ["/bin/true"] })).status;
      assert.equal(status.code, 0);
      // Each held namespace is waiting, running, or closed.
      assert.ok(mountNamespaceFds() - before <= MAX_DEFERRED + 2, `${mountNamespaceFds() - before} held`);
    }
    assert.ok(pendingCloses() >= MAX_DEFERRED - 1, "closes waited for the launch");
  } finally {
    endLaunch();
    for (const setup of setups) await setup[Symbol.asyncDispose]();
  }
  await settled();
  assert.equal(mountNamespaceFds(), before);
});
