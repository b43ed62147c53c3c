/**
 * Judge-style stdio: the files of `--stdin`, `--stdout` and `--stderr`,
 * opened by sbox on the host before the container starts and handed to the
 * command as its fds 0, 1 and 2, and sbox's own fds 0-2, which the command
 * inherits where an option is not given.
 *
 * Each is an fd of a host file, in the host's mount tree. Under the
 * identity map (sbox run as root) the container's root is the host's root
 * for it: through the fd it could chmod or chown the file, or reopen
 * `/proc/self/fd/N` for writing, and the change outlasts the container (a
 * set-uid-root program made of `--stdout`, an overwritten `--stdin`, the
 * caller's terminal opened to every user). So:
 * - a directory or a block device is refused, named or inherited: from a
 *   directory's fd `..` climbs to the host's `/`, past any `--rootfs`, and a
 *   block device is a host disk;
 * - `--stdin`, and a FIFO or a device as `--stdout`, `--stderr` or an
 *   inherited fd, is opened through a private read-only copy of its mount:
 *   chmod, chown and a reopen for writing get EROFS, while reads, and writes
 *   to a device or a FIFO, work as before;
 * - a regular file as `--stdout` or `--stderr`, which must stay writable,
 *   belongs for the run to ids the container does not map, and gets its
 *   owner and mode back once the container is gone.
 * Where sbox may not do that (rootless: no CAP_SYS_ADMIN, no CAP_CHOWN) the
 * files are given as they are; the container's root is then the calling
 * user, with no more rights over them than that user. Inherited regular
 * files, FIFOs and sockets are given as they are too: a regular file opened
 * anew would lose the offset a shell's `>>log 2>&1` shares.
 *
 * @module
 */

import { SboxError } from "../error.ts";
import { escapingStdio } from "../container_options.ts";
import {
  check,
  close,
  EINVAL,
  ENOSYS,
  EPERM,
  fdFlags,
  type FdStat,
  fstat,
  identityOf,
  MOUNT_ATTR,
  O,
  open,
  OPEN_TREE,
  readLink,
  readTextFile,
  setNonblocking,
  stat,
  tryFchmod,
  tryFchown,
  tryMountSetattr,
  tryOpen,
  tryOpenTree,
} from "../sys.ts";
import { containerId, type UserMapper } from "../user.ts";
import type { RunOptions } from "./args.ts";
import { waitForWriter } from "./fifo.ts";
import { failureOf, noReaderExplained } from "./option_errors.ts";

/** The files of --stdin, --stdout and --stderr, opened by sbox on the host. */
export interface OpenStdio {
  /** For each of stdin, stdout, stderr: an open fd, or "inherit". */
  fds: [number | "inherit", number | "inherit", number | "inherit"];
  /** Closes the fds the command was given (again: harmless); outputs waiting for {@linkcode restoreOwners} stay open. */
  close(): void;
  /**
   * Gives each `--stdout`/`--stderr` file the owner and mode it had (without
   * set-id bits) and closes it. Only once no process of the container is
   * left: one holding the fd could chmod the file again.
   */
  restoreOwners(): void;
  /**
   * A warning for each `--stdout`/`--stderr` path that leads to another file
   * than the one opened: the command, which can where the file lies in a
   * read-write `--bind`, unlinked or renamed it and made a file of its own
   * there. What it wrote went to the file opened, which is gone; sbox cannot
   * put it back. Ask once no process of the container is left.
   */
  replacedOutputs(): string[];
  /**
   * Resolves once a `--stdin` FIFO has a writer, at once for any other
   * stdin; or once `signal` aborts (see fifo.ts). Call it before the
   * command starts: the FIFO was opened without waiting.
   */
  stdinWriter(signal: AbortSignal): Promise<void>;
}

type StdioOptions = Pick<RunOptions, "stdin" | "stdout" | "stderr">;

const OPTIONS = ["--stdin", "--stdout", "--stderr"] as const;
const NAMES = ["stdin", "stdout", "stderr"] as const;

/**
 * Refuses, before anything exists, stdio that is a directory or a block
 * device: a file named by an option (when it exists; {@linkcode openStdio}
 * checks what it opens again) or sbox's own fd 0-2 where the command would
 * inherit it. Throws an SboxError naming the option or the fd.
 */
export function checkStdioFiles(options: StdioOptions): void {
  const paths = [options.stdin, options.stdout, options.stderr];
  paths.forEach((path, fd) => {
    if (path === undefined) {
      refuseInherited(fd, fstat(fd));
      return;
    }
    let found;
    try {
      found = stat(path);
    } catch {
      return; // the open says why
    }
    const refused = found && refusal(found.mode);
    if (refused) throw new SboxError(`${OPTIONS[fd]}: ${path} is ${refused}`, { step: "options" });
  });
}

/**
 * Opens the files (stdin read-only; stdout and stderr created or truncated,
 * mode 0644) and, where sbox may, guards them and the inherited devices
 * against the container's root (see the module's comment). `containerIds`
 * are the id maps of the run's container. Throws an SboxError naming the
 * option or fd, having closed what it opened and given back what it changed.
 */
export function openStdio(
  options: StdioOptions & Pick<RunOptions, "report">,
  containerIds: Pick<UserMapper, "uidMap" | "gidMap">,
): OpenStdio {
  refuseStdinAsOutput(options.stdin, [["--stdout", options.stdout], ["--stderr", options.stderr]]);
  const files = new StdioFiles(containerIds);
  try {
    const write = O.WRONLY | O.CREAT | O.TRUNC;
    const fds: OpenStdio["fds"] = [
      files.named("--stdin", options.stdin, O.RDONLY) ?? files.inherited(0),
      files.named("--stdout", options.stdout, write) ?? files.inherited(1),
      files.named("--stderr", options.stderr, write) ?? files.inherited(2),
    ];
    refuseReportFile(options.report, files.outputs);
    return {
      fds,
      close: () => files.close(),
      restoreOwners: () => files.restoreOwners(),
      replacedOutputs: () => files.replacedOutputs(),
      stdinWriter: (signal) =>
        files.stdinFifo === undefined ? Promise.resolve() : waitForWriter(files.stdinFifo, signal),
    };
  } catch (err) {
    files.close();
    try {
      files.restoreOwners();
    } catch {
      // the first failure is the one to report
    }
    throw err;
  }
}

/** An output file owned by unmapped ids for the run, and what to give back. */
interface DisownedOutput {
  option: string;
  path: string;
  /** Kept open until the owner is back: the path may lead elsewhere by then. */
  fd: number;
  uid: number;
  gid: number;
  mode: number;
}

/** An output option (`--stdout`, `--stderr`) and what it opened. */
interface Output {
  option: string;
  path: string;
  /** The file `path` led to when opened: {@linkcode FdStat.identity}. */
  identity: string;
  /** The fd the command gets for it. */
  fd: number;
}

/** What {@linkcode openStdio} opened and changed, for the command and for the clean-up. */
class StdioFiles {
  /** Fds the command gets (and ones in between), closed once it has its own copies. */
  #given = new Set<number>();
  /** Outputs to give back their owner and mode to, fds kept open until then. */
  #disowned: DisownedOutput[] = [];
  /** Each output option opened, in order. */
  readonly outputs: Output[] = [];
  /** Ids outside the container's maps, once looked for; null when there are none. */
  #awayIds?: { uid: number; gid: number } | null;
  /**
   * An fd of a FIFO given as --stdin, opened without waiting for its
   * writer, and before any other of sbox's: the one whose wait sees a
   * writer that came and went (fifo.ts).
   */
  stdinFifo?: number;

  constructor(readonly containerIds: Pick<UserMapper, "uidMap" | "gidMap">) {}

  /** Opens and guards the file of `option`, or undefined when it is not given. */
  named(option: string, path: string | undefined, flags: number): number | undefined {
    if (path === undefined) return undefined;
    try {
      return this.#openNamed(option, path, flags);
    } catch (err) {
      throw failureOf(option, err, "open");
    }
  }

  #openNamed(option: string, path: string, flags: number): number {
    // O_NONBLOCK: a FIFO without a writer (--stdin) opens at once instead
    // of blocking sbox, where no signal reaches the JS thread stuck in the
    // call (its writer is waited for later, see stdinWriter); one without a
    // reader (--stdout) fails with ENXIO. The command gets a blocking fd,
    // as from a shell's redirection.
    let opened;
    try {
      opened = this.#keep(open(path, flags | O.NONBLOCK, 0o644));
    } catch (err) {
      throw noReaderExplained(err, path);
    }
    const found = fstat(opened)!;
    const refused = refusal(found.mode);
    if (refused) throw new SboxError(`${path} is ${refused}`, { step: "open" });
    const output = flags !== O.RDONLY;
    // --stdout and --stderr naming one file share one open file (one
    // offset), as `>f 2>&1` does, however the file is named: "f" and "./f",
    // a link, another hard link. Two opens would each write from offset 0
    // over the other. Truncating it twice is harmless: nothing is written
    // yet. One file is one device and inode as statx gives them: the inode
    // number alone is not, nor with the device of its mount (an overlay's
    // layers, btrfs subvolumes: one mount, files of equal inode numbers).
    const shared = output ? this.outputs.find((out) => out.identity === found.identity) : undefined;
    if (shared !== undefined) {
      this.#close(opened);
      this.outputs.push({ option, path, identity: found.identity, fd: shared.fd });
      return shared.fd;
    }
    let fd = opened;
    if (found.isFile && output) {
      this.#disown(option, path, opened, found);
    } else {
      // O_CREAT and O_TRUNC did their work on the first open.
      const view = this.#openReadOnly(opened, flags & ~(O.CREAT | O.TRUNC));
      if (view !== undefined) {
        // A --stdin FIFO's first open is the one to wait on: a writer that
        // opened and closed it before the view's open is seen (EPOLLHUP)
        // only by a reader opened before the writer came. Closed with the
        // fds the command was given.
        if (found.isFifo && !output) this.stdinFifo = opened;
        else this.#close(opened);
        fd = view;
      }
    }
    setNonblocking(fd, false);
    if (output) this.outputs.push({ option, path, identity: found.identity, fd });
    else if (found.isFifo) this.stdinFifo ??= fd;
    return fd;
  }

  /**
   * What the command gets for sbox's own fd `fd`: "inherit", or where sbox
   * is root and it is a character device (a terminal, /dev/null, /dev/full),
   * the device opened anew through a read-only view, with the same access
   * mode and flags.
   */
  inherited(fd: number): number | "inherit" {
    const found = fstat(fd);
    refuseInherited(fd, found);
    if (!found?.isCharDevice) return "inherit";
    // Only a device that is the same device when opened anew: /dev/tty and
    // /dev/console lead to whichever terminal the opener has, the
    // multiplexer makes a new terminal, and a cloning device (tun, fuse,
    // kvm: misc, major 10) a new instance. Others are given as they are.
    if (!reopensAsItself(found.rdevMajor) && found.rdevMajor !== 5) return "inherit";
    try {
      const refused = found.rdevMajor === 5
        ? `${found.rdevMinor === 2 ? "a pseudo-terminal master (/dev/ptmx)" : "/dev/tty or /dev/console"}, ` +
          `which opened anew could be another terminal; give ${OPTIONS[fd]} FILE, or the terminal itself`
        : undefined;
      const flags = fdFlags(fd);
      const view = this.#openReadOnly(fd, flags & (O.WRONLY | O.RDWR | O.APPEND), refused);
      if (view === undefined) return "inherit";
      setNonblocking(view, (flags & O.NONBLOCK) !== 0);
      return view;
    } catch (err) {
      throw failureOf(`sbox's ${NAMES[fd]} (fd ${fd})`, err, "open");
    }
  }

  /**
   * `fd`'s file opened anew with `flags` through a read-only mount (see
   * {@linkcode readOnlyMount}), or undefined where sbox may not make one.
   * `refused`, why a file must not be opened anew, is thrown instead where
   * it would be.
   */
  #openReadOnly(fd: number, flags: number, refused?: string): number | undefined {
    const tree = readOnlyMount(fd);
    if (tree === undefined) return undefined;
    try {
      if (refused !== undefined) throw new SboxError(refused, { step: "options" });
      // Through /proc: openat has no empty path. O_NOCTTY: a terminal must
      // not become sbox's. The mount lives on as long as the file.
      const opened = tryOpen(`/proc/self/fd/${tree}`, flags | O.NONBLOCK | O.NOCTTY);
      return this.#keep(check(opened, "open", "cannot open it again through a read-only mount"));
    } finally {
      close(tree);
    }
  }

  /**
   * Makes an output file belong to ids the container does not map: its root
   * is then neither the owner nor privileged over the file (a capability
   * counts only over files whose owner and group it maps), so chmod, chown,
   * a new ACL or file capability, and a reopen for writing fail, while the
   * fd the command has writes as before. Simpler than an idmapped mount of
   * it (which needs a user namespace made for the purpose and a file system
   * that supports one), and a crash of sbox leaves at worst a file owned by
   * an id no one has, with the mode it had: nothing anyone gains from. A
   * chown also drops the file's set-id bits and file capabilities.
   */
  #disown(option: string, path: string, fd: number, found: FdStat): void {
    this.#awayIds ??= unmappedIds(this.containerIds) ?? null;
    if (this.#awayIds === null) return;
    if (found.uid === this.#awayIds.uid && found.gid === this.#awayIds.gid) {
      // Its owner to give back would be the away ids themselves: another
      // run writes this file now, or one was killed while it did.
      throw new SboxError(
        `${path} belongs to ${found.uid}:${found.gid}, the ids an output gets while a run writes it: ` +
          "another run is writing it, or one was killed; give it its owner back (chown) or name another file",
        { step: "options" },
      );
    }
    const rc = tryFchown(fd, this.#awayIds.uid, this.#awayIds.gid);
    // No CAP_CHOWN (rootless), or a file system that does not let root
    // chown (NFS's root_squash): the file stays as it is.
    if (rc === -EPERM) return;
    check(rc, "chown", `cannot change the owner of ${path}`);
    this.#given.delete(fd);
    // No set-id bits back (the chown cleared them): the content is the
    // container's now, and with them it would be a set-id program of its choosing.
    this.#disowned.push({ option, path, fd, uid: found.uid, gid: found.gid, mode: found.mode & 0o1777 });
  }

  /** Gives the outputs their owners and modes back; throws for the first that fails. */
  restoreOwners(): void {
    let failure: SboxError | undefined;
    for (const out of this.#disowned.splice(0)) {
      try {
        check(tryFchown(out.fd, out.uid, out.gid), "chown", `cannot give ${out.path} its owner back`);
        check(tryFchmod(out.fd, out.mode), "chmod", `cannot give ${out.path} its mode back`);
      } catch (err) {
        failure ??= failureOf(out.option, err, "cleanup");
      } finally {
        close(out.fd);
      }
    }
    if (failure) throw failure;
  }

  /** See {@linkcode OpenStdio.replacedOutputs}. */
  replacedOutputs(): string[] {
    return this.outputs.filter((out) => identityOf(out.path) !== out.identity).map((out) =>
      `warning: ${out.option} ${out.path} was replaced during the run (unlinked or renamed, and made anew), ` +
      "by the command (it can where the file lies in a read-write --bind) or by another process: what the " +
      "command wrote there went to the file it replaced, and the file there now is not sbox's"
    );
  }

  /** Closes what the command was given. */
  close(): void {
    for (const fd of this.#given) close(fd);
    this.#given.clear();
  }

  #keep(fd: number): number {
    this.#given.add(fd);
    return fd;
  }

  #close(fd: number): void {
    this.#given.delete(fd);
    close(fd);
  }
}

/**
 * Whether a character device of major number `major` is the same device
 * each time it is opened: the memory devices (null, zero, full, random,
 * urandom: 1), terminals and serial lines (4), pseudo-terminal slaves
 * (136-143), USB serial lines (166, 188).
 */
function reopensAsItself(major: number): boolean {
  return major === 1 || major === 4 || (major >= 136 && major <= 143) || major === 166 || major === 188;
}

/** Why a file of mode `mode` cannot be stdio, or undefined when it can. */
function refusal(mode: number): string | undefined {
  switch (escapingStdio(mode)) {
    case "a directory":
      return "a directory, not a file: as stdio its fd would lead out of the container into the host's files";
    case "a block device":
      return "a block device: as stdio it would give the command a host disk";
  }
  return undefined;
}

/** Refuses sbox's own fd `fd` (`found` is its fstat) as the command's stdio where {@linkcode refusal} does. */
function refuseInherited(fd: number, found: FdStat | undefined): void {
  const refused = found && refusal(found.mode);
  if (refused) {
    throw new SboxError(
      `sbox's ${NAMES[fd]} (fd ${fd}), which the command would inherit, is ${refused}; ` +
        `give ${OPTIONS[fd]} FILE, or redirect it`,
      { step: "options" },
    );
  }
}

/**
 * A private read-only copy of the mount of `fd`'s file, holding that file
 * alone: an O_PATH fd of a detached mount (open_tree OPEN_TREE_CLONE), made
 * read-only, nosuid and noexec; or undefined where sbox may not make one
 * (no CAP_SYS_ADMIN, as rootless; a kernel before 5.12). A file opened
 * through it keeps the mount, and so its flags, after the fd is closed:
 * chmod, chown, setxattr and a write open of a regular file get EROFS.
 * Writes to a device or a FIFO are not writes to the file system: they
 * still work. Not nodev: a device given as stdio must still open.
 */
function readOnlyMount(fd: number): number | undefined {
  const flags = OPEN_TREE.CLONE | OPEN_TREE.EMPTY_PATH;
  let tree = tryOpenTree(fd, "", flags);
  if (tree === -EINVAL) {
    // The fd's mount is not in sbox's mount namespace (an fd opened before
    // `unshare -m`, by systemd for a unit with a namespace of its own), and
    // only a mount of one's own can be cloned: the same file where its path
    // leads here, if it is there.
    const same = sameFileHere(fd);
    if (same !== undefined) {
      tree = tryOpenTree(same, "", flags);
      close(same);
    }
  }
  // EINVAL still: not found here, or on an unbindable mount.
  if (tree === -EPERM || tree === -ENOSYS || tree === -EINVAL) return undefined;
  check(tree, "open_tree", "cannot make a read-only mount of it");
  try {
    const rc = tryMountSetattr(tree, MOUNT_ATTR.RDONLY | MOUNT_ATTR.NOSUID | MOUNT_ATTR.NOEXEC);
    if (rc === -ENOSYS) {
      close(tree);
      return undefined;
    }
    check(rc, "mount_setattr", "cannot make a mount of it read-only");
  } catch (err) {
    close(tree);
    throw err;
  }
  return tree;
}

/**
 * An O_PATH fd of the file open as `fd`, reached by the path the kernel
 * names for it in sbox's mount namespace, or undefined where that path does
 * not lead to the very same file.
 */
function sameFileHere(fd: number): number | undefined {
  let path;
  try {
    path = readLink(`/proc/self/fd/${fd}`);
  } catch {
    return undefined;
  }
  if (!path.startsWith("/")) return undefined; // "pipe:[...]", "anon_inode:..."
  const here = tryOpen(path, O.PATH);
  if (here < 0) return undefined;
  if (fstat(here)?.identity === fstat(fd)?.identity) return here;
  close(here);
  return undefined;
}

/**
 * A uid and a gid that exist for sbox (the highest of its user namespace:
 * 4294967294 on the host) but not in the container, or undefined when the
 * container maps them.
 */
function unmappedIds(
  containerIds: Pick<UserMapper, "uidMap" | "gidMap">,
): { uid: number; gid: number } | undefined {
  const uid = highestId("/proc/self/uid_map"), gid = highestId("/proc/self/gid_map");
  if (containerId(containerIds.uidMap, uid) !== undefined) return undefined;
  if (containerId(containerIds.gidMap, gid) !== undefined) return undefined;
  return { uid, gid };
}

/** The highest id a uid_map or gid_map gives this process, short of (uid_t)-1, which chown takes as "unchanged". */
function highestId(mapFile: string): number {
  let highest = 0;
  for (const line of readTextFile(mapFile).trim().split("\n")) {
    const [inside, , count] = line.trim().split(/\s+/).map(Number);
    highest = Math.max(highest, inside + count - 1);
  }
  return Math.min(highest, 0xfffffffe);
}

/**
 * Refuses an output that is the `--stdin` regular file (by any name: a link, another
 * hard link): opened for writing it would be emptied before the command
 * read it, and the run would look fine. `outputs` are [option, path] pairs
 * (the report's too: main.ts checks it before it opens, and so truncates,
 * the report). Nothing is opened but O_PATH, so nothing is truncated.
 */
export function refuseStdinAsOutput(
  stdin: string | undefined,
  outputs: readonly [string, string | undefined][],
): void {
  // Only a regular file loses its content to O_TRUNC: /dev/null as input
  // and output at once is the usual way to throw all I/O away.
  const input = stdin === undefined ? undefined : regularFileIdentity(stdin);
  if (input === undefined) return; // none, not a regular file, or the open of --stdin says why
  for (const [option, path] of outputs) {
    if (path === undefined || path === "-" || regularFileIdentity(path) !== input) continue;
    throw new SboxError(
      `--stdin and ${option} name the same file: ${path} (written, it would be emptied before the command reads it)`,
      { step: "options" },
    );
  }
}

/**
 * Refuses a `--report` that names the regular file of sbox's own stdout or
 * stderr (`--report /dev/stdout` with stdout `> out.txt`, or that file's
 * name): the report's open would empty it, and the report, written from
 * the file's start at the end, would go over what the command wrote there
 * (stdout, inherited where no --stdout is given) and be overwritten in turn
 * by sbox's own lines (stderr, which sbox writes to whatever --stderr is).
 * Call it before the report is opened. A pipe or a terminal is no file to
 * write over: `--report /dev/stdout` into a pipe writes the report after
 * the output.
 */
export function refuseReportAsOwnOutput(report: string | undefined, stdout: string | undefined): void {
  if (report === undefined || report === "-") return;
  const identity = regularFileIdentity(report);
  if (identity === undefined) return;
  const own: [number, string][] = [
    ...(stdout === undefined ? [[1, "stdout, which the command writes to"] as [number, string]] : []),
    [2, "stderr, where sbox writes its own lines (and the command, without --stderr)"],
  ];
  for (const [fd, what] of own) {
    const found = fstat(fd);
    if (!found?.isFile || found.identity !== identity) continue;
    throw new SboxError(
      `${report} is the file of sbox's ${what}: the report, written from its start at the end, would ` +
        `overwrite that output; give another file${fd === 2 ? ", or --report - to append it to stderr" : ""}`,
      { step: "options" },
    );
  }
}

/**
 * {@linkcode FdStat.identity} of the regular file at `path`, or undefined when
 * it is another kind of file (a device is no file to empty or write over)
 * or cannot be opened (it may not exist yet). One O_PATH open: the kind and
 * the identity are of the same file.
 */
function regularFileIdentity(path: string): string | undefined {
  const fd = tryOpen(path, O.PATH);
  if (fd < 0) return undefined;
  try {
    const found = fstat(fd);
    return found?.isFile ? found.identity : undefined;
  } finally {
    close(fd);
  }
}

/**
 * The report (opened already, by main.ts) must not be a file the command
 * writes to: written at the end from offset 0, it would overwrite the
 * output, and the output's tail would follow it.
 */
function refuseReportFile(report: string | undefined, outputs: readonly Output[]): void {
  if (report === undefined || report === "-") return;
  const identity = regularFileIdentity(report);
  const same = identity === undefined ? undefined : outputs.find((out) => out.identity === identity);
  if (same !== undefined) {
    throw new SboxError(`--report and ${same.option} name the same file: ${report}`, { step: "options" });
  }
}
