// Copies the prebuilt browser bundles that rdev embeds for GraphiQL from
// node_modules (installed by `npm ci` from package-lock.json) into ../assets
// (or the directory given as the first argument), with LICENSES.txt: the
// licence of every package in the locked tree, since the bundles include
// their dependencies' code, and versions.json. Run by `make
// graphiql-assets`; no bundler runs, the files are the npm packages' own
// builds. The package's tests run it into a temporary directory and
// compare, so assets/ cannot drift from the lockfile.
import { copyFileSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = resolve(process.argv[2] ?? join(here, "..", "assets"));

// Each embedded file: its name under /graphiql/ and where npm put it.
const files = {
  "graphiql.min.js": "graphiql/graphiql.min.js",
  "graphiql.min.css": "graphiql/graphiql.min.css",
  "react.production.min.js": "react/umd/react.production.min.js",
  "react-dom.production.min.js": "react-dom/umd/react-dom.production.min.js",
  "plugin-explorer.umd.js": "@graphiql/plugin-explorer/dist/index.umd.js",
  "plugin-explorer.css": "@graphiql/plugin-explorer/dist/style.css",
};

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
for (const [name, from] of Object.entries(files)) {
  copyFileSync(join(here, "node_modules", from), join(out, name));
}

// Source maps name files that are not served; drop the comment so browsers
// do not ask for them.
for (const name of Object.keys(files)) {
  const path = join(out, name);
  const text = readFileSync(path, "utf8");
  writeFileSync(path, text.replace(/\n?\/[/*][#@] sourceMappingURL=\S+?(\s*\*\/)?\s*$/, "\n"));
}

const lock = JSON.parse(readFileSync(join(here, "package-lock.json"), "utf8"));
const sections = [];
for (const path of Object.keys(lock.packages).filter((p) => p !== "").sort()) {
  const entry = lock.packages[path];
  if (entry.dev) continue;
  const dir = join(here, path);
  const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
  const licenceFile = readdirSync(dir).find((f) => /^(licen[cs]e|copying)(\.(md|txt))?$/i.test(f));
  let text;
  if (licenceFile) {
    text = readFileSync(join(dir, licenceFile), "utf8").trim();
  } else if (/github\.com\/graphql\/graphiql/.test(JSON.stringify(pkg.repository))) {
    // The GraphiQL monorepo's packages share the licence shipped in graphiql.
    text = `(The package ships no licence file; it comes from the GraphiQL repository, whose licence is:)\n\n` +
      readFileSync(join(here, "node_modules", "graphiql", "LICENSE"), "utf8").trim();
  } else {
    const repo = typeof pkg.repository === "string" ? pkg.repository : pkg.repository?.url ?? "";
    text = `(The package ships no licence file; its package.json says "${pkg.license}". Source: ${repo})`;
  }
  sections.push(`${pkg.name}@${pkg.version} (${pkg.license ?? "no licence field"})\n\n${text}`);
}

// The packages whose files are copied, and their locked versions.
const copied = [...new Set(Object.values(files).map((f) => f.split("/").slice(0, f.startsWith("@") ? 2 : 1).join("/")))].sort();
const versions = Object.fromEntries(copied.map((name) => [name, lock.packages[`node_modules/${name}`].version]));
const rule = "\n\n" + "-".repeat(78) + "\n\n";
writeFileSync(
  join(out, "LICENSES.txt"),
  `rdev serves GraphiQL from the browser bundles of these npm packages, pinned in
resolvers/graphiql/npm/package-lock.json: ${copied.map((n) => `${n}@${versions[n]}`).join(", ")}.
The bundles include code from other packages of the locked tree below (graphiql.min.js
bundles graphql and graphql-ws among others). Each package's licence follows.` + rule + sections.join(rule) + "\n",
);

writeFileSync(join(out, "versions.json"), JSON.stringify(versions, null, 2) + "\n");
console.log(`graphiql-assets: ${Object.keys(files).length} files and the licences of ${sections.length} packages in ${out}`);
