/**
 * Networks for containers. A container always has its own network
 * namespace with only `lo` up; a {@linkcode NetworkManager} connects it to
 * the outside while its init waits (after the id maps are written, before
 * it is released), and stops whatever it started when the container ends.
 *
 * Two managers run a user-mode network daemon on the host, attached to the
 * container's namespaces: {@linkcode Slirp4NetnsManager} and
 * {@linkcode PastaManager}. Both give the same addressing (see
 * {@linkcode CONTAINER_NETWORK}); they differ in how a published port's
 * connections arrive (see {@linkcode PastaManager}).
 *
 * @module
 */

import { MAX_TIMER_MS } from "./deadline.ts";
import { describeErrno } from "./errno.ts";
import { SboxError } from "./error.ts";
import { checkBoolean, checkKnownKeys, checkNoHoles, checkOptionsObject, show } from "./options.ts";
import { HostDaemon, waitReady } from "./host.ts";
import { claimDir, type DirLock } from "./dir_lock.ts";
import type { ProgramBuilder } from "./program.ts";
import {
  check,
  close,
  EEXIST,
  ENOENT,
  ids,
  O,
  pipe,
  readTextFile,
  setNonblocking,
  stat,
  tryMkdir,
  tryOpen,
  tryRmdir,
  tryUnlink,
} from "./sys.ts";
import { unixRequest } from "./unix_socket.ts";
import { findHostProgram } from "./user.ts";

/** What a running network connection gives back: a way to stop it. */
export interface NetworkAttachment {
  /** Stops and reaps every process the manager started for this container. */
  stop(): Promise<void>;
}

/** Connects a container's network namespace, e.g. through slirp4netns or pasta. */
export interface NetworkManager {
  /**
   * Appends ops the container runs after pivot_root, e.g. writing
   * /etc/resolv.conf. Only the process's stdio and the result pipe are open
   * then: a path through /proc/self/fd/N reaches none of the caller's fds.
   * Synchronous: one that returns a promise (`async`) is refused.
   */
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

/**
 * How long a network daemon may take to configure the container's interface
 * (default of {@linkcode UserModeNetworkOptions.readyTimeoutMs}): it usually
 * takes milliseconds; one that never gets there would hold the container's
 * start, and with it `destroy()`, forever.
 *
 * @example A slower machine's daemon gets longer
 * ```ts
 * import { NETWORK_READY_TIMEOUT_MS, Slirp4NetnsManager } from "./network.ts";
 *
 * const network = new Slirp4NetnsManager({ readyTimeoutMs: 3 * NETWORK_READY_TIMEOUT_MS });
 * ```
 */
export const NETWORK_READY_TIMEOUT_MS = 10_000;

/** Options of {@linkcode Slirp4NetnsManager} and {@linkcode PastaManager}. */
export interface UserModeNetworkOptions {
  /** Make the host's loopback reachable at the gateway address 10.0.2.2; default false. */
  allowHostLoopback?: boolean;
  /** TCP ports of the host's 127.0.0.1 forwarded into the container; each host port at most once. */
  publish?: PublishedPort[];
  /**
   * Milliseconds the daemon has to configure the container's interface;
   * then it is killed and the start fails. Default
   * {@linkcode NETWORK_READY_TIMEOUT_MS}.
   */
  readyTimeoutMs?: number;
}

/**
 * The addressing both managers give a container.
 *
 * @example Where the container reaches the host's loopback (with allowHostLoopback)
 * ```ts
 * import { CONTAINER_NETWORK } from "./network.ts";
 *
 * const url = `http://${CONTAINER_NETWORK.gateway}:8080/`; // http://10.0.2.2:8080/
 * ```
 */
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

/**
 * The file a {@linkcode UserModeNetworkManager} writes in the container,
 * replacing what the root has there: a root that is to take it must not
 * have a mount on it, which could be neither replaced nor written (`EBUSY`).
 * {@linkcode HostRootMount} copies the host's where it would bind it.
 *
 * @example
 * ```ts
 * import { RESOLV_CONF_PATH } from "./network.ts";
 *
 * console.log(RESOLV_CONF_PATH); // "/etc/resolv.conf"
 * ```
 */
export const RESOLV_CONF_PATH = "/etc/resolv.conf";

/**
 * The first host port that `publish` lists twice, if any. Checked before
 * anything starts (here and by the command line's --publish): the daemon
 * would fail only once the container exists (slirp4netns on the second
 * add_hostfwd, pasta on its command line).
 */
export function repeatedHostPort(publish: readonly PublishedPort[]): number | undefined {
  const seen = new Set<number>();
  for (const { hostPort } of publish) {
    if (seen.has(hostPort)) return hostPort;
    seen.add(hostPort);
  }
  return undefined;
}

function checkOptions(options: UserModeNetworkOptions | undefined): Required<UserModeNetworkOptions> {
  // An array too: its keys are none of these, and it would pass as the defaults.
  options = checkOptionsObject("network", options, {
    allowHostLoopback: true,
    publish: true,
    readyTimeoutMs: true,
  });
  const publish = options.publish ?? [];
  if (!Array.isArray(publish)) throw SboxError.invalidOption("publish", "must be an array");
  checkNoHoles("publish", publish);
  const checked = publish.map((p) => {
    if (p && typeof p === "object") checkKnownKeys(p, { hostPort: true, containerPort: true }, "publish");
    for (const key of ["hostPort", "containerPort"] as const) {
      const port = p?.[key];
      if (!Number.isInteger(port) || port < 1 || port > 65535) {
        throw SboxError.invalidOption("publish", `${key} must be a port from 1 to 65535, got ${show(port)}`);
      }
    }
    return { hostPort: p.hostPort, containerPort: p.containerPort };
  });
  const repeated = repeatedHostPort(checked);
  if (repeated !== undefined) {
    throw SboxError.invalidOption("publish", `host port ${repeated} is published more than once`);
  }
  const readyTimeoutMs = options.readyTimeoutMs ?? NETWORK_READY_TIMEOUT_MS;
  if (typeof readyTimeoutMs !== "number" || !(readyTimeoutMs > 0) || readyTimeoutMs > MAX_TIMER_MS) {
    throw SboxError.invalidOption(
      "readyTimeoutMs",
      `must be a number of milliseconds > 0, got ${show(readyTimeoutMs)}`,
    );
  }
  const allowHostLoopback = options.allowHostLoopback ?? false;
  checkBoolean("allowHostLoopback", allowHostLoopback);
  return { allowHostLoopback, publish: checked, readyTimeoutMs };
}

/**
 * Writes the container's /etc/resolv.conf (on the overlay's upper layer),
 * after pivot_root and every mount: by a path in the root ("./etc", the
 * working directory is the root then) whose /etc may not be a link, which
 * could send the write into a mount of the caller's (an image's
 * `/etc -> /work`, and a `--bind` of a host directory on /work).
 */
function compileResolvConf(builder: ProgramBuilder): void {
  builder.mkdir("/etc").writeFile(`.${RESOLV_CONF_PATH}`, RESOLV_CONF, 0o644, { noLink: true });
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
 * Both daemons open /dev/net/tun as the caller (its host ids and groups)
 * inside the container's namespaces. Checked by opening it read-write here,
 * as the same caller: whatever grants access (the other bits, the owning
 * group, ownership, an ACL) is honoured, and the daemon's own error, which
 * comes only after the container exists, is avoided. Exported for the tests,
 * which give it a file of their own.
 * @internal Exported for tests only.
 */
export function checkTunDevice(program: string, device = "/dev/net/tun"): void {
  const fd = tryOpen(device, O.RDWR);
  if (fd >= 0) {
    close(fd);
    return;
  }
  const tun = -fd === ENOENT ? undefined : stat(device);
  const why = tun
    ? `${describeErrno(-fd)}; mode ${(tun.mode & 0o777).toString(8)}, owner ${tun.uid}:${tun.gid}` +
      "; Debian's default is 666"
    : -fd === ENOENT
    ? "it does not exist"
    : describeErrno(-fd);
  throw new SboxError(`${program} needs ${device}, which uid ${ids().euid} may not open (${why})`, {
    step: "network",
  });
}

/**
 * Waits for the daemon's ready signal, at most `timeoutMs`; on failure
 * stops it and throws why.
 */
async function awaitDaemon(daemon: HostDaemon, readyFd: number, timeoutMs: number): Promise<void> {
  const outcome = await waitReady(readyFd, timeoutMs);
  if (outcome === "ready") return;
  await daemon.stop();
  const why = outcome === "timeout"
    ? `${daemon.program} did not configure the container's interface within ${timeoutMs} ms (killed)`
    : await daemon.describeExit();
  throw new SboxError(`cannot connect the container's network: ${why}`, { step: "network" });
}

/**
 * What slirp4netns and pasta share: the options, the daemon's path, and
 * /etc/resolv.conf in the container. Each backend starts its own daemon.
 *
 * @example Either backend, as a user chooses
 * ```ts
 * import { PastaManager, Slirp4NetnsManager, type UserModeNetworkManager } from "./network.ts";
 *
 * const backend: string = "pasta";
 * const network: UserModeNetworkManager = backend === "pasta" ? new PastaManager() : new Slirp4NetnsManager();
 * console.log(network.readyTimeoutMs); // 10000
 * ```
 */
export abstract class UserModeNetworkManager implements NetworkManager {
  /** Whether the host's loopback is reachable at 10.0.2.2. */
  readonly allowHostLoopback: boolean;
  /** Ports forwarded from the host's 127.0.0.1. */
  readonly publish: readonly PublishedPort[];
  /** How long the daemon may take to become ready, in milliseconds. */
  readonly readyTimeoutMs: number;
  /** Absolute path of the daemon. */
  protected readonly program: string;

  /** Validates the options and finds `name` (from Debian's `debianPackage`) now. */
  constructor(options: UserModeNetworkOptions | undefined, name: string, debianPackage: string) {
    const checked = checkOptions(options);
    this.allowHostLoopback = checked.allowHostLoopback;
    this.publish = checked.publish;
    this.readyTimeoutMs = checked.readyTimeoutMs;
    this.program = findHostProgram(name, debianPackage);
  }

  /**
   * Checks the fields as the constructor checked its options: they are
   * read-only to TypeScript alone, and one changed since (a port that is
   * no number, a timeout of NaN) would fail only once the container exists.
   * `Container.create()` calls it; throws an SboxError naming the field.
   */
  validate(): void {
    const fields: UserModeNetworkOptions = {
      allowHostLoopback: this.allowHostLoopback,
      publish: this.publish as PublishedPort[],
      readyTimeoutMs: this.readyTimeoutMs,
    };
    // Undefined would pass as the default, but attach() reads the field as it is.
    const unset = Object.entries(fields).find(([, value]) => value === undefined);
    if (unset) throw SboxError.invalidOption(unset[0], "is undefined (changed since the constructor)");
    checkOptions(fields);
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
    // Gone once the ports are published: anyone who can connect to it can
    // add forwards to this container, on any host address and port the
    // daemon may bind (0.0.0.0:81 for a root sbox's). Gone too when the
    // start fails, however early: nothing may stay of a failed start.
    const apiSocket = this.publish.length > 0 ? ApiSocket.make() : undefined;
    let ready: { read: number; write: number } | undefined;
    let exit: { read: number; write: number };
    let daemon: HostDaemon;
    try {
      ready = readyPipe();
      exit = readyPipe();
    } catch (err) {
      if (ready) {
        close(ready.read);
        close(ready.write);
      }
      apiSocket?.remove();
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
      // slirp4netns parses every packet the container sends, and runs as the
      // caller (root, with every capability, when sbox is root): confine it
      // as pasta confines itself. The filter denies the syscalls it never
      // needs. The sandbox (a mount namespace of its own with an empty root,
      // no capabilities but NET_BIND_SERVICE) needs root: run by a user,
      // slirp4netns may not make a mount namespace ("parent failed"), and
      // has no more rights than that user anyway.
      ...(ids().euid === 0 ? ["--enable-sandbox"] : []),
      "--enable-seccomp",
      ...(this.allowHostLoopback ? [] : ["--disable-host-loopback"]),
      ...(apiSocket ? [`--api-socket=${apiSocket.path}`] : []),
      `/proc/${pid}/ns/net`,
      CONTAINER_NETWORK.interface,
    ];
    try {
      // It closes the fds it passes, started or not.
      daemon = await HostDaemon.start({
        argv,
        passFds: [ready.write, exit.read],
        step: "network",
        servesContainer: true,
      });
    } catch (err) {
      close(ready.read);
      close(exit.write);
      apiSocket?.remove();
      throw err;
    }
    // Called when the init ends and again by destroy(): the first call's
    // promise serves both, so the socket's path is unlinked once only.
    let stopping: Promise<void> | undefined;
    const stop = () =>
      stopping ??= (async () => {
        close(exit.write);
        exit.write = -1;
        await daemon.stop();
        apiSocket?.remove();
      })();
    try {
      await awaitDaemon(daemon, ready.read, this.readyTimeoutMs);
      for (const port of this.publish) addHostForward(apiSocket!.path, port);
      apiSocket?.remove();
    } catch (err) {
      await stop();
      throw err;
    }
    return { stop };
  }
}

/** Where the directories of slirp4netns's API sockets go (only with published ports). */
export const SLIRP4NETNS_SOCKET_DIR = "/tmp";
/**
 * The name of such a directory: this process's pid, 12 random hex digits.
 * It holds the socket, `api.sock`, until the ports are published, and its
 * owner holds a lock on it while it exists (dir_lock.ts). A run killed
 * before that leaves it behind: `sbox run` removes those whose lock it can
 * take (cli/leftovers.ts).
 */
export const SLIRP4NETNS_SOCKET_NAME: RegExp = /^sbox-slirp4netns-(\d+)-[0-9a-f]{12}$/;

/**
 * slirp4netns's API socket: a fresh path in a directory of mode 0700 made
 * for it (the socket itself gets the caller's umask, 0777 under
 * `umask 000`, which would let any local user connect). The directory is
 * locked from just after it is made until {@linkcode ApiSocket.remove}: an
 * `sbox run` that starts meanwhile sweeps leftovers (cli/leftovers.ts),
 * and must tell this live directory, whose socket slirp4netns binds only
 * some milliseconds after it starts, from one a killed run left. It used
 * to tell them by whether the socket listened, and took a starting run's
 * directory away from its slirp4netns, which failed ("parent failed").
 */
class ApiSocket {
  /** The socket's path, `<dir>/api.sock`. */
  readonly path: string;
  readonly #dir: string;
  #lock: DirLock | undefined;

  private constructor(dir: string, lock: DirLock) {
    this.#dir = dir;
    this.path = `${dir}/api.sock`;
    this.#lock = lock;
  }

  /** Makes and locks a new directory for the socket. */
  static make(): ApiSocket {
    for (let attempt = 0;; attempt++) {
      const bytes = crypto.getRandomValues(new Uint8Array(6));
      const random = [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
      const dir = `${SLIRP4NETNS_SOCKET_DIR}/sbox-slirp4netns-${ids().pid}-${random}`;
      const rc = tryMkdir(dir, 0o700);
      if (rc === 0) {
        // Undefined: a sweep took it before we locked it (and it is removed).
        const lock = claimDir(dir);
        if (lock) return new ApiSocket(dir, lock);
        if (attempt < 10) continue;
        throw new SboxError(`cannot keep a directory for slirp4netns's API socket: ${dir}`, {
          step: "network",
        });
      }
      if (-rc === EEXIST && attempt < 10) continue;
      check(rc, "network", `cannot make ${dir}`);
    }
  }

  /** Removes the socket and its directory, then drops the lock; later calls do nothing. */
  remove(): void {
    if (!this.#lock) return;
    try {
      tryUnlink(this.path);
      tryRmdir(this.#dir);
    } finally {
      // Only now: with the lock dropped first, a sweep could remove it too.
      this.#lock.release();
      this.#lock = undefined;
    }
  }
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
      }${whyNoForward(port.hostPort)}`,
      { step: "network" },
    );
  }
}

/**
 * slirp4netns says only "slirp_add_hostfwd failed" when it cannot bind the
 * host port, and pasta "Failed to bind any port": name the two usual causes.
 */
function whyNoForward(hostPort: number): string {
  let unprivileged = 0;
  try {
    unprivileged = Number(readTextFile("/proc/sys/net/ipv4/ip_unprivileged_port_start").trim());
  } catch {
    // no such setting: every port needs root below 1024 then, as before it existed
    unprivileged = 1024;
  }
  if (ids().euid !== 0 && hostPort < unprivileged) {
    return ` (a port below ${unprivileged}, net.ipv4.ip_unprivileged_port_start, needs root)`;
  }
  return " (is the port in use?)";
}

/**
 * Networking through pasta (Debian's `passt`): a TAP device in the
 * container, the host's own sockets behind it. Configured for the same
 * addressing as {@linkcode Slirp4NetnsManager}: 10.0.2.100/24, gateway
 * 10.0.2.2, DNS 10.0.2.3 (forwarded to the host's resolver). No ports are
 * forwarded in either direction unless published.
 *
 * Unlike slirp4netns, pasta hands a published port's connections to the
 * container's loopback: they come from 127.0.0.1 and reach servers that
 * listen on the container's 127.0.0.1 only. This pasta has no option to
 * send them through eth0 instead (docs/network.md).
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
    // One -t per port: this pasta (Debian 12's) takes an address only for
    // a whole list ("127.0.0.1/80,127.0.0.1/81" is an invalid specifier).
    const tcp = this.publish.length === 0
      ? ["--tcp-ports=none"]
      : this.publish.map((p) => `--tcp-ports=127.0.0.1/${p.hostPort}:${p.containerPort}`);
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
      ...tcp,
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
      daemon = await HostDaemon.start({
        argv,
        passFds: [ready.write],
        step: "network",
        servesContainer: true,
      });
    } catch (err) {
      close(ready.read);
      throw err;
    }
    try {
      await awaitDaemon(daemon, ready.read, this.readyTimeoutMs);
    } catch (err) {
      await daemon.stop();
      throw withForwardHint(err);
    }
    return { stop: () => daemon.stop() };
  }
}

/**
 * pasta says only "Failed to bind any port for '-t 127.0.0.1/80:80'" when
 * it cannot bind a published host port: the same two causes as
 * slirp4netns's ({@linkcode whyNoForward}), for the port it names.
 */
function withForwardHint(err: unknown): unknown {
  if (!(err instanceof SboxError)) return err;
  const port = /\bbind\b.*'-t 127\.0\.0\.1\/(\d+):\d+'/i.exec(err.message)?.[1];
  if (port === undefined) return err;
  return new SboxError(`${err.message}${whyNoForward(Number(port))}`, {
    step: err.step,
    errno: err.errnoNumber,
    cause: err,
  });
}
