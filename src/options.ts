/**
 * Option objects are checked key by key: a misspelled key (`hostName`,
 * `enviroment`) would otherwise be ignored without a word, and a default
 * would stand in for what the caller meant: a limit or a security option
 * that silently does not apply. TypeScript catches it in an object literal,
 * not in options built elsewhere (a JSON configuration, a spread).
 *
 * Here too are the checks of values that more than one function's options
 * hold: an id, a command, a text passed to a program (`Container.start()`'s
 * and `runAsUser`'s; `sbox run` reads its `--user` and `--env-file` by them).
 * Those of `Container`'s own options are in container_options.ts.
 *
 * @module
 */

import { SboxError, show, SHOWN_LENGTH } from "./error.ts";
import { hasUnwritableSurrogate, pathLengthProblem } from "./path.ts";
import { PROGRAM_LIMITS } from "./program.ts";

// show() is in error.ts, which every module that makes a message can import
// (program.ts, which this module imports, could not import it from here
// without a cycle); the modules that check options take it from here.
export { show };

/**
 * Every key of options type `T`, each mapped to true: a list of the known
 * keys that the compiler keeps complete, as it must name each key of `T`.
 */
export type KnownKeys<T> = Record<keyof Required<T>, true>;

/**
 * Refuses a key of `options` that `known` lacks, suggesting the closest
 * known one. Without `within` the keys are options themselves
 * (`invalid option hostName: unknown option (did you mean hostname?)`);
 * with it they belong to that option (`invalid option BindMount: unknown
 * option readOnly (did you mean readonly?)`).
 */
export function checkKnownKeys(options: object, known: Record<string, true>, within?: string): void {
  for (const key of Object.keys(options)) {
    if (Object.hasOwn(known, key)) continue;
    const guess = closest(key, Object.keys(known));
    const hint = guess === undefined ? "" : ` (did you mean ${guess}?)`;
    const shown = /^[A-Za-z_$][\w$]*$/.test(key) && key.length <= SHOWN_LENGTH ? key : show(key);
    throw within === undefined
      ? SboxError.invalidOption(shown, `unknown option${hint}`)
      : SboxError.invalidOption(within, `unknown option ${shown}${hint}`);
  }
}

/**
 * The options object of `within` (a constructor's last argument): undefined
 * for the defaults, else an object of `known` keys only.
 */
export function checkOptionsObject<T extends object>(
  within: string,
  options: T | undefined,
  known: KnownKeys<T>,
): T {
  if (options === undefined) return {} as T;
  if (typeof options !== "object" || options === null || Array.isArray(options)) {
    throw SboxError.invalidOption(within, `options must be an object, got ${show(options)}`);
  }
  checkKnownKeys(options, known, within);
  return options;
}

/**
 * Whether `value` is a plain object: an object literal, a parsed JSON
 * object, one without a prototype, or one of those from another realm
 * (node:vm). Options read as key and value pairs need one: `Object.entries`
 * sees no entries in a Map, nor the getters of a class, nor what an object
 * inherits, and the option would be empty without a word.
 */
export function isPlainObject<T>(value: T): value is T & object {
  if (typeof value !== "object" || value === null) return false;
  const prototype = Object.getPrototypeOf(value);
  // Some realm's Object.prototype is the one prototype whose own is null.
  return prototype === null || Object.getPrototypeOf(prototype) === null;
}

/**
 * Whether `value` is an object whose properties are read by name (an id
 * map entry, an rlimit pair): anything but null, a primitive or an array.
 * A class's instance does, its getters included.
 */
export function isRecord<T>(value: T): value is T & object {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * What a value that is not a plain object is, for a message: "an array",
 * "a Map", "an object that inherits its properties", "null", "5".
 */
export function kindOf(value: unknown): string {
  if (Array.isArray(value)) return "an array";
  if (typeof value !== "object" || value === null) return show(value);
  const prototype = Object.getPrototypeOf(value);
  const name = prototype?.constructor?.name;
  if (name === "Object") return "an object that inherits its properties";
  if (typeof name !== "string" || name === "") return "an object of a class";
  return `${/^[AEIOU]/i.test(name) ? "an" : "a"} ${name}`;
}

/**
 * Refuses a flag that is not a boolean; undefined (the default) passes.
 * Taken by truthiness, the string "false" from a JSON configuration would
 * turn the flag on without a word. Names `key` within `option` when given
 * (`invalid option BindMount: readonly must be a boolean, got "false"`).
 */
export function checkBoolean(
  option: string,
  value: unknown,
  key?: string,
): asserts value is boolean | undefined {
  if (value === undefined || typeof value === "boolean") return;
  const what = key === undefined ? "must" : `${key} must`;
  throw SboxError.invalidOption(option, `${what} be a boolean, got ${show(value)}`);
}

/**
 * The largest uid or gid: 2^32 - 2. The kernel's ids are 32 bits, and
 * 2^32 - 1 is `(uid_t)-1`, which chown(2) and setresuid(2) take for "leave
 * it as it is", never an id of its own. The library's `uid`, `gid` and
 * `groups` and `sbox run --user` take ids up to it.
 */
export const MAX_ID = 0xfffffffe;

/** Checks a uid or gid option (`fallback` when undefined); throws an SboxError naming it. */
export function checkId(option: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0 || value > MAX_ID) {
    throw SboxError.invalidOption(option, `must be an id from 0 to ${MAX_ID}, got ${show(value)}`);
  }
  return value;
}

/**
 * Why `text` (an argument, a variable's name or value) cannot be passed on
 * as it is, or undefined: the program gets its bytes, NUL-terminated, as a
 * path's are written (cstring.ts's `encodeUtf8Into`): UTF-8, and an escaped
 * byte (U+DC80-U+DCFF alone, as `decodeName` makes of a name that is not
 * UTF-8, and `sbox run` of an argument that is not) as the byte it stands
 * for. So a file name read from a directory can be given to a command
 * (`cat` it) and reach execve as the host's bytes. A NUL byte would end
 * the text early, and any other lone surrogate has no byte to stand for:
 * it would arrive as U+FFFD, a text other than the one given.
 */
export function notPassable(text: string): string | undefined {
  if (text.includes("\0")) return "a NUL byte";
  if (hasUnwritableSurrogate(text)) return LONE_SURROGATE;
  return undefined;
}

/** What is refused; says which lone surrogates pass: those that stand for a byte. */
const LONE_SURROGATE =
  "a lone surrogate other than U+DC80-U+DCFF (which stand for bytes), with no UTF-8 form";

/**
 * Refuses a path (`what` of `option`: "target" of "TmpfsMount", or the
 * option itself when undefined) that would not reach the kernel as given:
 * a NUL byte would end it early; a lone surrogate would arrive as U+FFFD,
 * naming another file, as {@linkcode notPassable} says of a command's text
 * (an escaped byte, which cstring.ts's `decodeName` makes of a host name
 * that is not UTF-8, is the byte it stands for, and passes); and a path
 * of more bytes than the kernel takes, in all or in one file name, would
 * fail with ENAMETOOLONG, after the process exists or as a stat that names
 * no option.
 *
 * @example
 * ```ts
 * import { checkPathText } from "./options.ts";
 *
 * checkPathText("TmpfsMount", "target", "/tmp"); // fine
 * try {
 *   checkPathText("TmpfsMount", "target", "/t\ud800");
 * } catch (err) {
 *   console.log((err as Error).message); // invalid option TmpfsMount: target holds a lone surrogate, ...
 * }
 * ```
 */
export function checkPathText(option: string, what: string | undefined, path: string): void {
  const subject = what === undefined ? "" : `${what} `;
  if (path.includes("\0")) {
    throw SboxError.invalidOption(option, `${subject}contains a NUL byte: ${show(path)}`);
  }
  if (hasUnwritableSurrogate(path)) {
    throw SboxError.invalidOption(
      option,
      `${subject}holds ${LONE_SURROGATE}, which would arrive as U+FFFD and name another file: ${show(path)}`,
    );
  }
  const length = pathLengthProblem(path);
  if (length !== undefined) {
    throw SboxError.invalidOption(option, `${subject}is too long for the kernel (ENAMETOOLONG): ${length}`);
  }
}

/**
 * Refuses an array with holes (`[a, , b]`, `new Array(2)`): `map`,
 * `forEach` and `some` skip a hole, so the checks of its elements would
 * miss it, and what uses the array later reads `undefined` there, with a
 * TypeError that names no option. `what` names the array within `option`
 * ("lowerDirs" of "OverlayMount"); undefined: the option itself.
 */
export function checkNoHoles(option: string, array: readonly unknown[], what?: string): void {
  for (let i = 0; i < array.length; i++) {
    if (i in array) continue;
    const subject = what === undefined ? "" : `${what} `;
    throw SboxError.invalidOption(
      option,
      `${subject}has a hole at index ${i} (an array such as [a, , b]): give every element`,
    );
  }
}

/**
 * Checks a command: a program and its arguments, strings without NUL bytes
 * or lone surrogates but escaped bytes ({@linkcode notPassable}).
 */
export function checkCommand(command: unknown): asserts command is string[] {
  if (!Array.isArray(command) || command.length === 0) {
    throw SboxError.invalidOption("command", "must be a non-empty array of strings");
  }
  checkNoHoles("command", command);
  for (const arg of command) {
    if (typeof arg !== "string") {
      throw SboxError.invalidOption("command", `arguments must be strings, got ${show(arg)}`);
    }
    const problem = notPassable(arg);
    if (problem) throw SboxError.invalidOption("command", `an argument holds ${problem}: ${show(arg)}`);
  }
  if (command[0] === "") throw SboxError.invalidOption("command", "the program name is empty");
  if (command.length > PROGRAM_LIMITS.arrayEntries) {
    throw SboxError.invalidOption(
      "command",
      `${command.length} arguments, at most ${PROGRAM_LIMITS.arrayEntries}`,
    );
  }
}

/**
 * The known key a misspelled `key` most likely meant: one that differs in
 * case only, or else by at most two edits (and fewer than half its length,
 * so that a short key is not "corrected" into an unrelated one).
 */
function closest(key: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.min(3, Math.ceil(key.length / 2));
  for (const candidate of known) {
    // Edits make up at least the difference in length: a long key (a
    // megabyte, from a fuzzer or a corrupt configuration) costs no
    // table of its length times the candidate's.
    if (Math.abs(candidate.length - key.length) >= bestDistance) continue;
    const distance = candidate.toLowerCase() === key.toLowerCase() ? 0 : editDistance(key, candidate);
    if (distance < bestDistance) [best, bestDistance] = [candidate, distance];
  }
  return best;
}

/** Levenshtein distance, with a swap of two neighbours as one edit ("cpaAdd"). */
function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.length][b.length];
}
