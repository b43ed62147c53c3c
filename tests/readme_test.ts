/**
 * The README's library example and mod.ts's module example run as written,
 * with --allow-ffi only, and clean up after themselves; the lists the docs
 * keep by hand (steps, source files) hold what the code has.
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

// SboxError.step is typed (src/error.ts's Step), so deno check holds every
// step an SboxError is made with to the union; this holds the README's list
// to it: each value beside the op names, and nothing else.
Deno.test("README lists every Step beside the op names, and no other", () => {
  const source = Deno.readTextFileSync(`${ROOT}src/error.ts`);
  const union = /^export type Step =\n((?: {2}\| .*\n)+)/m.exec(source);
  assert.ok(union, "src/error.ts has `export type Step =` with one member a line");
  const members = union[1].split("\n").map((line) => line.replace(/^ {2}\| /, "").replace(/;$/, "")).filter((
    m,
  ) => m !== "");
  assert.equal(members[0], "OpName");
  const steps = members.slice(1).map((m) => JSON.parse(m) as string).sort();
  const readme = Deno.readTextFileSync(`${ROOT}README.md`);
  const list = /^An `SboxError`'s `step` is a `Step`.*\n\n((?:(?:- | {2}).*\n)+)/m.exec(readme);
  assert.ok(list, "README has the list of steps");
  const items = list[1].split(/^- /m).filter((item) => item !== "");
  assert.match(items[0], /^an op name \(`OpName`/);
  // The rest: each item's names before its colon (items 1-2 are op names used beyond their op).
  const listed = items.slice(1).flatMap((item) =>
    [...item.slice(0, item.indexOf(":")).matchAll(/`([a-z_]+)`/g)].map(([, name]) => name)
  );
  const opNames = ["reaper", "setns", "fork"];
  assert.deepEqual(listed.filter((name) => !opNames.includes(name)).sort(), steps);
});

/** The files under `dir` (relative to the checkout) whose names end in one of `extensions`, recursively. */
function sourceFiles(dir: string, extensions: readonly string[]): string[] {
  return [...Deno.readDirSync(`${ROOT}${dir}`)].flatMap((entry) => {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) return sourceFiles(path, extensions);
    return extensions.some((extension) => entry.name.endsWith(extension)) ? [path] : [];
  });
}

/** The text of `file` from the heading line `from` to the next heading of its level, or the end. */
function section(file: string, from: string): string {
  const text = Deno.readTextFileSync(`${ROOT}${file}`);
  const start = text.indexOf(`\n${from}\n`);
  assert.ok(start >= 0, `${file} has no ${from}`);
  const level = from.slice(0, from.indexOf(" ") + 1);
  const end = text.indexOf(`\n${level}`, start + from.length + 1);
  return text.slice(start, end < 0 ? undefined : end);
}

// The maps of the code a newcomer reads first, kept by hand: a file left
// out of them (src/deadline.ts, src/cli/option_errors.ts were) is one the
// reader does not know to look for.
Deno.test("docs map every source file: architecture.md section 6 all of src/ and helper/, cli.md's Code all of src/cli/ and the sections of cli_test", () => {
  const map = section("docs/architecture.md", "## 6. Every source file");
  for (const file of sourceFiles("src", [".ts"]).concat(sourceFiles("helper", [".zig"]))) {
    assert.ok(map.includes(`\`${file}\``), `docs/architecture.md section 6 leaves out ${file}`);
  }
  const code = section("docs/cli.md", "## Code");
  for (const file of sourceFiles("src/cli", [".ts"])) {
    const name = file.slice("src/cli/".length);
    assert.ok(code.includes(`\`${name}\``), `docs/cli.md's Code table leaves out ${name}`);
  }
  // The sections of tests/cli_test.ts, by their `// ---- NAME ----` lines, each _NAME_ in that list.
  const tests = Deno.readTextFileSync(`${ROOT}tests/cli_test.ts`);
  const sections = [...tests.matchAll(/^\/\/ ---- (.+?) -+$/gm)].map(([, name]) => name);
  assert.ok(sections.length > 0, "tests/cli_test.ts has no `// ---- NAME ----` sections");
  const list = code.replace(/\s+/g, " ");
  for (const name of sections) {
    assert.ok(
      list.includes(`_${name}_`),
      `docs/cli.md's Code leaves out the section ${name} of tests/cli_test.ts`,
    );
  }
});
