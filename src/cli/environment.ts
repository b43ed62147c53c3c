/**
 * The command's environment: sbox's defaults (`PATH`, `HOME`, `TERM` on a
 * terminal) with the `-e` and `--env-file` options applied in command-line
 * order. `-e NAME` reads sbox's own environment here, and `--env-file` its
 * file, through the helper (sbox runs with --allow-ffi alone, no
 * --allow-env or --allow-read), and not while parsing, which reads nothing.
 *
 * @module
 */

import { decodeName } from "../cstring.ts";
import { SboxError } from "../error.ts";
import { notPassable } from "../options.ts";
import { PROGRAM_LIMITS } from "../program.ts";
import { environmentVariable, readRegularFile } from "../sys.ts";
import type { EnvSetting } from "./args.ts";
import { hostPath } from "./mounts.ts";
import { invalidFlag } from "./option_errors.ts";

/** Where the settings' values come from; tests give their own. */
export interface EnvironmentSources {
  /**
   * sbox's own variable NAME: its value (bytes that are not UTF-8 escaped,
   * as cstring.ts's `decodeName` escapes them), `undefined` if unset.
   */
  variable: (name: string) => string | undefined;
  /** The bytes of an `--env-file` (an absolute host path); throws an Error that says why not. */
  readFile: (path: string) => Uint8Array;
}

/**
 * Far more than execve takes (128 KiB a variable, a quarter of the stack
 * limit in all): a bigger file is refused unread.
 */
const ENV_FILE_MAX_BYTES = 16 << 20;

const HOST_SOURCES: EnvironmentSources = {
  variable: environmentVariable,
  // A regular file only: a FIFO would block sbox (docs/cli.md).
  readFile: (path) => readRegularFile(path, "env file", ENV_FILE_MAX_BYTES),
};

/** One line of an env file that sets a variable: `NAME=VALUE`, or `NAME` (`value` undefined). */
export interface EnvFileLine {
  /** The line's number, from 1. */
  line: number;
  name: string;
  value?: string;
}

/**
 * `base` with `settings` applied in order, a later one winning. `-e NAME`
 * (and a line `NAME` of an env file) takes sbox's value of NAME; where sbox
 * has none, the command has none either, whatever `base` or an earlier
 * setting gave it (Docker's `-e NAME`). `--env-file` paths are relative to
 * sbox's working directory. Throws an {@linkcode SboxError} (step
 * "options") naming the option, and an env file's line; or saying that the
 * environment has more variables than a container takes (65536).
 *
 * @example `-e TOKEN` passes sbox's TOKEN without showing it on the command line
 * ```ts
 * import { commandEnvironment } from "./environment.ts";
 *
 * const env = commandEnvironment({ PATH: "/bin" }, [{ kind: "inherit", name: "TOKEN" }], {
 *   variable: (name) => (name === "TOKEN" ? "s3cret" : undefined),
 *   readFile: () => new Uint8Array(),
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
    else if (setting.kind === "inherit") {
      inherit(env, setting.name, sources.variable(setting.name));
    } else {
      const path = hostPath(setting.path);
      for (const { name, value } of parseEnvFile(readEnvFile(path, sources), path)) {
        if (value !== undefined) env.set(name, value);
        else inherit(env, name, sources.variable(name));
      }
    }
  }
  // The library's limit, said in the command line's words (it names its option `env`).
  if (env.size > PROGRAM_LIMITS.arrayEntries) {
    throw new SboxError(
      `the command's environment has ${env.size} variables, at most ${PROGRAM_LIMITS.arrayEntries} ` +
        "(-e, --env-file)",
      { step: "options" },
    );
  }
  return Object.fromEntries(env);
}

function readEnvFile(path: string, sources: EnvironmentSources): Uint8Array {
  try {
    return sources.readFile(path);
  } catch (err) {
    throw invalidFlag("--env-file", err);
  }
}

/** Gives `name` sbox's `value` of it, or removes it where sbox has none. */
function inherit(env: Map<string, string>, name: string, value: string | undefined): void {
  if (value === undefined) env.delete(name);
  else env.set(name, value);
}

/**
 * The variables of env file `bytes` (`path` names it in errors), in
 * Docker's `--env-file` format: one `NAME=VALUE` or `NAME` a line; leading
 * white space dropped (a byte-order mark too), then empty lines and lines
 * that start with `#` skipped; a `\r` before the `\n` dropped. VALUE is the
 * rest of the line as it is: no quotes are removed, no escapes or `$`
 * expanded, trailing spaces kept. NAME may hold no white space (`A = 1` is
 * an error, not a variable "A "). Bytes that are not UTF-8 are taken as
 * they are (escaped as cstring.ts's `decodeName` escapes a host name's, and
 * so passed on as the same bytes); a NUL byte is an error. Errors name the
 * file and the line.
 *
 * @example
 * ```ts
 * import { parseEnvFile } from "./environment.ts";
 *
 * const lines = parseEnvFile(new TextEncoder().encode("# db\nUSER=judge\nTOKEN\n"), "vars.env");
 * console.log(lines); // [{ line: 2, name: "USER", value: "judge" }, { line: 3, name: "TOKEN" }]
 * ```
 * @internal Exported for tests only.
 */
export function parseEnvFile(bytes: Uint8Array, path: string): EnvFileLine[] {
  const lines: EnvFileLine[] = [];
  let start = 0;
  for (let number = 1; start < bytes.length; number++) {
    const newline = bytes.indexOf(0x0a, start);
    const end = newline < 0 ? bytes.length : newline;
    const parsed = parseEnvLine(bytes.subarray(start, end), `${path}:${number}`);
    if (parsed) lines.push({ line: number, ...parsed });
    start = end + 1;
  }
  return lines;
}

/** One line of an env file, without its `\n`; `where` names it in errors. Undefined for none. */
function parseEnvLine(bytes: Uint8Array, where: string): { name: string; value?: string } | undefined {
  const refuse = (problem: string) => SboxError.invalidOption("--env-file", `${where}: ${problem}`);
  const line = decodeName(bytes).replace(/\r$/, "").replace(/^\s+/, "");
  if (line === "" || line.startsWith("#")) return undefined;
  const eq = line.indexOf("=");
  const name = eq < 0 ? line : line.slice(0, eq);
  if (name === "") throw refuse(`no variable name before "="`);
  // Not quoted: a line "TOKEN s3cret" (an "=" forgotten), or a pasted
  // secret alone, would put it in a CI log. The line's number says where.
  if (/\s/.test(name)) throw refuse('a variable name holds white space (is an "=" missing?)');
  const problem = notPassable(line);
  if (problem) throw refuse(`holds ${problem}`);
  return eq < 0 ? { name } : { name, value: line.slice(eq + 1) };
}
