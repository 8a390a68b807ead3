// The API docs in a real browser: Debian's chromium, headless, driven by playwright-core, loads
// <API_URL>/api/docs and checks that every operation of the document is rendered, that the
// Authorize dialog takes a Clerk bearer token, that "Try it out" reaches the API, and that
// nothing on the page failed: no console error, no CSP violation, no failed request.
//
// Usage: PLAYWRIGHT_MODULE=.../playwright-core/index.mjs node scripts/docs-browser.mjs <API_URL> [TOKEN]
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

const { chromium } = await import(process.env.PLAYWRIGHT_MODULE ?? "playwright-core");
const apiUrl = (process.argv[2] ?? "").replace(/\/$/, "");
const token = process.argv[3] ?? "";
if (!apiUrl) {
  console.error("usage: docs-browser.mjs <API_URL> [TOKEN]");
  process.exit(2);
}
const TIMEOUT_MS = Number(process.env.BROWSER_TIMEOUT_MS ?? 30000);

const problems = [];
const fail = (what) => problems.push(what);

// The document the page should render, fetched the way the page fetches it.
const doc = await (await fetch(`${apiUrl}/api/docs.json`)).json();
const methods = ["get", "put", "post", "delete", "patch", "head", "options", "trace"];
const operations = Object.entries(doc.paths).flatMap(([path, item]) =>
  methods.filter((m) => item[m]).map((m) => ({ method: m, path, op: item[m] })),
);

const profile = await mkdtemp(join(tmpdir(), "baatcheet-chromium-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  headless: true,
  timeout: TIMEOUT_MS,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
  ],
});
try {
  context.setDefaultTimeout(TIMEOUT_MS);
  const page = context.pages()[0] ?? (await context.newPage());
  // Injected by the browser itself (not by the page), so the page's CSP does not apply to it.
  await page.addInitScript(() => {
    window.__cspViolations = [];
    document.addEventListener("securitypolicyviolation", (e) =>
      window.__cspViolations.push(`${e.violatedDirective} blocked ${e.blockedURI || "inline"} (${e.sourceFile}:${e.lineNumber})`),
    );
  });
  page.on("console", (msg) => {
    if (msg.type() === "error") fail(`console error: ${msg.text()}`);
  });
  page.on("pageerror", (err) => fail(`uncaught: ${err.message}`));
  page.on("requestfailed", (req) => fail(`request failed: ${req.url()} (${req.failure()?.errorText})`));
  page.on("response", (res) => {
    if (res.status() >= 400) fail(`HTTP ${res.status()} for ${res.url()}`);
  });

  let summary = "";
  try {
    summary = await exercise(page);
  } catch (err) {
    fail(`step failed: ${String(err.message).split("\n")[0]}`);
  }
  const violations = await page.evaluate(() => window.__cspViolations ?? []);
  for (const v of violations) fail(`CSP violation: ${v}`);

  if (problems.length === 0) {
    console.log(`docs in chromium: ok (${summary}, no console errors, no CSP violations)`);
  } else {
    console.error(`docs in chromium: ${problems.length} problem(s)${summary ? ` (${summary})` : ""}`);
    for (const p of problems) console.error(`  - ${p}`);
  }
} finally {
  await context.close();
  await rm(profile, { recursive: true, force: true });
}
process.exit(problems.length === 0 ? 0 : 1);

// The page as a user meets it; returns a one-line summary.
async function exercise(page) {
  const res = await page.goto(`${apiUrl}/api/docs`, { waitUntil: "load" });
  const csp = res?.headers()["content-security-policy"] ?? "";
  if (!csp.includes("script-src 'self'")) fail(`page served without the project's CSP: ${csp}`);

  // Every operation rendered, by method and path.
  await page.waitForSelector(".opblock", { state: "attached" });
  const rendered = await page.$$eval(".opblock", (blocks) =>
    blocks.map((b) => {
      const method = b.querySelector(".opblock-summary-method")?.textContent?.trim().toLowerCase();
      const path = b.querySelector(".opblock-summary-path")?.getAttribute("data-path");
      return `${method} ${path}`;
    }),
  );
  for (const { method, path } of operations) {
    if (!rendered.includes(`${method} ${path}`)) fail(`operation not rendered: ${method.toUpperCase()} ${path}`);
  }

  // Authorize: the Clerk bearer scheme, with a field for the token.
  await page.click("button.authorize");
  const dialog = page.locator(".modal-ux");
  await dialog.waitFor();
  const dialogText = await dialog.innerText();
  if (!/clerk/.test(dialogText) || !/Bearer/.test(dialogText)) fail(`Authorize dialog lacks the Clerk bearer scheme: ${dialogText}`);
  await dialog.locator("input").first().fill(token || "not-a-real-token");
  await dialog.locator("button.modal-btn.auth.authorize").click();
  await dialog.locator("button.btn-done").click();

  // Try it out: a GET without parameters, a secured one when a token is given.
  const candidates = operations.filter(
    ({ method, op }) => method === "get" && !(op.parameters ?? []).some((p) => p.required),
  );
  const secured = token && candidates.find(({ op }) => (op.security ?? []).length > 0);
  const target = secured || candidates.find(({ path }) => path === "/live") || candidates[0];
  const block = page.locator(`.opblock-get:has(.opblock-summary-path[data-path="${target.path}"])`).first();
  await block.locator(".opblock-summary").click();
  await block.locator("button.try-out__btn").click();
  await block.locator("button.execute").click();
  const status = (await block.locator(".live-responses-table tbody .response-col_status").first().innerText()).trim();
  if (status !== "200") fail(`Try it out GET ${target.path}: ${status}`);

  return `${rendered.length} operations rendered, Try it out GET ${target.path} -> ${status}`;
}
