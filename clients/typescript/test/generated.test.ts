import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { pathToFileURL } from "node:url";

// Run from build-test/test/: the package root is two levels up.
const root = join(import.meta.dirname, "..", "..");
const script = join(root, "scripts", "generate.mjs");
const schemaPath = join(root, "..", "..", "docs", "protocol.schema.json");

interface Generator {
  render(schema: unknown): string;
}

async function generator(): Promise<Generator> {
  return (await import(pathToFileURL(script).href)) as Generator;
}

test("src/protocol.ts is what the generator makes of docs/protocol.schema.json", async () => {
  const { render } = await generator();
  const fresh = render(JSON.parse(readFileSync(schemaPath, "utf8")));
  const committed = readFileSync(join(root, "src", "protocol.ts"), "utf8");
  assert.equal(committed, fresh, "src/protocol.ts is stale: run `npm run generate`");
  execFileSync(process.execPath, [script, "--check"]); // the CLI check agrees
});

test("a change to the schema changes the generated types (the staleness check can fail)", async () => {
  const { render } = await generator();
  const schema = JSON.parse(readFileSync(schemaPath, "utf8"));
  const before = render(schema);
  schema.$defs.SendData.properties.silent = { type: "boolean", default: false };
  const after = render(schema);
  assert.notEqual(after, before);
  assert.match(after, /readonly silent\?: boolean;/);
});

test("frame unions are discriminated on t, one member per schema mapping entry", async () => {
  const { render } = await generator();
  const schema = JSON.parse(readFileSync(schemaPath, "utf8"));
  const text = render(schema);
  for (const union of ["ClientFrame", "ServerFrame"]) {
    const mapping = schema.$defs[union].discriminator.mapping as Record<string, string>;
    for (const [t, ref] of Object.entries(mapping)) {
      const name = ref.split("/").at(-1);
      assert.match(text, new RegExp(`export interface ${name} \\{[^]*?readonly t: "${t.replace(".", "\\.")}";`));
      assert.match(text, new RegExp(`\\| ${name}[;\\n]`));
    }
  }
  // A schema whose mapping disagrees with the frame's t literal is refused.
  schema.$defs.Send.properties.t.enum = ["msg.post"];
  assert.throws(() => render(schema), /Send\.t is not the literal msg\.send/);
});
