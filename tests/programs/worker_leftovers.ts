/**
 * What a terminated Worker leaves in the process, after a baseline taken
 * once Workers that never used sbox ended (Deno keeps a few fds of its own
 * after the first Workers). ROUND is
 *
 * - "running": the Worker's container has a running init and a running
 *   exec()'d process when the main thread terminates the Worker;
 * - "destroyed": the Worker destroyed its container before it was
 *   terminated;
 * - "exec-loop": four Workers, each terminated at a random moment while it
 *   runs exec() after exec() into its container, so mostly inside an exec()
 *   launch, before the exec'd process's pid has reached TypeScript (the
 *   janitor finds it in its fork slot, helper/janitor.zig);
 * - "many": the Worker has 300 containers running, ~1200 fds and pidfds
 *   (the janitor's table once held 1024, and silently missed the rest).
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

type Round = "plain" | "running" | "destroyed" | "exec-loop" | "many";

if (inWorker) {
  scope.onmessage = async (event: MessageEvent<{ round: Round; rootfs: string }>) => {
    const { round, rootfs } = event.data;
    if (round === "plain") return scope.postMessage([]);
    const { BaseMounts, Container, OverlayMount } = await import("../../mod.ts");
    const { busyboxImage, identityMapper } = await import("../fixtures.ts");
    if (round === "many") {
      const pids: number[] = [];
      for (let i = 0; i < 300; i++) {
        const each = await Container.create({
          rootfs,
          userMapper: identityMapper(),
          mounts: [new OverlayMount([busyboxImage()]), new BaseMounts()],
        });
        const init = await each.start({ command: ["/bin/sleep", "100"], stdout: "piped", stderr: "piped" });
        pids.push(init.pid);
      }
      return scope.postMessage(pids);
    }
    const container = await Container.create({
      rootfs,
      userMapper: identityMapper(),
      mounts: [new OverlayMount([busyboxImage()]), new BaseMounts()],
    });
    const init = await container.start({ command: ["/bin/sleep", "100"], stdout: "piped" });
    if (round === "exec-loop") {
      scope.postMessage([init.pid]);
      for (;;) await (await container.exec(init, { command: ["/bin/true"] })).status;
    }
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
  /** The exec-loop Workers' own root directories, removed at the end. */
  const rootfses = [rootfs];
  const runWorker = async (round: Round): Promise<number[]> => {
    const worker = new Worker(import.meta.url, { type: "module" });
    const done = Promise.withResolvers<number[]>();
    worker.onmessage = (event) => done.resolve(event.data);
    worker.onerror = (event) => done.reject(new Error(event.message));
    const workerRootfs = round === "exec-loop" ? scratchDir("worker-exec-") : rootfs;
    if (workerRootfs !== rootfs) rootfses.push(workerRootfs);
    worker.postMessage({ round, rootfs: workerRootfs });
    const pids = await done.promise;
    if (round === "exec-loop") await sleep(20 + Math.random() * 100);
    worker.terminate();
    return pids;
  };

  for (let i = 0; i < 3; i++) {
    await runWorker("plain");
    await sleep(200);
  }
  const baseline = snapshot();
  const round =
    (["destroyed", "exec-loop", "many"].includes(Deno.args[0]) ? Deno.args[0] : "running") as Round;
  const pids: number[] = [];
  for (let i = 0; i < (round === "exec-loop" ? 4 : 1); i++) pids.push(...await runWorker(round));
  let after = snapshot();
  let processes = pids.map(state);
  const sameFds = () => JSON.stringify(openFiles(after.fds)) === JSON.stringify(openFiles(baseline.fds));
  const settled = () => processes.every((s) => s === "gone") && after.children.length === 0 && sameFds();
  for (let i = 0; i < 80 && !settled(); i++) {
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
  for (const dir of rootfses) {
    try {
      Deno.removeSync(dir, { recursive: true });
    } catch { /* reported above */ }
  }
}
