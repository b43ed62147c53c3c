/**
 * The container's start against the floor (start_cases.ts) as medians, with
 * the cases interleaved in blocks so that a shared machine's drift hits them
 * alike. Each block runs one case back to back, as a judge runs its
 * containers, and its first run is dropped: it may still overlap the
 * previous case's teardown (a container's file systems go away on a pool
 * thread after its exit is reported). Interleaving single runs instead
 * would put each container's teardown into the next floor run, and flatter
 * the ratio.
 *
 * With GAP_MS, each start waits that long first (untimed): isolated
 * starts, as between a judge's test runs, when the previous container's
 * teardown and the kernel's cleanup of its network namespace have finished
 * and the CPUs have gone idle. Back to back (the default), those compete
 * with the next start for this machine's two CPUs.
 *
 * It also prints the CPU time each start costs the whole machine (every
 * task on every CPU, from /proc/stat: kernel threads too, such as the one
 * that frees a network namespace), beside its wall-clock time.
 *
 * Run: deno run --allow-all bench/start_ratio.ts [RUNS, default 400] [GAP_MS, default 0]
 */

import { container, floor } from "./start_cases.ts";

const CASES: Record<string, () => Promise<void>> = {
  "floor: clone3 into 8 namespaces + execve": () => floor(),
  "container: temporary overlay + base mounts": () => container(true),
  "container: on-disk overlay + base mounts": () => container(false),
};
const BLOCK = 10;

/** Busy time of all CPUs so far, in milliseconds (/proc/stat counts in 1/100 s). */
function cpuBusyMs(): number {
  const [user, nice, system, _idle, _iowait, irq, softirq] = Deno.readTextFileSync("/proc/stat")
    .split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
  return (user + nice + system + irq + softirq) * 10;
}

const runs = Number(Deno.args[0] ?? 400);
const gapMs = Number(Deno.args[1] ?? 0);
if (!(runs > 0) || !(gapMs >= 0)) {
  console.error("usage: start_ratio.ts [RUNS] [GAP_MS]");
  Deno.exit(2);
}
const times = new Map<string, number[]>(Object.keys(CASES).map((name) => [name, []]));
const cpu = new Map<string, number>(Object.keys(CASES).map((name) => [name, 0]));
for (const run of Object.values(CASES)) for (let i = 0; i < BLOCK; i++) await run(); // warm-up
for (let block = 0; block < Math.ceil(runs / (BLOCK - 1)); block++) {
  for (const [name, run] of Object.entries(CASES)) {
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

const quantile = (values: number[], q: number) =>
  [...values].sort((a, b) => a - b)[Math.floor(values.length * q)];
const [floorName] = Object.keys(CASES);
const floorMedian = quantile(times.get(floorName)!, 0.5);
console.log(
  `${runs} runs of each case, in blocks of ${BLOCK - 1}, ` +
    (gapMs > 0 ? `each after a ${gapMs} ms pause` : "back to back") +
    "; milliseconds (p25 / median / p75), then CPU time per start (all CPUs):",
);
for (const [name, values] of times) {
  const [p25, p50, p75] = [0.25, 0.5, 0.75].map((q) => quantile(values, q).toFixed(2));
  const against = name === floorName ? "floor" : `x${(quantile(values, 0.5) / floorMedian).toFixed(2)}`;
  const cpuPerStart = (cpu.get(name)! / values.length).toFixed(2);
  console.log(`  ${name.padEnd(44)} ${p25} / ${p50} / ${p75}   ${against.padEnd(5)}   cpu ${cpuPerStart}`);
}
