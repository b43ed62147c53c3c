/**
 * The README's library example and mod.ts's module example run as written,
 * with --allow-ffi only, and clean up after themselves.
 */

import assert from "node:assert/strict";
import { Cgroup } from "../mod.ts";

const ROOT = decodeURIComponent(new URL("../", import.meta.url).pathname);

function exampleCode(): string {
  const readme = Deno.readTextFileSync(`${ROOT}README.md`);
  const section = readme.slice(readme.indexOf("## The library"));
  const match = /```ts\n([\s\S]*?)```/.exec(section);
  assert.ok(match, "README has a ```ts example under ## The library");
  return match[1];
}

/** The module example of mod.ts: its first ```ts block, without the JSDoc's " * ". */
function moduleExampleCode(): string {
  const source = Deno.readTextFileSync(`${ROOT}mod.ts`);
  const match = /```ts ignore\n([\s\S]*?) \* ```/.exec(source);
  assert.ok(match, "mod.ts has a ```ts example");
  return match[1].replace(/^ \*( |$)/gm, "");
}

/** Runs `code` with --allow-ffi only, next to mod.ts, so that its import of "./mod.ts" resolves as written. */
async function runExample(code: string): Promise<string> {
  const made = new Deno.Command(`${ROOT}tools/busybox-image`, { args: ["/tmp/sbox-image"] }).outputSync();
  assert.ok(made.success, "tools/busybox-image");
  const file = `${ROOT}.readme_example_${Deno.pid}.ts`;
  Deno.writeTextFileSync(file, code);
  try {
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-ffi", file],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
    return new TextDecoder().decode(output.stdout);
  } finally {
    Deno.removeSync(file);
  }
}

Deno.test("README library example runs as written with --allow-ffi only", async () => {
  const stdout = await runExample(exampleCode());
  assert.match(stdout, /^0 Hello, World\nuid=0\(root\) gid=0\(root\)/);
  assert.match(stdout, /^0::\/$/m, "its own cgroup namespace");
  assert.throws(() => Deno.statSync("/tmp/sbox-state"), "the state dir is removed");
  assert.equal(Cgroup.current().child("sbox-example").exists(), false, "the cgroup is removed");
});

Deno.test("mod.ts's module example runs as written with --allow-ffi only", async () => {
  const stdout = await runExample(moduleExampleCode());
  assert.equal(stdout, "0 hello from sbox\n\n");
  assert.throws(() => Deno.statSync("/tmp/sbox-hello"), "the state dir is removed");
  assert.equal(Cgroup.current().child("sbox-hello").exists(), false, "the cgroup is removed");
});
