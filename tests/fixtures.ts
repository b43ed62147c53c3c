/**
 * Test fixtures: a busybox root file system built from Debian's
 * busybox-static (never downloaded), scratch directories and cgroups that
 * clean up after themselves, and a snapshot of what the test process holds
 * (fds, children, cgroups, mounts) for leak checks.
 */

import { BaseMounts, Cgroup, Container, OverlayMount, ProcUserMapper } from "../mod.ts";
import type { UserMapper } from "../mod.ts";

const WORK = new URL("./.work/", import.meta.url).pathname;

/** Builds (once, with tools/busybox-image) and returns a busybox image directory. */
export function busyboxImage(): string {
  const dir = `${WORK}busybox-image`;
  try {
    Deno.statSync(`${dir}/.complete`);
    return dir;
  } catch {
    // not built yet: start from scratch
  }
  try {
    Deno.removeSync(dir, { recursive: true });
  } catch {
    // nothing half-built to remove
  }
  const script = new URL("../tools/busybox-image", import.meta.url).pathname;
  const result = new Deno.Command(script, { args: [dir], stderr: "piped" }).outputSync();
  if (!result.success) {
    throw new Error(`tools/busybox-image failed: ${new TextDecoder().decode(result.stderr)}`);
  }
  Deno.writeTextFileSync(`${dir}/.complete`, "");
  return dir;
}

/** A fresh scratch directory under tests/.work, removed by `cleanup()`. */
export function scratchDir(prefix: string): string {
  Deno.mkdirSync(WORK, { recursive: true });
  return Deno.makeTempDirSync({ dir: WORK, prefix });
}

/** Maps container ids 0..65535 to the same host ids (tests run as root). */
export function identityMapper(): UserMapper {
  const map = [{ containerId: 0, hostId: 0, size: 65536 }];
  return new ProcUserMapper({ uidMap: map, gidMap: map });
}

let counter = 0;

/** A new, created cgroup below the test process's own. */
export function testCgroup(): Cgroup {
  const cgroup = Cgroup.current().child(`sbox-test-${Deno.pid}-${counter++}`);
  cgroup.create();
  return cgroup;
}

/** Everything a busybox container needs; `dispose()` removes all of it. */
export interface BusyboxSetup extends AsyncDisposable {
  container: Container;
  cgroup: Cgroup;
  image: string;
  upper: string;
  dir: string;
}

/** A container on a busybox overlay with base mounts and its own cgroup. */
export async function busyboxContainer(
  options: { userMapper?: UserMapper; hostname?: string; cgroup?: boolean } = {},
): Promise<BusyboxSetup> {
  const image = busyboxImage();
  const dir = scratchDir("c-");
  for (const sub of ["root", "upper", "work"]) Deno.mkdirSync(`${dir}/${sub}`);
  const cgroup = testCgroup();
  const container = await Container.create({
    rootfs: `${dir}/root`,
    cgroup: options.cgroup === false ? undefined : cgroup,
    userMapper: options.userMapper ?? identityMapper(),
    mounts: [new OverlayMount([image], `${dir}/upper`, `${dir}/work`), new BaseMounts()],
    hostname: options.hostname,
  });
  return {
    container,
    cgroup,
    image,
    upper: `${dir}/upper`,
    dir,
    async [Symbol.asyncDispose]() {
      await container.destroy();
      await cgroup.remove();
      Deno.removeSync(dir, { recursive: true });
    },
  };
}

/** Text of captured output. */
export function text(bytes: Uint8Array): string {
  return new TextDecoder().decode(bytes);
}

/** What the test process holds right now, to compare before and after. */
export function snapshot(): { fds: string[]; children: string[]; cgroups: string[]; mounts: number } {
  const fds = [...Deno.readDirSync("/proc/self/fd")].map((e) => {
    try {
      return `${e.name}->${Deno.readLinkSync(`/proc/self/fd/${e.name}`)}`;
    } catch {
      return `${e.name}->?`;
    }
  }).filter((fd) => !fd.includes("/proc/self/fd") && !fd.includes(`/proc/${Deno.pid}/fd`)).sort();
  const children: string[] = [];
  for (const task of Deno.readDirSync("/proc/self/task")) {
    const list = Deno.readTextFileSync(`/proc/self/task/${task.name}/children`).trim();
    if (list) children.push(...list.split(" "));
  }
  const root = Cgroup.current();
  const cgroups = [...Deno.readDirSync(root.path)].filter((e) =>
    e.isDirectory && e.name.startsWith("sbox-test")
  )
    .map((e) => e.name).sort();
  const mounts = Deno.readTextFileSync("/proc/self/mountinfo").trim().split("\n").length;
  return { fds, children: children.sort(), cgroups, mounts };
}
