/**
 * A worker pool's churn: Workers, three at a time, start containers and are
 * terminated at random moments, for SECONDS, while a long-lived Worker runs
 * containers one after another beside them, each with an id mapper that
 * takes HOLD_MS. Its container's child waits that long for its maps, and
 * until then holds a copy of the whole fd table (clone3 without
 * CLONE_FILES): the janitor's pidfds of the churn Workers' threads among
 * them (helper/janitor.zig). A mapper as slow as newuidmap under load; it
 * only widens a window every launch has.
 *
 * The janitor used to close a dead Worker's thread pidfd without taking it
 * out of its epoll set first. While a copy held it open, the registration
 * stayed, and reported the dead Worker's slot again and again, so the
 * Worker given that slot next was taken for ended while it ran: its
 * containers were no longer recorded (zombies and fds of them left once it
 * was terminated), or were killed and their fds closed under it, which
 * closed Deno's own fds taking those numbers since (tokio's panic "failed
 * to wake I/O driver": the whole process died).
 *
 * Waits (about 5 s at most) until this process has no child and the
 * baseline's fds, then prints JSON {baseline, after, steady: {ok, bad},
 * churned, rootfsMounts} (fds as what they are open on, without their
 * numbers or Deno's own epoll fds and eventfds; rootfsMounts: lines of this
 * process's mountinfo under the containers' rootfs), for
 * tests/leak_test.ts, which runs it in a process of its own.
 *
 *   deno run --allow-all tests/programs/worker_churn.ts SECONDS HOLD_MS
 */

// deno-lint-ignore no-explicit-any
const scope = globalThis as any;
const inWorker = typeof scope.WorkerGlobalScope !== "undefined" && scope instanceof scope.WorkerGlobalScope;

type Role = "plain" | "steady" | "churn";
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

if (inWorker) {
  let stopping = false;
  scope.onmessage = async (event: MessageEvent<{ role: Role; rootfs: string; holdMs: number } | "stop">) => {
    if (event.data === "stop") {
      stopping = true;
      return;
    }
    const { role, rootfs, holdMs } = event.data;
    if (role === "plain") return scope.postMessage("done");
    const { BaseMounts, Container, OverlayMount } = await import("../../mod.ts");
    const { busyboxImage, identityMapper, text } = await import("../fixtures.ts");
    const env = { PATH: "/bin" };
    const identity = identityMapper();
    const userMapper = role === "churn" ? identity : {
      uidMap: identity.uidMap,
      gidMap: identity.gidMap,
      setgroupsAllowed: identity.setgroupsAllowed,
      map: async (pid: number) => {
        await sleep(holdMs);
        await identity.map(pid);
      },
    };
    const create = () =>
      Container.create({
        rootfs,
        userMapper,
        mounts: [new OverlayMount([busyboxImage()]), new BaseMounts()],
      });
    if (role === "churn") {
      // Until terminated: an init each (every other with a reaper) and an
      // exec() into it, so that a termination finds pidfds, pipes, a held
      // mount namespace and perhaps a launch under way.
      for (let i = 0;; i++) {
        const container = await create();
        const init = await container.start({
          command: ["/bin/sleep", "100"],
          env,
          stdout: "piped",
          reaper: i % 2 === 0,
        });
        await (await container.exec(init, { command: ["/bin/echo", "ex"], env, stdout: "piped" })).output();
        if (i % 3 === 2) await container.destroy();
      }
    }
    let ok = 0;
    const bad: string[] = [];
    while (!stopping) {
      const container = await create();
      try {
        const output = await (await container.start({ command: ["/bin/echo", "ok"], env, stdout: "piped" }))
          .output();
        if (output.code === 0 && text(output.stdout) === "ok\n") ok++;
        else {bad.push(
            `code ${output.code} signal ${output.signal} stdout ${JSON.stringify(text(output.stdout))}`,
          );}
      } catch (err) {
        bad.push(String(err));
      } finally {
        await container.destroy();
      }
    }
    scope.postMessage({ ok, bad: bad.slice(0, 5) });
  };
} else {
  const { scratchDir, snapshot } = await import("../fixtures.ts");
  const seconds = Number(Deno.args[0] ?? 10);
  const holdMs = Number(Deno.args[1] ?? 100);
  const rootfs = scratchDir("worker-churn-");
  const url = import.meta.url;
  /**
   * What the fds are open on, without their numbers, and without Deno's own
   * epoll fds and eventfds: Deno keeps those of a Worker that ended, or not,
   * depending on how it ended and on what ran since. An sbox reactor's are
   * kept: its epoll set has its eventfd registered with the fd's number as
   * data (src/reactor.ts), which Deno's (tokio's tokens) never has.
   */
  const openFiles = (fds: string[]) => {
    const sbox = new Set<string>();
    for (const fd of fds) {
      const [number, target] = fd.split("->");
      if (target !== "anon_inode:[eventpoll]") continue;
      let info = "";
      try {
        info = Deno.readTextFileSync(`/proc/self/fdinfo/${number}`);
      } catch { /* closed since */ }
      const watched = [...info.matchAll(/^tfd:\s*(\d+) events:\s*\S+ data:\s*([0-9a-f]+)/gm)];
      if (!watched.some(([, tfd, data]) => Number(tfd) === parseInt(data, 16))) continue;
      sbox.add(number);
      for (const [, tfd] of watched) sbox.add(tfd);
    }
    const denos = (fd: string) =>
      /->anon_inode:\[(eventpoll|eventfd)\]$/.test(fd) && !sbox.has(fd.split("->")[0]);
    return fds.filter((fd) => !denos(fd)).map((fd) => fd.replace(/^\d+->/, "")).sort();
  };

  /** Runs a Worker that never uses sbox. */
  const plainWorker = async () => {
    const worker = new Worker(url, { type: "module" });
    const done = Promise.withResolvers<void>();
    worker.onmessage = () => done.resolve();
    worker.postMessage({ role: "plain" });
    await done.promise;
    worker.terminate();
    await sleep(200);
  };
  for (let i = 0; i < 3; i++) await plainWorker();
  const baseline = snapshot();
  const baselineFiles = openFiles(baseline.fds);

  const steady = new Worker(url, { type: "module" });
  const steadyResult = Promise.withResolvers<{ ok: number; bad: string[] }>();
  steady.onmessage = (event) => steadyResult.resolve(event.data);
  steady.onerror = (event) => {
    event.preventDefault();
    steadyResult.reject(new Error(`the long-lived Worker: ${event.message}`));
  };
  steady.postMessage({ role: "steady", rootfs, holdMs });

  let churned = 0;
  const end = performance.now() + seconds * 1000;
  while (performance.now() < end) {
    const batch = [0, 1, 2].map(() => new Worker(url, { type: "module" }));
    for (const worker of batch) {
      // A churn Worker's error (its container's setup cut short) is expected.
      worker.onerror = (event) => event.preventDefault();
      worker.postMessage({ role: "churn", rootfs });
    }
    await sleep(30 + Math.random() * 200);
    for (const worker of batch) worker.terminate();
    churned += batch.length;
  }
  steady.postMessage("stop");
  const steadyDone = await steadyResult.promise;
  steady.terminate();

  // The janitor closes a Worker's fds 200 ms after its end at the
  // earliest, once its children are reaped.
  let after = snapshot();
  let afterFiles = openFiles(after.fds);
  const sameFds = () => JSON.stringify(afterFiles) === JSON.stringify(baselineFiles);
  for (let i = 0; i < 50 && (after.children.length > 0 || !sameFds()); i++) {
    await sleep(100);
    after = snapshot();
    afterFiles = openFiles(after.fds);
  }
  const mountinfo = Deno.readTextFileSync("/proc/self/mountinfo").split("\n");
  console.log(JSON.stringify({
    baseline: { ...baseline, fds: baselineFiles },
    after: { ...after, fds: afterFiles },
    steady: steadyDone,
    churned,
    rootfsMounts: mountinfo.filter((line) => line.includes(rootfs)).length,
  }));
  // A leaked mount namespace would still hold the rootfs: best effort.
  try {
    Deno.removeSync(rootfs, { recursive: true });
  } catch { /* reported above */ }
}
