/**
 * The command line, parsed: `sbox [--help|--version]` and
 * `sbox run [OPTIONS] [--] COMMAND [ARG...]` become a {@linkcode Invocation}.
 * Pure: no OS access, so that parsing can be tested (and `--help` shown)
 * without --allow-ffi.
 *
 * Parsing uses argv.ts, with the conventions of `node:util`'s `parseArgs`
 * (see docs/cli.md for why). It is told nothing about the command, so
 * options end at the first argument that is not an option or an option's
 * value, or at `--`: `sbox run --memory 64M ls -l` runs `ls -l`.
 *
 * @module
 */

import { ArgvError, type OptionSpec, type Token, tokenize } from "./argv.ts";
import { PIDS_LIMIT_MAX } from "../cgroup.ts";
import { hasControlCharacter } from "../cgroup_mount.ts";
import { MAX_TIMER_MS } from "../deadline.ts";
import { bindTakesResolvConf, DEFAULT_HOSTNAME, HOSTNAME, RESOLV_CONF_TAKEN } from "../container_options.ts";
import { DEFAULT_HOST_ROOT_SIZE } from "../host_root.ts";
import { MAX_ID, show } from "../options.ts";
import { SboxError } from "../error.ts";
import { cleanPath, pathLengthProblem } from "../path.ts";
import { PROGRAM_LIMITS } from "../program.ts";
import { repeatedHostPort } from "../network.ts";
import { parseCount, parseCpus, parseDuration, parseSize, sizeInBytes } from "./units.ts";
import { RUN_OPTIONS } from "./run_options.ts";
import { capabilityConflict, capabilityName } from "../security/capabilities.ts";
import { RLIMIT_RESOURCES, type RlimitValue } from "../security/rlimits.ts";

/**
 * An extra mount asked for with `--bind` or `--tmpfs`, in command-line order.
 * An `optional` bind (`:try`) is left out when its source does not exist.
 */
export type MountSpec =
  | { kind: "bind"; source: string; target: string; readonly: boolean; optional: boolean }
  | { kind: "tmpfs"; target: string; size: number | undefined };

/**
 * One `-e` or `--env-file` of the command line: `-e NAME=VALUE` sets NAME;
 * `-e NAME` gives it sbox's own value of NAME, or leaves it out where sbox
 * has none; `--env-file FILE` does either for each line of FILE (see
 * environment.ts, which reads those: parsing reads nothing).
 */
export type EnvSetting =
  | { kind: "set"; name: string; value: string }
  | { kind: "inherit"; name: string }
  | { kind: "file"; path: string };

/**
 * Everything `sbox run` was asked to do. `parseRun` sets every default the
 * command line has, and no later code adds one of its own; an option left
 * `undefined` is one not asked for (no limit, the host's root, the image's
 * user).
 */
export interface RunOptions {
  /** Program and arguments. */
  command: string[];
  /** Image directory (host path, may be relative); `undefined` for the host's root. */
  rootfs?: string;
  /** Extra mounts in command-line order. */
  mounts: MountSpec[];
  /** The `-e` and `--env-file` options in command-line order, later ones winning. */
  env: EnvSetting[];
  /** Working directory in the container, cleaned (see {@linkcode cleanPath}); made if missing; default "/". */
  cwd: string;
  /** User and group ids in the container. */
  user?: { uid: number; gid: number | undefined };
  /** Run as the caller's own uid and gid, the same ids in the container (rootless only). */
  keepId: boolean;
  /** Hostname of the container; default {@linkcode DEFAULT_HOSTNAME}. */
  hostname: string;
  /** Network: "none" (loopback only), a user-mode network daemon, or "host" (the caller's namespace). */
  net: NetworkKind;
  /** With slirp4netns or pasta: the host's loopback is reachable at 10.0.2.2. */
  allowHostLoopback: boolean;
  /** With slirp4netns or pasta: host loopback ports forwarded into the container, in order. */
  publish: { hostPort: number; containerPort: number }[];
  /** Say on stderr what sbox chose (user mapper, cgroup, network). */
  verbose: boolean;
  /** Bytes the container may write to its root (the tmpfs of its temporary layers). */
  writeLimit: number;
  /** memory.max in bytes. */
  memory?: number;
  /** memory.swap.max in bytes. */
  swap?: number;
  /** pids.max. */
  pids?: number;
  /** cpu.max quota per 100 ms period, in microseconds. */
  cpuQuotaUsec?: number;
  /** CPU-time limit of the whole container, in milliseconds. */
  cpuTimeMs?: number;
  /** Wall-clock limit, in milliseconds. */
  wallTimeMs?: number;
  /** How much longer than a time limit the container may run before it is killed, in milliseconds. */
  extraTimeMs?: number;
  /** Host file for stdin. */
  stdin?: string;
  /** Host file for stdout (created or truncated). */
  stdout?: string;
  /** Host file for stderr (created or truncated). */
  stderr?: string;
  /** Where the JSON report goes: a host file, or "-" for stderr. */
  report?: string;
  /** Parent cgroup of the container's cgroup. */
  cgroup?: string;
  /** Capabilities added to the default set (`--cap-add`); none also in `capDrop`. */
  capAdd?: string[];
  /** Capabilities dropped from the default set (`--cap-drop`); none also in `capAdd`. */
  capDrop?: string[];
  /** `--seccomp`: "unconfined", or a host path of a JSON policy. */
  seccomp?: string;
  /** `--rlimit NAME=VALUE`, by resource name. */
  rlimits?: Record<string, RlimitValue>;
}

export { reportPathOf, RUN_OPTIONS } from "./run_options.ts";

/** The values of `--net`. */
export type NetworkKind = "none" | "slirp4netns" | "pasta" | "host";

/** What the command line asks for. */
export type Invocation =
  | { kind: "help"; topic: "main" | "run" }
  | { kind: "version" }
  | { kind: "run"; options: RunOptions };

const MAIN_OPTIONS = {
  help: { type: "boolean", short: "h" },
  version: { type: "boolean", short: "V" },
} as const satisfies Record<string, OptionSpec>;

/** A usage error: names what is wrong and where to read more. */
function usage(message: string, topic: "sbox" | "sbox run"): SboxError {
  return new SboxError(`${message} (see \`${topic} --help\`)`, { step: "options" });
}

/** Parses the arguments after `sbox`. Throws an SboxError (step "options") naming the problem. */
export function parseCommandLine(argv: string[]): Invocation {
  const [first, ...rest] = argv;
  if (first === "run") return parseRun(rest);
  if (first === "help") {
    if (rest.length === 0) return { kind: "help", topic: "main" };
    if (rest.length === 1 && rest[0] === "run") return { kind: "help", topic: "run" };
    throw usage(`no help on ${JSON.stringify(rest.join(" "))}`, "sbox");
  }
  if (first === undefined) throw usage("missing command: try `sbox run -- COMMAND`", "sbox");
  if (!first.startsWith("-")) throw usage(`unknown command ${JSON.stringify(first)}`, "sbox");
  const given = new Set(strictParse(argv, MAIN_OPTIONS, "sbox").map((t) => t.kind === "option" && t.name));
  if (given.has("help")) return { kind: "help", topic: "main" };
  if (given.has("version")) return { kind: "version" };
  throw usage("missing command", "sbox");
}

function parseRun(argv: string[]): Invocation {
  const { optionArgs, command } = splitAtCommand(argv);
  const tokens = strictParse(optionArgs, RUN_OPTIONS, "sbox run");
  const help = tokens.find((t) => t.kind === "option" && t.name === "help");
  if (help) {
    // One argument holding one option: `-vh` is one argument but two options.
    if (argv.length === 1 && tokens.length === 1) return { kind: "help", topic: "run" };
    throw helpWithOthers(help.kind === "option" && help.rawName === "-h");
  }
  if (command.length === 0) throw usage("missing COMMAND to run", "sbox run");
  // The library's limit, said in the command line's words (it names its option `command`).
  if (command.length > PROGRAM_LIMITS.arrayEntries) {
    throw new SboxError(
      `the command has ${command.length} arguments (COMMAND and its ARGs), at most ` +
        `${PROGRAM_LIMITS.arrayEntries}: pass a long list in a file or on stdin`,
      { step: "options" },
    );
  }

  const options: RunOptions = {
    command,
    mounts: [],
    env: [],
    cwd: "/",
    keepId: false,
    hostname: DEFAULT_HOSTNAME,
    net: "none",
    allowHostLoopback: false,
    publish: [],
    verbose: false,
    // What a container may write to its root, the library's host root's
    // default too. The layers are a tmpfs, in memory; without a memory
    // controller nothing else would bound them but half of the host's RAM,
    // the kernel's default.
    writeLimit: DEFAULT_HOST_ROOT_SIZE,
  };
  const seen = new Set<string>();
  for (const token of tokens) {
    if (token.kind !== "option") continue;
    const name = token.name as keyof typeof RUN_OPTIONS;
    const value = token.value ?? "";
    const option = `--${name}`;
    const repeatable = "multiple" in RUN_OPTIONS[name];
    if (!repeatable && seen.has(name)) throw usage(`${option} is given more than once`, "sbox run");
    seen.add(name);
    applyOption(options, name, option, value);
  }
  if (
    options.extraTimeMs !== undefined && options.cpuTimeMs === undefined && options.wallTimeMs === undefined
  ) {
    throw SboxError.invalidOption("--extra-time", "extends a time limit: add --time or --wall-time");
  }
  // The wall-clock timer's delay: a longer one fires at once (setTimeout).
  if ((options.wallTimeMs ?? 0) + (options.extraTimeMs ?? 0) > MAX_TIMER_MS) {
    throw SboxError.invalidOption(
      "--extra-time",
      `with --wall-time, at most ${MAX_TIMER_MS}ms (about 24.8 days) together`,
    );
  }
  checkCapabilityOptions(options);
  checkNetworkOptions(options);
  return { kind: "run", options };
}

/**
 * A capability in both `--cap-add` and `--cap-drop` (ALL included): the
 * library refuses it as well, but naming `capAdd` and `capDrop`.
 */
function checkCapabilityOptions(options: RunOptions): void {
  const conflict = capabilityConflict(options.capAdd ?? [], options.capDrop ?? [], {
    add: "--cap-add",
    drop: "--cap-drop",
    allBut: (name) => `--cap-add ALL --cap-drop ${name}`,
  });
  if (conflict) throw conflict;
}

/**
 * The options that depend on `--net`: `--allow-host-loopback` and
 * `--publish` need a network of its own, and with one a `--bind` may not
 * take its /etc/resolv.conf. create() refuses such a bind too, but by the
 * library's option name (`mounts`), which the command line does not have.
 */
function checkNetworkOptions(options: RunOptions): void {
  if (options.net === "none" || options.net === "host") {
    if (options.allowHostLoopback) throw needsNetwork("--allow-host-loopback", options.net);
    if (options.publish.length > 0) throw needsNetwork("--publish", options.net);
    return;
  }
  const repeated = repeatedHostPort(options.publish);
  if (repeated !== undefined) {
    throw SboxError.invalidOption("--publish", `host port ${repeated} is published more than once`);
  }
  for (const spec of options.mounts) {
    const bind = hostBindOf(spec);
    if (bind && bindTakesResolvConf(spec.target)) {
      throw SboxError.invalidOption(
        bind.flag,
        `${bind.source}:${spec.target} with --net ${options.net} ${RESOLV_CONF_TAKEN}`,
      );
    }
  }
}

/**
 * The host path `spec` binds on its target, and its flag; undefined for a
 * mount of the container's own. The CLI's `Mount.bindSource`: the compiler
 * wants an answer for each kind of MountSpec, so a new one cannot miss the
 * resolv.conf rule.
 */
function hostBindOf(spec: MountSpec): { flag: string; source: string } | undefined {
  switch (spec.kind) {
    case "bind":
      return { flag: "--bind", source: spec.source };
    case "tmpfs":
      return undefined;
    default: {
      const unhandled: never = spec;
      return unhandled;
    }
  }
}

/**
 * `--help` given with other arguments: an error, not help. Docker's `-h NAME`
 * sets the hostname; read as help it ran nothing, exited 0 and left a
 * `--report` file of an earlier run in place, which a judge would read as
 * this run's. As an error it writes the XX report (main.ts).
 */
function helpWithOthers(short: boolean): SboxError {
  return short
    ? usage("-h is --help, which takes no other arguments; the hostname option is --hostname", "sbox run")
    : usage("--help takes no other arguments", "sbox run");
}

/** Sets in `options` what option `name` of {@linkcode RUN_OPTIONS} asks for, its value checked. */
function applyOption(
  options: RunOptions,
  name: keyof typeof RUN_OPTIONS,
  option: string,
  value: string,
): void {
  switch (name) {
    case "rootfs":
      options.rootfs = checkPathLength(option, nonEmpty(option, value));
      break;
    case "bind":
      options.mounts.push(parseBind(value));
      break;
    case "tmpfs":
      options.mounts.push(parseTmpfs(value));
      break;
    case "env":
      options.env.push(parseEnv(option, value));
      break;
    case "env-file":
      options.env.push({ kind: "file", path: checkPathLength(option, nonEmpty(option, value)) });
      break;
    case "cwd":
      options.cwd = cleanPath(absolute(option, value, "an absolute path in the container"));
      break;
    case "user":
      options.user = parseUser(value);
      break;
    case "keep-id":
      options.keepId = true;
      break;
    case "hostname":
      // Checked here, as the library would, to name the option in the error.
      if (!HOSTNAME.test(value)) {
        throw badValue(option, value, '1-64 letters, digits, "." or "-", starting with a letter or digit');
      }
      options.hostname = value;
      break;
    case "net":
      options.net = parseNet(value);
      break;
    case "allow-host-loopback":
      options.allowHostLoopback = true;
      break;
    case "publish":
      options.publish.push(parsePublish(value));
      break;
    case "verbose":
      options.verbose = true;
      break;
    case "memory":
      options.memory = parseSize(option, value);
      break;
    case "write-limit":
      options.writeLimit = parseSize(option, value);
      break;
    case "swap":
      options.swap = parseSize(option, value, { allowZero: true });
      break;
    case "pids":
      // With 1, the kernel refuses the command's process (EAGAIN); above
      // PID_MAX_LIMIT, the limit itself (EINVAL): say why here.
      options.pids = parseCount(
        option,
        value,
        2,
        PIDS_LIMIT_MAX,
        `at least 2: the container's pid 1 is sbox's reaper, the command a second process; ` +
          "at most the kernel's PID_MAX_LIMIT",
      );
      break;
    case "cpus":
      options.cpuQuotaUsec = parseCpus(option, value);
      break;
    case "time":
      options.cpuTimeMs = parseDuration(option, value);
      break;
    case "wall-time":
      options.wallTimeMs = parseDuration(option, value);
      break;
    case "extra-time":
      // 0s: isolate's default -x 0, which a judge's settings may carry over.
      options.extraTimeMs = parseDuration(option, value, { allowZero: true });
      break;
    case "stdin":
    case "stdout":
    case "stderr":
    case "report":
      options[name] = checkPathLength(option, nonEmpty(option, value));
      break;
    case "cgroup":
      options.cgroup = parseCgroup(value);
      break;
    case "cap-add":
      (options.capAdd ??= []).push(...parseCapabilities(option, value));
      break;
    case "cap-drop":
      (options.capDrop ??= []).push(...parseCapabilities(option, value));
      break;
    case "seccomp":
      options.seccomp = checkPathLength(option, nonEmpty(option, value));
      break;
    case "rlimit": {
      const [name, limit] = parseRlimit(value);
      (options.rlimits ??= {})[name] = limit;
      break;
    }
    case "help":
      break;
    default: {
      // Every option of RUN_OPTIONS needs a case: one without would be
      // accepted and ignored. `never` makes `deno check` name it.
      const unhandled: never = name;
      throw new Error(`sbox internal error: --${unhandled} has no case in applyOption`);
    }
  }
}

/**
 * `-e NAME=VALUE`, or `-e NAME` for sbox's own value of NAME (Docker's
 * `-e`), which keeps a secret off sbox's command line: any local user can
 * read that in /proc/PID/cmdline, not sbox's environment.
 */
function parseEnv(option: string, value: string): EnvSetting {
  const eq = value.indexOf("=");
  if (eq === 0 || value === "") {
    throw badValue(option, value, "NAME=VALUE, or NAME for sbox's own value of NAME");
  }
  if (eq < 0) return { kind: "inherit", name: value };
  return { kind: "set", name: value.slice(0, eq), value: value.slice(eq + 1) };
}

/** `--cap-add NET_RAW,SYS_PTRACE`: names with or without CAP_, any case, or ALL. */
function parseCapabilities(option: string, value: string): string[] {
  return value.split(",").map((name) => {
    const bare = capabilityName(name.trim());
    if (bare === undefined) {
      throw badValue(option, value, "capability names such as NET_RAW or SYS_PTRACE, or ALL");
    }
    return bare;
  });
}

/**
 * The resources whose limits are bytes: their values take the units of
 * `--memory` (`AS=256M`), as nsjail's and isolate's users think in MB or KB.
 */
const SIZE_RLIMITS: ReadonlySet<string> = new Set("FSIZE DATA STACK CORE RSS MEMLOCK AS MSGQUEUE".split(" "));

/**
 * `--rlimit NOFILE=64`, `--rlimit NOFILE=64:128` (soft:hard), `--rlimit
 * CORE=unlimited`, `--rlimit AS=256M` (a size, for the resources that count
 * bytes).
 */
function parseRlimit(value: string): [string, RlimitValue] {
  const expected = "NAME=LIMIT or NAME=SOFT:HARD, e.g. NOFILE=64 or AS=256M " +
    "(LIMIT a number, a size with k, M, G or T for a limit in bytes, or unlimited)";
  const match = /^([A-Za-z_]+)=([^:]+)(?::([^:]+))?$/.exec(value);
  const name = match?.[1].toUpperCase().replace(/^RLIMIT_/, "");
  if (!match || name === undefined || !(name in RLIMIT_RESOURCES)) {
    throw badValue("--rlimit", value, expected);
  }
  const isSize = SIZE_RLIMITS.has(name);
  const limit = (text: string): number | "unlimited" => {
    if (text === "unlimited") return "unlimited";
    const n = isSize ? sizeInBytes(text) : /^\d+$/.test(text) ? Number(text) : undefined;
    if (n !== undefined) return n;
    if (sizeInBytes(text) === undefined) throw badValue("--rlimit", value, expected);
    throw badValue(
      "--rlimit",
      value,
      `a number without a unit for ${name}, which counts no bytes (k, M, G and T are for ${
        [...SIZE_RLIMITS].join(", ")
      })`,
    );
  };
  const [soft, hard] = [limit(match[2]), limit(match[3] ?? match[2])];
  // What the library would refuse, refused here to name the option.
  const numeric = [soft, hard].filter((n) => n !== "unlimited");
  if (!numeric.every(Number.isSafeInteger)) throw badValue("--rlimit", value, `${expected}, at most 2^53-1`);
  if (hard !== "unlimited" && (soft === "unlimited" || soft > hard)) {
    throw badValue("--rlimit", value, `${expected}, SOFT not above HARD`);
  }
  return [name, match[3] === undefined ? soft : { soft, hard }];
}

/**
 * `--cgroup PATH`: absolute, without "." or ".." components (a cgroup has no
 * such names); repeated slashes are dropped.
 */
function parseCgroup(value: string): string {
  // Control characters here, where the error names --cgroup on one line:
  // the library's would name "cgroup name", a newline breaking its line.
  if (
    !value.startsWith("/") || value.split("/").some((part) => part === "." || part === "..") ||
    hasControlCharacter(value)
  ) {
    throw badValue(
      "--cgroup",
      value,
      'an absolute path without "." or ".." or control characters such as /sys/fs/cgroup/judge or /judge',
    );
  }
  return cleanPath(value);
}

/**
 * Splits `argv` into sbox's options and the command: the command starts at
 * the first positional argument, or after `--`. A first pass that knows which
 * options take values finds it; unknown options are rejected by the strict
 * pass over what comes before.
 */
function splitAtCommand(argv: string[]): { optionArgs: string[]; command: string[] } {
  const tokens = tokenize(argv, RUN_OPTIONS, false);
  const boundary = tokens.find((t) => t.kind === "positional" || t.kind === "option-terminator");
  if (!boundary) return { optionArgs: argv, command: [] };
  const skip = boundary.kind === "option-terminator" ? 1 : 0;
  return { optionArgs: argv.slice(0, boundary.index), command: argv.slice(boundary.index + skip) };
}

function strictParse(
  args: string[],
  options: Record<string, OptionSpec>,
  topic: "sbox" | "sbox run",
): Token[] {
  try {
    return tokenize(args, options, true);
  } catch (err) {
    if (err instanceof ArgvError) throw usage(err.message, topic);
    throw err;
  }
}

function badValue(option: string, value: string, expected: string): SboxError {
  return SboxError.invalidOption(option, `bad value ${show(value)}: expected ${expected}`);
}

function nonEmpty(option: string, value: string): string {
  if (value === "") throw badValue(option, value, "a non-empty value");
  return value;
}

function absolute(option: string, value: string, expected: string): string {
  if (!value.startsWith("/")) throw badValue(option, value, expected);
  return checkPathLength(option, value);
}

/**
 * Refuses a path the kernel would refuse with ENAMETOOLONG, naming the
 * option: the failure came later, as "cannot stat" and the whole path, with
 * no option named. `option`'s value is `path` (or holds it).
 */
function checkPathLength(option: string, path: string): string {
  const problem = pathLengthProblem(path);
  if (problem !== undefined) throw SboxError.invalidOption(option, problem);
  return path;
}

/**
 * `--bind SRC:DST[:OPTIONS]`, OPTIONS a comma-separated list as Docker's
 * `-v` has (`ro,z`): `ro` or `rw`, and `try` for a bind that is skipped
 * when SRC does not exist (bwrap's `--bind-try`, isolate's `:maybe`).
 */
function parseBind(value: string): MountSpec {
  const expected = "SRC:DST or SRC:DST:OPTS, OPTS a comma-separated list of ro or rw, and try, such as " +
    "ro,try (DST an absolute path in the container)";
  const parts = value.split(":");
  if (parts.length < 2 || parts.length > 3) throw badValue("--bind", value, expected);
  const [source, target, list] = parts;
  if (source === "" || !target.startsWith("/")) throw badValue("--bind", value, expected);
  const options = list === undefined ? [] : list.split(",");
  const known = (option: string) => option === "ro" || option === "rw" || option === "try";
  const modes = options.filter((option) => option === "ro" || option === "rw");
  if (!options.every(known) || new Set(options).size < options.length || modes.length > 1) {
    throw badValue("--bind", value, expected);
  }
  checkPathLength("--bind", source);
  checkPathLength("--bind", target);
  checkDestination("--bind", value, target);
  return { kind: "bind", source, target, readonly: modes[0] === "ro", optional: options.includes("try") };
}

function parseTmpfs(value: string): MountSpec {
  const [target, size, ...extra] = value.split(":");
  if (!target.startsWith("/") || extra.length > 0) {
    throw badValue("--tmpfs", value, "DST or DST:SIZE (DST an absolute path in the container)");
  }
  checkDestination("--tmpfs", value, target);
  checkPathLength("--tmpfs", target);
  return { kind: "tmpfs", target, size: size === undefined ? undefined : parseSize("--tmpfs", size) };
}

/**
 * Refuses what the library would refuse in a mount destination (".."), to
 * name the option, and the container's root however it is spelled ("//",
 * "/."), as Docker does: a mount there would hide the whole root file
 * system, /proc, /dev and /tmp included.
 */
function checkDestination(option: string, value: string, target: string): void {
  if (target.split("/").includes("..")) throw badValue(option, value, 'a DST without ".." components');
  if (cleanPath(target) === "/") {
    throw SboxError.invalidOption(
      option,
      `bad value ${show(value)}: DST cannot be / (the container's root; --rootfs DIR gives another)`,
    );
  }
}

/** `-u UID[:GID]`; which ids the container has is checked with its id map (identity.ts). */
function parseUser(value: string): { uid: number; gid: number | undefined } {
  const match = /^(\d+)(?::(\d+))?$/.exec(value);
  const uid = Number(match?.[1]);
  const gid = match?.[2] === undefined ? undefined : Number(match[2]);
  if (!match || uid > MAX_ID || (gid !== undefined && gid > MAX_ID)) {
    throw badValue(
      "--user",
      value,
      "UID or UID:GID, numeric ids such as 65534 or 1000:1000 (names are not looked up: the image's " +
        "/etc/passwd gives a name's uid and group)",
    );
  }
  return { uid, gid };
}

function parseNet(value: string): NetworkKind {
  if (value === "none" || value === "slirp4netns" || value === "pasta" || value === "host") return value;
  throw badValue("--net", value, "none, slirp4netns, pasta or host");
}

function parsePublish(value: string): { hostPort: number; containerPort: number } {
  const match = /^(\d{1,5}):(\d{1,5})$/.exec(value);
  const hostPort = Number(match?.[1]), containerPort = Number(match?.[2]);
  if (!match || hostPort < 1 || hostPort > 65535 || containerPort < 1 || containerPort > 65535) {
    throw badValue("--publish", value, "HOST_PORT:CONTAINER_PORT, ports from 1 to 65535");
  }
  return { hostPort, containerPort };
}

/**
 * `option` is a setting of the user-mode network daemons. With `--net host`
 * there is none: the host's loopback is the container's own, and a port it
 * listens on is a host port already.
 */
function needsNetwork(option: string, net: "none" | "host"): SboxError {
  if (net === "none") {
    return SboxError.invalidOption(option, "needs a network: add --net slirp4netns or --net pasta");
  }
  return SboxError.invalidOption(
    option,
    "means nothing with --net host: the container has the host's network, whose 127.0.0.1 and ports " +
      "are its own (the option is for --net slirp4netns or --net pasta)",
  );
}
