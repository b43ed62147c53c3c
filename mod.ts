/**
 * sbox for Deno: tiny rootless Linux containers as a typed Deno API, the
 * counterpart of the Rust crate `sbox`. A process starts in fresh user,
 * mount, pid, net (unless `network: "host"`), ipc, uts, time and cgroup
 * namespaces, on an overlay root, in a cgroup v2 group, and you learn
 * exactly how it ended.
 *
 * Needs `--allow-ffi` and nothing else: the Zig helper library does clone3
 * and the child's setup; this package does the policy.
 *
 * @example Run a command in a busybox image and capture its output
 * ```ts ignore
 * import { BaseMounts, Cgroup, Container, OverlayMount, ProcUserMapper, runAsRoot } from "./mod.ts";
 *
 * // An image directory, e.g. one made by `tools/busybox-image /tmp/sbox-image`.
 * const image = "/tmp/sbox-image";
 * const state = "/tmp/sbox-hello";
 * const userMapper = ProcUserMapper.newRoot();
 * // As container root: the overlay's upper layer then belongs to it.
 * await runAsRoot(userMapper, ["mkdir", "-p", `${state}/root`, `${state}/upper`, `${state}/work`]);
 * const cgroup = Cgroup.current().child("sbox-hello");
 * cgroup.create();
 * try {
 *   // Destroyed at the end of this block, before its cgroup goes.
 *   await using container = await Container.create({
 *     rootfs: `${state}/root`,
 *     cgroup,
 *     userMapper,
 *     mounts: [new OverlayMount([image], `${state}/upper`, `${state}/work`), new BaseMounts()],
 *   });
 *   const init = await container.start({
 *     command: ["/bin/sh", "-c", "echo hello from $(hostname)"],
 *     env: { PATH: "/bin" },
 *     stdout: "piped",
 *   });
 *   const { code, stdout } = await init.output();
 *   console.log(code, new TextDecoder().decode(stdout));
 * } finally {
 *   await cgroup.remove();
 *   await runAsRoot(userMapper, ["rm", "-rf", state]);
 * }
 * ```
 *
 * @module
 */

export { Cgroup, type CpuUsage, type MemoryEvents } from "./src/cgroup.ts";
export { findCgroup2Mount } from "./src/cgroup_mount.ts";
export { Container } from "./src/container.ts";
export type { ContainerOptions, ProcessOptions } from "./src/container_options.ts";
export {
  CONTAINER_NETWORK,
  NETWORK_READY_TIMEOUT_MS,
  type NetworkAttachment,
  type NetworkManager,
  PastaManager,
  type PublishedPort,
  Slirp4NetnsManager,
  UserModeNetworkManager,
  type UserModeNetworkOptions,
} from "./src/network.ts";
export { SboxError, type SboxErrorOptions, type Step } from "./src/error.ts";
export {
  BaseMounts,
  type BaseMountsOptions,
  BindMount,
  MASKED_PATHS,
  type Mount,
  OverlayMount,
  type OverlayMountOptions,
  READONLY_PROC_PATHS,
  TmpfsMount,
} from "./src/mount.ts";
export { DEFAULT_HOST_ROOT_SIZE, HostRootMount, type HostRootMountOptions } from "./src/host_root.ts";
export {
  InitProcess,
  type OutputOptions,
  Process,
  type ProcessOutput,
  type ProcessStatus,
  type ResourceUsage,
  type Stdio,
} from "./src/process.ts";
export {
  BinNewIdMapper,
  type IdMapEntry,
  ProcUserMapper,
  runAsRoot,
  runAsUser,
  type UserMapper,
} from "./src/user.ts";
export type { SignalLike } from "./src/signal.ts";
export {
  type IdMaps,
  type MountOpOptions,
  MS,
  OpCode,
  type OpName,
  type Program,
  ProgramBuilder,
  UNCHANGED_ID,
} from "./src/program.ts";
export { CAPABILITIES, DEFAULT_CAPABILITIES } from "./src/security/capabilities.ts";
export {
  DEFAULT_SECCOMP_POLICY,
  type SeccompAction,
  type SeccompCondition,
  type SeccompPolicy,
  type SeccompRule,
} from "./src/security/policy.ts";
export { compileSeccomp, type SeccompArch } from "./src/security/seccomp.ts";
export { DEFAULT_RLIMITS, RLIMIT_RESOURCES, type Rlimits, type RlimitValue } from "./src/security/rlimits.ts";
