/**
 * sbox loaded as a package, not from a checkout: the package's published
 * files (git's files less deno.json's publish.exclude, so no zig-out) copied
 * to a scratch directory, the helper embedded there by tools/embed-helper.ts
 * for this machine's architecture, and served by an HTTP server on
 * 127.0.0.1 inside the test, as JSR would serve them. Each sbox process gets
 * a DENO_DIR and a HOME of its own, so the embedded copy's cache starts
 * empty. Nothing leaves this machine.
 */

import assert from "node:assert/strict";
import meta from "../deno.json" with { type: "json" };
import {
  busyboxImage,
  COMMAND_TIMEOUT_MS,
  OWN_MOUNT_NAMESPACE,
  scratchDir,
  shellQuote,
  skipUnlessRoot,
  skipWithout,
  text,
} from "./fixtures.ts";
import { type CommandResult as Result, runCommand } from "./command.ts";

const ROOT = decodeURIComponent(new URL("../", import.meta.url).pathname);
const ARCH = Deno.build.arch;

/** Copies the files `deno publish` would upload into a new scratch directory. */
function copyPublished(prefix: string): string {
  const dir = scratchDir(prefix);
  const listed = new Deno.Command("git", {
    args: ["ls-files", "--cached", "--others", "--exclude-standard", "-z"],
    cwd: ROOT,
  }).outputSync();
  assert.ok(listed.success, text(listed.stderr));
  const excluded = meta.publish.exclude;
  for (const file of text(listed.stdout).split("\0")) {
    if (file === "" || excluded.some((prefix) => file.startsWith(prefix))) continue;
    try {
      // Neither a file deleted but not yet committed, nor a link (a zig-out made one).
      if (!Deno.lstatSync(`${ROOT}${file}`).isFile) continue;
    } catch {
      continue;
    }
    Deno.mkdirSync(`${dir}/${file}`.replace(/\/[^/]*$/, ""), { recursive: true });
    Deno.copyFileSync(`${ROOT}${file}`, `${dir}/${file}`);
  }
  return dir;
}

interface Package {
  dir: string;
  /** The embedded library's cache file name, `libsbox-<sha256 prefix>.so`. */
  fileName: string;
  /** The embedded library's bytes. */
  library: Uint8Array;
}

/** The published files with the helper embedded for this machine: built once per test file. */
const embeddedPackage: () => Promise<Package> = (() => {
  let built: Promise<Package> | undefined;
  return () =>
    built ??= (async () => {
      const dir = copyPublished("dist-embedded-");
      const tool = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--allow-read",
          "--allow-write",
          "--allow-run",
          `${ROOT}tools/embed-helper.ts`,
          "--root",
          dir,
          "--arch",
          ARCH,
          "--zig",
          `${ROOT}.tools/zig/ziglang/zig`,
        ],
        stdout: "piped",
        stderr: "piped",
        signal: AbortSignal.timeout(COMMAND_TIMEOUT_MS),
      }).output();
      assert.ok(tool.success, text(tool.stderr));
      const module = Deno.readTextFileSync(`${dir}/src/embedded_library.ts`);
      const match = module.match(/sha256: "([0-9a-f]{64})",\s*base64:\s*"([^"]+)"/);
      assert.ok(match, "no library in the generated module");
      globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
      return {
        dir,
        fileName: `libsbox-${match[1].slice(0, 16)}.so`,
        library: Uint8Array.from(atob(match[2]), (c) => c.charCodeAt(0)),
      };
    })();
})();

/** Serves `dir` on 127.0.0.1 (a free port) while `body` runs, with the content types Deno needs. */
async function serving<T>(dir: string, body: (origin: string) => Promise<T>): Promise<T> {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (request) => {
    const path = decodeURIComponent(new URL(request.url).pathname);
    try {
      const type = path.endsWith(".json") ? "application/json" : "application/typescript";
      return new Response(await Deno.readFile(`${dir}${path}`), { headers: { "content-type": type } });
    } catch {
      return new Response("not found", { status: 404 });
    }
  });
  try {
    return await body(`http://127.0.0.1:${server.addr.port}`);
  } finally {
    await server.shutdown();
  }
}

/**
 * `deno run --quiet --no-config --allow-ffi --allow-import=HOST [EXTRA] SCRIPT ARGS...`
 * with only `env` (HOME, XDG_CACHE_HOME) and a DENO_DIR in HOME; after
 * `prefix` (a command that runs the rest) if given; `ffi` in place of
 * `--allow-ffi` if given.
 */
function denoRun(
  origin: string,
  script: string,
  args: string[],
  env: { HOME: string; XDG_CACHE_HOME?: string },
  options: { extra?: string[]; prefix?: readonly string[]; ffi?: string } = {},
): Promise<Result> {
  const argv = [
    ...options.prefix ?? [],
    Deno.execPath(),
    "run",
    "--quiet",
    // Neither the checkout's deno.json nor a lock file next to it: scratch
    // directories lie inside the checkout.
    "--no-config",
    options.ffi ?? "--allow-ffi",
    `--allow-import=${new URL(origin).host}`,
    ...options.extra ?? [],
    script,
    ...args,
  ];
  return runCommand(argv, {
    clearEnv: true,
    env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", NO_COLOR: "1", DENO_DIR: `${env.HOME}/.deno`, ...env },
  });
}

/** `sbox run --rootfs <busybox> -- ARGS` of the copy served at `origin`. */
function sboxRun(origin: string, args: string[], env: { HOME: string; XDG_CACHE_HOME?: string }) {
  return denoRun(origin, `${origin}/sbox.ts`, ["run", "--rootfs", busyboxImage(), "--", ...args], env);
}

/** A new, private home directory under `dir`. */
function newHome(dir: string, name: string): string {
  const home = `${dir}/${name}`;
  Deno.mkdirSync(home, { mode: 0o700 });
  return home;
}

Deno.test("distribution: sbox run from an http: copy writes the embedded helper to its cache once and reuses it", async () => {
  const pkg = await embeddedPackage();
  const work = scratchDir("dist-run-");
  try {
    await serving(pkg.dir, async (origin) => {
      const home = newHome(work, "home");
      const cache = `${home}/.cache/sbox`;
      // A checkout loads its local build and never the embedded copy.
      const checkout = ["run", "--rootfs", busyboxImage(), "--", "true"];
      const local = await denoRun(origin, `${ROOT}sbox.ts`, checkout, { HOME: home });
      assert.equal(local.code, 0, local.stderr);
      assert.throws(() => Deno.statSync(`${home}/.cache`), Deno.errors.NotFound);

      const first = await sboxRun(origin, ["/bin/echo", "hello from a package"], { HOME: home });
      assert.equal(first.code, 0, first.stderr);
      assert.equal(first.stdout, "hello from a package\n");
      // Made private: 0700, this user's; the file content-addressed, not writable.
      assert.equal(Deno.statSync(cache).mode! & 0o777, 0o700);
      assert.deepEqual([...Deno.readDirSync(cache)].map((e) => e.name), [pkg.fileName]);
      const file = Deno.statSync(`${cache}/${pkg.fileName}`);
      assert.equal(file.uid, Deno.uid());
      assert.equal(file.mode! & 0o022, 0);
      assert.deepEqual(Deno.readFileSync(`${cache}/${pkg.fileName}`), pkg.library);

      const second = await sboxRun(origin, ["/bin/echo", "again"], { HOME: home });
      assert.equal(second.code, 0, second.stderr);
      assert.equal(second.stdout, "again\n");
      // The same file, not a new one.
      assert.deepEqual([...Deno.readDirSync(cache)].map((e) => e.name), [pkg.fileName]);
      assert.equal(Deno.statSync(`${cache}/${pkg.fileName}`).ino, file.ino);

      // Several processes at once with an empty cache: each runs, one file stays, no temporary file.
      const shared = newHome(work, "shared");
      const runs = await Promise.all(
        [1, 2, 3, 4].map((i) => sboxRun(origin, ["/bin/echo", `run ${i}`], { HOME: shared })),
      );
      runs.forEach((run, i) => assert.equal(run.stdout, `run ${i + 1}\n`, run.stderr));
      assert.deepEqual([...Deno.readDirSync(`${shared}/.cache/sbox`)].map((e) => e.name), [pkg.fileName]);
    });
  } finally {
    Deno.removeSync(work, { recursive: true });
  }
});

/** tests/programs/package_user.ts, the library script. */
const PACKAGE_USER = decodeURIComponent(new URL("./programs/package_user.ts", import.meta.url).pathname);

Deno.test("distribution: a library script importing mod.ts over http: runs containers, a Worker's too, from one file", async () => {
  const pkg = await embeddedPackage();
  const work = scratchDir("dist-lib-");
  try {
    await serving(pkg.dir, async (origin) => {
      const home = newHome(work, "home");
      const otherCache = newHome(work, "other-cache");
      const rootfs = newHome(work, "root");
      const args = [origin, rootfs, busyboxImage(), otherCache];
      const result = await denoRun(origin, PACKAGE_USER, args, { HOME: home }, {
        extra: [
          "--allow-env=XDG_CACHE_HOME",
          // For the Worker's module, a local file; sbox itself reads nothing through Deno.
          `--allow-read=${PACKAGE_USER}`,
        ],
      });
      assert.equal(result.code, 0, result.stderr);
      const [main, worker, mapped] = result.stdout.trimEnd().split("\n");
      assert.equal(main, "0 main");
      assert.equal(worker, "0 worker");
      // The library has process-wide state: the Worker loaded the file the
      // main isolate did, though its environment now names another cache.
      assert.equal(mapped, `${home}/.cache/sbox/${pkg.fileName}`);
      assert.deepEqual([...Deno.readDirSync(otherCache)], []);
    });
  } finally {
    Deno.removeSync(work, { recursive: true });
  }
});

Deno.test("distribution: a Worker started after the cache file was removed loads the library the process has, not a second copy", async () => {
  const pkg = await embeddedPackage();
  const work = scratchDir("dist-removed-");
  try {
    await serving(pkg.dir, async (origin) => {
      const home = newHome(work, "home");
      const otherCache = newHome(work, "other-cache");
      const rootfs = newHome(work, "root");
      const file = `${home}/.cache/sbox/${pkg.fileName}`;
      // The script removes the file once its main isolate has loaded it.
      const args = [origin, rootfs, busyboxImage(), otherCache, file];
      const result = await denoRun(origin, PACKAGE_USER, args, { HOME: home }, {
        extra: ["--allow-env=XDG_CACHE_HOME", `--allow-read=${PACKAGE_USER}`, `--allow-write=${file}`],
      });
      assert.equal(result.code, 0, result.stderr);
      const [main, worker, mapped] = result.stdout.trimEnd().split("\n");
      assert.equal(main, "0 main");
      assert.equal(worker, "0 worker");
      // One library in the process, the removed file; nothing written again, here or there.
      assert.equal(mapped, `${file} (deleted)`);
      assert.deepEqual([...Deno.readDirSync(`${home}/.cache/sbox`)], []);
      assert.deepEqual([...Deno.readDirSync(otherCache)], []);
    });
  } finally {
    Deno.removeSync(work, { recursive: true });
  }
});

Deno.test("distribution: a library script run with --allow-ffi=PATH is told that sbox needs --allow-ffi without paths", async () => {
  const pkg = await embeddedPackage();
  const work = scratchDir("dist-scoped-");
  try {
    await serving(pkg.dir, async (origin) => {
      const home = newHome(work, "home");
      const rootfs = newHome(work, "root");
      // The list holds everything of the test's: the cache, the rootfs, the module cache.
      const result = await denoRun(origin, PACKAGE_USER, [origin, rootfs, busyboxImage(), home], {
        HOME: home,
      }, {
        ffi: `--allow-ffi=${work}`,
        extra: [`--allow-read=${PACKAGE_USER}`],
      });
      assert.notEqual(result.code, 0, result.stdout);
      assert.match(
        result.stderr,
        /sbox needs --allow-ffi without a list of paths, and nothing else: run with `deno run --allow-ffi`/,
      );
      // Not what a copy without the library would be told: this one has it.
      assert.doesNotMatch(result.stderr, /does not deliver|tools\/setup/);
      assert.throws(() => Deno.statSync(`${home}/.cache`), Deno.errors.NotFound);
    });
  } finally {
    Deno.removeSync(work, { recursive: true });
  }
});

/**
 * Runs `argv` on a terminal (util-linux's script) with only `env`,
 * answering "y" to Deno's permission prompt until it says granted: Deno
 * drops what was typed before it reads an answer, so one "y" may be lost.
 * Returns what the terminal showed, without carriage returns.
 */
async function answeringYes(argv: string[], env: Record<string, string>): Promise<string> {
  const child = new Deno.Command("script", {
    args: ["-qec", argv.map(shellQuote).join(" "), "/dev/null"],
    clearEnv: true,
    env,
    stdin: "piped",
    stdout: "piped",
    stderr: "null",
    signal: AbortSignal.timeout(COMMAND_TIMEOUT_MS),
  }).spawn();
  const writer = child.stdin.getWriter();
  let shown = "";
  let answering: ReturnType<typeof setInterval> | undefined;
  try {
    const decoder = new TextDecoder();
    for await (const chunk of child.stdout) {
      shown += decoder.decode(chunk, { stream: true });
      if (answering === undefined && shown.includes("Allow?")) {
        answering = setInterval(() => writer.write(new TextEncoder().encode("y\r")).catch(() => {}), 200);
      }
      if (shown.includes("Granted")) clearInterval(answering);
    }
  } finally {
    clearInterval(answering);
    await writer.close().catch(() => {});
    await child.status;
  }
  return shown.replaceAll("\r", "");
}

const LATE_TEST = "distribution: --allow-ffi granted at a prompt after the import is told it came too late";
Deno.test(LATE_TEST, async () => {
  if (skipWithout("/usr/bin/script", LATE_TEST, "util-linux's script")) return;
  const pkg = await embeddedPackage();
  const work = scratchDir("dist-late-");
  try {
    await serving(pkg.dir, async (origin) => {
      const home = newHome(work, "home");
      const rootfs = newHome(work, "root");
      const script = decodeURIComponent(new URL("./programs/late_ffi.ts", import.meta.url).pathname);
      const shown = await answeringYes(
        [
          Deno.execPath(),
          "run",
          "--quiet",
          "--no-config",
          `--allow-import=${new URL(origin).host}`,
          script,
          origin,
          rootfs,
          busyboxImage(),
        ],
        { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", NO_COLOR: "1", HOME: home, DENO_DIR: `${home}/.deno` },
      );
      assert.match(shown, /^ffi granted$/m, shown);
      // Not "does not deliver libsbox.so": this copy does.
      assert.match(
        shown,
        new RegExp(
          "^error: cannot open the sbox helper library: --allow-ffi was granted only after sbox was imported, " +
            "too late to set up the copy of the library that a package of sbox carries: give --allow-ffi when " +
            "Deno starts$",
          "m",
        ),
        shown,
      );
    });
  } finally {
    Deno.removeSync(work, { recursive: true });
  }
});

/** `names` with the mtime of `days` ago. */
function age(dir: string, days: number, ...names: string[]): void {
  const then = new Date(Date.now() - days * 86400_000);
  for (const name of names) Deno.utimeSync(`${dir}/${name}`, then, then);
}

Deno.test("distribution: cache files of other versions unused for 30 days are removed, when sbox writes or first uses its own in a day", async () => {
  const pkg = await embeddedPackage();
  const work = scratchDir("dist-stale-");
  try {
    await serving(pkg.dir, async (origin) => {
      const home = newHome(work, "home");
      const cache = `${home}/.cache/sbox`;
      Deno.mkdirSync(cache, { recursive: true, mode: 0o700 });
      const old = "libsbox-0123456789abcdef.so";
      const temporary = ".libsbox-0123456789abcdef.so.0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9";
      const recent = "libsbox-fedcba9876543210.so";
      const groupWritable = "libsbox-1111111111111111.so";
      const directory = "libsbox-2222222222222222.so";
      const notOurs = "libsbox.so";
      const stale = () => {
        for (const name of [old, temporary, recent, notOurs]) {
          Deno.writeFileSync(`${cache}/${name}`, pkg.library);
        }
        Deno.chmodSync(`${cache}/${old}`, 0o500);
        Deno.writeFileSync(`${cache}/${groupWritable}`, pkg.library, { mode: 0o520 });
        Deno.chmodSync(`${cache}/${groupWritable}`, 0o520);
        Deno.mkdirSync(`${cache}/${directory}`, { recursive: true });
        age(cache, 40, old, temporary, groupWritable, directory, notOurs);
        age(cache, 10, recent);
      };
      // The files kept: used within 30 days, or not as sbox writes them.
      const kept = [directory, groupWritable, notOurs, recent].sort();
      const listing = () => [...Deno.readDirSync(cache)].map((e) => e.name).sort();

      // Written: a new version's first run.
      stale();
      const first = await sboxRun(origin, ["/bin/echo", "first"], { HOME: home });
      assert.equal(first.stdout, "first\n", first.stderr);
      assert.deepEqual(listing(), [...kept, pkg.fileName].sort());

      // Its own file used within the day: nothing looked at.
      stale();
      const second = await sboxRun(origin, ["/bin/echo", "second"], { HOME: home });
      assert.equal(second.stdout, "second\n", second.stderr);
      assert.deepEqual(listing(), [...kept, old, pkg.fileName, temporary].sort());

      // Its own file last used two days ago: its mtime is set to now, and the others looked at.
      const ino = Deno.statSync(`${cache}/${pkg.fileName}`).ino;
      age(cache, 2, pkg.fileName);
      const third = await sboxRun(origin, ["/bin/echo", "third"], { HOME: home });
      assert.equal(third.stdout, "third\n", third.stderr);
      assert.deepEqual(listing(), [...kept, pkg.fileName].sort());
      const own = Deno.statSync(`${cache}/${pkg.fileName}`);
      assert.equal(own.ino, ino);
      assert.ok(Date.now() - own.mtime!.getTime() < 3600_000, `mtime ${own.mtime}`);
    });
  } finally {
    Deno.removeSync(work, { recursive: true });
  }
});

/**
 * Runs the copy at `origin` with the cache directory `cache`, holding the
 * right library under the right name, made unsafe by `spoil`: sbox must
 * fail, and leave the directory as it was.
 */
async function refusedCache(
  origin: string,
  pkg: Package,
  env: { HOME: string; XDG_CACHE_HOME?: string },
  cache: string,
  spoil: () => void,
): Promise<Result> {
  Deno.mkdirSync(cache, { recursive: true, mode: 0o700 });
  // The right library under the right name: loading it would make the run succeed.
  Deno.writeFileSync(`${cache}/${pkg.fileName}`, pkg.library, { mode: 0o500 });
  const before = Deno.statSync(`${cache}/${pkg.fileName}`).ino;
  spoil();
  const result = await sboxRun(origin, ["/bin/echo", "loaded"], env);
  assert.equal(result.code, 125, result.stderr);
  assert.equal(result.stdout, "");
  // Nothing written, nothing replaced.
  assert.deepEqual([...Deno.readDirSync(cache)].map((e) => e.name), [pkg.fileName]);
  assert.equal(Deno.lstatSync(`${cache}/${pkg.fileName}`).ino, before);
  return result;
}

/** The `sbox:` lines of a run's stderr. */
function sboxLines(result: Result): string[] {
  return result.stderr.trimEnd().split("\n").filter((line) => line.startsWith("sbox:"));
}

/** `text` as a regular expression that matches it literally. */
function literally(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

Deno.test("distribution: a cache directory that group or others may write to, or a link, or one below such a directory, is refused", async () => {
  const pkg = await embeddedPackage();
  const work = scratchDir("dist-refused-");
  try {
    await serving(pkg.dir, async (origin) => {
      const home = newHome(work, "open");
      const open = `${home}/.cache/sbox`;
      const writable = await refusedCache(
        origin,
        pkg,
        { HOME: home },
        open,
        () => Deno.chmodSync(open, 0o777),
      );
      assert.deepEqual(sboxLines(writable), [
        `sbox: cannot open the sbox helper library: the cache directory ${open} is writable by its group or ` +
        "others (mode 0777): sbox loads its helper library from there, so it must be private (remove it, or " +
        "set XDG_CACHE_HOME to a directory of your own)",
      ]);

      // By XDG_CACHE_HOME, group-writable only.
      const xdgHome = newHome(work, "xdg");
      const group = `${work}/xdg-cache/sbox`;
      const env = { HOME: xdgHome, XDG_CACHE_HOME: `${work}/xdg-cache` };
      const byGroup = await refusedCache(origin, pkg, env, group, () => Deno.chmodSync(group, 0o770));
      assert.match(
        sboxLines(byGroup)[0],
        new RegExp(
          `the cache directory ${literally(group)} is writable by its group or others \\(mode 0770\\)`,
        ),
      );

      // A symbolic link in its place is not followed, though it leads to a private directory.
      const linkHome = newHome(work, "link");
      const target = `${work}/link-target`;
      const linked = await refusedCache(origin, pkg, { HOME: linkHome }, target, () => {
        Deno.mkdirSync(`${linkHome}/.cache`);
        Deno.symlinkSync(target, `${linkHome}/.cache/sbox`);
      });
      assert.match(
        sboxLines(linked)[0],
        new RegExp(`the cache directory ${literally(`${linkHome}/.cache/sbox`)} is a symbolic link: `),
      );

      // Private itself, but in a directory others may write to (no sticky
      // bit): they could rename it away and put theirs in its place between
      // the check and dlopen's walk of the path.
      const openParent = `${work}/open-parent`;
      const inOpen = `${openParent}/cache/sbox`;
      const parentEnv = { HOME: newHome(work, "parent"), XDG_CACHE_HOME: `${openParent}/cache` };
      const underOpen = await refusedCache(origin, pkg, parentEnv, inOpen, () => {
        Deno.chmodSync(`${openParent}/cache`, 0o700);
        Deno.chmodSync(openParent, 0o777);
      });
      assert.match(
        sboxLines(underOpen)[0],
        new RegExp(
          `the cache directory ${literally(inOpen)} lies in ${literally(openParent)}, which is writable by ` +
            "its group or others \\(mode 0777\\): another user could replace",
        ),
      );
    });
  } finally {
    Deno.removeSync(work, { recursive: true });
  }
});

const OTHER_OWNER_TEST = "distribution: a cache directory of another user is refused";
Deno.test(OTHER_OWNER_TEST, {
  ignore: skipUnlessRoot(OTHER_OWNER_TEST, "only root can give a directory away"),
}, async () => {
  const pkg = await embeddedPackage();
  const work = scratchDir("dist-owner-");
  try {
    await serving(pkg.dir, async (origin) => {
      const home = newHome(work, "home");
      const other = `${home}/.cache/sbox`;
      const owned = await refusedCache(origin, pkg, { HOME: home }, other, () => {
        // Private to its owner, nobody: no mode bit is wrong, the owner is.
        Deno.chownSync(other, 65534, 65534);
      });
      assert.match(
        sboxLines(owned)[0],
        new RegExp(
          `the cache directory ${literally(other)} belongs to uid 65534, not to this user \\(uid 0\\)`,
        ),
      );

      // A HOME of another user's (root run with `sudo -E`): refused before
      // sbox makes anything there, so that user's home stays as it was.
      const theirs = newHome(work, "theirs");
      Deno.chmodSync(theirs, 0o755);
      Deno.chownSync(theirs, 65534, 65534);
      const refused = await sboxRun(origin, ["/bin/echo", "loaded"], { HOME: theirs });
      assert.equal(refused.code, 125, refused.stderr);
      assert.match(
        sboxLines(refused)[0],
        new RegExp(
          `the cache directory ${literally(`${theirs}/.cache/sbox`)} lies in ${literally(theirs)}, ` +
            "which belongs to uid 65534",
        ),
      );
      assert.deepEqual(
        [...Deno.readDirSync(theirs)].map((e) => e.name),
        [".deno"],
        "sbox made something there",
      );
    });
  } finally {
    Deno.removeSync(work, { recursive: true });
  }
});

const NOEXEC_TEST =
  "distribution: a cache on a noexec file system: the error says why the copy does not load";
Deno.test(NOEXEC_TEST, { ignore: skipUnlessRoot(NOEXEC_TEST, "mounts a tmpfs") }, async () => {
  const pkg = await embeddedPackage();
  const work = scratchDir("dist-noexec-");
  try {
    await serving(pkg.dir, async (origin) => {
      const home = newHome(work, "home");
      const cache = newHome(work, "noexec");
      // In a mount namespace of its own, so that the mount goes with it.
      const prefix = [
        ...OWN_MOUNT_NAMESPACE,
        "sh",
        "-c",
        `mount -t tmpfs -o noexec,mode=0700 sbox-noexec ${cache} && exec "$@"`,
        "sh",
      ];
      const args = ["run", "--rootfs", busyboxImage(), "--", "/bin/echo", "loaded"];
      const result = await denoRun(origin, `${origin}/sbox.ts`, args, { HOME: home, XDG_CACHE_HOME: cache }, {
        prefix,
      });
      assert.equal(result.code, 125, result.stderr);
      const file = `${cache}/sbox/${pkg.fileName}`;
      assert.match(
        sboxLines(result)[0],
        new RegExp(
          `^sbox: cannot open the sbox helper library: its embedded copy, written to ${
            literally(file)
          }, does ` +
            `not load \\(a file system mounted noexec\\? .*\\(${literally(file)}: .*\\)$`,
        ),
      );
    });
  } finally {
    Deno.removeSync(work, { recursive: true });
  }
});

Deno.test("distribution: a copy published without the embedded helper says it does not deliver the library", async () => {
  // The placeholder as committed: what a plain `deno publish` would upload.
  const dir = copyPublished("dist-placeholder-");
  try {
    await serving(dir, async (origin) => {
      const home = newHome(dir, "home");
      const result = await sboxRun(origin, ["/bin/echo", "loaded"], { HOME: home });
      assert.equal(result.code, 125, result.stderr);
      assert.match(
        result.stderr,
        new RegExp(
          `^sbox: cannot open the sbox helper library: this copy of sbox was loaded from ${
            literally(origin)
          }/, which ` +
            `does not deliver libsbox\\.so \\(its src/embedded_library\\.ts holds none for ${ARCH}`,
          "m",
        ),
      );
      // Nothing was written for it.
      assert.throws(() => Deno.statSync(`${home}/.cache`), Deno.errors.NotFound);
    });
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("distribution: tools/embed-helper.ts --placeholder writes the committed src/embedded_library.ts", async () => {
  // `deno task publish` puts the placeholder back this way: the tree must be clean after it.
  const dir = scratchDir("dist-tool-");
  try {
    Deno.mkdirSync(`${dir}/src`);
    const tool = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-read",
        "--allow-write",
        `${ROOT}tools/embed-helper.ts`,
        "--root",
        dir,
        "--placeholder",
      ],
      stderr: "piped",
    }).output();
    assert.ok(tool.success, text(tool.stderr));
    assert.equal(
      Deno.readTextFileSync(`${dir}/src/embedded_library.ts`),
      Deno.readTextFileSync(`${ROOT}src/embedded_library.ts`),
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
