/**
 * Starts reaper containers and prints, as JSON, what pid 1 of the first
 * one runs and how commands that exit 7 and kill themselves with SIGKILL
 * were reported. tests/container_test.ts runs it as is and in a pid
 * namespace where vm.memfd_noexec=2 refuses the reaper's sbox-init from a
 * memfd, so that the reaper supervises in place.
 *
 *   deno run --allow-all tests/programs/reaper_probe.ts
 */

import { BaseMounts, Container, OverlayMount } from "../../mod.ts";
import { busyboxImage, identityMapper, scratchDir } from "../fixtures.ts";

const dir = scratchDir("reaper-probe-");
try {
  const run = async (script: string) => {
    const container = await Container.create({
      rootfs: dir,
      userMapper: identityMapper(),
      mounts: [new OverlayMount([busyboxImage()]), new BaseMounts()],
    });
    try {
      const init = await container.start({
        command: ["/bin/sh", "-c", script],
        env: { PATH: "/bin" },
        stdout: "piped",
        reaper: true,
      });
      const output = await init.output();
      return { out: new TextDecoder().decode(output.stdout), code: output.code, signal: output.signal };
    } finally {
      await container.destroy();
    }
  };
  const pid1 = await run("tr '\\0' ' ' < /proc/1/cmdline; echo; grep CapEff /proc/1/status; exit 7");
  const killed = await run("kill -9 $$; echo survived");
  console.log(JSON.stringify({ pid1, killed }));
} finally {
  Deno.removeSync(dir, { recursive: true });
}
