/**
 * What sbox says when the kernel refuses something, from the facts given
 * (a mount table): the layer an overlay stacks on.
 */

import assert from "node:assert/strict";
import { overlayLayerPaths, overlayStackingProblem } from "../src/mount_refusals.ts";
import { parseMountInfo } from "../src/sys.ts";
import { scratchDir, skipUnlessRoot } from "./fixtures.ts";

// The kernel writes an overlay's options with mountinfo's octal escapes
// over overlayfs's own: the layer "l a:b,c" of a lowerdir is
// "l\040a\134:b\134\054c". Read with the escapes kept, the path named
// nothing, and a stacked layer was "probably" one instead of named.
Deno.test("overlayStackingProblem names a stacked layer whose path has a space, a colon or a comma", () => {
  const mounts = parseMountInfo([
    "1 1 0:1 / / rw - ext4 /dev/sda rw",
    "60 1 0:40 / /d rw - tmpfs t rw",
    // An overlay at "/d/o 1" (its layers on the tmpfs), then one with a layer inside it.
    "69 60 0:41 / /d/o\\0401 rw,relatime - overlay overlay rw,lowerdir=/d/img,upperdir=/d/u1,workdir=/d/w1",
    "70 60 0:42 / /d/o2 rw,relatime - overlay overlay " +
    "rw,lowerdir=/d/o\\0401/x\\134:y\\134\\054z:/d/plain,upperdir=/d/u\\0402,workdir=/d/w2,uuid=on",
  ].join("\n"));
  assert.deepEqual(overlayLayerPaths(mounts[3].superOptions), [
    "/d/o 1/x:y,z",
    "/d/plain",
    "/d/u 2",
    "/d/w2",
  ]);
  const problem = overlayStackingProblem([["the image", "/d/o2/sub"]], [], mounts, undefined, (p) => p);
  assert.match(
    problem!,
    /\(mounted on \/d\/o2\), which has an overlay among its own layers \(\/d\/o 1\/x:y,z\)/,
  );
});

Deno.test("overlay layer paths: data layers, lowerdir+ and datadir+ as they are, escaped escapes", () => {
  // "::" marks data layers (no empty layer); a "\\" escaped before a ":" ends a layer.
  assert.deepEqual(overlayLayerPaths("rw,lowerdir=/a\\134\\134:/b::/data,upperdir=/u,workdir=/w"), [
    "/a\\",
    "/b",
    "/data",
    "/u",
    "/w",
  ]);
  // lowerdir+ and datadir+ take a path each, with no escapes of overlayfs:
  // a ":" or "\\" is part of the name.
  assert.deepEqual(
    overlayLayerPaths("rw,lowerdir+=/l\\0401:2,lowerdir+=/x\\134y,datadir+=/d\\054e,upperdir=/u,workdir=/w"),
    ["/l 1:2", "/x\\y", "/d,e", "/u", "/w"],
  );
  // A newline in a path (\012) is a path too.
  assert.deepEqual(overlayLayerPaths("rw,upperdir=/u\\012v,workdir=/w"), ["/u\nv", "/w"]);
});

const KERNEL_OVERLAY_TEST = "overlay layer paths are read back from the options the kernel really writes";
Deno.test({
  name: KERNEL_OVERLAY_TEST,
  ignore: skipUnlessRoot(KERNEL_OVERLAY_TEST, "it mounts an overlay in a mount namespace of its own"),
}, async () => {
  const dir = scratchDir("overlay-names-");
  try {
    const layers = [`${dir}/l a:b,c\\d`, `${dir}/tab\there`, `${dir}/u p`, `${dir}/w`];
    for (const layer of [...layers, `${dir}/m`]) Deno.mkdirSync(layer);
    // overlayfs's own escapes for a lowerdir, upperdir and workdir: "\" before ":", "," and "\".
    const escape = (path: string) => path.replace(/[\\:,]/g, "\\$&");
    const options = `lowerdir=${escape(layers[0])}:${escape(layers[1])},upperdir=${escape(layers[2])},` +
      `workdir=${escape(layers[3])}`;
    const output = await new Deno.Command("unshare", {
      args: [
        "-m",
        "--propagation",
        "private",
        "sh",
        "-c",
        'mount -t overlay overlay -o "$1" "$2" && cat /proc/self/mountinfo',
        "sh",
        options,
        `${dir}/m`,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
    const overlay = parseMountInfo(new TextDecoder().decode(output.stdout)).find((m) =>
      m.path === `${dir}/m`
    );
    assert.ok(overlay, "the overlay in mountinfo");
    assert.deepEqual(overlayLayerPaths(overlay.superOptions), layers);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
