/**
 * exec()s into one container that stays up, then a garbage collection:
 * how many of the Process objects of those that ended, their output read,
 * are still alive (the container must not keep them), and this process's
 * fds before, while one process's stdout is left unread, and after
 * destroy(). Prints {alive, total, fds} as JSON for tests/leak_test.ts,
 * which runs it with --v8-flags=--expose-gc.
 */

import { busyboxContainer, snapshot } from "../fixtures.ts";

const ENV = { PATH: "/bin:/usr/bin" };
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error("run with --v8-flags=--expose-gc");

const setup = await busyboxContainer();
const { container } = setup;
const init = await container.start({ command: ["/bin/sleep", "100"], env: ENV });
const run = async () => {
  const process = await container.exec(init, { command: ["/bin/echo", "hi"], env: ENV, stdout: "piped" });
  await process.output();
  return new WeakRef(process);
};
await run(); // the library's fds, the reactor's
const before = snapshot().fds;
const refs: WeakRef<object>[] = [];
for (let i = 0; i < 50; i++) refs.push(await run());
const unread = await container.exec(init, { command: ["/bin/echo", "hi"], env: ENV, stdout: "piped" });
await unread.status;
const whileUnread = snapshot().fds;
// A WeakRef keeps its target until the end of the job that made or read it.
await new Promise((resolve) => setTimeout(resolve, 0));
gc();
const alive = refs.filter((ref) => ref.deref() !== undefined).length;
await setup[Symbol.asyncDispose]();
const after = snapshot().fds;
console.log(JSON.stringify({ alive, total: refs.length, fds: { before, whileUnread, after } }));
