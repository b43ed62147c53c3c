/**
 * The README's library example runs as written, with --allow-ffi only, and
 * cleans up after itself.
 */

import assert from "node:assert/strict";
import { Cgroup } from "../mod.ts";

const ROOT = new URL("../", import.meta.url).pathname;

function exampleCode(): string {
  const readme = Deno.readTextFileSync(`${ROOT}README.md`);
  const section = readme.slice(readme.indexOf("## The library"));
  const match = /```ts\n([\s\S]*?)```/.exec(section);
  assert.ok(match, "README has a ```ts example under ## The library");
  return match[1];
}

Deno.test("README library example runs as written with --allow-ffi only", async () => {
  const image = "/tmp/sbox-image";
  const made = new Deno.Command(`${ROOT}tools/busybox-image`, { args: [image] }).outputSync();
  assert.ok(made.success, "tools/busybox-image");
  // Next to mod.ts, so that its import of "./mod.ts" resolves as written.
  const file = `${ROOT}.readme_example_${Deno.pid}.ts`;
  Deno.writeTextFileSync(file, exampleCode());
  try {
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-ffi", file],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stdout = new TextDecoder().decode(output.stdout);
    const stderr = new TextDecoder().decode(output.stderr);
    assert.equal(output.code, 0, stderr);
    assert.match(stdout, /^0 Hello, World\nuid=0\(root\) gid=0\(root\)/);
    assert.match(stdout, /^0::\/$/m, "its own cgroup namespace");
    assert.throws(() => Deno.statSync("/tmp/sbox-state"), "the state dir is removed");
    assert.equal(Cgroup.current().child("sbox-example").exists(), false, "the cgroup is removed");
  } finally {
    Deno.removeSync(file);
  }
});
