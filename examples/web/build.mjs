// Builds the example into dist/ (or the directory given with --outdir): the
// page and one bundle of src/main.js with its npm dependencies. With --serve
// it serves dist/ at http://localhost:5173 (on loopback only) and rebuilds on
// every request.
import { copyFileSync, mkdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import * as esbuild from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const { values } = parseArgs({
  options: {
    outdir: { type: "string", default: join(here, "dist") },
    serve: { type: "boolean", default: false },
    port: { type: "string", default: "5173" },
  },
});
const outdir = resolve(values.outdir);
mkdirSync(outdir, { recursive: true });
for (const f of ["index.html", "style.css"]) copyFileSync(join(here, "src", f), join(outdir, f));

const options = {
  entryPoints: [join(here, "src", "main.js")],
  bundle: true,
  format: "esm",
  target: "es2022",
  minify: true,
  sourcemap: true,
  outfile: join(outdir, "app.js"),
  logLevel: "info",
};

if (values.serve) {
  const ctx = await esbuild.context(options);
  const { port } = await ctx.serve({ servedir: outdir, host: "127.0.0.1", port: Number(values.port) });
  console.log(`serving ${outdir} at http://localhost:${port}/`);
} else {
  await esbuild.build(options);
}
