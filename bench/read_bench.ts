/**
 * What src/sys.ts's readFile costs (open, reads to the end, close, through
 * the helper library): small /proc files, which sbox reads a few dozen of
 * per `sbox run`, the mount table, and a file of 200 KiB, larger than the
 * buffer readAll starts with.
 *
 * Run: deno bench --allow-all bench/read_bench.ts
 */

import { readFile } from "../src/sys.ts";
import { scratchDir } from "../tests/fixtures.ts";

const dir = scratchDir("read-bench-");
const big = `${dir}/big`;
Deno.writeFileSync(big, new Uint8Array(200 * 1024).fill(0x61));
globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));

for (const path of ["/proc/self/stat", "/proc/self/cgroup", "/proc/self/limits", "/proc/self/mountinfo"]) {
  Deno.bench({ name: `readFile ${path}`, group: "proc", fn: () => void readFile(path) });
}
Deno.bench({ name: "readFile of 200 KiB", fn: () => void readFile(big) });
