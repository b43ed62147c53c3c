/**
 * Nothing leaks: after 100 starts, a fifth of them failing at different
 * steps, the test process holds the same fds, has no children or zombies,
 * no cgroups and no mounts it created; a stdin whose write failed lets its
 * pipe go at once. And many containers at once cost no thread each.
 */

import assert from "node:assert/strict";
import { busyboxContainer, processesWith, scratchDir, snapshot, text, waitDead } from "./fixtures.ts";
import { TOO_MANY_OPEN_FILES_HINT } from "../src/error.ts";
import { RecordReader } from "../src/protocol.ts";
import { reactor } from "../src/reactor.ts";
import { tryKill, waitPid } from "../src/sys.ts";

const ENV = { PATH: "/bin:/usr/bin" };

Deno.test("100 starts, a fifth failing at different steps, leave nothing behind", async () => {
  // In a process of its own, so that nothing else (other tests, Deno's own
  // pipes for their subprocesses) opens or closes fds meanwhile.
  const script = decodeURIComponent(new URL("./programs/churn.ts", import.meta.url).pathname);
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", script],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(output.code, 0, text(output.stderr));
  const { steps, before, after } = JSON.parse(text(output.stdout));
  assert.deepEqual(steps, {
    chdir: 3,
    destroyed: 2, // destroy() while start() is under way
    exec: 8, // ENOENT and EACCES at start (3 each), ENOENT on the exec path (2)
    ok: 80,
    options: 2, // too many mounts for one setup program
    touch: 3, // the mount kind fails creating its target under a file
    user: 2,
  });
  assert.deepEqual(after.fds, before.fds, "the same open fds");
  assert.deepEqual(after.children, [], "no child processes or zombies");
  assert.deepEqual(after.cgroups, before.cgroups, "no cgroups left");
  assert.equal(after.mounts, before.mounts, "no mounts left");
});

Deno.test("a write to a piped stdin that fails (EPIPE) lets the pipe go at once, not at destroy()", async () => {
  await using setup = await busyboxContainer();
  const init = await setup.container.start({ command: ["/bin/sleep", "100"], env: ENV });
  const before = snapshot().fds;
  for (let i = 0; i < 20; i++) {
    // It exits without reading: the write finds no reader.
    const process = await setup.container.exec(init, { command: ["/bin/true"], env: ENV, stdin: "piped" });
    await process.status;
    const err = await process.stdin!.getWriter().write(new Uint8Array(100)).then(() => undefined, (e) => e);
    assert.equal(err?.errno, "EPIPE", `the write: ${err}`);
  }
  assert.deepEqual(snapshot().fds, before, "the same open fds while the container still runs");
});

Deno.test("200 containers at once run on a fixed number of threads", async () => {
  const threads = () => Number(/^Threads:\s+(\d+)$/m.exec(Deno.readTextFileSync("/proc/self/status"))![1]);
  await using warm = await busyboxContainer();
  await (await warm.container.start({ command: ["/bin/true"] })).status;
  const baseline = threads();
  const setups = await Promise.all(Array.from({ length: 200 }, () => busyboxContainer()));
  try {
    const inits = await Promise.all(
      setups.map((s) =>
        s.container.start({ command: ["/bin/sh", "-c", "sleep 1; echo done"], env: ENV, stdout: "piped" })
      ),
    );
    const during = threads();
    const outputs = await Promise.all(inits.map((p) => p.output()));
    assert.ok(outputs.every((o) => o.code === 0 && text(o.stdout) === "done\n"));
    console.log(`threads: ${baseline} before, ${during} with 200 containers running`);
    // A few may come and go on their own under load (V8's helpers, Deno's
    // blocking pool running the teardown's closes): CI once saw 11 to 14.
    // A thread per container would be 200 more.
    assert.ok(during <= baseline + 8, `threads grew from ${baseline} to ${during}`);
  } finally {
    for (const s of setups) await s[Symbol.asyncDispose]();
  }
});

Deno.test("a child waiting for its id maps exits when the Deno process that started it dies", async () => {
  const dir = scratchDir("orphan-");
  const script = decodeURIComponent(new URL("./programs/stuck_mapper.ts", import.meta.url).pathname);
  const parent = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-ffi", script, dir],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = parent.stdout.getReader();
  const { value } = await reader.read();
  const pid = Number(text(value!).trim());
  assert.ok(pid > 0, "the child's pid");
  // It may still be resetting its signal handlers: wait until it sleeps.
  const sleeping = () => /^State:\s+S/m.test(Deno.readTextFileSync(`/proc/${pid}/status`));
  for (let i = 0; i < 500 && !sleeping(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(sleeping(), "the child waits");
  parent.kill("SIGKILL");
  await parent.status;
  reader.releaseLock();
  await parent.stdout.cancel();
  // The child sees end-of-file on the sync pipe and exits (it may stay a
  // zombie of whoever adopts it).
  await waitDead(pid, `child ${pid}, which outlived its parent,`);
  Deno.removeSync(dir, { recursive: true });
});

/** RecordReader's `next`, as the tests below replace it. */
type ReadNext = (this: RecordReader) => ReturnType<RecordReader["next"]>;

/**
 * An exec() of a sleep beside a busybox container's init while
 * RecordReader's `next` is `replace(next)` (given the real one): the
 * failure a test injects into the launch's reads. `whileExec` gets the
 * exec, mapped to what it rejects with, before it is awaited. Resolves to
 * that rejection once `next` is back and no process, zombie or fd of the
 * exec is left (asserted); whatever happens, the leftovers are reaped and
 * the container disposed of.
 */
async function execWithInjectedReads(
  replace: (next: ReadNext) => ReadNext,
  whileExec: (exec: Promise<unknown>) => Promise<void> = async () => {},
): Promise<unknown> {
  const setup = await busyboxContainer();
  const { next } = RecordReader.prototype;
  let before: ReturnType<typeof snapshot> | undefined;
  try {
    const init = await setup.container.start({ command: ["/bin/sleep", "1000"], env: ENV });
    before = snapshot();
    RecordReader.prototype.next = replace(next);
    const exec = setup.container.exec(init, { command: ["/bin/sleep", "1000"], env: ENV })
      .then(() => undefined, (e) => e);
    await whileExec(exec);
    const err = await exec;
    RecordReader.prototype.next = next;
    assert.deepEqual(snapshot(), before, "no process, zombie or fd of the exec is left");
    return err;
  } finally {
    RecordReader.prototype.next = next;
    if (before) await reapChildrenSince(before);
    await setup[Symbol.asyncDispose]();
  }
}

Deno.test("an exec() whose record stream fails after its fork kills and reaps the forked process too", async () => {
  // The failure injected: the first read after a "forked" record throws, as
  // a protocol error would (none is known to happen: records are atomic
  // writes). Until then the launch runs as it does. On the old code the
  // go-between was reaped; the process it forked (a child of ours) went on
  // to run the command, and stayed a child, then a zombie.
  const afterFork = new WeakSet<RecordReader>();
  const err = await execWithInjectedReads((next) =>
    async function (this: RecordReader) {
      if (afterFork.delete(this)) throw new Error("injected: a record that cannot be decoded");
      const record = await next.call(this);
      if (record?.kind === "forked") afterFork.add(this);
      return record;
    }
  );
  assert.match(String(err), /injected: a record that cannot be decoded/);
});

Deno.test("an exec() whose record stream fails before its fork's record is read kills and reaps what the drain finds", async () => {
  // The failure injected: the exec's first read, once the "forked" record
  // is in the pipe, throws without reading it. The reads after it read as
  // they do: the record is first seen while the launch is given up.
  // (pid 1's reader sees no record while its command sleeps.)
  const failed = new WeakSet<RecordReader>();
  const err = await execWithInjectedReads((next) =>
    async function (this: RecordReader) {
      if (failed.has(this)) return await next.call(this);
      failed.add(this);
      await reactor().readable(this.fd);
      throw new Error("injected: a read of the result pipe that failed");
    }
  );
  assert.match(String(err), /injected: a read of the result pipe that failed/);
});

Deno.test("an exec() whose record stream turns corrupt after its fork frees the child stack only at end-of-file", async () => {
  // The corruption injected: after a "forked" record every read throws, as
  // RecordReader's does on a record it cannot decode (the record stays
  // pending). And the test holds a write end of the pipe of its own (opened
  // anew through /proc), so that end-of-file comes only once it lets go:
  // the processes the launch kills could be quicker than its release.
  const corrupt = new WeakSet<RecordReader>();
  let writeEnd: Deno.FsFile | undefined;
  let write: number | string | undefined;
  const err = await execWithInjectedReads(
    (next) =>
      async function (this: RecordReader) {
        if (corrupt.has(this)) throw new Error("injected: a record that cannot be decoded");
        const record = await next.call(this);
        if (record?.kind === "forked") {
          corrupt.add(this);
          writeEnd = Deno.openSync(`/proc/self/fd/${this.fd}`, { write: true });
        }
        return record;
      },
    async (exec) => {
      let settled = false;
      exec.finally(() => settled = true);
      while (!writeEnd && !settled) await new Promise((resolve) => setTimeout(resolve, 10));
      assert.ok(writeEnd, "the exec's forked record was read");
      await new Promise((resolve) => setTimeout(resolve, 300));
      // Still read: a write goes through (EPIPE once the launch closed it).
      try {
        write = writeEnd.writeSync(new Uint8Array(1));
      } catch (err) {
        write = String(err);
      }
      writeEnd.close();
    },
  );
  assert.equal(write, 1, "the result pipe was still read before its end-of-file");
  assert.match(String(err), /injected: a record that cannot be decoded/);
});

/**
 * Kills and reaps the children made since `before`, which a failed launch
 * left: their end would wait for them, and the container's with it (a pid
 * namespace ends once all of it is reaped).
 */
async function reapChildrenSince(before: { children: string[] }): Promise<void> {
  for (const pid of snapshot().children.filter((pid) => !before.children.includes(pid))) {
    tryKill(Number(pid), 9);
    while (!waitPid(Number(pid))) await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

Deno.test("a Worker ending while it waits for its container neither crashes Deno nor leaves the container", async () => {
  const marker = `worker-end-${crypto.randomUUID()}`;
  const script = decodeURIComponent(new URL("./programs/worker_end.ts", import.meta.url).pathname);
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", script, marker],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = text(output.stderr);
  assert.equal(output.signal, null, `killed by ${output.signal}: ${stderr}`);
  assert.equal(output.code, 0, stderr);
  assert.equal(text(output.stdout), "survived\n");
  // The container's init died with the Worker's thread (parent-death signal).
  assert.deepEqual(processesWith(marker), [], "no process of the container is left");
});

Deno.test("a container that stays up keeps no process that ended with its pipes read; destroy() closes an unread one", async () => {
  // In a process of its own, to collect garbage (--expose-gc).
  const { alive, total, fds } = await programJson("exec_gc.ts", [], ["--v8-flags=--expose-gc"]);
  assert.equal(alive, 0, `${alive} of ${total} ended processes are still kept`);
  const unread = fds.whileUnread.filter((fd: string) => !fds.before.includes(fd));
  assert.equal(unread.length, 1, `the unread stdout holds one fd until destroy(): ${unread}`);
  assert.ok(!fds.after.includes(unread[0]), "destroy() closed the unread stdout");
});

// Many containers at once meet the fd limit first; "Too many open files"
// alone did not say whose limit it is, nor what counts.
Deno.test("the fd limit stops a start with an EMFILE that names RLIMIT_NOFILE, and every container still goes", async () => {
  const script = decodeURIComponent(new URL("./programs/fd_limit.ts", import.meta.url).pathname);
  const output = await new Deno.Command("/bin/sh", {
    args: ["-c", 'ulimit -n 96 && exec "$DENO" run --allow-all "$SCRIPT"'],
    env: { DENO: Deno.execPath(), SCRIPT: script },
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(output.code, 0, text(output.stderr));
  const { message, started } = JSON.parse(text(output.stdout));
  // A user's start opens more (newuidmap's pipes): the first may be the one.
  assert.ok(started >= 1 && started < 200, `${started} containers`);
  assert.match(message, /EMFILE \(Too many open files\) \(this process's limit of open files, RLIMIT_NOFILE/);
});

// clone3's own EMFILE (its pidfd) said only "Too many open files", and the
// hint the other EMFILEs carry understated what a container holds.
Deno.test("clone3's EMFILE carries the fd limit's hint, with what a container holds; nothing is left", async () => {
  const script = decodeURIComponent(new URL("./programs/clone_emfile.ts", import.meta.url).pathname);
  const output = await new Deno.Command("/bin/sh", {
    // With the fds this process inherited, however high (a test runner's fd
    // 251): a user's newuidmap gets its fds staged above its own alone.
    args: ["-c", 'ulimit -n 128 && exec "$DENO" run --allow-all "$SCRIPT"'],
    env: { DENO: Deno.execPath(), SCRIPT: script },
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(output.code, 0, text(output.stderr));
  const { messages, before, after } = JSON.parse(text(output.stdout));
  const clone = messages.filter((m: string) => m.startsWith("cannot create the process (clone3): EMFILE"));
  assert.equal(clone.length, 1, `one start fails in clone3: ${JSON.stringify(messages, null, 1)}`);
  for (const message of messages.filter((m: string) => m.includes("EMFILE"))) {
    assert.ok(message.endsWith(`EMFILE (Too many open files)${TOO_MANY_OPEN_FILES_HINT}`), message);
  }
  assert.match(
    TOO_MANY_OPEN_FILES_HINT,
    /RLIMIT_NOFILE, `ulimit -n`, is reached: a running container holds 2 to 6 fds/,
  );
  assert.equal(messages.at(-1), "ok", "a start with room for its fds works");
  assert.deepEqual(after, before, "an fd was left");
});

/**
 * Runs tests/programs/`name` with `args` in a Deno process of its own
 * (`flags` before the script), which must exit 0; returns the JSON it printed.
 */
async function programJson(name: string, args: string[], flags: string[] = []) {
  const script = decodeURIComponent(new URL(`./programs/${name}`, import.meta.url).pathname);
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", ...flags, script, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(output.code, 0, text(output.stderr));
  return JSON.parse(text(output.stdout));
}

/** Runs tests/programs/worker_leftovers.ts for `round`, in a process of its own. */
function workerLeftovers(round: "running" | "destroyed" | "exec-loop" | "many") {
  // A process of its own: the Workers' fds and children are the process's.
  return programJson("worker_leftovers.ts", [round]);
}

Deno.test("a Worker terminated while its container runs leaves no process, zombie or fd of it", async () => {
  const { baseline, after, processes } = await workerLeftovers("running");
  // Its init and exec()'d process die with the Worker's thread; they used
  // to stay: the exec()'d one a zombie nobody reaped, the init waiting in
  // the kernel for it. Every fd the Worker held is closed: its pidfds,
  // pipes, reactor and the held mount namespace (the container's mounts).
  assert.deepEqual(processes, ["gone", "gone"], "the Worker's init and exec()'d process");
  assert.deepEqual(after.children, [], "no child processes or zombies");
  assert.deepEqual(after.fds, baseline.fds, "the same open fds");
});

Deno.test("Workers terminated at random moments of exec() after exec() leave no process, zombie or fd", async () => {
  // Mostly terminated inside an exec() launch, whose process was a child of
  // ours that nothing knew of yet: it stayed a zombie, and the container's
  // init waited in the kernel for it, until the Deno process ended.
  const { baseline, after, processes } = await workerLeftovers("exec-loop");
  assert.deepEqual(processes, ["gone", "gone", "gone", "gone"], "the Workers' inits");
  assert.deepEqual(after.children, [], "no child processes or zombies");
  assert.deepEqual(after.fds, baseline.fds, "the same open fds");
});

Deno.test("a Worker terminated with 300 containers running leaves none of them: no process, zombie or fd", async () => {
  const { baseline, after, processes } = await workerLeftovers("many");
  assert.equal(processes.length, 300);
  assert.deepEqual(processes.filter((s: string) => s !== "gone"), [], "the Worker's inits");
  assert.deepEqual(after.children, [], "no child processes or zombies");
  assert.deepEqual(after.fds, baseline.fds, "the same open fds");
});

Deno.test("a Worker that destroyed its container leaves no fd when terminated", async () => {
  const { baseline, after, processes } = await workerLeftovers("destroyed");
  assert.deepEqual(processes, ["gone", "gone"]);
  assert.deepEqual(after.children, []);
  // Its reactor's epoll fd and eventfd used to stay.
  assert.deepEqual(after.fds, baseline.fds, "the same open fds");
});

Deno.test("Workers terminated while they run containers, beside a long-lived one, crash nothing and leave nothing", async () => {
  // A worker pool's churn: 8 s of Workers terminated 30-230 ms after they
  // started containers, three at a time, while a long-lived Worker runs
  // containers whose launches hold copies of the fd table for 100 ms (a
  // slow id mapper). The janitor's epoll set used to keep a dead Worker's
  // thread pidfd while a copy held it, and took the next Worker given its
  // slot for ended: zombies and fds (pidfds, pipes, held mount namespaces)
  // of the containers left behind in every run, and now and then a tokio
  // panic that ended the whole process, when the fds of a Worker that still
  // ran were closed under it.
  // A panic (Deno's, on a closed fd) fails programJson's check of the exit.
  const churn = await programJson("worker_churn.ts", ["8", "100"]);
  const { baseline, after, steady, churned, rootfsMounts } = churn;
  assert.ok(churned >= 20, `only ${churned} Workers churned`);
  assert.ok(steady.ok >= 5, `the long-lived Worker ran only ${steady.ok} containers`);
  assert.deepEqual(steady.bad, [], "the long-lived Worker's containers");
  assert.deepEqual(after.children, [], "no child processes or zombies");
  assert.deepEqual(after.fds, baseline.fds, "the same open fds (no pidfd, pipe or held mount namespace)");
  assert.equal(rootfsMounts, 0, "no mount on the host under the containers' rootfs");
});
