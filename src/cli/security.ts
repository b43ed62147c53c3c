/**
 * `sbox run`'s security options as container options: `--cap-add`,
 * `--cap-drop`, and `--seccomp FILE|unconfined` (a JSON policy in the shape
 * of `SeccompPolicy`, see docs/security.md). `--rlimit` goes to the process.
 *
 * @module
 */

import { type ContainerOptions, hostLoopbackConflict } from "../container_options.ts";
import { SboxError } from "../error.ts";
import type { SeccompPolicy } from "../security/policy.ts";
import { capabilityMask } from "../security/capabilities.ts";
import { checkContainerSecurity } from "../security/security.ts";
import { readRegularFile } from "../sys.ts";
import type { RunOptions } from "./args.ts";
import { hostPath } from "./mounts.ts";
import { asCliOption, invalidFlag } from "./option_errors.ts";

/** The container options a `sbox run` asks for, checked. */
export type SecurityOptions = Pick<ContainerOptions, "capAdd" | "capDrop" | "seccomp">;

/** Far more than any real policy (the kernel takes 4096 instructions); a bigger file is refused unread. */
const POLICY_MAX_BYTES = 16 << 20;

/**
 * The container options that `options` asks for. Reads and checks a
 * `--seccomp` policy file, so call it before anything is created: a bad
 * policy fails naming `--seccomp` and the file, and a FIFO cannot block.
 */
export function securityOptions(options: RunOptions): SecurityOptions {
  checkRawNetworkCapabilities(options);
  return { capAdd: options.capAdd, capDrop: options.capDrop, seccomp: seccompOption(options.seccomp) };
}

/**
 * The library's refusal of NET_RAW or NET_ADMIN with a network that keeps
 * the host's loopback out (`hostLoopbackConflict`), in the command line's
 * words: here, before anything exists.
 */
function checkRawNetworkCapabilities(options: RunOptions): void {
  // Only a daemon forwards frames, and none and host have none (with host,
  // NET_RAW and NET_ADMIN count in the container's user namespace, which
  // does not own the host's network: the kernel refuses them there).
  if (options.net === "none" || options.net === "host" || options.allowHostLoopback) return;
  const added = options.capAdd ?? [];
  const conflict = hostLoopbackConflict(capabilityMask(options.capAdd, options.capDrop), {
    capAdd: "--cap-add",
    // parseCapabilities gave the names as capabilityName() spells them.
    added: (name) => added.includes(name) ? name : `${added.join(",")} (which includes ${name})`,
    network: `--net ${options.net}`,
    accept: "add --allow-host-loopback",
  });
  if (conflict) throw conflict;
}

function seccompOption(value: string | undefined): SeccompPolicy | "unconfined" | undefined {
  // Only the word on the command line turns the filter off: a file always
  // holds a policy (a file holding "unconfined" is a mistake, not a wish).
  if (value === undefined || value === "unconfined") return value;
  const path = hostPath(value);
  let text: string;
  try {
    text = new TextDecoder().decode(readRegularFile(path, "policy", POLICY_MAX_BYTES));
  } catch (err) {
    throw invalidFlag("--seccomp", err);
  }
  let policy: unknown;
  try {
    policy = JSON.parse(text);
  } catch (err) {
    throw SboxError.invalidOption("--seccomp", `${path} is not JSON: ${(err as Error).message}`);
  }
  // null, a string ("unconfined"), a number or an array are no policy; the
  // library would take null for its default policy and "unconfined" for none.
  if (policy === null || typeof policy !== "object" || Array.isArray(policy)) {
    throw SboxError.invalidOption(
      "--seccomp",
      `${path} must hold a policy object such as {"defaultAction": "allow", "rules": []}, ` +
        `not ${policy === null ? "null" : Array.isArray(policy) ? "an array" : JSON.stringify(policy)} ` +
        "(--seccomp unconfined, not a file, turns the filter off)",
    );
  }
  // Checked (and compiled, once: the library finds it compiled) here, to
  // name the option and the file rather than the library's "seccomp".
  try {
    checkContainerSecurity({ seccomp: policy });
  } catch (err) {
    throw asCliOption(err, { seccomp: "--seccomp" }, path);
  }
  return policy as SeccompPolicy;
}
