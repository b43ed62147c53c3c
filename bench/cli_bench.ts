/**
 * What `sbox run -- /bin/true` costs as a whole command, beside Deno's own
 * start-up (`deno run` of an empty script, same flags, same config):
 *
 * - deno run empty.ts: the floor, Deno starting and exiting;
 * - sbox --version: plus loading sbox's modules (no FFI, no container);
 * - sbox run --rootfs busybox: plus the helper library, a cgroup, an image
 *   overlay, the namespaces, /bin/true and the clean-up;
 * - sbox run (host root): the same with the host's root rebuilt from one
 *   overlay per top-level directory.
 *
 * Two ways to run it:
 * - `deno run -A bench/cli_bench.ts [ROUNDS]` runs the commands in turn,
 *   ROUNDS times (default 20), and prints min, median and max of each, and
 *   each median's difference and ratio to the floor;
 * - `deno bench -A bench/cli_bench.ts` runs the same as benchmarks, relative
 *   to the floor.
 */

import { busyboxImage, scratchDir } from "../tests/fixtures.ts";

const SBOX = decodeURIComponent(new URL("../sbox.ts", import.meta.url).pathname);
const dir = scratchDir("cli-bench-");
const EMPTY = `${dir}/empty.ts`;
Deno.writeTextFileSync(EMPTY, "");
globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
const image = busyboxImage();

/** The commands, floor first: arguments of `deno`. */
const COMMANDS: { name: string; args: string[] }[] = [
  { name: "deno run empty.ts", args: ["run", "--allow-ffi", EMPTY] },
  { name: "sbox --version", args: ["run", "--allow-ffi", SBOX, "--version"] },
  {
    name: "sbox run --rootfs busybox -- /bin/true",
    args: ["run", "--allow-ffi", SBOX, "run", "--rootfs", image, "--", "/bin/true"],
  },
  { name: "sbox run -- /bin/true (host root)", args: ["run", "--allow-ffi", SBOX, "run", "--", "/bin/true"] },
];

/** Runs `deno ARGS` to the end; throws unless it exits with 0. */
async function run(args: string[]): Promise<void> {
  const output = await new Deno.Command(Deno.execPath(), { args, stdout: "null", stderr: "piped" }).output();
  if (!output.success) throw new Error(`deno ${args.join(" ")}: ${new TextDecoder().decode(output.stderr)}`);
}

for (const [i, { name, args }] of COMMANDS.entries()) {
  Deno.bench({
    name,
    group: "whole command",
    baseline: i === 0,
    n: 20,
    warmup: 2,
    fn: async () => await run(args),
  });
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Interleaves the commands round by round, so that drift of the machine hits them alike. */
async function measure(rounds: number): Promise<void> {
  const times: number[][] = COMMANDS.map(() => []);
  for (const { args } of COMMANDS) await run(args); // warm-up: caches, page cache
  for (let round = 0; round < rounds; round++) {
    for (const [i, { args }] of COMMANDS.entries()) {
      const start = performance.now();
      await run(args);
      times[i].push(performance.now() - start);
    }
  }
  const floor = median(times[0]);
  console.log(`${rounds} rounds, milliseconds (min / median / max), then the median against the floor:`);
  for (const [i, { name }] of COMMANDS.entries()) {
    const t = times[i];
    const m = median(t);
    const figures = `${Math.min(...t).toFixed(1)} / ${m.toFixed(1)} / ${Math.max(...t).toFixed(1)}`;
    const relative = i === 0 ? "floor" : `+${(m - floor).toFixed(1)} ms, x${(m / floor).toFixed(2)}`;
    console.log(`  ${name.padEnd(42)} ${figures.padEnd(24)} ${relative}`);
  }
}

if (import.meta.main) await measure(Number(Deno.args[0] ?? 20));
