/**
 * The cases of the start benchmarks: start-to-exit latency of `/bin/true`,
 * in library mode, beside the floor measured by the same helper in the same
 * run. start_bench.ts runs them under `deno bench`; start_ratio.ts prints
 * medians of interleaved blocks, steadier on a shared machine.
 *
 * @module
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
globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));

/**
 * clone3 into the same eight namespaces as a container (CLONE_VM), id maps
 * written, execve, wait: no mounts, no pivot_root. Without `namespaces`, a
 * bare clone3 + execve, for scale.
 */
export async function floor(namespaces = true): Promise<void> {
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

/**
 * Container.create and start with an overlay root and BaseMounts, then the
 * wait for the exit. `temporary`: the upper layer in a tmpfs of the
 * container's own (what a judge runs: writes vanish); otherwise in a
 * directory on the host's disk.
 */
export async function container(temporary = true): Promise<void> {
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
