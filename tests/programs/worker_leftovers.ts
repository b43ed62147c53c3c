/**
 * What a terminated Worker leaves in the process, after a baseline taken
 * once Workers that never used sbox ended (Deno keeps a few fds of its own
 * after the first Workers). ROUND is
 *
 * - "running": the Worker's container has a running init and a running
 *   exec()'d process when the main thread terminates the Worker;
 * - "destroyed": the Worker destroyed its container before it was
 *   terminated.
 *
 * Waits (up to 5 s) until the Worker's processes are gone and this process
 * has no child and the baseline's fds, then prints what it found as JSON:
 * {baseline, after, processes} (fds as what they are open on, without their
 * numbers), for tests/leak_test.ts, which runs it in a process of its own.
 *
 *   deno run --allow-all tests/programs/worker_leftovers.ts ROUND
 */

// deno-lint-ignore no-explicit-any
const scope = globalThis as any;
const inWorker = typeof scope.WorkerGlobalScope !== "undefined" && scope instanceof scope.WorkerGlobalScope;

type Round = "plain" | "running" | "destroyed";

if (inWorker) {
  scope.onmessage = async (event: MessageEvent<{ round: Round; rootfs: string }>) => {
    const { round, rootfs } = event.data;
    if (round === "plain") return scope.postMessage([]);
    const { BaseMounts, Container, OverlayMount } = await import("../../mod.ts");
    const { busyboxImage, identityMapper } = await import("../fixtures.ts");
    const container = await Container.create({
      rootfs,
      userMapper: identityMapper(),
      mounts: [new OverlayMount([busyboxImage()]), new BaseMounts()],
    });
    const init = await container.start({ command: ["/bin/sleep", "100"], stdout: "piped" });
    const exec = await container.exec(init, { command: ["/bin/sleep", "101"], stdout: "piped" });
    if (round === "destroyed") await container.destroy();
    scope.postMessage([init.pid, exec.pid]);
  };
} else {
  const { scratchDir, snapshot } = await import("../fixtures.ts");
  const rootfs = scratchDir("worker-leftovers-");
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
  /** A process's state letter, or "gone". */
  const state = (pid: number) => {
    try {
      return /^State:\s+(\S)/m.exec(Deno.readTextFileSync(`/proc/${pid}/status`))![1];
    } catch {
      return "gone";
    }
  };
  /** What the fds are open on, without their numbers: the Workers' own
   * runtimes (an epoll fd and an eventfd each) take other numbers each time. */
  const openFiles = (fds: string[]) => fds.map((fd) => fd.replace(/^\d+->/, "")).sort();
  const runWorker = async (round: Round): Promise<number[]> => {
    const worker = new Worker(import.meta.url, { type: "module" });
    const done = Promise.withResolvers<number[]>();
    worker.onmessage = (event) => done.resolve(event.data);
    worker.onerror = (event) => done.reject(new Error(event.message));
    worker.postMessage({ round, rootfs });
    const pids = await done.promise;
    worker.terminate();
    return pids;
  };

  for (let i = 0; i < 3; i++) {
    await runWorker("plain");
    await sleep(200);
  }
  const baseline = snapshot();
  const pids = await runWorker(Deno.args[0] === "destroyed" ? "destroyed" : "running");
  let after = snapshot();
  let processes = pids.map(state);
  const settled = () =>
    processes.every((s) => s === "gone") && after.children.length === 0 &&
    JSON.stringify(openFiles(after.fds)) === JSON.stringify(openFiles(baseline.fds));
  for (let i = 0; i < 50 && !settled(); i++) {
    await sleep(100);
    after = snapshot();
    processes = pids.map(state);
  }
  console.log(JSON.stringify({
    baseline: { ...baseline, fds: openFiles(baseline.fds) },
    after: { ...after, fds: openFiles(after.fds) },
    processes,
  }));
  // Without the fix the Worker's init may still hold the rootfs: best effort.
  try {
    Deno.removeSync(rootfs, { recursive: true });
  } catch { /* reported above */ }
}
