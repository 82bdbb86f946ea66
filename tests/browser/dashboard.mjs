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

// Same rule as tests/common: array elements are named by stage, name, currency, segment or from>to.
function resolve(v, keyPath) {
  let cur = v;
  for (const seg of keyPath) {
    if (Array.isArray(cur)) {
      cur = cur.find((e) => e.stage === seg || e.name === seg || e.currency === seg || e.segment === seg ||
        `${e.from_stage}>${e.to_stage}` === seg);
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
  return { numbers: Object.fromEntries(shown.map(([k, v]) => [JSON.stringify(k), v])), api };
}

// The breakdown table as shown: segments in row order, and each row's best/worst cells by column.
const columns = ["segment", "new_deals", "won_deals", "win_rate", "cohort_conversion", "time_to_close_p50",
  "open_amount", "spend", "customer_acquisition_cost", "nps"];
const breakdownRows = () => page.$$eval("table.breakdown tbody tr", (trs) => trs.map((tr) => ({
  segment: tr.querySelector("td.segment").textContent,
  marks: [...tr.querySelectorAll("td")].map((td) => td.className),
})));

async function checkBreakdown(what, dimension, sort, order) {
  const { api } = await checkAgainstApi(what);
  const b = api.breakdown;
  if (!b) fail(`${what}: the API has no breakdown`);
  if (b.dimension !== dimension || b.sort !== sort || b.order !== order)
    fail(`${what}: the API breakdown is ${b.dimension}/${b.sort}/${b.order}, want ${dimension}/${sort}/${order}`);
  const rows = await breakdownRows();
  const shownOrder = rows.map((r) => r.segment);
  const apiOrder = b.segments.map((s) => s.segment);
  if (JSON.stringify(shownOrder) !== JSON.stringify(apiOrder)) fail(`${what}: rows ${shownOrder} != API ${apiOrder}`);
  if (rows.length < 3) fail(`${what}: only ${rows.length} segments`);
  // The sort itself, over the ranked segments (other and unspecified stay last).
  const ranked = b.segments.filter((s) => s.segment !== "other" && s.segment !== "unspecified");
  const tail = b.segments.slice(ranked.length).map((s) => s.segment);
  if (tail.some((s) => s !== "other" && s !== "unspecified")) fail(`${what}: a catch-all is not last: ${apiOrder}`);
  const key = (s) => sort === "segment" ? s.segment : s[sort];
  for (let i = 1; i < ranked.length; i++) {
    const [a, c] = [key(ranked[i - 1]), key(ranked[i])];
    if (a === null || c === null) continue;
    if (order === "desc" ? a < c : a > c) fail(`${what}: ${ranked[i - 1].segment} (${a}) before ${ranked[i].segment} (${c})`);
  }
  // Best and worst marks, as the API names them.
  for (const m of b.marks) {
    const col = columns.indexOf(m.column);
    for (const [mark, seg] of [["best", m.best], ["worst", m.worst]]) {
      const row = rows.find((r) => r.segment === seg);
      if (!row || row.marks[col] !== mark) fail(`${what}: ${seg} is not marked ${mark} in ${m.column}`);
    }
  }
  const marked = rows.flatMap((r) => r.marks).filter((c) => c === "best" || c === "worst").length;
  if (marked !== 2 * b.marks.length) fail(`${what}: ${marked} cells marked, the API names ${2 * b.marks.length}`);
  return b;
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
const { numbers: period30, api: api30 } = await checkAgainstApi("period 30d");
await shot("dashboard-period-30d");

// 2. The previous period: every change marker's previous value is the API's, and there are some.
if (!api30.previous) fail("30d: the API has no previous period");
const prevShown = (await numbers()).filter(([k]) => k[0] === "previous").length;
if (prevShown < 10) fail(`30d: only ${prevShown} previous-period numbers on the page`);
const deltas = await page.$$eval(".delta", (els) => els.map((e) => e.className));
if (!deltas.some((c) => c.includes("good")) || !deltas.some((c) => c.includes("bad")))
  fail(`30d: no improvement and worsening both marked: ${deltas}`);
// The API's own tiles keys: acquisition and satisfaction are shown.
for (const k of [["satisfaction", "csat"], ["satisfaction", "nps"], ["acquisition", "CNY", "customer_acquisition_cost"]]) {
  if (!(JSON.stringify(k) in period30)) fail(`30d: ${JSON.stringify(k)} is not on the page`);
}

// 3. The breakdown: by channel, most new deals first; switching dimension and sorting by a heading.
await checkBreakdown("breakdown channel", "source", "new_deals", "desc");
await page.click('nav.dimensions >> text="Team"');
await page.waitForURL(/dimension=team/);
await checkBreakdown("breakdown team", "team", "new_deals", "desc");
await page.click('table.breakdown th >> text="Win rate"');
await page.waitForURL(/sort=win_rate&order=desc/);
await checkBreakdown("breakdown team by win rate", "team", "win_rate", "desc");
await page.click('table.breakdown th >> text="Win rate"');
await page.waitForURL(/sort=win_rate&order=asc/);
await checkBreakdown("breakdown team by win rate, lowest first", "team", "win_rate", "asc");
await page.click('table.breakdown th >> text="CAC"');
await page.waitForURL(/sort=customer_acquisition_cost&order=desc/);
await checkBreakdown("breakdown team by CAC", "team", "customer_acquisition_cost", "desc");
await page.click('nav.dimensions >> text="Region"');
await page.waitForURL(/dimension=region/);
await checkBreakdown("breakdown region", "region", "customer_acquisition_cost", "desc");
// The whole page (live updates replace the table's element, so not an element screenshot).
await page.screenshot({ path: path.join(outDir, "dashboard-breakdown-region.png"), fullPage: true });
await page.goto(`${base}/?lang=en&pipeline=default&window=30d&basis=period`);

// 4. Switching window and basis changes the numbers, as the API says.
await page.click('nav[aria-label="Window"] >> text="7d"');
await page.waitForURL(/window=7d/);
const { numbers: period7 } = await checkAgainstApi("period 7d");
await shot("dashboard-period-7d");
await page.click('nav[aria-label="Basis"] >> text="Cohort"');
await page.waitForURL(/basis=cohort/);
const { numbers: cohort7 } = await checkAgainstApi("cohort 7d");
await shot("dashboard-cohort-7d");
const lead = JSON.stringify(["stages", "lead", "count"]);
if (period30[lead] === period7[lead]) fail(`window switch did not change the lead count (${period7[lead]})`);
const differs = Object.keys(cohort7).some((k) => k.startsWith('["stages"') && cohort7[k] !== period7[k]);
if (!differs) fail("basis switch changed no stage number");

// 5. New events change the page in place, without a reload.
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

// 6. Chinese, and a TV-sized screen, in both languages; the numbers stay the API's.
await page.goto(`${base}/?lang=zh`);
const h1 = await page.$eval("h1", (e) => e.textContent);
if (!h1.includes("销售漏斗")) fail(`?lang=zh heading is ${h1}`);
const zhDimensions = await page.$$eval("nav.dimensions a", (els) => els.map((e) => e.textContent));
if (JSON.stringify(zhDimensions) !== JSON.stringify(["渠道", "团队", "区域", "负责人"])) fail(`zh dimensions: ${zhDimensions}`);
await checkAgainstApi("zh");
await shot("dashboard-zh-1280x720");
await page.setViewportSize({ width: 1920, height: 1080 });
for (const lang of ["en", "zh"]) {
  await page.goto(`${base}/?lang=${lang}`);
  await checkAgainstApi(`${lang} 1920x1080`);
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  if (width > 1920) fail(`${lang} 1920x1080: the page is ${width}px wide`);
  await shot(`dashboard-${lang}-1920x1080`);
}

// 7. Hostile CRM strings are shown as text and never run.
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
