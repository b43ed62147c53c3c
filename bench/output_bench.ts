/**
 * How fast `output()` collects a large piped stdout, beside `Deno.Command`'s
 * `output()` of the same program: busybox's `head -c N /dev/zero` (4 KiB
 * writes) and `dd bs=1M` (1 MiB writes), the image's static busybox in the
 * container and on the host alike; a host's own `head` writes in larger
 * blocks, and is no like-for-like measure. In turns, ROUNDS times, with the
 * median of each.
 *
 * Run: deno run -A bench/output_bench.ts [MB, default 200] [ROUNDS, default 5]
 *
 * @module
 */

import { BaseMounts, Container, OverlayMount } from "../mod.ts";
import { busyboxImage, identityMapper, scratchDir } from "../tests/fixtures.ts";

const mb = Number(Deno.args[0] ?? 200);
const rounds = Number(Deno.args[1] ?? 5);
const bytes = mb * 1 << 20;
const image = busyboxImage();
const dir = scratchDir("output-bench-");

/** The writers: busybox applets and their arguments. */
const WRITERS: Record<string, string[]> = {
  "head (4 KiB writes)": ["head", "-c", `${bytes}`, "/dev/zero"],
  "dd bs=1M": ["dd", "if=/dev/zero", "bs=1M", `count=${mb}`],
};

async function sbox(args: string[]): Promise<number> {
  await using container = await Container.create({
    rootfs: dir,
    userMapper: identityMapper(),
    mounts: [new OverlayMount([image]), new BaseMounts()],
  });
  const init = await container.start({ command: ["/bin/busybox", ...args], stdout: "piped", stderr: "null" });
  const started = performance.now();
  const { stdout } = await init.output();
  const ms = performance.now() - started;
  if (stdout.length !== bytes) throw new Error(`sbox: ${stdout.length} bytes`);
  return ms;
}

async function denoCommand(args: string[]): Promise<number> {
  const started = performance.now();
  const { stdout } = await new Deno.Command(`${image}/bin/busybox`, { args, stdout: "piped", stderr: "null" })
    .output();
  const ms = performance.now() - started;
  if (stdout.length !== bytes) throw new Error(`Deno.Command: ${stdout.length} bytes`);
  return ms;
}

const times = new Map<string, number[]>();
const add = (name: string, ms: number) => times.set(name, [...times.get(name) ?? [], ms]);
try {
  for (let round = 0; round < rounds; round++) {
    for (const [writer, args] of Object.entries(WRITERS)) {
      add(`${writer}: sbox output()`, await sbox(args));
      add(`${writer}: Deno.Command output()`, await denoCommand(args));
    }
  }
} finally {
  Deno.removeSync(dir, { recursive: true });
}
for (const [name, list] of times) {
  const median = [...list].sort((a, b) => a - b)[Math.floor(list.length / 2)];
  const each = list.map((ms) => ms.toFixed(0)).join(" ");
  console.log(
    `${name.padEnd(40)} ${mb} MiB: median ${median.toFixed(0)} ms (${
      (mb / median * 1000).toFixed(0)
    } MiB/s); ${each}`,
  );
}
