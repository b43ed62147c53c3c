/**
 * A user of the sbox package served at ORIGIN (tests/distribution_test.ts)
 * that is granted --allow-ffi only at a prompt, after it imported the
 * package: prints the permission's state, then what creating a container
 * says.
 *
 *   deno run --allow-import=HOST tests/programs/late_ffi.ts ORIGIN ROOTFS IMAGE   (on a terminal: answer y)
 */

import type * as Sbox from "../../mod.ts";

const [origin, rootfs, image] = Deno.args;
const { BaseMounts, Container, OverlayMount, ProcUserMapper }: typeof Sbox = await import(`${origin}/mod.ts`);
console.log(`ffi ${(await Deno.permissions.request({ name: "ffi" })).state}`);
try {
  await using _container = await Container.create({
    rootfs,
    userMapper: ProcUserMapper.newRoot(),
    mounts: [new OverlayMount([image]), new BaseMounts()],
  });
  console.log("created");
} catch (err) {
  console.log(`error: ${(err as Error).message}`);
}
