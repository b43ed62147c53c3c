/**
 * The cases of the start benchmarks: start-to-exit latency of `/bin/true`,
 * in library mode, beside the floor measured by the same helper in the same
 * run. start_bench.ts runs them under `deno bench`; start_ratio.ts and
 * start_parts.ts print medians of interleaved blocks ({@linkcode measure}),
 * steadier on a shared machine.
 *
 * @module
 */

import { BaseMounts, Container, type ContainerOptions, OverlayMount } from "../mod.ts";
import { launch, reap } from "../src/launch.ts";
import { ALL_NAMESPACES, CLONE } from "../src/program.ts";
import { busyboxImage, identityMapper, scratchDir } from "../tests/fixtures.ts";

const mapper = identityMapper();
const image = busyboxImage();
const dir = scratchDir("bench-");
for (const sub of ["root", "upper", "work"]) Deno.mkdirSync(`${dir}/${sub}`);
globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));

/**
 * clone3 into the same eight namespaces as a container (CLONE_VM), id maps
 * written, execve, wait: no mounts, no pivot_root. Without `namespaces`, a
 * bare clone3 + execve, for scale. launch()'s own first ops come with
 * either (the parent-death signal; the neutral rank, nothing at a neutral
 * caller's: src/security/neutral.ts).
 */
export async function floor(namespaces = true): Promise<void> {
  const launched = await launch({
    flags: (namespaces ? ALL_NAMESPACES : 0n) | CLONE.VM,
    cgroupFd: -1,
    sync: namespaces,
    childFds: [],
    beforeStart: namespaces ? (pid) => mapper.map(pid) : undefined,
    compile: (b, sync) => {
      if (namespaces) b.waitParent(sync.read, sync.write);
      b.exec("/bin/true", ["true"], [], null);
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
export function container(temporary = true): Promise<void> {
  // The upper layer stays empty: /bin/true writes nothing.
  return containerWith({}, (image) => [
    temporary ? new OverlayMount([image]) : new OverlayMount([image], `${dir}/upper`, `${dir}/work`),
    new BaseMounts(),
  ]);
}

/**
 * Container.create and start with `options` and the identity id map, then
 * the wait for the exit. `mounts` makes the mounts anew for each start, as
 * a caller would, given the busybox image; without it, the image itself is
 * the root.
 */
export async function containerWith(
  options: Omit<ContainerOptions, "rootfs" | "userMapper" | "mounts"> = {},
  mounts?: (image: string) => ContainerOptions["mounts"],
): Promise<void> {
  // Container.create only validates; each start gets fresh namespaces.
  const c = await Container.create({
    ...options,
    rootfs: mounts ? `${dir}/root` : image,
    userMapper: mapper,
    mounts: mounts?.(image),
  });
  const init = await c.start({ command: ["/bin/true"] });
  const status = await init.status;
  if (!status.success) throw new Error("true failed");
}

/** Wall-clock times of each case's starts, and the CPU time they cost the whole machine. */
export interface Measured {
  /** Milliseconds, per case, in the order of the cases. */
  times: Map<string, number[]>;
  /** CPU time of all CPUs per start, milliseconds, per case. */
  cpuPerStart: Map<string, number>;
}

/** Runs per block of {@linkcode measure}; the first of each is dropped. */
export const BLOCK = 10;

/** Busy time of all CPUs so far, in milliseconds (/proc/stat counts in 1/100 s). */
function cpuBusyMs(): number {
  const [user, nice, system, _idle, _iowait, irq, softirq] = Deno.readTextFileSync("/proc/stat")
    .split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
  return (user + nice + system + irq + softirq) * 10;
}

/**
 * Runs each case `runs` times, interleaved in blocks of ten so that a
 * shared machine's drift hits them alike. Each block runs one case back to
 * back, as a judge runs its containers, and its first run is dropped: it may
 * still overlap the previous case's teardown (a container's file systems go
 * away on a pool thread after its exit is reported). Interleaving single
 * runs instead would put each container's teardown into the next case.
 *
 * With `gapMs`, each start waits that long first (untimed): isolated starts,
 * once the previous teardown and the kernel's cleanup of its network
 * namespace are done and the CPUs have gone idle.
 */
export async function measure(
  cases: Record<string, () => Promise<void>>,
  runs: number,
  gapMs = 0,
): Promise<Measured> {
  const times = new Map<string, number[]>(Object.keys(cases).map((name) => [name, []]));
  const cpu = new Map<string, number>(Object.keys(cases).map((name) => [name, 0]));
  for (const run of Object.values(cases)) for (let i = 0; i < BLOCK; i++) await run(); // warm-up
  for (let block = 0; block < Math.ceil(runs / (BLOCK - 1)); block++) {
    for (const [name, run] of Object.entries(cases)) {
      let busy = 0;
      for (let i = 0; i < BLOCK; i++) {
        if (gapMs > 0) await new Promise((resolve) => setTimeout(resolve, gapMs));
        if (i === 1) busy = cpuBusyMs();
        const start = performance.now();
        await run();
        if (i > 0) times.get(name)!.push(performance.now() - start);
      }
      cpu.set(name, cpu.get(name)! + cpuBusyMs() - busy);
    }
  }
  const cpuPerStart = new Map([...cpu].map(([name, total]) => [name, total / times.get(name)!.length]));
  return { times, cpuPerStart };
}

/** The `q` quantile (0.5: the median) of `values`. */
export function quantile(values: readonly number[], q: number): number {
  return [...values].sort((a, b) => a - b)[Math.floor(values.length * q)];
}

/** The arguments RUNS and GAP_MS of the measuring scripts; exits with `usage` if they are bad. */
export function runsAndGap(usage: string, defaultRuns: number): { runs: number; gapMs: number } {
  const runs = Number(Deno.args[0] ?? defaultRuns);
  const gapMs = Number(Deno.args[1] ?? 0);
  if (!(runs > 0) || !(gapMs >= 0)) {
    console.error(`usage: ${usage}`);
    Deno.exit(2);
  }
  return { runs, gapMs };
}
