/**
 * Networks for containers. A container always has its own network
 * namespace with only `lo` up; a {@linkcode NetworkManager} connects it to
 * the outside while its init waits (after the id maps are written, before
 * it is released), and stops whatever it started when the container ends.
 *
 * @module
 */

import type { ProgramBuilder } from "./program.ts";

/** What a running network connection gives back: a way to stop it. */
export interface NetworkAttachment {
  /** Stops and reaps every process the manager started for this container. */
  stop(): Promise<void>;
}

/** Connects a container's network namespace, e.g. through slirp4netns or pasta. */
export interface NetworkManager {
  /** Appends ops the container runs after pivot_root, e.g. writing /etc/resolv.conf. */
  compile(builder: ProgramBuilder): void;
  /**
   * Connects the network namespace of `pid`, whose id maps are written; the
   * promise resolves once the interface, route and DNS are configured.
   */
  attach(pid: number): Promise<NetworkAttachment>;
}
