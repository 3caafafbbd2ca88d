import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

const root = join(import.meta.dirname, "..", "..");
const tsc = join(root, "node_modules", "typescript", "bin", "tsc");

function compile(file: string): { status: number | null; output: string } {
  const r = spawnSync(
    process.execPath,
    [tsc, "--noEmit", "--strict", "--target", "ES2022", "--module", "NodeNext", "--moduleResolution", "NodeNext", "--lib", "ES2022,DOM", file],
    { encoding: "utf8" },
  );
  return { status: r.status, output: r.stdout + r.stderr };
}

test("the frame fixture compiles: every @ts-expect-error in it is a real error", () => {
  const r = compile(join(root, "test", "types", "frames.ts"));
  assert.equal(r.status, 0, r.output);
});

test("without the markers, tsc --strict rejects each bad frame", () => {
  const source = readFileSync(join(root, "test", "types", "frames.ts"), "utf8");
  const stripped = source.replaceAll(/^[ \t]*\/\/ @ts-expect-error.*$/gm, "");
  const markers = source.split("@ts-expect-error --").length - 1;
  assert.ok(markers >= 6);
  // Same directory, so the relative import of the package still resolves.
  const file = join(root, "test", "types", `stripped-${process.pid}.ts`);
  writeFileSync(file, stripped);
  try {
    const r = compile(file);
    assert.notEqual(r.status, 0);
    // Each error sits on the line right after a marker (stripping keeps line numbers).
    const expected = source
      .split("\n")
      .flatMap((line, i) => (line.includes("@ts-expect-error --") ? [i + 2] : []));
    const lines = [...r.output.matchAll(/\((\d+),\d+\): error TS/g)].map((m) => Number(m[1]));
    assert.deepEqual([...new Set(lines)], expected, r.output);
    assert.match(r.output, /"msg\.sned"/);
    assert.match(r.output, /cid/);
  } finally {
    rmSync(file, { force: true });
  }
});
