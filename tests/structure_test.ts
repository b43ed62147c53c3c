/**
 * Rules of src/'s structure that a look at the source can check: what is
 * written once, in one place, stays so. A second copy of a bound or of a
 * helper drifts from the first (one is changed, the other not), and a
 * reader must find and compare both before changing either.
 */

import assert from "node:assert/strict";
import { type LibcGroup, openLibc } from "../src/libc.ts";

const ROOT = new URL("../", import.meta.url);

/**
 * Every .ts file under `dir` (a path relative to the checkout), relative
 * paths; not under a dot directory (tests/.work, where running tests come
 * and go) nor node_modules (tools/deno).
 */
function tsFiles(dir: string): string[] {
  const files: string[] = [];
  const walk = (relative: string) => {
    for (const entry of Deno.readDirSync(new URL(relative, ROOT))) {
      const path = `${relative}/${entry.name}`;
      if (entry.isDirectory) {
        if (!entry.name.startsWith(".") && entry.name !== "node_modules") walk(path);
      } else if (entry.name.endsWith(".ts")) files.push(path);
    }
  };
  walk(dir);
  return files.sort();
}

/** The source of `path`, relative to the checkout. */
function source(path: string): string {
  return Deno.readTextFileSync(new URL(path, ROOT));
}

/** `file: text` of each line of code (not of a comment) of src/ that `pattern` matches. */
function codeMatching(pattern: RegExp): string[] {
  return tsFiles("src").flatMap((file) =>
    source(file).split("\n").flatMap((line) => {
      const text = line.trim();
      const comment = text.startsWith("*") || text.startsWith("/*") || text.startsWith("//");
      return !comment && pattern.test(text) ? [`${file}: ${text}`] : [];
    })
  );
}

Deno.test("structure: 2 ** 31 - 1 is written once as the timer bound and once as the fd bound", () => {
  assert.deepEqual(codeMatching(/2 \*\* 31 - 1|2147483647|0x7fffffff/), [
    "src/container_options.ts: const MAX_FD = 2 ** 31 - 1;",
    "src/deadline.ts: export const MAX_TIMER_MS: number = 2 ** 31 - 1;",
  ]);
});

Deno.test("structure: the 1 GiB default of --write-limit and of HostRootMount's size is one constant", () => {
  assert.deepEqual(codeMatching(/= 1024 \*\* 3;|= 2 \*\* 30;/), [
    "src/host_root.ts: export const DEFAULT_HOST_ROOT_SIZE: number = 1024 ** 3;",
  ]);
  assert.match(source("src/cli/args.ts"), /writeLimit: DEFAULT_HOST_ROOT_SIZE,/);
});

Deno.test("structure: the CLI takes a caught value's message with messageOf alone", () => {
  // `err instanceof Error ? err.message : String(err)`, however spelled.
  const found = codeMatching(/instanceof Error\)? (\?|return) \w+\.message/)
    .filter((line) => line.startsWith("src/cli/"));
  assert.deepEqual(found, ["src/cli/messages.ts: return err instanceof Error ? err.message : String(err);"]);
});

Deno.test("structure: sbox's main asks for the ffi permission's state once, and the rest of the CLI takes it from there", () => {
  const asks = codeMatching(/permissions\.(query|request)/).filter((line) => line.startsWith("src/cli/"));
  assert.deepEqual(asks, [
    'src/cli/main.ts: const ffi = Deno.permissions.querySync({ name: "ffi" }).state === "granted";',
    // sbox.ts's first call, before main is loaded (its module says why).
    'src/cli/stale_report.ts: if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") return;',
  ]);
});

Deno.test("structure: one loop waits for a pidfd's exit (reactor.ts's waitExit)", () => {
  assert.deepEqual(codeMatching(/waitPidfd\(/).filter((line) => !line.startsWith("src/sys.ts")), [
    "src/reactor.ts: const result = waitPidfd(pidfd);",
  ]);
});

Deno.test('structure: "exited with" / "was killed by" is worded once (launch.ts\'s describeEnd)', () => {
  assert.deepEqual(codeMatching(/exited with \$|was killed by \$/), [
    "src/launch.ts: return signal === null ? `exited with ${code}` : `was killed by ${signal}`;",
  ]);
});

Deno.test("structure: both mappers' newRoot build their maps in one function", () => {
  assert.deepEqual(codeMatching(/containerId: 0, hostId: (uid|gid) \?\?/), [
    "src/user.ts: uidMap: [{ containerId: 0, hostId: uid ?? me.euid, size: 1 }],",
    "src/user.ts: gidMap: [{ containerId: 0, hostId: gid ?? me.gid, size: 1 }],",
  ]);
  const user = source("src/user.ts");
  assert.match(user, /new ProcUserMapper\(rootOnlyMaps\(uid, gid\)\)/);
  assert.match(user, /new BinNewIdMapper\(rootOnlyMaps\(uid, gid\)\)/);
});

Deno.test("structure: libc is opened in libc.ts, each group once, and every group's symbols resolve", () => {
  assert.deepEqual(codeMatching(/libc\.so\.6/), [
    'src/libc.ts: return (opened[group] ??= Deno.dlopen("libc.so.6", GROUPS[group]).symbols as never) as LibcSymbols<G>;',
  ]);
  // Every other dlopen is ffi.ts's, of the helper library.
  assert.deepEqual(
    codeMatching(/Deno\.dlopen\(/).filter((line) =>
      !/libc\.so\.6/.test(line) && !line.startsWith("src/ffi.ts")
    ),
    [],
  );
  const groups: LibcGroup[] = [
    "blocking",
    "dlopen",
    "access",
    "cacheFiles",
    "socket",
    "fifo",
    "signal",
    "terminal",
  ];
  for (const group of groups) {
    // A symbol that libc lacks would throw here, not at its first use.
    const symbols = openLibc(group);
    assert.equal(openLibc(group), symbols, `${group} is opened anew`);
  }
  assert.equal(openLibc("access").access(new TextEncoder().encode("/\0"), 0), 0);
});

/**
 * The specifier of a module reference: a string (`"./x.ts"`), or one that a
 * script written by a test builds (`${JSON.stringify(new URL("../src/x.ts",
 * import.meta.url).href)}`, `"${src("x.ts")}"`): the first ".ts" string in it.
 */
const SPECIFIER = String.raw`(?:["'\`]?\$\{[^;]{0,160}?["'\`]([^"'\`\s]+\.ts)["'\`]|["'\`]([^"'\`]+)["'\`])`;
/** `import { a, b as c } from`, `export type { a } from`, `import d, { a } from`: the braces, then the specifier. */
const NAMED_IMPORT = new RegExp(
  String.raw`\b(?:import|export)(?:\s+type)?(?:\s+[\w$]+\s*,)?\s*\{([^}]*)\}\s*from\s*${SPECIFIER}`,
  "g",
);
/** `const { a, b: c } = await import(...)`, `const ns: typeof X = await import(...)`: the braces or the name, then the specifier. */
const DYNAMIC_IMPORT = new RegExp(
  String.raw`\bconst\s+(\{[^}]*\}|[\w$]+)(?:\s*:[^=]+)?\s*=\s*await\s+import\(\s*${SPECIFIER}`,
  "g",
);
/** `import * as ns from`: the namespace's name, then the specifier. */
const NAMESPACE_IMPORT = new RegExp(String.raw`\bimport\s+\*\s+as\s+([\w$]+)\s+from\s*${SPECIFIER}`, "g");
/** `export * from`: the specifier. */
const STAR_EXPORT = new RegExp(String.raw`\bexport\s+\*\s+from\s*${SPECIFIER}`, "g");

/**
 * Whether module specifier `specifier`, written in file `from`, names file
 * `module` (paths relative to the checkout). A relative one is resolved
 * against `from` (as `new URL(specifier, import.meta.url)` is); any other
 * (`${origin}/mod.ts`, a test's `src("x.ts")`) names the module whose path
 * ends with its part after the last "}".
 */
function names(specifier: string, from: string, module: string): boolean {
  if (specifier.startsWith("./") || specifier.startsWith("../")) {
    return new URL(specifier, new URL(from, ROOT)).href === new URL(module, ROOT).href;
  }
  const tail = specifier.slice(specifier.lastIndexOf("}") + 1).replace(/^\/+/, "");
  return tail !== "" && `/${module}`.endsWith(`/${tail}`);
}

/**
 * Whether file `from` (its text `text`) uses export `name` of file
 * `module`: imports it by name (`import { name } from`, `export { name }
 * from`, `const { name } = await import(...)`), re-exports all of the
 * module (`export * from`), or reads it off the module's namespace
 * (`ns.name`, where `import * as ns from` or `const ns = await import(...)`
 * of that module). A `.name` of anything else is no use of it.
 */
function imports(text: string, from: string, module: string, name: string): boolean {
  const listed = (braces: string) =>
    braces.replace(/[{}]/g, "").split(",").some((item) =>
      item.trim().replace(/^type\s+/, "").split(/\s+as\s+|\s*:\s*/)[0].trim() === name
    );
  const specifierOf = (match: RegExpMatchArray, at: number) => match[at] ?? match[at + 1];
  const namespaceUses = (namespace: string) =>
    new RegExp(String.raw`(?<![\w$.])${namespace.replace(/\$/g, "\\$")}\.${name}(?![\w$])`).test(text);
  for (const match of text.matchAll(NAMED_IMPORT)) {
    if (names(specifierOf(match, 2), from, module) && listed(match[1])) return true;
  }
  for (const match of text.matchAll(DYNAMIC_IMPORT)) {
    if (!names(specifierOf(match, 2), from, module)) continue;
    if (match[1].startsWith("{") ? listed(match[1]) : namespaceUses(match[1])) return true;
  }
  for (const match of text.matchAll(NAMESPACE_IMPORT)) {
    if (names(specifierOf(match, 2), from, module) && namespaceUses(match[1])) return true;
  }
  for (const match of text.matchAll(STAR_EXPORT)) {
    if (names(specifierOf(match, 1), from, module)) return true;
  }
  return false;
}

Deno.test("structure: a use of an export is an import of it from its module, or a read off that module's namespace", () => {
  const uses = (text: string, from = "src/b.ts") => imports(text, from, "src/a.ts", "close");
  assert.ok(uses('import { open, close } from "./a.ts";'));
  assert.ok(uses('import { type Kind, close as shut } from "../a.ts";', "src/cli/b.ts"));
  assert.ok(uses('export { close } from "./src/a.ts";', "mod.ts"));
  assert.ok(uses('export * from "./src/a.ts";', "mod.ts"));
  assert.ok(uses('import * as a from "./a.ts";\na.close();'));
  assert.ok(uses('const a = await import("./a.ts");\nawait a.close();'));
  assert.ok(uses('const { close } = await import("../src/a.ts");', "tests/t.ts"));
  assert.ok(
    uses(
      'import { close } from ${\n  JSON.stringify(new URL("../src/a.ts", import.meta.url).href)\n};',
      "tests/t.ts",
    ),
  );
  assert.ok(uses('import { close } from "${src("a.ts")}";', "tests/t.ts"));
  // Not a use of it: a property of anything else, another module's export.
  assert.ok(!uses("file.close();"));
  assert.ok(!uses('import * as c from "./c.ts";\nc.close();'));
  assert.ok(!uses('import { close } from "./c.ts";'));
  assert.ok(!uses('import { closeAll } from "./a.ts";'));
  assert.ok(!uses('import * as a from "./a.ts";\nb.close();\na.closeAll();'));
});

Deno.test("structure: every export of src/ is used by another module, or by tests and marked @internal", () => {
  const users = [...tsFiles("src"), ...tsFiles("tools"), ...tsFiles("bench"), "mod.ts", "sbox.ts"];
  const tests = tsFiles("tests");
  const texts = new Map([...users, ...tests].map((file) => [file, source(file)]));
  const problems: string[] = [];
  for (const file of tsFiles("src")) {
    const text = texts.get(file)!;
    for (const match of text.matchAll(/^export (?:async )?(?:function\*?|class|const|let|enum) ([\w$]+)/gm)) {
      const name = match[1];
      const usedBy = (files: string[]) =>
        files.some((other) => other !== file && imports(texts.get(other)!, other, file, name));
      // The doc comment right above the export (lint-ignore lines between are allowed).
      const before = text.slice(0, match.index).replace(/(\n\/\/[^\n]*)+\n?$/, "\n");
      const doc = /\/\*\*((?:(?!\*\/)[\s\S])*)\*\/\s*$/.exec(before)?.[1] ?? "";
      const internal = /@internal/.test(doc);
      if (usedBy(users)) continue;
      if (!usedBy(tests)) problems.push(`${file}: ${name} is exported, but no other module uses it`);
      else if (!internal) {
        problems.push(`${file}: ${name} is exported for tests only, but not marked @internal`);
      }
    }
  }
  assert.deepEqual(problems, []);
});
