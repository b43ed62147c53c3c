/**
 * Compares two checkouts on bench/start_ratio.ts: runs it in separate
 * processes, alternating between them, and prints each run's container/floor
 * ratio and the medians. Separate processes, because two copies of the
 * library in one process measured ~4% apart with the same code (the second
 * one imported was the slower); alternating, because this shared machine
 * drifts by more than the changes worth measuring.
 *
 * Run: deno run --allow-all bench/compare_ratio.ts OTHER_CHECKOUT [ROUNDS, default 8] [RUNS, default 150] [GAP_MS, default 0]
 * (the other checkout needs its helper built: `zig build --release` there, and a
 * start_ratio.ts that takes GAP_MS, or it measures back to back).
 *
 * @module
 */

const [other, rounds = "8", runs = "150", gapMs = "0"] = Deno.args;
if (!other) {
  console.error("usage: compare_ratio.ts OTHER_CHECKOUT [ROUNDS] [RUNS] [GAP_MS]");
  Deno.exit(2);
}
const here = decodeURIComponent(new URL("..", import.meta.url).pathname);
const checkouts = { other, this: here };

/** The temporary-overlay container's ratio to the floor, from one run of start_ratio.ts. */
async function ratio(checkout: string): Promise<number> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", `${checkout}/bench/start_ratio.ts`, runs, gapMs],
    stderr: "inherit",
  }).output();
  const text = new TextDecoder().decode(output.stdout);
  const match = /temporary overlay.*? x(\d+\.\d+)/.exec(text);
  if (!output.success || !match) throw new Error(`no ratio from ${checkout}:\n${text}`);
  return Number(match[1]);
}

const ratios: Record<string, number[]> = { other: [], this: [] };
for (let round = 0; round < Number(rounds); round++) {
  for (const [name, checkout] of Object.entries(checkouts)) {
    const value = await ratio(checkout);
    ratios[name].push(value);
    console.log(`${name.padEnd(5)} x${value.toFixed(2)}`);
  }
}
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const [a, b] = [median(ratios.other), median(ratios.this)];
console.log(`medians: other x${a.toFixed(2)}, this x${b.toFixed(2)}; this/other ${(b / a).toFixed(3)}`);
