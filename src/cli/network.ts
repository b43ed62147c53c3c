/**
 * `--net`, `--allow-host-loopback` and `--publish`: the network manager of
 * the container, "host" for the caller's network namespace, or none for a
 * namespace with only loopback.
 *
 * @module
 */

import { type NetworkManager, PastaManager, Slirp4NetnsManager } from "../network.ts";
import type { RunOptions } from "./args.ts";

/** The library's `network` option for `--net`: a manager, "host", or undefined for `--net none`. */
export function networkManager(
  options: Pick<RunOptions, "net" | "allowHostLoopback" | "publish">,
): NetworkManager | "host" | undefined {
  const settings = { allowHostLoopback: options.allowHostLoopback, publish: options.publish };
  switch (options.net) {
    case "none":
      return undefined;
    case "host":
      return "host";
    case "slirp4netns":
      return new Slirp4NetnsManager(settings);
    case "pasta":
      return new PastaManager(settings);
  }
}

/** One line for `--verbose`. */
export function describeNetwork(options: Pick<RunOptions, "net" | "allowHostLoopback" | "publish">): string {
  if (options.net === "none") return "none: loopback only";
  if (options.net === "host") return "host: the caller's network namespace, 127.0.0.1 and ports shared";
  const parts = [
    `${options.net}: 10.0.2.100/24, gateway 10.0.2.2, DNS 10.0.2.3`,
    options.allowHostLoopback ? "host loopback reachable at 10.0.2.2" : "host loopback unreachable",
  ];
  for (const p of options.publish) parts.push(`127.0.0.1:${p.hostPort} -> ${p.containerPort}`);
  return parts.join("; ");
}
