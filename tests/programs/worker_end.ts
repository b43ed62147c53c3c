/**
 * A Worker starts a container and waits for it; the main thread terminates
 * the Worker while that wait (a nonblocking FFI call on a pool thread) is
 * still pending. Deno unloads the libraries a Worker opened: a wait running
 * in the helper library would return into unmapped code and crash Deno
 * (SIGSEGV). Prints "survived" and exits 0 otherwise.
 *
 *   deno run --allow-all tests/programs/worker_end.ts [MARKER]
 */

// deno-lint-ignore no-explicit-any
const scope = globalThis as any;
const inWorker = typeof scope.WorkerGlobalScope !== "undefined" && scope instanceof scope.WorkerGlobalScope;

if (inWorker) {
  scope.onmessage = async (event: MessageEvent<{ marker: string; rootfs: string }>) => {
    const { marker, rootfs } = event.data;
    const { BaseMounts, Container, OverlayMount } = await import("../../mod.ts");
    const { busyboxImage, identityMapper } = await import("../fixtures.ts");
    const container = await Container.create({
      rootfs,
      userMapper: identityMapper(),
      mounts: [new OverlayMount([busyboxImage()]), new BaseMounts()],
    });
    const init = await container.start({ command: ["/bin/sh", "-c", `sleep 5; : ${marker}`] });
    scope.postMessage("started");
    await init.status;
  };
} else {
  const { scratchDir } = await import("../fixtures.ts");
  const rootfs = scratchDir("worker-end-");
  const worker = new Worker(import.meta.url, { type: "module" });
  const started = Promise.withResolvers<void>();
  worker.onmessage = () => started.resolve();
  // The container's command carries the marker, so that the test can look for it.
  worker.postMessage({ marker: Deno.args[0] ?? "worker-end-marker", rootfs });
  await started.promise;
  // The Worker is now inside its container's wait.
  await new Promise((r) => setTimeout(r, 200));
  worker.terminate();
  // Whatever the pool thread does next happens within this time.
  await new Promise((r) => setTimeout(r, 1000));
  Deno.removeSync(rootfs, { recursive: true });
  console.log("survived");
}
