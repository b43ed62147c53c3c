/**
 * Binds host file `Deno.args[0]` on S/a/f1 of a scratch directory S (which
 * also holds a/f0, a/f2 and z/f3) and removes S: "before" the removal, and
 * "during" it, right before unlinkat reaches f1 (a hook on the helper's
 * sbox_unlinkat). Prints, for each, the removal's error (S for the path)
 * and, for "before", what is left in S/a. Run as root in a mount namespace
 * of its own (tests/cli_test.ts).
 */

import { ScratchDir } from "../../src/cli/scratch.ts";
import { helper } from "../../src/ffi.ts";

const [keep] = Deno.args;
const symbols = helper();
const unlinkat = symbols.sbox_unlinkat;
const mount = (...args: string[]) => {
  if (!new Deno.Command("mount", { args, stderr: "inherit" }).outputSync().success) {
    throw new Error(`mount ${args.join(" ")} failed`);
  }
};

const results: Record<string, { message: string; left?: string[] }> = {};
for (const when of ["before", "during"]) {
  const scratch = ScratchDir.create();
  const s = scratch.path;
  for (const dir of ["a", "z"]) Deno.mkdirSync(`${s}/${dir}`);
  for (const file of ["a/f0", "a/f1", "a/f2", "z/f3"]) Deno.writeTextFileSync(`${s}/${file}`, "");
  if (when === "before") mount("--bind", keep, `${s}/a/f1`);
  else {
    symbols.sbox_unlinkat = (dirfd, name, flags) => {
      if (name instanceof Uint8Array && new TextDecoder().decode(name) === "f1\0") {
        symbols.sbox_unlinkat = unlinkat;
        mount("--bind", keep, `${s}/a/f1`);
      }
      return unlinkat(dirfd, name, flags);
    };
  }
  try {
    scratch.remove();
    results[when] = { message: "removed" };
  } catch (err) {
    const message = (err as Error).message.replaceAll(s, "S");
    const left = [...Deno.readDirSync(`${s}/a`)].map((e) => e.name).sort();
    results[when] = when === "before" ? { message, left } : { message };
  } finally {
    symbols.sbox_unlinkat = unlinkat;
  }
}
console.log(JSON.stringify(results));
