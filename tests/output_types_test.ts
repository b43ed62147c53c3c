/**
 * The types of a process's output, checked by `deno check` (and by `deno
 * test`, which type-checks this file first): its bytes go where Web APIs
 * take a `BlobPart` or a `BufferSource`, as `Deno.Command`'s do. A
 * `Uint8Array<ArrayBufferLike>` would not: it may be a view of shared memory.
 * The test runs the same code, so the bytes must really be in ArrayBuffers.
 */

import assert from "node:assert/strict";
import type { ProcessOutput } from "../mod.ts";
import { busyboxContainer, text } from "./fixtures.ts";

/** Hex SHA-256 of `bytes`: `crypto.subtle.digest` takes a `BufferSource`. */
async function sha256(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", bytes);
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** What a caller does with output(): a Blob of it, a digest of each stream. */
async function useOutput(output: ProcessOutput): Promise<{ blob: string; stdout: string; stderr: string }> {
  const blob = await new Blob([output.stdout, output.stderr]).text();
  return { blob, stdout: await sha256(output.stdout), stderr: await sha256(output.stderr) };
}

/** Whether `bytes` is the whole of an ArrayBuffer of its own (not a view into shared or bigger memory). */
function ownBuffer(bytes: Uint8Array): boolean {
  return bytes.buffer instanceof ArrayBuffer && bytes.byteOffset === 0 &&
    bytes.buffer.byteLength === bytes.byteLength;
}

Deno.test("output() bytes and stream chunks are Uint8Array<ArrayBuffer>: a BlobPart and a BufferSource", async () => {
  await using setup = await busyboxContainer();
  const init = await setup.container.start({ command: ["/bin/sleep", "100"] });
  const process = await setup.container.exec(init, {
    command: ["/bin/sh", "-c", "echo out; echo err >&2"],
    stdout: "piped",
    stderr: "piped",
  });
  const output = await process.output();
  assert.equal(output.code, 0, text(output.stderr));
  const used = await useOutput(output);
  const expected = await useOutput({
    ...output,
    stdout: new TextEncoder().encode("out\n"),
    stderr: new TextEncoder().encode("err\n"),
  });
  assert.deepEqual(used, expected);
  assert.equal(used.blob, "out\nerr\n");
  assert.ok(ownBuffer(output.stdout) && ownBuffer(output.stderr));

  // A chunk of the stream, as read, goes to the same APIs.
  const exec = await setup.container.exec(init, { command: ["/bin/echo", "chunk"], stdout: "piped" });
  const chunks: Uint8Array<ArrayBuffer>[] = [];
  for await (const chunk of exec.stdout!) chunks.push(chunk);
  assert.equal(await new Blob(chunks).text(), "chunk\n");
  assert.ok(chunks.every(ownBuffer));
  assert.equal(await sha256(chunks[0]), await sha256(new TextEncoder().encode("chunk\n")));
});

// The reads of a stream share one buffer: each chunk must be a copy, whole
// and unchanged by the reads after it.
Deno.test("stream chunks keep their bytes while later chunks are read: each is a copy of its own", async () => {
  await using setup = await busyboxContainer();
  const init = await setup.container.start({ command: ["/usr/bin/seq", "1", "100000"], stdout: "piped" });
  const chunks: Uint8Array<ArrayBuffer>[] = [];
  // Not consumed as they come: every chunk is kept while the next ones are read.
  for await (const chunk of init.stdout!) chunks.push(chunk);
  assert.ok(chunks.length > 1, `${chunks.length} chunk`);
  assert.ok(chunks.every(ownBuffer));
  const expected = Array.from({ length: 100000 }, (_, i) => `${i + 1}\n`).join("");
  assert.equal(await new Blob(chunks).text(), expected);
  assert.equal((await init.status).code, 0);
});
