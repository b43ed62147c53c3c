#!/usr/bin/env -S deno run --allow-ffi
/**
 * The sbox command line: `deno run --allow-ffi sbox.ts run [OPTIONS] [--] COMMAND [ARG...]`.
 * See `sbox --help` and docs/cli.md.
 *
 * @example Run a command in a container
 * ```sh
 * deno run --allow-ffi sbox.ts run --memory 256M --time 2s --report - -- "$PWD/solution"
 * ```
 *
 * @module
 */

import meta from "./deno.json" with { type: "json" };
import { main } from "./src/cli/main.ts";

export { main };

if (import.meta.main) Deno.exit(await main(Deno.args, meta.version, true));
