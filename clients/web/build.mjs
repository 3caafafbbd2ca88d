// Bundle src/main.ts (with the client package and @msgpack/msgpack) and copy
// the page into bridge/static/app/, which the server serves at /app (the
// built files are committed: a plain `pip install` serves them, no Node needed).
//
//   node build.mjs           write bridge/static/app/
//   node build.mjs --check   exit 1 if the committed files differ from a fresh build
import { readFileSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "..", "..", "bridge", "static", "app");
const result = await build({
  entryPoints: [join(here, "src", "main.ts")],
  bundle: true,
  format: "esm",
  target: "es2022",
  minify: false,
  legalComments: "none",
  write: false,
  outfile: join(out, "app.js"),
  nodePaths: [join(here, "..", "typescript", "node_modules")],
});
const files = new Map([["app.js", result.outputFiles[0].text]]);
for (const name of ["index.html", "app.css"]) files.set(name, readFileSync(join(here, name), "utf8"));

if (process.argv.includes("--check")) {
  const stale = [...files].filter(([name, text]) => {
    try {
      return readFileSync(join(out, name), "utf8") !== text;
    } catch {
      return true;
    }
  });
  if (stale.length) {
    console.error(`bridge/static/app is stale (${stale.map(([n]) => n).join(", ")}): run \`npm run build\` in clients/web`);
    process.exit(1);
  }
  console.log("bridge/static/app matches its sources");
} else {
  mkdirSync(out, { recursive: true });
  for (const [name, text] of files) writeFileSync(join(out, name), text);
  console.log(`built ${out}`);
}
