/**
 * sbox's `main` as a program that embeds it calls it, for tests/cli_test.ts:
 * runs `main(Deno.args)`, goes on for a moment as such a program would
 * (a timer: Deno's event loop and its other threads get their turn), then
 * prints `alive STATUS` on stdout and exits with main's status. A signal
 * that sbox left pending for Deno to deliver ends it before that line.
 */

import { main } from "../../sbox.ts";

const status = await main(Deno.args, "0.0.0-test");
await new Promise((resolve) => setTimeout(resolve, 300));
console.log(`alive ${status}`);
Deno.exit(status);
