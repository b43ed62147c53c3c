/**
 * `sbox run`'s security options as container options: `--cap-add`,
 * `--cap-drop`, and `--seccomp FILE|unconfined` (a JSON policy in the shape
 * of `SeccompPolicy`, see docs/security.md). `--rlimit` goes to the process.
 *
 * @module
 */

import type { ContainerOptions } from "../container.ts";
import { SboxError } from "../error.ts";
import type { SeccompPolicy } from "../security/policy.ts";
import { readTextFile } from "../sys.ts";
import type { RunOptions } from "./args.ts";
import { hostPath } from "./mounts.ts";

/** The container options that `options` asks for; reads a `--seccomp` policy file. */
export function securityOptions(
  options: RunOptions,
): Pick<ContainerOptions, "capAdd" | "capDrop" | "seccomp"> {
  return { capAdd: options.capAdd, capDrop: options.capDrop, seccomp: seccompOption(options.seccomp) };
}

function seccompOption(value: string | undefined): SeccompPolicy | "unconfined" | undefined {
  if (value === undefined || value === "unconfined") return value;
  const path = hostPath(value);
  let text: string;
  try {
    text = readTextFile(path);
  } catch (err) {
    throw SboxError.invalidOption("--seccomp", err instanceof Error ? err.message : String(err));
  }
  try {
    return JSON.parse(text) as SeccompPolicy;
  } catch (err) {
    throw SboxError.invalidOption("--seccomp", `${path} is not JSON: ${(err as Error).message}`);
  }
}
