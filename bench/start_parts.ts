/**
 * What each part of a container's start costs: the floor (start_cases.ts),
 * then containers that add one part at a time, from no mounts and no
 * seccomp filter up to the default container (temporary overlay,
 * BaseMounts with masks, default security). Each row prints its median,
 * its ratio to the floor, what it adds to the row above, and the CPU time
 * per start. The steps are tens to hundreds of microseconds, about what a
 * shared machine drifts by: compare rows within a run, over several runs.
 *
 * Run: deno run --allow-all bench/start_parts.ts [RUNS, default 200] [GAP_MS, default 0]
 */

import { BaseMounts, OverlayMount } from "../mod.ts";
import { BLOCK, containerWith, floor, measure, quantile, runsAndGap } from "./start_cases.ts";

const CASES: Record<string, () => Promise<void>> = {
  "floor: clone3 into 8 namespaces + execve": () => floor(),
  "container, no mounts, no seccomp filter": () => containerWith({ seccomp: "unconfined" }),
  "+ the default seccomp filter": () => containerWith(),
  "+ a temporary overlay root": () => containerWith({}, (image) => [new OverlayMount([image])]),
  "+ BaseMounts without masks": () =>
    containerWith({}, (image) => [new OverlayMount([image]), new BaseMounts({ maskPaths: false })]),
  "+ the masks (the default container)": () =>
    containerWith({}, (image) => [new OverlayMount([image]), new BaseMounts()]),
};

const { runs, gapMs } = runsAndGap("start_parts.ts [RUNS] [GAP_MS]", 200);
const { times, cpuPerStart } = await measure(CASES, runs, gapMs);
const medians = [...times].map(([name, values]) => [name, quantile(values, 0.5)] as const);
const floorMedian = medians[0][1];
console.log(
  `${runs} runs of each case, in blocks of ${BLOCK - 1}, ` +
    (gapMs > 0 ? `each after a ${gapMs} ms pause` : "back to back") +
    "; median ms, ratio to the floor, added to the row above, CPU ms per start (all CPUs):",
);
medians.forEach(([name, median], i) => {
  const added = i < 2
    ? ""
    : `${median >= medians[i - 1][1] ? "+" : ""}${(median - medians[i - 1][1]).toFixed(2)}`;
  console.log(
    `  ${name.padEnd(42)} ${median.toFixed(2)}  x${(median / floorMedian).toFixed(2)}  ${added.padStart(6)}` +
      `  cpu ${cpuPerStart.get(name)!.toFixed(2)}`,
  );
});
