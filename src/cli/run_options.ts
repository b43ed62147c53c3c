/**
 * The table of `sbox run`'s options, and what can be read from a command
 * line before it is parsed: its `--report` file and its `--stdin` files.
 * Apart from args.ts, which imports much of sbox to check values, so that
 * sbox.ts can empty a stale report before it loads the rest of sbox (see
 * stale_report.ts). Pure: no OS access.
 *
 * @module
 */

import { type OptionSpec, tokenize } from "./argv.ts";
import { pathLengthProblem } from "../path.ts";

/** The options of `sbox run`, which its help and docs/cli.md describe (a test checks). */
export const RUN_OPTIONS = {
  rootfs: { type: "string" },
  bind: { type: "string", multiple: true },
  tmpfs: { type: "string", multiple: true },
  "write-limit": { type: "string" },
  env: { type: "string", short: "e", multiple: true },
  "env-file": { type: "string", multiple: true },
  cwd: { type: "string", short: "w" },
  user: { type: "string", short: "u" },
  "keep-id": { type: "boolean" },
  hostname: { type: "string" },
  net: { type: "string" },
  "allow-host-loopback": { type: "boolean" },
  publish: { type: "string", short: "p", multiple: true },
  verbose: { type: "boolean", short: "v" },
  memory: { type: "string" },
  swap: { type: "string" },
  pids: { type: "string" },
  cpus: { type: "string" },
  time: { type: "string" },
  "wall-time": { type: "string" },
  "extra-time": { type: "string" },
  stdin: { type: "string" },
  stdout: { type: "string" },
  stderr: { type: "string" },
  report: { type: "string" },
  cgroup: { type: "string" },
  "cap-add": { type: "string", multiple: true },
  "cap-drop": { type: "string", multiple: true },
  seccomp: { type: "string" },
  rlimit: { type: "string", multiple: true },
  help: { type: "boolean", short: "h" },
} as const satisfies Record<string, OptionSpec>;

/**
 * The `--report` file of a `sbox run` command line that may not parse, so
 * that a judge gets its XX report even when another option is bad. Only
 * what is surely `--report FILE` counts: an option before the command (and
 * before `--`), given once, with a value that is not empty and, unless
 * attached with `=`, does not look like an option (`--report --memory 1G`
 * names no file), and that the kernel would take as a path. Pure, like the
 * parser.
 */
export function reportPathOf(argv: readonly string[]): string | undefined {
  if (argv[0] !== "run") return undefined;
  const rest = argv.slice(1);
  const found: (string | undefined)[] = [];
  for (const token of tokenize(rest, RUN_OPTIONS, false)) {
    if (token.kind !== "option") break; // the command, or `--`
    if (token.name !== "report") continue;
    const value = token.value;
    const attached = rest[token.index].startsWith("--report=");
    const plain = value !== undefined && value !== "" &&
      (attached || value === "-" || !value.startsWith("-")) && pathLengthProblem(value) === undefined;
    found.push(plain ? value : undefined);
  }
  return found.length === 1 ? found[0] : undefined;
}

/**
 * Every value given to `--stdin` among the options of a `sbox run`
 * command line (before the command and `--`), parsable or not: the files
 * that a report must not be, since opening the report empties it (see
 * `refuseStdinAsOutput`). Pure, like the parser.
 */
export function stdinPathsOf(argv: readonly string[]): string[] {
  if (argv[0] !== "run") return [];
  const paths: string[] = [];
  for (const token of tokenize(argv.slice(1), RUN_OPTIONS, false)) {
    if (token.kind !== "option") break; // the command, or `--`
    if (token.name === "stdin" && token.value !== undefined) paths.push(token.value);
  }
  return paths;
}
