/**
 * The help texts of `sbox --help` and `sbox run --help`. Kept beside each
 * other and apart from the parser so that they read as documentation.
 *
 * @module
 */

/** `sbox --help`. */
export function mainHelp(version: string): string {
  return `sbox ${version}: run a command in a tiny Linux container

Usage:
  sbox run [OPTIONS] [--] COMMAND [ARG...]   run COMMAND in a new container
  sbox --help | sbox run --help              show help
  sbox --version                             show the version

A container gets its own user, mount, pid, network (unless --net host), ipc,
uts, time and cgroup namespaces, a root file system whose writes vanish
afterwards, and a cgroup of its own for limits and accounting (as root or
with a delegated cgroup: a user without one runs without limits). Without
--rootfs its root is a read-only view of the host's own root: every program
of the host is there, writes go to a temporary layer.

Examples:
  sbox run -- ls -l /                        look around
  sbox run --rootfs ./busybox -- sh          a shell in an image directory
  sbox run --time 2s --wall-time 5s --memory 256M --swap 0 --pids 64 \\
      --stdin in.txt --stdout out.txt --report - -- "$PWD/solution"

Run it with Deno, which needs --allow-ffi and nothing else:
  deno run --allow-ffi sbox.ts run -- echo hello

See \`sbox run --help\` for every option, and docs/cli.md.
`;
}

/** `sbox run --help`. */
export function runHelp(): string {
  return `Usage: sbox run [OPTIONS] [--] COMMAND [ARG...]

Runs COMMAND in a new container and exits with its status. Options end at the
first argument that is not an option (or at --): \`sbox run ls -l\` runs \`ls -l\`.

File system:
  --rootfs DIR            image directory to use as the read-only lower layer
                          of the root (default: the host's own root)
  --bind SRC:DST[:OPTS]   bind host path SRC on DST in the container; OPTS, a
                          comma-separated list: ro (read-only) or rw (default),
                          try (skip the bind if SRC does not exist), e.g.
                          SRC:DST:ro,try (repeatable)
  --tmpfs DST[:SIZE]      mount a fresh tmpfs on DST, SIZE bytes at most
                          (repeatable)
  --write-limit SIZE      bytes the command may write to the root's temporary
                          layer, in memory (default: 1G)
  Writes anywhere else go to a temporary layer and vanish. /proc, /sys, /dev
  and /tmp (a 64M tmpfs; --tmpfs /tmp:SIZE for another size) are always fresh
  (but /sys with --net host: the host's, read-only).
  DST cannot be /, nor --rootfs the host's / (the default: leave it out).

Process:
  -e, --env NAME=VALUE    set a variable (repeatable); the environment is
                          PATH and HOME plus these, nothing from the host
                          but TERM when stdin is a terminal
  -e, --env NAME          NAME with sbox's own value, which stays off the
                          command line (a secret); none where sbox has none
  --env-file FILE         variables from FILE in Docker's format (repeatable):
                          NAME=VALUE lines, VALUE as it is (quotes kept);
                          a line NAME is -e NAME; # starts a comment line
  -w, --cwd DIR           working directory in the container, made if missing (default: /)
  -u, --user UID[:GID]    ids in the container, 0-65535 as root (default: 0:0;
                          GID defaults to the user's group in the image's
                          /etc/passwd)
  --keep-id               rootless: run as your own uid and gid, the same ids
                          inside, so that the command is not root and owns
                          your files in --bind directories (podman's
                          --userns=keep-id; docs/rootless.md)
  --hostname NAME         hostname: 1-64 letters, digits, . or - (default: sbox);
                          /etc/hostname holds NAME, /etc/hosts gets
                          "127.0.1.1 NAME"
  -v, --verbose           say what sbox chose (user mapper, cgroup, network);
                          not Docker's -v SRC:DST, which is --bind here
  -h, --help              show this help; alone only (-h is not --hostname)

Network (docs/network.md):
  --net MODE              none: only loopback, up (default); slirp4netns or
                          pasta: user-mode networking, address 10.0.2.100/24,
                          gateway 10.0.2.2, DNS 10.0.2.3; host: the host's own
                          network, not isolated: the command reaches all the
                          host can, its 127.0.0.1 services and abstract Unix
                          sockets too (it cannot reconfigure it; as root it
                          is the host's uid 0 there: use -u UID, see
                          docs/security.md)
  --allow-host-loopback   with slirp4netns or pasta: the host's 127.0.0.1 is
                          reachable at 10.0.2.2 (unreachable by default)
  -p, --publish H:C       with slirp4netns or pasta: the host's 127.0.0.1:H
                          forwards to the container's port C (repeatable)

Limits (cgroup v2; a limit whose controller is missing is an error):
  --memory SIZE           memory.max, e.g. 256M; an OOM kill reports ML
  --swap SIZE             memory.swap.max; 0 for none
  --pids N                pids.max: processes and threads at most
  --cpus N                CPU bandwidth, e.g. 0.5 or 2 CPUs
  --time DUR              CPU time of all processes together, e.g. 2s
  --wall-time DUR         wall-clock time, e.g. 10s
  --extra-time DUR        run this much past a time limit before the kill,
                          so the report shows how far over it went
  Over a time limit the whole container is killed and the report says TO.
  SIZE: a number of bytes, or with k, M, G or T (powers of 1024): 64M, 1G.
  DUR: a number with ms, s, m or h: 500ms, 1.5s, 2m.

Security (docs/security.md; on by default):
  --cap-add CAP[,CAP]     keep capabilities beyond the default set, e.g.
                          NET_RAW for ping (repeatable; ALL for every one; NET_RAW and
                          NET_ADMIN with slirp4netns or pasta need
                          --allow-host-loopback)
  --cap-drop CAP[,CAP]    drop capabilities from the default set (repeatable;
                          ALL for every one; --cap-add ALL --cap-drop CAP
                          keeps all but CAP; a CAP in both is refused)
  --seccomp FILE          seccomp policy from a JSON file (sbox's format, not
                          Docker's) instead of the default profile;
                          --seccomp unconfined for none
  --rlimit NAME=N         resource limit, e.g. NOFILE=64, NOFILE=64:128
                          (soft:hard), AS=256M, FSIZE=1M (SIZE for the limits
                          in bytes; repeatable; unless given, CORE=0 and a
                          soft NOFILE of 1024)

Judging:
  --stdin FILE            read stdin from FILE (default: sbox's stdin)
  --stdout FILE           write stdout to FILE, created or truncated
  --stderr FILE           write stderr to FILE, created or truncated
  --report FILE           write a JSON report to FILE, or to stderr with -
  --cgroup PATH           parent cgroup of the container's cgroup, as a path in
                          the cgroup2 mount or as in /proc/self/cgroup
                          (default: sbox's own cgroup)

Report: {"status","exitCode","signal","wallTimeMs","cpu":{"usageUsec",
"userUsec","systemUsec"},"memoryPeakBytes","maxRssBytes","oomKilled",
"timedOut"}, status
OK (exit 0), RE (non-zero exit), SG (killed by a signal), TO (time limit),
ML (memory limit), XX (sbox failed, or the command replaced or wrote its
report file: keep it out of read-write binds).

Exit status: the command's; 128+N when it was killed by signal N; 127 when it
was not found; 126 when it could not be executed; 125 when sbox failed.
sbox ignores SIGUSR1 (Deno would open its debugger on it) and SIGXFSZ; SIGINT,
SIGTERM, SIGHUP, SIGQUIT and the other signals that would end it kill the
container, clean up, then end sbox by that signal (a shell sees 128+N),
unless sbox was started with them ignored (nohup, a script's background job):
those stay ignored.

Examples:
  sbox run -- sh -c 'echo hi > /etc/motd; cat /etc/motd'   # the host is untouched
  sbox run --rootfs ./busybox -u 65534 -w /tmp -- id
  sbox run --bind "$PWD:/work:ro" -w /work -- make -n
  sbox run --tmpfs /scratch:64M -e LANG=C.UTF-8 -- sh
  sbox run --time 1s --report - -- sh -c 'while :; do :; done'
  sbox run --rootfs ./image --memory 256M --swap 0 --pids 64 --time 2s \\
      --wall-time 5s --stdin tests/1.in --stdout out/1.out --report out/1.json \\
      -- /solution
`;
}
