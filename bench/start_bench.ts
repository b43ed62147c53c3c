/**
 * Start-to-exit latency of `/bin/true`, in library mode, beside the floor
 * measured by the same helper in the same run:
 *
 * - floor: clone3 into the same eight namespaces (CLONE_VM), id maps
 *   written, execve, wait. No mounts, no pivot_root.
 * - container: Container.start with an overlay root and BaseMounts, then
 *   waiting for the exit. "temporary" keeps the upper layer in a tmpfs of the
 *   container's own (what a judge runs: writes vanish); "on disk" puts it in a
 *   directory on the host's disk, which overlayfs syncs when it goes away.
 * - bare fork+exec: clone3 with no namespace, for scale.
 *
 * `deno bench` prints each group's figures relative to its baseline (floor).
 * Run: deno bench --allow-all bench/start_bench.ts
 */

import { BaseMounts, Container, OverlayMount } from "../mod.ts";
import { launch, reap } from "../src/launch.ts";
import { CLONE, ProgramBuilder } from "../src/program.ts";
import { busyboxImage, identityMapper, scratchDir } from "../tests/fixtures.ts";

const NAMESPACES = CLONE.NEWUSER | CLONE.NEWNS | CLONE.NEWPID | CLONE.NEWNET | CLONE.NEWIPC | CLONE.NEWUTS |
  CLONE.NEWCGROUP | CLONE.NEWTIME;
const mapper = identityMapper();
const image = busyboxImage();
const dir = scratchDir("bench-");
for (const sub of ["root", "upper", "work"]) Deno.mkdirSync(`${dir}/${sub}`);

async function floor(namespaces: boolean): Promise<void> {
  const launched = await launch({
    flags: (namespaces ? NAMESPACES : 0n) | CLONE.VM,
    cgroupFd: -1,
    sync: namespaces,
    childFds: [],
    beforeStart: namespaces ? (pid) => mapper.map(pid) : undefined,
    program: (sync) => {
      const b = new ProgramBuilder();
      if (namespaces) b.waitParent(sync.read, sync.write);
      return b.exec("/bin/true", ["true"], [], null).build();
    },
  });
  const status = await reap(launched.pidfd);
  if (status.status !== 0) throw new Error("true failed");
}

async function container(temporary: boolean): Promise<void> {
  // Container.create only validates; each start gets fresh namespaces. The
  // upper layer stays empty: /bin/true writes nothing.
  const overlay = temporary
    ? new OverlayMount([image])
    : new OverlayMount([image], `${dir}/upper`, `${dir}/work`);
  const c = await Container.create({
    rootfs: `${dir}/root`,
    userMapper: mapper,
    mounts: [overlay, new BaseMounts()],
  });
  const init = await c.start({ command: ["/bin/true"] });
  const status = await init.status;
  if (!status.success) throw new Error("true failed");
}

Deno.bench({
  name: "floor: clone3 into 8 namespaces + execve",
  group: "start",
  baseline: true,
  fn: async () => await floor(true),
});
Deno.bench({
  name: "container: temporary overlay + base mounts",
  group: "start",
  fn: async () => await container(true),
});
Deno.bench({
  name: "container: on-disk overlay + base mounts",
  group: "start",
  fn: async () => await container(false),
});
Deno.bench({
  name: "bare clone3 + execve, no namespaces",
  group: "start",
  fn: async () => await floor(false),
});
