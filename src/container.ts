/**
 * A container: namespaces, a root file system and a cgroup, and the
 * processes started in them. This is where options, once checked
 * (container_options.ts), become setup programs: `start()` compiles the
 * init path, `exec()` the join path, and both share the steps that set up
 * stdio (`compileStdio`), then ids, security and execve
 * (`compileProcessTail`).
 *
 * @module
 */

import type { Cgroup } from "./cgroup.ts";
import { frozenStartError } from "./cgroup_diagnostics.ts";
import {
  checkContainerOptions,
  type CheckedProcess,
  checkNotPromise,
  checkProcessOptions,
  checkRawNetworkAccess,
  checkRootfsNotHostRoot,
  type ContainerOptions,
  DEFAULT_HOSTNAME,
  type ProcessOptions,
} from "./container_options.ts";
import { SboxError } from "./error.ts";
import { launch, type LaunchSpec, type SyncPipe } from "./launch.ts";
import { type Mount, replacesRoot } from "./mount.ts";
import { ProcReading } from "./mountinfo.ts";
import { cleanPath } from "./path.ts";
import { InitProcess, Process, StdioPlan } from "./process.ts";
import { ALL_NAMESPACES, CLONE, MS, type ProgramBuilder } from "./program.ts";
import { check, close, dupCloexec, EBUSY, ENOENT, ids, O, tryOpen, tryRmdir } from "./sys.ts";
import {
  checkUserMapper,
  hostId,
  type IdMapEntry,
  isMapped,
  setupIds,
  setupUidBesideRoot,
  supplementaryGroups,
  type UserMapper,
} from "./user.ts";
import type { NetworkAttachment, NetworkManager } from "./network.ts";
import { compileIpcLimits } from "./security/ipc_limits.ts";
import {
  asContainerRoot,
  checkContainerSecurity,
  compileSecurity,
  type ContainerSecurity,
  dropBoundingSet,
  hideFromContainer,
  takeSetupIds,
} from "./security/security.ts";

/**
 * The NIS domain name of a container's UTS namespace: "(none)", the
 * kernel's own value for "not set" (what getdomainname(2) gives on a host
 * that never set one), instead of the copy of the host's that a new UTS
 * namespace starts with.
 */
const NO_DOMAIN_NAME = "(none)";
/** What an exec'd process joins: all but the cgroup namespace, which it makes
 * anew after landing in its own cgroup (a sibling of the init's cgroup would
 * be outside the init's cgroup namespace). */
const JOINED = ALL_NAMESPACES & ~CLONE.NEWCGROUP;
/**
 * How long a start or exec into a cgroup goes on before it checks whether
 * the group (or one above) is frozen, and again after each such wait: a
 * start takes a few milliseconds, so only a stuck or very slow one reads the
 * group's files; a frozen one fails this long after its freeze at most.
 */
const FROZEN_CHECK_MS = 500;
/**
 * A container. Create it, `start()` its init process, `exec()` more
 * processes into it, and `destroy()` it (or `await using`).
 *
 * @example Run a command in a busybox image
 * ```ts ignore
 * import { BaseMounts, Cgroup, Container, OverlayMount, ProcUserMapper, runAsRoot } from "../mod.ts";
 *
 * // An image directory, e.g. one made by `tools/busybox-image /tmp/sbox-image`.
 * const image = "/tmp/sbox-image";
 * const userMapper = ProcUserMapper.newRoot();
 * // The directories must exist; made as container root, the upper layer belongs to it.
 * await runAsRoot(userMapper, ["mkdir", "-p", "/tmp/c/root", "/tmp/c/upper", "/tmp/c/work"]);
 * const cgroup = Cgroup.current().child("example");
 * cgroup.create();
 * try {
 *   // Destroyed at the end of the block, before its cgroup is removed.
 *   await using container = await Container.create({
 *     rootfs: "/tmp/c/root",
 *     cgroup,
 *     userMapper,
 *     mounts: [new OverlayMount([image], "/tmp/c/upper", "/tmp/c/work"), new BaseMounts()],
 *   });
 *   const init = await container.start({ command: ["/bin/sh", "-c", "echo hi"], stdout: "piped" });
 *   const { stdout } = await init.output();
 *   console.log(new TextDecoder().decode(stdout)); // "hi\n"
 * } finally {
 *   await cgroup.remove();
 *   await runAsRoot(userMapper, ["rm", "-rf", "/tmp/c"]);
 * }
 * ```
 */
export class Container implements AsyncDisposable {
  /** The directory that becomes "/". */
  readonly rootfs: string;
  /** The container's cgroup, if any. */
  readonly cgroup: Cgroup | undefined;
  /** The id mapper of its user namespace. */
  readonly userMapper: UserMapper;
  /** Its mounts, in order. */
  readonly mounts: readonly Mount[];
  /** Its hostname. */
  readonly hostname: string;
  /** Its network manager, `"host"` for the caller's network namespace, or undefined for `lo` alone. */
  readonly network: NetworkManager | "host" | undefined;
  readonly #security: ContainerSecurity;
  #network: NetworkAttachment | undefined;
  /** fd of the starting init's mount namespace, handed to its InitProcess. */
  #heldNamespace = -1;
  #init: InitProcess | undefined;
  /** Processes for destroy() to kill, or whose pipes it must close. */
  readonly #processes = new Set<Process>();
  /** Child cgroups this container made in which a process started, by name: destroy() removes them. */
  readonly #createdCgroups = new Map<string, Cgroup>();
  /**
   * Child cgroups this container made in which no process has started yet,
   * by name, with the number of launches under way into each: a failed
   * launch removes one only when it was the last of them.
   */
  readonly #newCgroups = new Map<string, { cgroup: Cgroup; launches: number }>();
  /** The destruction, once destroy() was called: every later call waits for the same one. */
  #destruction: Promise<void> | undefined;
  /** Aborted by destroy(): see LaunchSpec.cancel (launch.ts). */
  readonly #destroying = new AbortController();
  /** A start() under way: a second one is refused at once. */
  #starting = false;
  /** Starts and execs under way, with the bookkeeping of what they make: destroy() waits for them. */
  readonly #launches = new Set<Promise<unknown>>();

  private constructor(options: ContainerOptions, security: ContainerSecurity) {
    this.#security = security;
    this.rootfs = cleanPath(options.rootfs);
    this.cgroup = options.cgroup;
    this.userMapper = options.userMapper;
    this.mounts = [...(options.mounts ?? [])];
    this.hostname = options.hostname ?? DEFAULT_HOSTNAME;
    this.network = options.network;
  }

  /** Validates the options; creates no process. */
  static create(options: ContainerOptions): Promise<Container>;
  /**
   * @internal The checks of `options.cgroup` by `reading`, this process's
   * mounts and cgroup as read once for all of an operation (`sbox run`'s
   * setup).
   */
  static create(options: ContainerOptions, reading: ProcReading): Promise<Container>;
  static create(options: ContainerOptions, reading: ProcReading = new ProcReading()): Promise<Container> {
    return Promise.resolve().then(() => {
      checkContainerOptions(options, reading);
      const security = checkContainerSecurity(options);
      checkRawNetworkAccess(options.network, security.capabilities);
      return new Container(options, security);
    });
  }

  /**
   * Starts the init process (pid 1 of the container). Only one per
   * container. When destroy() comes while it is under way, it rejects with
   * an {@linkcode SboxError} of step `"destroyed"`, as exec() does, however
   * far it got (a failure of its own, a network that never became ready,
   * stands): nothing it made is left (destroy() ends it), and an init not
   * yet released from its wait for the id maps never runs the command.
   */
  async start(options: ProcessOptions): Promise<InitProcess> {
    this.#checkUsable();
    if (this.#init || this.#starting) {
      throw new SboxError("the container was already started", { step: "options" });
    }
    const p = this.#checkProcess(options);
    // Again, as create() did: the setup takes the rootfs by its path, and a
    // link there may have been turned to / since. One open and readlink; the
    // setup resolves the path a moment later, so whoever may change the link
    // (the owner of its directory) could still race that moment.
    checkRootfsNotHostRoot(this.rootfs, "create()");
    // Before anything exists: the reason, as fetch() rejects with it.
    p.signal?.throwIfAborted();
    this.#starting = true;
    let init: InitProcess;
    try {
      init = await this.#tracked(() => this.#startInit(p, options));
    } catch (err) {
      // The launch killed the init that destroy() came to before its
      // release. A start given up on in the caller's map() or attach()
      // says so already, and a failure of the start's own stands.
      const cancelled = err instanceof SboxError && err.step === "destroyed";
      if (cancelled && err !== this.#destroying.signal.reason) throw destroyedDuring("start()", err);
      throw err;
    } finally {
      this.#starting = false;
    }
    // destroy() came once the init was released: it is among the processes
    // destroy() disposes of, its command perhaps already running. A caller
    // who destroys on a client's disconnect must not see a start succeed.
    if (this.#destroying.signal.aborted) throw destroyedDuring("start()");
    return init;
  }

  /**
   * The init path: clone3 into new namespaces and the process's cgroup, a
   * wait while this process writes the id maps and attaches the network
   * (`#prepareInit`), then the setup. Whether the init shares this
   * process's memory until its execve (CLONE_VM: the fast path) or gets a
   * copy, and when its mount namespace is held for InitProcess (past the
   * init's exit), go by these reasons; any row that copies makes a copy,
   * and the last row alone holds the namespace before the release:
   *
   * | reason                                        | memory | namespace held     | why: see             |
   * | --------------------------------------------- | ------ | ------------------ | -------------------- |
   * | none of those below (the fast path)           | shared | after the release  | `#holdNamespace`     |
   * | the caller's oom_score_adj is negative (1)    | copied | after the release  | launch(), neutral.ts |
   * | its cgroup accounts memory                    | copied | after the release  | `#mayShareMemory`    |
   * | a reaper that measures its command's peak (2) | copied | after the release  | `#mayShareMemory`    |
   * | its command runs as another host uid or gid   | copied | after the release  | `#mayShareMemory`    |
   * | its setup changes ids (3)                     | copied | before the release | `#setupChangesIds`   |
   *
   * (1) Decided by launch() for every process it makes
   * (`compileNoInheritance`): this process writes the init's 0 while it
   * waits, before `beforeStart`. (2) `measureMaxRss`: the init drops its
   * copy first thing (`dropCallerMemory`). (3) `setupIds`,
   * `setupUidBesideRoot`: the setup takes another host id too; the
   * namespace is held first thing in `beforeStart`, before the id maps.
   */
  async #startInit(p: CheckedProcess, options: ProcessOptions): Promise<InitProcess> {
    // A network manager attaches to the network namespace before the init
    // is released, so it must come with clone3. Otherwise a thread of the
    // init makes it while the init mounts (ProgramBuilder.spawnNetwork),
    // unless the init keeps the caller's.
    const manager = this.#manager;
    const hostNetwork = this.network === "host";
    const netOnThread = !manager && !hostNetwork;
    const namespaces = manager ? ALL_NAMESPACES : ALL_NAMESPACES & ~CLONE.NEWNET;
    const reaper = options.reaper === true;
    const dropMemory = reaper && options.measureMaxRss === true;
    // Whether destroy() gave up on this start's map() or attach().
    const given = { abandoned: false };
    const how = (cgroup: Cgroup | undefined, cgroupFd: number): PathSpec => {
      const holdBeforeRelease = this.#setupChangesIds();
      return {
        flags: namespaces | (this.#mayShareMemory(p, cgroup, dropMemory) ? CLONE.VM : 0n),
        cgroupFd,
        sync: true,
        beforeStart: (pid) => {
          if (holdBeforeRelease) this.#holdNamespace(pid);
          return this.#prepareInit(pid, given);
        },
        afterRelease: holdBeforeRelease ? undefined : (pid) => this.#holdNamespace(pid),
        cancel: {
          signal: this.#destroying.signal,
          graceMs: this.#cancelGraceMs(),
          // At once: a map() that settles a moment later attaches nothing.
          onAbandon: () => given.abandoned = true,
        },
      };
    };
    // After launch()'s first ops: the parent-death signal, then the neutral
    // rank (security/neutral.ts), before the network thread, which takes
    // the scheduling on.
    const launched = await this.#launch(p, how, (b, sync, stdio) => {
      // A copy of our memory (#mayShareMemory), dropped at once: the
      // command, which starts from what is left, then reports its own peak
      // (InitProcess.resourceUsage). While the parent writes the id maps.
      if (dropMemory) b.dropCallerMemory();
      // Nothing done in this mount namespace may propagate back to the host.
      // Needs no id map: done while the parent writes them.
      b.mount(null, "/", null, MS.REC | MS.PRIVATE, null, "cannot make / private");
      b.waitParent(sync.read, sync.write);
      // The maps are written. The setup stays the caller wherever the maps
      // have the caller (setupIds: it then reaches the host paths the plan
      // was made for, and what it makes in the caller's binds is the
      // caller's); a caller they leave out takes their lowest ids.
      const setup = this.#setupIdentity();
      takeSetupIds(b, setup.ids);
      // After the wait too: the sysctls belong to the namespace's root,
      // which needs its id map. Before the network thread: a change of uid
      // would join it at once.
      compileIpcLimitsAsRoot(b, this.userMapper, setup.uidBesideRoot);
      // After the wait: the parent's CPU is free then.
      if (netOnThread) b.spawnNetwork();
      if (hostNetwork) b.keepHostNetwork();
      dropBoundingSet(b, this.#security);
      if (!this.mounts.some(replacesRoot)) {
        // pivot_root needs a mount point: bind the rootfs on itself.
        b.mount(this.rootfs, this.rootfs, null, MS.BIND | MS.REC, null, `cannot bind ${this.rootfs}`);
      }
      compileMounts(b, this.rootfs, this.mounts);
      b.pivotRoot(this.rootfs);
      // Right after pivot_root, before any op that takes a path: see compileStdio.
      compileStdio(b, stdio);
      b.sethostname(this.hostname);
      // The new UTS namespace has a copy of the host's NIS domain name:
      // the kernel's own "no domain" instead (security.md).
      b.setdomainname(NO_DOMAIN_NAME);
      if (manager) b.loopbackUp();
      if (manager) checkNotPromise("network", "compile", manager.compile(b));
      if (reaper) {
        // pid 1 too leaves the caller's session and process group: else a
        // Ctrl-C or a group signal on the caller's terminal reaches it, and
        // it forwards every signal to the command.
        if (p.security.newSession) b.setsid();
        b.reaper();
      }
      compileProcessTail(b, p, this.userMapper, this.#security, "init");
    }).catch(async (err) => {
      // The start's own error is the one to report, whatever a caller's
      // stop() does: reject, throw, or return no promise at all (a throw
      // here skipped the close below, and the namespace stayed held).
      await Promise.resolve().then(() => this.#network?.stop()).catch(() => {});
      this.#network = undefined;
      close(this.#heldNamespace);
      this.#heldNamespace = -1;
      throw err;
    });
    this.#init = new InitProcess(launched.process, launched.parentFds, this.#heldNamespace, p.signal);
    this.#heldNamespace = -1;
    this.#processes.add(this.#init);
    // The network lives as long as the init: its end ends the namespace.
    const attachment = this.#network;
    // destroy() stops it too and reports a failure there, to a caller who
    // can catch it; this promise has no one to reject to (a rejection of a
    // custom manager's stop() here ended the Deno process).
    if (attachment) this.#init.status.finally(() => attachment.stop()).catch(() => {});
    return this.#init;
  }

  /**
   * Starts another process in the namespaces of the running `init`. When
   * destroy() comes while it is under way, it rejects with an
   * {@linkcode SboxError} of step `"destroyed"`, however far it got; when
   * the init ends meanwhile, with one that says the init has exited.
   */
  async exec(init: InitProcess, options: ProcessOptions): Promise<Process> {
    this.#checkUsable();
    if (init !== this.#init) {
      throw new SboxError("exec: init is not this container's init process", { step: "options" });
    }
    if (init.exited) {
      throw new SboxError("exec: the container's init process has exited", { step: "options" });
    }
    const p = this.#checkProcess(options);
    if (options.reaper) {
      throw SboxError.invalidOption(
        "reaper",
        "start() only: an exec'd process is never pid 1, and has no reaper",
      );
    }
    // The launch compiles its setns after an await (it may wait for another
    // container's teardown). Were the init reaped meanwhile, its pidfd would
    // be closed and the number could name any newer fd, even another
    // container's pidfd. A copy taken now, while the init is known not to be
    // reaped, names this init whatever happens (setns fails with ESRCH once
    // it has ended).
    p.signal?.throwIfAborted();
    const pidfd = dupCloexec(init.pidfd);
    try {
      const process = await this.#tracked(() => this.#execProcess(pidfd, p));
      // destroy() came while the exec was under way: the process dies with
      // the container, perhaps before its execve (which, killed then, would
      // still read as a start). Say so instead of handing out a dead process.
      if (this.#destroying.signal.aborted) throw destroyedDuring("exec()");
      return process;
    } catch (err) {
      throw await explainEndedInit(err, init, this.#destroying.signal.aborted);
    } finally {
      close(pidfd);
    }
  }

  /**
   * The exec path: the first process, a copy of this one, joins the
   * namespaces of the init behind `initPidfd` (exec()'s own copy of its
   * pidfd), then forks into them and the process's cgroup.
   */
  async #execProcess(initPidfd: number, p: CheckedProcess): Promise<Process> {
    // No namespace, no cgroup, no wait. No CLONE_VM either: joining a time
    // namespace needs a process that shares its memory with nobody.
    const how = (): PathSpec => ({ flags: 0n, cgroupFd: -1, sync: false });
    const launched = await this.#launch(p, how, (b, _sync, stdio, cgroupFd) => {
      // After launch()'s first ops (security/neutral.ts), which need it
      // still ours in our namespaces and dumpable, and come before the
      // fork, which takes them on. Then, before anything of the container
      // can see it: a copy of our memory and fds.
      hideFromContainer(b);
      b.setns(initPidfd, this.#joined(), "cannot join the container's namespaces");
      // setns moves only future children into the pid namespace: clone again.
      b.fork(CLONE.VM | CLONE.PARENT, cgroupFd);
      b.unshare(CLONE.NEWCGROUP, "cannot create a cgroup namespace");
      compileStdio(b, stdio);
      // The container runs already and may have planted a link to
      // /proc/self/exe (Deno's program, until this process execs) on the
      // command's path, or a script whose interpreter is one: the tail
      // confines exec to the container's root.
      compileProcessTail(b, p, this.userMapper, this.#security, "exec");
    });
    const process = new Process(launched.process, launched.parentFds, -1, p.signal);
    this.#processes.add(process);
    // Once it is done, destroy() has nothing to do for it (it holds no
    // namespace): let it go, or a container that runs for long would keep
    // every process it ever ran.
    process.done.then(() => this.#processes.delete(process));
    return process;
  }

  /**
   * Kills every process of the container, waits until its file systems are
   * unmounted, and removes the cgroups it created. A call while another is
   * under way (a timeout's and `await using`'s, say) waits for the same end.
   * Starts and execs under way are waited for, and reject with step
   * `"destroyed"`; an init still waiting for the mapper's `map()` or the
   * network's `attach()` is killed before its command runs. A caller's
   * `map()` or `attach()` that does not settle within a second (sbox's own
   * network: its `readyTimeoutMs` more) is given up on. Should the
   * network attachment's `stop()` fail (or, through a bug, the disposal of
   * a process), destroy() rejects with that error, once the rest is done all
   * the same: every other process disposed of, the network stopped, the
   * cgroups removed.
   */
  destroy(): Promise<void> {
    this.#destruction ??= this.#destroy();
    return this.#destruction;
  }

  async #destroy(): Promise<void> {
    // Every process of the container is in the init's pid namespace, so
    // killing the init (dispose, below) kills them all. Not cgroup.kill: the
    // group is the caller's, who may give it to the next container, and on
    // some kernels (6.18 here) a process later cloned into a group that was
    // killed is killed at once.
    // The init first: a process exec'd into the container can be stopped
    // (SIGSTOP) by the container before its execve, and its launch would
    // then never end. Killing the init ends the pid namespace, and it.
    this.#init?.kill("SIGKILL");
    // A start waiting for the caller's map() or attach() that never ends
    // is given up on after a grace period (#cancelGraceMs).
    this.#destroying.abort(
      new SboxError("the container was destroyed while its start waited for the user mapper or network", {
        step: "destroyed",
      }),
    );
    // All of the teardown comes in this try, and every part of it runs
    // whatever another does: a failure is reported, but only once the
    // network is stopped and the groups are gone. destroy() is memoized, so
    // a retry would never do what a failure skipped.
    try {
      // Starts and execs under way finish then: what they make dies below too.
      await Promise.allSettled([...this.#launches]);
      // Each to its end, though another fails: groups removed while a
      // process is still there could not be (EBUSY).
      const disposals = await Promise.allSettled([...this.#processes].map((p) => p.dispose()));
      // A caller's stop() may reject, or throw at once.
      const [stopped] = await Promise.allSettled([Promise.resolve().then(() => this.#network?.stop())]);
      const failed = [...disposals, stopped].find((result) => result.status === "rejected");
      if (failed) throw failed.reason;
    } finally {
      // Launches are over: every group made is the container's by now. Its
      // processes are reaped, so its groups are empty unless another container
      // given the same parent uses the same child name: rmdir alone, never
      // Cgroup.remove()'s cgroup.kill, which would kill that one's processes.
      for (const cgroup of this.#createdCgroups.values()) await removeUnlessUsed(cgroup);
    }
  }

  /** `await using container = ...` destroys it at the end of the scope. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.destroy();
  }

  /** Runs `work` (a launch and the bookkeeping of what it made) where destroy() waits for it. */
  async #tracked<T>(work: () => Promise<T>): Promise<T> {
    const running = work();
    this.#launches.add(running);
    try {
      return await running;
    } finally {
      this.#launches.delete(running);
    }
  }

  /** The network manager, if the container has one (not `"host"`). */
  get #manager(): NetworkManager | undefined {
    return this.network === "host" ? undefined : this.network;
  }

  /**
   * The namespaces an exec'd process joins. Not the network namespace of a
   * host-network container: the process has it already (launched from this
   * one), and setns into it needs CAP_SYS_ADMIN over the host's user
   * namespace, which a rootless caller does not have (EPERM).
   */
  #joined(): bigint {
    return this.network === "host" ? JOINED & ~CLONE.NEWNET : JOINED;
  }

  #checkUsable(): void {
    if (this.#destruction) throw new SboxError("the container was destroyed", { step: "options" });
  }

  #checkProcess(options: ProcessOptions): CheckedProcess {
    const p = checkProcessOptions(options);
    // Again, as create() did: the maps map() writes, and that the ids below
    // are checked by, may have been changed since (read-only to TypeScript alone).
    checkUserMapper(this.userMapper);
    if (!isMapped(this.userMapper.uidMap, p.uid)) {
      throw SboxError.invalidOption("uid", `${p.uid} is not mapped into the container (uidMap)`);
    }
    if (!isMapped(this.userMapper.gidMap, p.gid)) {
      throw SboxError.invalidOption("gid", `${p.gid} is not mapped into the container (gidMap)`);
    }
    const unmapped = p.groups?.find((gid) => !isMapped(this.userMapper.gidMap, gid));
    if (unmapped !== undefined) {
      throw SboxError.invalidOption("groups", `${unmapped} is not mapped into the container (gidMap)`);
    }
    if (p.groups !== undefined && !this.userMapper.setgroupsAllowed) {
      throw SboxError.invalidOption(
        "groups",
        "this user mapper denies setgroups, so processes keep the caller's supplementary groups: leave groups out",
      );
    }
    if (p.cgroup !== undefined && !this.cgroup) {
      throw SboxError.invalidOption("cgroup", "the container has no cgroup to make a child cgroup in");
    }
    return p;
  }

  /**
   * Whether the init may share this process's memory until it execs
   * (CLONE_VM: no copy of V8's page tables, the fast path), as far as the
   * container decides it (the table at `#startInit`). Not when:
   * - its cgroup accounts memory: the OOM killer kills every process that
   *   shares the victim's memory, so an OOM during setup would kill us too;
   * - it changes its host uid or gid, for its setup (`setupIds`, and
   *   container root for the IPC sysctls: `setupUidBesideRoot`) or for the
   *   command: the kernel then marks the shared memory not dumpable, which
   *   would lock this Deno process's own /proc files (and tools such as
   *   pasta that open them) until it exits;
   * - it is a reaper that measures its command's peak (`measureMaxRss`):
   *   the command, cloned from it, would count our memory in its ru_maxrss;
   *   a copy is dropped first (`dropCallerMemory`).
   *
   * Nor when its oom_score_adj needs a reset, which launch() decides for
   * every process it makes: the kernel carries a write of it over to every
   * process that shares the memory, this one too (security/neutral.ts).
   */
  #mayShareMemory(p: CheckedProcess, cgroup: Cgroup | undefined, dropMemory: boolean): boolean {
    if (dropMemory || cgroup?.accountsMemory()) return false;
    const { me, ids, uidBesideRoot } = this.#setupIdentity();
    const rootForSysctls = uidBesideRoot === undefined ? undefined : 0;
    const staysAs = (map: readonly IdMapEntry[], hostOwn: number, ...taken: (number | undefined)[]) =>
      taken.every((id) => id === undefined || hostId(map, id) === hostOwn);
    return staysAs(this.userMapper.uidMap, me.euid, ids.uid, rootForSysctls, p.uid) &&
      staysAs(this.userMapper.gidMap, me.egid, ids.gid, p.gid);
  }

  /** While the init waits: its id maps, then its network. */
  async #prepareInit(pid: number, launch: { abandoned: boolean }): Promise<void> {
    await this.userMapper.map(pid);
    // Given up on by destroy() (LaunchSpec.cancel): the child is gone.
    if (!this.#manager || launch.abandoned) return;
    const attachment: unknown = await this.#manager.attach(pid);
    // Its stop() ends the network with the init: without one, a TypeError later.
    if (!attachment || typeof (attachment as Partial<NetworkAttachment>).stop !== "function") {
      const problem = "the network manager's attach() did not resolve to a NetworkAttachment (with stop())";
      throw new SboxError(problem, { step: "network" });
    }
    // Too late: no one else will stop it.
    if (launch.abandoned) return await (attachment as NetworkAttachment).stop();
    this.#network = attachment as NetworkAttachment;
  }

  /**
   * How long destroy() lets a start's `map()` and `attach()` go on before it
   * gives up on them: a second, plus the network's own readiness timeout
   * where it has one (sbox's managers: `readyTimeoutMs`), so that sbox's own
   * parts are always waited for and leave nothing behind. A caller's that
   * never settles is abandoned then (LaunchSpec.cancel); should its
   * attachment come later after all, it is stopped at once.
   */
  #cancelGraceMs(): number {
    const readyTimeoutMs = (this.#manager as { readyTimeoutMs?: unknown } | undefined)?.readyTimeoutMs;
    return 1000 + (typeof readyTimeoutMs === "number" && readyTimeoutMs > 0 ? readyTimeoutMs : 0);
  }

  /**
   * Once the init is released (before, where its setup changes ids:
   * `#setupChangesIds`; the table at `#startInit`): keep its mount
   * namespace alive past its exit.
   * Otherwise the init unmounts every file system of the container on its
   * exit path, before its parent even learns that it ended (see
   * InitProcess). The init has all of its setup still ahead, so this does not
   * delay it; should it be gone already (it failed), there is nothing to keep.
   */
  #holdNamespace(pid: number): void {
    this.#heldNamespace = tryOpen(`/proc/${pid}/ns/mnt`, O.RDONLY);
  }

  #setup: SetupIdentity | undefined;

  /**
   * Who the init's setup is, from the maps and this process's ids, which
   * neither change: worked out once, for every start's program and its
   * memory sharing (a `setupIds` and an `ids()` call each, four a start).
   */
  #setupIdentity(): SetupIdentity {
    if (!this.#setup) {
      const me = ids();
      this.#setup = {
        me,
        ids: setupIds(this.userMapper, me),
        uidBesideRoot: setupUidBesideRoot(this.userMapper, me),
      };
    }
    return this.#setup;
  }

  /**
   * Whether the init's setup changes its uid or gid (a caller the maps
   * leave out; keep-id maps with subordinate ids, whose setup is container
   * root for the IPC sysctls): each change makes it not dumpable until its
   * next op, and its /proc files, the namespace's too, refuse us (EACCES)
   * in that window. Its namespace is then held before the release, at the
   * cost of that open on the start's path (~1.5% of such starts missed it
   * after).
   */
  #setupChangesIds(): boolean {
    const { ids, uidBesideRoot } = this.#setupIdentity();
    return ids.uid !== undefined || ids.gid !== undefined || uidBesideRoot !== undefined;
  }

  /**
   * The child cgroup `name` for a launch, made if missing. A launch into a
   * group this container made, before any process started there, is counted
   * (`#newCgroups`) until its `#leaveChildCgroup`.
   */
  #enterChildCgroup(name: string): Cgroup {
    const cgroup = this.cgroup!.child(name);
    let fresh = this.#newCgroups.get(name);
    if (!fresh && !cgroup.exists()) {
      cgroup.create();
      fresh = { cgroup, launches: 0 };
      this.#newCgroups.set(name, fresh);
    }
    if (fresh) fresh.launches++;
    return cgroup;
  }

  /**
   * A launch into the child cgroup `name` ended; `started`: its process
   * runs. A group this container made is the container's once a process
   * started in it, removed by destroy(). Until then the last failed launch
   * into it removes it, so that a failure alone leaves nothing behind; an
   * earlier one must not: another launch may be about to clone into the
   * group, or its process may be there already. Never with cgroup.kill
   * either (Cgroup.remove), which would kill such a process: only processes
   * of failed launches were in the group, and they are reaped, so rmdir
   * suffices; should it fail all the same, destroy() has another go.
   */
  #leaveChildCgroup(name: string, started: boolean): void {
    const fresh = this.#newCgroups.get(name);
    if (!fresh) return;
    fresh.launches--;
    if (!started && fresh.launches > 0) return;
    this.#newCgroups.delete(name);
    if (started || tryRmdir(fresh.cgroup.path) < 0) this.#createdCgroups.set(name, fresh.cgroup);
  }

  /**
   * What start() and exec() share of a launch: the process's cgroup (a
   * child cgroup made if missing, and its bookkeeping) and its directory
   * fd, its stdio, the program's builder with the container's id maps, and
   * the stall check of a frozen cgroup. `how` gives the rest of the launch,
   * where the two paths differ (`#startInit`, `#execProcess`), from the
   * cgroup and its fd; `compile` adds the program's ops.
   */
  async #launch(
    p: CheckedProcess,
    how: (cgroup: Cgroup | undefined, cgroupFd: number) => PathSpec,
    compile: (b: ProgramBuilder, sync: SyncPipe, stdio: StdioPlan, cgroupFd: number) => void,
  ) {
    // #checkProcess refused a child cgroup without a container cgroup.
    const child = this.cgroup ? p.cgroup : undefined;
    const cgroup = child ? this.#enterChildCgroup(child) : this.cgroup;
    let cgroupFd = -1;
    let stdio: StdioPlan | undefined;
    try {
      cgroupFd = cgroup ? cgroup.openDirectory() : -1;
      stdio = new StdioPlan(p.stdio);
      const plan = stdio;
      const process = await launch({
        ...how(cgroup, cgroupFd),
        childFds: [...plan.childFds, cgroupFd],
        // A group frozen after openDirectory()'s quick check, or during the
        // setup: the process would never run. Read only by a slow launch.
        stall: cgroup && { afterMs: FROZEN_CHECK_MS, check: () => frozenStartError(cgroup) },
        // The exec path joins the init's user namespace: the same maps.
        idMaps: this.userMapper,
        compile: (b, sync) => compile(b, sync, plan, cgroupFd),
      });
      if (child) this.#leaveChildCgroup(child, true);
      return { process, parentFds: plan.parentFds };
    } catch (err) {
      // launch() closed the child's fds (and the cgroup fd) itself.
      if (stdio) { for (const fd of stdio.parentFds) close(fd); }
      else close(cgroupFd);
      if (child) this.#leaveChildCgroup(child, false);
      throw err;
    }
  }
}

/** The part of a launch where `#startInit` and `#execProcess` differ (Container's `#launch`). */
type PathSpec = Pick<LaunchSpec, "flags" | "cgroupFd" | "sync" | "beforeStart" | "afterRelease" | "cancel">;

/**
 * rmdir of a child cgroup a container made, once its processes are reaped.
 * EBUSY a moment longer (a process's exit leaves its group just after the
 * reap, on some kernels) is waited out; a group still busy after that holds
 * someone else's processes and is left to them.
 */
async function removeUnlessUsed(cgroup: Cgroup): Promise<void> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const rc = tryRmdir(cgroup.path);
    if (rc === 0 || rc === -ENOENT) return;
    if (rc !== -EBUSY) check(rc, "cgroup", `cannot remove cgroup ${cgroup.path}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Who a container's init runs its setup as (Container's `#setupIdentity`). */
interface SetupIdentity {
  /** This process's ids. */
  me: { euid: number; egid: number };
  /** The container ids the setup takes (`setupIds`). */
  ids: { uid: number | undefined; gid: number | undefined };
  /** The uid it comes back to after the IPC sysctls as root, if it is another (`setupUidBesideRoot`). */
  uidBesideRoot: number | undefined;
}

/** What start() and exec() reject with when destroy() came while they were under way, however far they got. */
function destroyedDuring(what: "start()" | "exec()", cause?: unknown): SboxError {
  return new SboxError(`the container was destroyed while ${what} was under way`, {
    step: "destroyed",
    cause,
  });
}

/**
 * An exec() failure that the init's end caused, said as such: with
 * `destroyed`, as the same error as an exec that got further when destroy()
 * came. The join fails with ESRCH once the init has exited. The kernel
 * refuses a new process in a pid namespace whose init is ending with
 * ENOMEM, which reads as a shortage of memory: when the fork fails so and
 * the init has ended (within a moment: its end waits until the rest of its
 * namespace has), say that instead. Any other error is returned as it is.
 * @internal Exported for tests only.
 */
export async function explainEndedInit(err: unknown, init: InitProcess, destroyed = false): Promise<unknown> {
  if (!(err instanceof SboxError)) return err;
  const joinRefused = err.step === "setns" && err.errno === "ESRCH";
  const forkRefused = err.step === "fork" && err.errno === "ENOMEM";
  if (!joinRefused && !forkRefused) return err;
  if (destroyed) return destroyedDuring("exec()", err);
  if (joinRefused) {
    return new SboxError(`exec: the container's init process has exited (${err.message})`, {
      step: "setns",
      errno: err.errnoNumber,
      cause: err,
    });
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  const ended = await Promise.race([
    init.status.then(() => true, () => true),
    new Promise<false>((resolve) => timer = setTimeout(() => resolve(false), 200)),
  ]);
  clearTimeout(timer);
  if (!ended) return err;
  return new SboxError(
    "exec: the container's init process has exited (the kernel refused the process with ENOMEM, as it does " +
      "in a pid namespace that is ending)",
    { step: "fork", errno: err.errnoNumber, cause: err },
  );
}

/**
 * The mounts in order. A mount on "/" gets the rootfs path; the others get
 * paths relative to it, from a working directory on the rootfs's top mount
 * (a chdir after each mount on "/", as a working directory stays on the
 * mount it was on). Short paths: less to encode here and to walk in the
 * kernel, dozens of times per start.
 */
function compileMounts(b: ProgramBuilder, rootfs: string, mounts: readonly Mount[]): void {
  let inRootfs = false;
  for (let i = 0; i < mounts.length; i++) {
    const mount = mounts[i];
    // Before any process exists: a caller's compile() that returns a
    // promise appends its ops too late, the mount silently left out.
    if (mount.target === "/") {
      checkNotPromise(`mounts[${i}]`, "compile", mount.compile(b, rootfs));
      inRootfs = false;
      continue;
    }
    if (!inRootfs) b.chdir(rootfs);
    inRootfs = true;
    checkNotPromise(`mounts[${i}]`, "compile", mount.compile(b, "."));
  }
}

/**
 * The IPC limits (ipc_limits.ts), written as container root, the only id
 * that may write them. A setup that is another id (keep-id maps with
 * subordinate ids) becomes root for these writes alone, then its own uid
 * again with its capabilities (`asContainerRoot`), `back` (see
 * `setupUidBesideRoot`); the rest of the setup needs none of root's own.
 * Maps without a container root leave none but the host's: the kernel's
 * defaults stay (security.md).
 */
function compileIpcLimitsAsRoot(b: ProgramBuilder, maps: UserMapper, back: number | undefined): void {
  if (!isMapped(maps.uidMap, 0)) return;
  if (back === undefined) compileIpcLimits(b);
  else asContainerRoot(b, back, () => compileIpcLimits(b));
}

/**
 * The process's stdio on fds 0-2, and every other fd closed but the result
 * pipe. Both paths do it as soon as the process's root is the container's
 * (the init after pivot_root, exec after its setns), before any op that
 * resolves a path the container may have planted: until then the process
 * holds a copy of every fd of ours, and a link to /proc/self/fd/N would
 * lead through one (the container's cgroup directory, a directory a caller
 * holds open) to the host. The network's /etc/resolv.conf once went there.
 * Before a `reaper` op too: pid 1 puts /dev/null on its own 0-2, and the
 * command keeps its copy of these.
 */
function compileStdio(b: ProgramBuilder, stdio: StdioPlan): void {
  stdio.compile(b);
  b.closeFrom(3);
}

/**
 * cwd, security, ids and execve: the part init and exec share, after
 * {@linkcode compileStdio}. They differ in two steps. The init dropped the
 * bounding set already, before its mounts. A process `exec()` starts is
 * still a copy of Deno until its execve, and /proc/self/exe is Deno's
 * program: it is confined to executing files beneath the container's root
 * (security.md).
 */
function compileProcessTail(
  b: ProgramBuilder,
  p: CheckedProcess,
  mapper: UserMapper,
  security: ContainerSecurity,
  kind: "init" | "exec",
): void {
  b.chdir(p.cwd, true);
  if (kind === "exec") b.confineExec();
  compileSecurity(b, security, p.security, () => {
    const groups = supplementaryGroups(mapper, p.uid, p.groups);
    if (groups) b.setgroups(groups);
    b.setgid(p.gid).setuid(p.uid);
  }, kind === "init");
  b.exec(p.command[0], p.command, p.env, p.searchPath);
}
