/**
 * A user of the sbox package served at ORIGIN (tests/distribution_test.ts):
 * imports ORIGIN/mod.ts, runs `/bin/echo main` in a container, then sets
 * XDG_CACHE_HOME to OTHER_CACHE and runs `/bin/echo worker` in a Worker's
 * container. Prints each container's exit code and output, then the paths
 * of every libsbox*.so this process has mapped, on one line. With REMOVE,
 * removes that file (the cache file the main isolate loaded) before the
 * Worker starts.
 *
 *   deno run --allow-ffi --allow-import=HOST --allow-env=XDG_CACHE_HOME [--allow-write=REMOVE] \
 *     tests/programs/package_user.ts ORIGIN ROOTFS IMAGE OTHER_CACHE [REMOVE]
 *
 * The Worker must load the file the main isolate loaded: the helper library
 * has process-wide state (helper/janitor.zig).
 */

import type * as Sbox from "../../mod.ts";

// deno-lint-ignore no-explicit-any
const scope = globalThis as any;
const inWorker = typeof scope.WorkerGlobalScope !== "undefined" && scope instanceof scope.WorkerGlobalScope;

async function echo(origin: string, word: string, rootfs: string, image: string): Promise<string> {
  const { BaseMounts, Container, OverlayMount, ProcUserMapper }: typeof Sbox = await import(
    `${origin}/mod.ts`
  );
  await using container = await Container.create({
    rootfs,
    userMapper: ProcUserMapper.newRoot(),
    mounts: [new OverlayMount([image]), new BaseMounts()],
  });
  const init = await container.start({ command: ["/bin/echo", word], stdout: "piped" });
  const { code, stdout } = await init.output();
  return `${code} ${new TextDecoder().decode(stdout).trim()}`;
}

/** /proc/self/maps, read through libc: Deno's own read of it needs --allow-all. */
function maps(): string {
  const libc = Deno.dlopen(
    "libc.so.6",
    {
      open: { parameters: ["buffer", "i32"], result: "i32" },
      read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
      close: { parameters: ["i32"], result: "i32" },
    } as const,
  ).symbols;
  const fd = libc.open(new TextEncoder().encode("/proc/self/maps\0"), 0);
  const buf = new Uint8Array(1 << 20);
  let length = 0;
  for (let n; (n = Number(libc.read(fd, buf.subarray(length), BigInt(buf.length - length)))) > 0;) {
    length += n;
  }
  libc.close(fd);
  return new TextDecoder().decode(buf.subarray(0, length));
}

if (inWorker) {
  scope.onmessage = async (event: MessageEvent<string[]>) => {
    const [origin, rootfs, image] = event.data;
    scope.postMessage(await echo(origin, "worker", rootfs, image));
  };
} else {
  const [origin, rootfs, image, otherCache, remove] = Deno.args;
  console.log(await echo(origin, "main", rootfs, image));
  Deno.env.set("XDG_CACHE_HOME", otherCache);
  if (remove !== undefined) Deno.removeSync(remove);
  const worker = new Worker(import.meta.url, { type: "module" });
  const reply = new Promise((resolve) => worker.onmessage = (event) => resolve(event.data));
  worker.postMessage([origin, rootfs, image]);
  console.log(await reply);
  worker.terminate();
  const mapped = maps().split("\n").filter((line) => line.includes("/libsbox")).map((line) =>
    line.slice(line.indexOf("/"))
  );
  console.log([...new Set(mapped)].join(" "));
}
