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
  skipUnlessRoot,
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
 * `prefix` (a command that runs the rest) if given.
 */
function denoRun(
  origin: string,
  script: string,
  args: string[],
  env: { HOME: string; XDG_CACHE_HOME?: string },
  options: { extra?: string[]; prefix?: readonly string[] } = {},
): Promise<Result> {
  const argv = [
    ...options.prefix ?? [],
    Deno.execPath(),
    "run",
    "--quiet",
    // Neither the checkout's deno.json nor a lock file next to it: scratch
    // directories lie inside the checkout.
    "--no-config",
    "--allow-ffi",
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

Deno.test("distribution: a library script importing mod.ts over http: runs containers, a Worker's too, from one file", async () => {
  const pkg = await embeddedPackage();
  const work = scratchDir("dist-lib-");
  try {
    await serving(pkg.dir, async (origin) => {
      const home = newHome(work, "home");
      const otherCache = newHome(work, "other-cache");
      const rootfs = newHome(work, "root");
      const script = decodeURIComponent(new URL("./programs/package_user.ts", import.meta.url).pathname);
      const args = [origin, rootfs, busyboxImage(), otherCache];
      const result = await denoRun(origin, script, args, { HOME: home }, {
        extra: [
          "--allow-env=XDG_CACHE_HOME",
          // For the Worker's module, a local file; sbox itself reads nothing through Deno.
          `--allow-read=${script}`,
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
