/**
 * Networks for containers. A container always has its own network
 * namespace with only `lo` up; a {@linkcode NetworkManager} connects it to
 * the outside while its init waits (after the id maps are written, before
 * it is released), and stops whatever it started when the container ends.
 *
 * Two managers run a user-mode network daemon on the host, attached to the
 * container's namespaces: {@linkcode Slirp4NetnsManager} and
 * {@linkcode PastaManager}. Both give the same addressing (see
 * {@linkcode CONTAINER_NETWORK}), so switching between them changes nothing
 * inside the container.
 *
 * @module
 */

import { SboxError } from "./error.ts";
import { HostDaemon, waitReady } from "./host.ts";
import type { ProgramBuilder } from "./program.ts";
import { close, ids, pipe, setNonblocking, stat, tryUnlink } from "./sys.ts";
import { unixRequest } from "./unix_socket.ts";
import { findHostProgram } from "./user.ts";

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

/** A host port forwarded into the container. */
export interface PublishedPort {
  /** Port on the host's 127.0.0.1. */
  hostPort: number;
  /** Port in the container (TCP). */
  containerPort: number;
}

/** Options of {@linkcode Slirp4NetnsManager} and {@linkcode PastaManager}. */
export interface UserModeNetworkOptions {
  /** Make the host's loopback reachable at the gateway address 10.0.2.2; default false. */
  allowHostLoopback?: boolean;
  /** TCP ports of the host's 127.0.0.1 forwarded into the container. */
  publish?: PublishedPort[];
}

/** The addressing both managers give a container. */
export const CONTAINER_NETWORK = {
  /** The container's interface. */
  interface: "eth0",
  address: "10.0.2.100",
  prefixLength: 24,
  gateway: "10.0.2.2",
  dns: "10.0.2.3",
  mtu: 65520,
} as const;

const RESOLV_CONF = `nameserver ${CONTAINER_NETWORK.dns}\n`;

function checkOptions(options: UserModeNetworkOptions | undefined): Required<UserModeNetworkOptions> {
  if (options !== undefined && (typeof options !== "object" || options === null)) {
    throw SboxError.invalidOption("network", "options must be an object");
  }
  const publish = options?.publish ?? [];
  if (!Array.isArray(publish)) throw SboxError.invalidOption("publish", "must be an array");
  const checked = publish.map((p) => {
    for (const key of ["hostPort", "containerPort"] as const) {
      const port = p?.[key];
      if (!Number.isInteger(port) || port < 1 || port > 65535) {
        throw SboxError.invalidOption("publish", `${key} must be a port from 1 to 65535, got ${port}`);
      }
    }
    return { hostPort: p.hostPort, containerPort: p.containerPort };
  });
  return { allowHostLoopback: options?.allowHostLoopback === true, publish: checked };
}

/** Writes the container's /etc/resolv.conf (on the overlay's upper layer). */
function compileResolvConf(builder: ProgramBuilder): void {
  builder.mkdir("/etc").writeFile("/etc/resolv.conf", RESOLV_CONF);
}

/** A pipe whose read end is ours (nonblocking) and whose write end goes to the daemon. */
function readyPipe(): { read: number; write: number } {
  const [read, write] = pipe();
  try {
    setNonblocking(read);
  } catch (err) {
    close(read);
    close(write);
    throw err;
  }
  return { read, write };
}

/**
 * Both daemons open /dev/net/tun as the caller inside the container's
 * namespaces; a user needs it world read-writable (Debian's udev default).
 */
function checkTunDevice(program: string): void {
  if (ids().euid === 0) return;
  const tun = stat("/dev/net/tun");
  if (!tun || (tun.mode & 0o006) !== 0o006) {
    throw new SboxError(
      `${program} needs /dev/net/tun, which uid ${ids().euid} may not open` +
        (tun ? ` (mode ${(tun.mode & 0o777).toString(8)}; Debian's default is 666)` : " (it does not exist)"),
      { step: "network" },
    );
  }
}

/** Waits for the daemon's ready signal; on failure stops it and throws why. */
async function awaitDaemon(daemon: HostDaemon, readyFd: number): Promise<void> {
  if (await waitReady(readyFd)) return;
  await daemon.stop();
  throw new SboxError(`cannot connect the container's network: ${await daemon.describeExit()}`, {
    step: "network",
  });
}

/**
 * What slirp4netns and pasta share: the options, the daemon's path, and
 * /etc/resolv.conf in the container. Each backend starts its own daemon.
 */
export abstract class UserModeNetworkManager implements NetworkManager {
  /** Whether the host's loopback is reachable at 10.0.2.2. */
  readonly allowHostLoopback: boolean;
  /** Ports forwarded from the host's 127.0.0.1. */
  readonly publish: readonly PublishedPort[];
  /** Absolute path of the daemon. */
  protected readonly program: string;

  /** Validates the options and finds `name` (from Debian's `debianPackage`) now. */
  constructor(options: UserModeNetworkOptions | undefined, name: string, debianPackage: string) {
    const checked = checkOptions(options);
    this.allowHostLoopback = checked.allowHostLoopback;
    this.publish = checked.publish;
    this.program = findHostProgram(name, debianPackage);
  }

  /** Writes /etc/resolv.conf in the container. */
  compile(builder: ProgramBuilder): void {
    compileResolvConf(builder);
  }

  /** Starts the daemon for `pid`'s namespaces; resolves once eth0 is configured. */
  abstract attach(pid: number): Promise<NetworkAttachment>;
}

/**
 * Networking through slirp4netns (Debian's `slirp4netns`): a TAP device in
 * the container, user-mode TCP/IP on the host. The container is 10.0.2.100/24
 * with gateway 10.0.2.2 and DNS 10.0.2.3. Works for unprivileged users: the
 * daemon joins the container's user namespace.
 *
 * @example A container with a network and a published port
 * ```ts ignore
 * import { Slirp4NetnsManager } from "../mod.ts";
 *
 * const network = new Slirp4NetnsManager({ publish: [{ hostPort: 8080, containerPort: 80 }] });
 * // Container.create({ ..., network })
 * ```
 */
export class Slirp4NetnsManager extends UserModeNetworkManager {
  /** Validates the options and finds slirp4netns now. */
  constructor(options?: UserModeNetworkOptions) {
    super(options, "slirp4netns", "slirp4netns");
  }

  /** Starts slirp4netns for `pid`'s namespaces and waits until eth0 is configured. */
  async attach(pid: number): Promise<NetworkAttachment> {
    checkTunDevice("slirp4netns");
    const apiSocket = this.publish.length > 0 ? socketPath() : undefined;
    const ready = readyPipe();
    let exit: { read: number; write: number };
    try {
      exit = readyPipe();
    } catch (err) {
      close(ready.read);
      close(ready.write);
      throw err;
    }
    // fd 3: --ready-fd; fd 4: --exit-fd, whose write end we hold until stop().
    const argv = [
      this.program,
      "--configure",
      `--mtu=${CONTAINER_NETWORK.mtu}`,
      "--ready-fd=3",
      "--exit-fd=4",
      "--netns-type=path",
      `--userns-path=/proc/${pid}/ns/user`,
      ...(this.allowHostLoopback ? [] : ["--disable-host-loopback"]),
      ...(apiSocket ? [`--api-socket=${apiSocket}`] : []),
      `/proc/${pid}/ns/net`,
      CONTAINER_NETWORK.interface,
    ];
    let daemon: HostDaemon;
    try {
      daemon = await HostDaemon.start({ argv, passFds: [ready.write, exit.read] });
    } catch (err) {
      close(ready.read);
      close(exit.write);
      throw err;
    }
    const stop = async () => {
      close(exit.write);
      exit.write = -1;
      await daemon.stop();
      if (apiSocket) tryUnlink(apiSocket);
    };
    try {
      await awaitDaemon(daemon, ready.read);
      for (const port of this.publish) addHostForward(apiSocket!, port);
    } catch (err) {
      await stop();
      throw err;
    }
    return { stop };
  }
}

/** A fresh path for slirp4netns's API socket. */
function socketPath(): string {
  const random = [...crypto.getRandomValues(new Uint8Array(6))].map((b) => b.toString(16).padStart(2, "0"));
  return `/tmp/sbox-slirp4netns-${ids().pid}-${random.join("")}.sock`;
}

/** Asks slirp4netns to forward 127.0.0.1:hostPort to the container's port. */
function addHostForward(apiSocket: string, port: PublishedPort): void {
  const request = {
    execute: "add_hostfwd",
    arguments: {
      proto: "tcp",
      host_addr: "127.0.0.1",
      host_port: port.hostPort,
      guest_addr: CONTAINER_NETWORK.address,
      guest_port: port.containerPort,
    },
  };
  const reply = unixRequest(apiSocket, JSON.stringify(request));
  let parsed: { error?: { desc?: string } } = {};
  try {
    parsed = JSON.parse(reply);
  } catch {
    parsed = { error: { desc: `unexpected reply ${JSON.stringify(reply)}` } };
  }
  if (parsed.error) {
    throw new SboxError(
      `cannot publish 127.0.0.1:${port.hostPort} to port ${port.containerPort}: ${
        parsed.error.desc ?? JSON.stringify(parsed.error)
      }`,
      { step: "network" },
    );
  }
}

/**
 * Networking through pasta (Debian's `passt`): a TAP device in the
 * container, the host's own sockets behind it. Configured for the same
 * addressing as {@linkcode Slirp4NetnsManager}: 10.0.2.100/24, gateway
 * 10.0.2.2, DNS 10.0.2.3 (forwarded to the host's resolver). No ports are
 * forwarded in either direction unless published.
 *
 * @example A container whose host loopback is reachable at 10.0.2.2
 * ```ts ignore
 * import { PastaManager } from "../mod.ts";
 *
 * const network = new PastaManager({ allowHostLoopback: true });
 * // Container.create({ ..., network })
 * ```
 */
export class PastaManager extends UserModeNetworkManager {
  /** Validates the options and finds pasta now. */
  constructor(options?: UserModeNetworkOptions) {
    super(options, "pasta", "passt");
  }

  /** Starts pasta for `pid`'s namespaces and waits until eth0 is configured. */
  async attach(pid: number): Promise<NetworkAttachment> {
    checkTunDevice("pasta");
    const net = CONTAINER_NETWORK;
    const tcp = this.publish.map((p) => `127.0.0.1/${p.hostPort}:${p.containerPort}`).join(",");
    const argv = [
      this.program,
      "--foreground",
      "--quiet",
      "--stderr",
      // As root pasta would switch to nobody, who may not open the
      // container's namespaces; stay who we are.
      ...(ids().euid === 0 ? ["--runas", "0:0"] : []),
      "--config-net",
      "--ipv4-only",
      `--ns-ifname=${net.interface}`,
      `--address=${net.address}`,
      `--netmask=${net.prefixLength}`,
      `--gateway=${net.gateway}`,
      `--dns-forward=${net.dns}`,
      // Nothing is forwarded unless published: not the container's ports
      // to the host (-t/-u), not the host's ports to the container's
      // loopback (-T/-U), which would open the host's loopback.
      `--tcp-ports=${tcp || "none"}`,
      "--udp-ports=none",
      "--tcp-ns=none",
      "--udp-ns=none",
      ...(this.allowHostLoopback ? [] : ["--no-map-gw"]),
      // pasta writes its pid to this file once the namespace is configured:
      // fd 3, the write end of our ready pipe.
      "--pid=/proc/self/fd/3",
      // Given a pid, pasta joins its user and network namespaces.
      String(pid),
    ];
    const ready = readyPipe();
    let daemon: HostDaemon;
    try {
      daemon = await HostDaemon.start({ argv, passFds: [ready.write] });
    } catch (err) {
      close(ready.read);
      throw err;
    }
    try {
      await awaitDaemon(daemon, ready.read);
    } catch (err) {
      await daemon.stop();
      throw err;
    }
    return { stop: () => daemon.stop() };
  }
}
