/**
 * A small option tokenizer with the conventions of `node:util`'s
 * `parseArgs`, which sbox used before: long options (`--name value`,
 * `--name=value`), short ones (`-x value`, `-xvalue`, `-vh` for booleans),
 * repeatable options and `--`. Written out because the first `node:` import
 * costs about 10 ms of start-up, which every `sbox run` would pay.
 *
 * @module
 */

import { decodeName } from "../cstring.ts";

/** How an option is spelled and whether it takes a value. */
export interface OptionSpec {
  type: "string" | "boolean";
  /** One-letter alias. */
  short?: string;
  /** May be given more than once. */
  multiple?: boolean;
}

/** An argument, classified: an option (with its value), a positional argument or `--`. */
export type Token =
  | { kind: "option"; index: number; name: string; rawName: string; value: string | undefined }
  | { kind: "positional"; index: number; value: string }
  | { kind: "option-terminator"; index: number };

/** Why parsing failed, in one line: "unknown option --bogus". */
export class ArgvError extends Error {}

/**
 * Classifies `args` against `options`. Strict: unknown options, missing or
 * unexpected values and any positional argument are errors. Not strict:
 * unknown options are taken as booleans, and nothing is an error, which is
 * enough to find where the options end.
 *
 * @example
 * ```ts
 * import { tokenize } from "./argv.ts";
 *
 * const tokens = tokenize(["-e", "A=1", "--cwd=/x", "ls"], {
 *   env: { type: "string", short: "e", multiple: true },
 *   cwd: { type: "string" },
 * }, false);
 * console.log(tokens.map((t) => t.kind)); // ["option", "option", "positional"]
 * ```
 */
export function tokenize(
  args: readonly string[],
  options: Record<string, OptionSpec>,
  strict: boolean,
): Token[] {
  const byShort = new Map(
    Object.entries(options).flatMap(([name, spec]) => spec.short ? [[spec.short, name]] : []),
  );
  const tokens: Token[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    const index = i;
    if (arg === "--") {
      tokens.push({ kind: "option-terminator", index });
      for (let j = i + 1; j < args.length; j++) tokens.push({ kind: "positional", index: j, value: args[j] });
      break;
    }
    if (!arg.startsWith("-") || arg === "-") {
      if (strict) throw new ArgvError(`unexpected argument ${JSON.stringify(arg)}`);
      tokens.push({ kind: "positional", index, value: arg });
      continue;
    }
    // One option, or (short) a group of booleans ending perhaps in one that takes a value.
    const long = arg.startsWith("--");
    const eq = long ? arg.indexOf("=") : -1;
    const names = long ? [eq < 0 ? arg.slice(2) : arg.slice(2, eq)] : [...arg.slice(1)];
    for (let k = 0; k < names.length; k++) {
      const rawName = long ? `--${names[k]}` : `-${names[k]}`;
      const name = long ? names[k] : byShort.get(names[k]);
      // Own properties only: "--constructor" is no option.
      const spec = name !== undefined && Object.hasOwn(options, name) ? options[name] : undefined;
      if (name === undefined || spec === undefined) {
        // -v=1: the group -v, -=, -1; the "=" is what went wrong.
        if (strict && names[k] === "=" && k > 0) {
          throw new ArgvError(`option -${names[k - 1]} does not take a value (in ${JSON.stringify(arg)})`);
        }
        if (strict) throw new ArgvError(`unknown option ${rawName}`);
        tokens.push({ kind: "option", index, name: names[k], rawName, value: undefined });
        continue;
      }
      let value: string | undefined;
      if (long && eq >= 0) {
        value = arg.slice(eq + 1);
        if (spec.type === "boolean" && strict) throw new ArgvError(`option ${rawName} does not take a value`);
      } else if (spec.type === "string") {
        if (!long && k + 1 < names.length) {
          value = arg.slice(k + 2); // -xVALUE
          k = names.length;
        } else if (i + 1 < args.length) {
          value = args[++i];
          if (strict && value.length > 1 && value.startsWith("-")) {
            // A short option takes "=" as part of its value (-e=X is "=X"), so its
            // forms are -eVALUE and the long one.
            const forms = long ? `${rawName}=VALUE` : `${rawName}VALUE or --${name}=VALUE`;
            throw new ArgvError(
              `option ${rawName} needs a value; to give one that starts with "-", write ${forms}`,
            );
          }
        } else if (strict) {
          throw new ArgvError(`option ${rawName} needs a value`);
        }
      }
      tokens.push({ kind: "option", index, name, rawName, value });
    }
  }
  return tokens;
}

/**
 * `args` (the end of this process's command line, as `Deno.args` gives it)
 * with the bytes the command line holds: Deno decodes it as UTF-8 and puts
 * U+FFFD where bytes are not, so an argument or a file name in another
 * encoding would reach the container changed. Each argument with a U+FFFD
 * is taken from `commandLine` (the bytes of /proc/self/cmdline, whose last
 * entries are `args`) instead, decoded as host names are (cstring.ts's
 * `decodeName`: a byte that is not UTF-8 is U+DC00 + byte), which the
 * container's setup writes back as the byte itself. `inexact` is the index
 * of the first argument whose bytes are not found there (an entry that
 * does not decode to it), whose text would not be the one given; -1 when
 * all are.
 *
 * @example
 * ```ts
 * import { exactArguments } from "./argv.ts";
 *
 * const raw = new Uint8Array([...new TextEncoder().encode("deno\0run\0a"), 0xff, 0]);
 * const { args, inexact } = exactArguments(["run", "a\ufffd"], raw);
 * console.assert(args[1] === "a\udcff" && inexact === -1);
 * ```
 */
export function exactArguments(
  args: readonly string[],
  commandLine: Uint8Array,
): { args: string[]; inexact: number } {
  const exact = [...args];
  // Deno's arguments are valid UTF-8 but where it put a U+FFFD: only those
  // need the command line's entries, found from its end.
  const first = args.findIndex((arg) => arg.includes("\ufffd"));
  if (first < 0) return { args: exact, inexact: -1 };
  const entries: Uint8Array[] = [];
  let start = 0;
  for (let i = 0; i < commandLine.length; i++) {
    if (commandLine[i] === 0) {
      entries.push(commandLine.subarray(start, i));
      start = i + 1;
    }
  }
  const tail = entries.slice(Math.max(0, entries.length - args.length));
  const offset = args.length - tail.length;
  const lossy = new TextDecoder();
  for (let i = first; i < args.length; i++) {
    if (!args[i].includes("\ufffd")) continue;
    const bytes = tail[i - offset];
    // Deno's decoding of these bytes (Rust's to_string_lossy puts U+FFFD
    // where TextDecoder does): else the entry is not this argument's.
    if (bytes === undefined || lossy.decode(bytes) !== args[i]) return { args: exact, inexact: i };
    exact[i] = decodeName(bytes);
  }
  return { args: exact, inexact: -1 };
}
