/**
 * Preloaded into `sbox run` by tests/cli_test.ts (`deno run --preload`):
 * every setTimeout fires 4 ms before its (whole-ms) delay. Deno's timers
 * drop a delay's fraction and fired up to ~1 ms early; more here, so that a
 * time limit's kill sent early shows whatever lateness the load adds.
 */

const EARLY_MS = 4;
const real = globalThis.setTimeout;
globalThis.setTimeout =
  ((callback: () => void, delay = 0) =>
    real(callback, Math.max(0, Math.trunc(delay) - EARLY_MS))) as typeof setTimeout;
