// Drives Debian's Chromium (headless) against a running funnelwatch.
// Usage: node dashboard.mjs BASE_URL EVENTS_FILE EXTRA_EVENTS_FILE ARTIFACT_DIR
// Exits non-zero with a FAIL line on the first failed check.
import fs from "node:fs";
import path from "node:path";
import { chromium } from "playwright-core";

const [base, eventsFile, extraFile, outDir] = process.argv.slice(2);
fs.mkdirSync(outDir, { recursive: true });
const problems = [];
function fail(msg) {
  console.error(`FAIL: ${msg}`);
  if (problems.length) console.error(problems.join("\n"));
  process.exit(1);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic"],
});
const page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
page.on("console", (m) => { if (m.type() === "error") problems.push(`console error: ${m.text()}`); });
page.on("pageerror", (e) => problems.push(`page error: ${e}`));
page.on("dialog", (d) => { problems.push(`dialog opened: ${d.message()}`); d.dismiss(); });

const getJson = async (p) => (await fetch(base + p)).json();
const pipelines = (await getJson("/api/pipelines")).pipelines;

// Same rule as tests/common: array elements are named by stage, name, currency or from>to.
function resolve(v, keyPath) {
  let cur = v;
  for (const seg of keyPath) {
    if (Array.isArray(cur)) {
      cur = cur.find((e) => e.stage === seg || e.name === seg || e.currency === seg || `${e.from_stage}>${e.to_stage}` === seg);
    } else if (cur && typeof cur === "object") {
      cur = cur[seg];
    } else {
      return undefined;
    }
  }
  return cur;
}

const numbers = () => page.$$eval("[data-key]", (els) => els.map((e) => [JSON.parse(e.dataset.key), Number(e.dataset.value)]));
const query = () => new URL(page.url()).search.slice(1);

async function checkAgainstApi(what) {
  const shown = await numbers();
  const api = await getJson(`/api/funnel?${query()}`);
  if (shown.length < 20) fail(`${what}: only ${shown.length} numbers on the page`);
  for (const [keyPath, value] of shown) {
    const want = resolve(api, keyPath);
    if (keyPath[0] !== "freshness" && want !== value) fail(`${what}: page shows ${value} at ${JSON.stringify(keyPath)}, API says ${want}`);
  }
  return Object.fromEntries(shown.map(([k, v]) => [JSON.stringify(k), v]));
}

async function shot(name) {
  await page.screenshot({ path: path.join(outDir, `${name}.png`) });
}

// 1. The default view: one bar per stage, numbers as the API says.
await page.goto(`${base}/?lang=en&pipeline=default&window=30d&basis=period`);
const stages = pipelines.find((p) => p.id === "default").stages.map((s) => s.id);
const bars = await page.$$eval("svg.funnel rect.bar", (els) => els.map((e) => e.dataset.stage));
if (JSON.stringify(bars) !== JSON.stringify(stages)) fail(`bars ${bars} != stages ${stages}`);
const svgTitle = await page.$eval("svg.funnel title", (t) => t.textContent);
if (!svgTitle) fail("the funnel SVG has no title");
const period30 = await checkAgainstApi("period 30d");
await shot("dashboard-period-30d");

// 2. Switching window and basis changes the numbers, as the API says.
await page.click('nav[aria-label="Window"] >> text="7d"');
await page.waitForURL(/window=7d/);
const period7 = await checkAgainstApi("period 7d");
await shot("dashboard-period-7d");
await page.click('nav[aria-label="Basis"] >> text="Cohort"');
await page.waitForURL(/basis=cohort/);
const cohort7 = await checkAgainstApi("cohort 7d");
await shot("dashboard-cohort-7d");
const lead = JSON.stringify(["stages", "lead", "count"]);
if (period30[lead] === period7[lead]) fail(`window switch did not change the lead count (${period7[lead]})`);
const differs = Object.keys(cohort7).some((k) => k.startsWith('["stages"') && cohort7[k] !== period7[k]);
if (!differs) fail("basis switch changed no stage number");

// 3. New events change the page in place, without a reload.
await page.evaluate(() => { window.__sameDocument = true; });
const ingestedKey = '[data-key=\'["freshness","events_ingested"]\']';
const before = Number(await page.$eval(ingestedKey, (e) => e.dataset.value));
const extra = fs.readFileSync(extraFile, "utf8");
fs.appendFileSync(eventsFile, extra);
const added = extra.split("\n").filter((l) => l.trim()).length;
await page.waitForFunction(([sel, want]) => {
  const e = document.querySelector(sel);
  return e && Number(e.dataset.value) >= want;
}, [ingestedKey, before + added], { timeout: 30000 });
if (!(await page.evaluate(() => window.__sameDocument === true))) fail("the page reloaded");
await checkAgainstApi("after new events");
await shot("dashboard-live-update");

// 4. Chinese, and a TV-sized screen.
await page.goto(`${base}/?lang=zh`);
const h1 = await page.$eval("h1", (e) => e.textContent);
if (!h1.includes("销售漏斗")) fail(`?lang=zh heading is ${h1}`);
await shot("dashboard-zh");
await page.setViewportSize({ width: 1920, height: 1080 });
await page.goto(`${base}/?lang=en`);
await shot("dashboard-1920x1080");

// 5. Hostile CRM strings are shown as text and never run.
await page.goto(`${base}/?pipeline=xss&window=30d&lang=en`);
const injected = await page.evaluate(() => ({
  imgs: document.querySelectorAll('img[src="x"]').length,
  scripts: [...document.scripts].map((s) => s.src || "inline"),
  text: document.body.textContent,
}));
if (injected.imgs !== 0) fail("an injected <img> was created");
if (injected.scripts.length !== 1 || !injected.scripts[0].endsWith("/static/app.js")) fail(`scripts: ${injected.scripts}`);
if (!injected.text.includes("<script>alert(1)</script>") || !injected.text.includes('"><img src=x onerror=alert(1)>'))
  fail("the hostile strings are not shown as text");
await shot("dashboard-hostile-strings");

await browser.close();
if (problems.length) fail("problems while browsing");
console.log("browser checks passed");
