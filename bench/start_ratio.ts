/**
 * The container's start against the floor (start_cases.ts) as medians, with
 * the cases interleaved in blocks (see `measure` in start_cases.ts for why).
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

import { BLOCK, container, floor, measure, quantile, runsAndGap } from "./start_cases.ts";

const CASES: Record<string, () => Promise<void>> = {
  "floor: clone3 into 8 namespaces + execve": () => floor(),
  "container: temporary overlay + base mounts": () => container(true),
  "container: on-disk overlay + base mounts": () => container(false),
};

const { runs, gapMs } = runsAndGap("start_ratio.ts [RUNS] [GAP_MS]", 400);
const { times, cpuPerStart } = await measure(CASES, runs, gapMs);
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
  console.log(
    `  ${name.padEnd(44)} ${p25} / ${p50} / ${p75}   ${against.padEnd(5)}   cpu ${
      cpuPerStart.get(name)!.toFixed(2)
    }`,
  );
}
