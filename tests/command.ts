/**
 * A command run to its end by a test: its exit status, and its stdout and
 * stderr as text. The one copy of what test files each wrote for
 * themselves (`sbox`, `busybox`, `sboxOnHost`, `denoRun`, ...).
 *
 * @module
 */

import { COMMAND_TIMEOUT_MS, text } from "./fixtures.ts";

/** How a command ended, and what it wrote: stdout and stderr decoded as UTF-8. */
export interface CommandResult {
  /** The exit status; 128+N for a death by signal N, as a shell says. */
  code: number;
  /** All it wrote to stdout. */
  stdout: string;
  /** All it wrote to stderr. */
  stderr: string;
}

/**
 * Waits for `command` to end and returns its {@linkcode CommandResult}: a
 * Deno.Command is run with the options it was made with (stdout and stderr
 * piped unless they say otherwise); a child process must have been spawned
 * with both piped, and its result holds what was left of them to read.
 */
export async function outputOf(command: Deno.Command | Deno.ChildProcess): Promise<CommandResult> {
  const output = await command.output();
  return { code: output.code, stdout: text(output.stdout), stderr: text(output.stderr) };
}

/**
 * Runs `argv` (the program first) to its end as a script would: stdin
 * /dev/null, stdout and stderr piped, and killed after
 * {@linkcode COMMAND_TIMEOUT_MS}, only so that a hung command fails its test
 * instead of stalling the suite. `options` add to those or replace them
 * (`env`, `clearEnv`, `cwd`, another `signal`).
 *
 * @example
 * ```ts
 * import { runCommand } from "./command.ts";
 *
 * const result = await runCommand(["sh", "-c", "echo hi; exit 3"]);
 * console.log(result.code, result.stdout); // 3 "hi\n"
 * ```
 */
export function runCommand(
  argv: readonly string[],
  options: Omit<Deno.CommandOptions, "args"> = {},
): Promise<CommandResult> {
  const [program, ...args] = argv;
  return outputOf(
    new Deno.Command(program, {
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(COMMAND_TIMEOUT_MS),
      ...options,
      args,
    }),
  );
}
