/**
 * Start-to-exit latency of `/bin/true` in library mode (start_cases.ts),
 * each case run back to back, as a judge runs its containers:
 *
 * - floor: clone3 into the same eight namespaces, id maps, execve;
 * - container: temporary overlay (the upper layer in a tmpfs of its own) or
 *   on-disk overlay, with BaseMounts and the default security;
 * - bare clone3 + execve, no namespaces, for scale.
 *
 * `deno bench` prints each case relative to the floor (averages, so a
 * shared machine's stalls weigh in; bench/start_ratio.ts prints medians).
 * Run: deno bench --allow-all bench/start_bench.ts
 */

import { container, floor } from "./start_cases.ts";

Deno.bench({
  name: "floor: clone3 into 8 namespaces + execve",
  group: "start",
  baseline: true,
  fn: async () => await floor(),
});
Deno.bench({
  name: "container: temporary overlay + base mounts",
  group: "start",
  fn: async () => await container(true),
});
Deno.bench({
  name: "container: on-disk overlay + base mounts",
  group: "start",
  fn: async () => await container(false),
});
Deno.bench({
  name: "bare clone3 + execve, no namespaces",
  group: "start",
  fn: async () => await floor(false),
});
