/**
 * The command's environment: sbox's defaults (`PATH`, `HOME`, `TERM` on a
 * terminal) with the `-e` options applied in command-line order. `-e NAME`
 * reads sbox's own environment here, through the helper (sbox runs with
 * --allow-ffi alone, no --allow-env), and not while parsing, which reads
 * nothing.
 *
 * @module
 */

import { SboxError } from "../error.ts";
import { environmentVariable } from "../sys.ts";
import type { EnvSetting } from "./args.ts";

/** Where the settings' values come from; tests give their own. */
export interface EnvironmentSources {
  /** sbox's own variable NAME: its value, `undefined` if unset, `null` if not valid UTF-8. */
  variable: (name: string) => string | null | undefined;
}

const HOST_SOURCES: EnvironmentSources = { variable: environmentVariable };

/**
 * `base` with `settings` applied in order, a later one winning. `-e NAME`
 * takes sbox's value of NAME; where sbox has none, the command has none
 * either, whatever `base` or an earlier setting gave it (Docker's `-e NAME`).
 * Throws an {@linkcode SboxError} (step "options") naming the option.
 *
 * @example `-e TOKEN` passes sbox's TOKEN without showing it on the command line
 * ```ts
 * import { commandEnvironment } from "./environment.ts";
 *
 * const env = commandEnvironment({ PATH: "/bin" }, [{ kind: "inherit", name: "TOKEN" }], {
 *   variable: (name) => (name === "TOKEN" ? "s3cret" : undefined),
 * });
 * console.log(env); // { PATH: "/bin", TOKEN: "s3cret" }
 * ```
 */
export function commandEnvironment(
  base: Readonly<Record<string, string>>,
  settings: readonly EnvSetting[],
  sources: EnvironmentSources = HOST_SOURCES,
): Record<string, string> {
  // A Map, not an object: a variable may be named __proto__.
  const env = new Map(Object.entries(base));
  for (const setting of settings) {
    if (setting.kind === "set") env.set(setting.name, setting.value);
    else inherit(env, setting.name, sources.variable(setting.name), "--env", setting.name);
  }
  return Object.fromEntries(env);
}

/**
 * Gives `name` sbox's `value` of it, or removes it where sbox has none; a
 * value that is not UTF-8 is refused, naming `option` and `where`, as sbox
 * refuses such an argument rather than pass on another text.
 */
function inherit(
  env: Map<string, string>,
  name: string,
  value: string | null | undefined,
  option: string,
  where: string,
): void {
  if (value === null) {
    throw SboxError.invalidOption(
      option,
      `${where}: sbox's value of ${name} is not valid UTF-8, which sbox cannot pass on unchanged`,
    );
  }
  if (value === undefined) env.delete(name);
  else env.set(name, value);
}
