/**
 * The module graph of src/: the mount-table, path and cgroup modules import
 * each other one way only, and each loads on its own. An import cycle lets
 * a module run before one it needs has (a `const` read before it is set),
 * and it hides which of two modules is the lower one.
 */

import assert from "node:assert/strict";
import { text } from "./fixtures.ts";

const ROOT = new URL("../", import.meta.url);

/** Modules that must be in no import cycle (runtime or type-only). */
const ACYCLIC = [
  "src/path.ts",
  "src/mountinfo.ts",
  "src/mount.ts",
  "src/mount_refusals.ts",
  "src/cgroup_mount.ts",
  "src/cgroup_diagnostics.ts",
  "src/cgroup.ts",
];

/** The local import graph reachable from `roots`, by `deno info --json`: module -> what it imports. */
function importGraph(roots: string[]): Map<string, Set<string>> {
  const graph = new Map<string, Set<string>>();
  for (const root of roots) {
    const output = new Deno.Command(Deno.execPath(), {
      args: ["info", "--json", new URL(root, ROOT).href],
      stdout: "piped",
      stderr: "piped",
    }).outputSync();
    assert.ok(output.success, text(output.stderr));
    const info = JSON.parse(text(output.stdout)) as {
      modules: {
        specifier: string;
        dependencies?: { code?: { specifier?: string }; type?: { specifier?: string } }[];
      }[];
    };
    for (const module of info.modules) {
      if (!module.specifier.startsWith(ROOT.href)) continue;
      const imports = graph.get(module.specifier) ?? new Set();
      for (const dependency of module.dependencies ?? []) {
        for (const target of [dependency.code?.specifier, dependency.type?.specifier]) {
          if (target?.startsWith(ROOT.href)) imports.add(target);
        }
      }
      graph.set(module.specifier, imports);
    }
  }
  return graph;
}

/** A chain of imports from `start` back to itself, or undefined. */
function cycleThrough(graph: Map<string, Set<string>>, start: string): string[] | undefined {
  const seen = new Set<string>();
  const walk = (module: string, chain: string[]): string[] | undefined => {
    for (const next of graph.get(module) ?? []) {
      if (next === start) return [...chain, next];
      if (seen.has(next)) continue;
      seen.add(next);
      const found = walk(next, [...chain, next]);
      if (found) return found;
    }
    return undefined;
  };
  return walk(start, [start]);
}

Deno.test("modules: the mount-table, path and cgroup modules are in no import cycle", () => {
  const graph = importGraph(["mod.ts", "sbox.ts", "src/cli/main.ts"]);
  for (const module of ACYCLIC) {
    const href = new URL(module, ROOT).href;
    assert.ok(graph.has(href), `${module} is not imported from mod.ts or the CLI`);
    const cycle = cycleThrough(graph, href);
    assert.equal(cycle?.map((m) => m.slice(ROOT.href.length)).join(" -> "), undefined);
  }
});

Deno.test("modules: each of them loads on its own", async () => {
  for (const module of ACYCLIC) {
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["eval", `await import(${JSON.stringify(new URL(module, ROOT).href)});`],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.ok(output.success, `${module}: ${text(output.stderr)}`);
  }
});
