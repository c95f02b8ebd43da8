// The dashboard's benchmark (not a test): run by ./bench-dashboard.sh against a release
// `gridwatch serve` it started. Prints, each next to a baseline measured in the same run:
// - the board page's weight: HTML + CSS + JS as sent compressed (brotli), budget 100 KB;
// - the time from a command's acknowledgement to the board's change in the browser, p50 and
//   p99 over 100 commands, next to the same event's arrival on the raw live feed;
// - the board's render time with 2,000 checkpoints, next to the sign-in page's.
//
// Environment: GRIDWATCH_URL, GRIDWATCH_TOKEN (admin), CHROMIUM. It registers the 2,000
// checkpoints itself.

import { chromium } from "playwright-core";
import http from "node:http";

const base = process.env.GRIDWATCH_URL;
const token = process.env.GRIDWATCH_TOKEN;
const auth = { Authorization: `Bearer ${token}` };
const SITES = 20;
const GATES_PER_SITE = 100;

/// The bytes of `path` as sent with `Accept-Encoding: br` (and the encoding used).
function compressedSize(path, cookie) {
  return new Promise((resolve, reject) => {
    const request = http.get(`${base}${path}`, { headers: { "Accept-Encoding": "br", Cookie: cookie ?? "" } }, (response) => {
      let bytes = 0;
      response.on("data", (chunk) => { bytes += chunk.length; });
      response.on("end", () => resolve({ bytes, encoding: response.headers["content-encoding"] ?? "identity", status: response.statusCode }));
    });
    request.on("error", reject);
  });
}

function percentile(values, p) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function command(name, data) {
  const response = await fetch(`${base}/api/v1/commands`, {
    method: "POST",
    headers: { ...auth, "Content-Type": "application/json" },
    body: JSON.stringify({ command: name, data }),
  });
  if (response.status !== 201) throw new Error(`${name}: ${response.status} ${await response.text()}`);
  const body = await response.json();
  return body.events[body.events.length - 1].global_position;
}

// 2,000 gates in 20 sites of the demo's grid, registered through the API (8 at a time).
const gates = [];
for (let site = 0; site < SITES; site++) {
  await command("register-site", { site_id: `bench-site-${site}`, grid_id: "minxin-grid-3", name: `Bench site ${site}`, kind: "residential_compound" });
  const batch = [];
  for (let gate = 0; gate < GATES_PER_SITE; gate++) {
    const id = `bench-${site}-${gate}`;
    gates.push(id);
    batch.push(id);
  }
  for (let k = 0; k < batch.length; k += 8) {
    await Promise.all(batch.slice(k, k + 8).map((id) => command("register-checkpoint", { checkpoint_id: id, site_id: `bench-site-${site}`, name: `Gate ${id}` })));
  }
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"],
});
const context = await browser.newContext({ viewport: { width: 1366, height: 768 } });
const page = await context.newPage();
await page.goto(`${base}/signin`);
await page.getByLabel("Token").fill(token);
await page.getByRole("button", { name: "Sign in" }).click();
await page.waitForURL(`${base}/`);
const cookie = (await context.cookies()).map((c) => `${c.name}=${c.value}`).join("; ");

// 1. Weight of the board page (with the 2,000 gates and without).
const html = await compressedSize("/?site=bench-site-0", cookie);
const assets = await page.evaluate(() =>
  [...document.querySelectorAll("link[rel=stylesheet], script[src]")].map((element) => element.getAttribute("href") ?? element.getAttribute("src")),
);
let assetBytes = 0;
for (const asset of assets) assetBytes += (await compressedSize(asset)).bytes;
const fullHtml = await compressedSize("/", cookie);
console.log(`board page, one site (${html.encoding}): HTML ${html.bytes} B + CSS/JS ${assetBytes} B = ${((html.bytes + assetBytes) / 1024).toFixed(1)} KB (budget 100 KB)`);
console.log(`board page, all ${gates.length + 8} gates (${fullHtml.encoding}): HTML ${fullHtml.bytes} B + CSS/JS ${assetBytes} B = ${((fullHtml.bytes + assetBytes) / 1024).toFixed(1)} KB`);

// 2. Acknowledgement to the board's change, next to the raw live feed.
await page.goto(`${base}/?site=bench-site-0`);
await page.evaluate(() => {
  window.__changes = [];
  new MutationObserver(() => {
    const board = document.getElementById("board");
    if (board) window.__changes.push({ position: Number(board.dataset.position), at: Date.now() });
  }).observe(document.querySelector(".live"), { childList: true, subtree: false });
});
const feed = new AbortController();
const feedTimes = new Map();
const live = fetch(`${base}/api/v1/events/live`, { headers: auth, signal: feed.signal }).then(async (response) => {
  const decoder = new TextDecoder();
  let text = "";
  for await (const chunk of response.body) {
    text += decoder.decode(chunk, { stream: true });
    let end;
    while ((end = text.indexOf("\n\n")) >= 0) {
      const message = text.slice(0, end);
      text = text.slice(end + 2);
      const id = /^id:\s*(\d+)/m.exec(message);
      if (id) feedTimes.set(Number(id[1]), Date.now());
    }
  }
}).catch(() => {});
await new Promise((resolve) => setTimeout(resolve, 500));
const boardLatency = [];
const feedLatency = [];
const benchGates = gates.slice(0, 4);
for (let k = 0; k < 100; k++) {
  const position = await command("record-patrol-check", { checkpoint_id: benchGates[k % benchGates.length], staff_id: "grid-1", result: "ok" });
  const acked = Date.now();
  const changed = await page.waitForFunction(
    (wanted) => window.__changes.find((change) => change.position >= wanted)?.at,
    position,
    { polling: 5, timeout: 10_000 },
  );
  boardLatency.push((await changed.jsonValue()) - acked);
  const deadline = Date.now() + 5000;
  while (!feedTimes.has(position) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 2));
  feedLatency.push(Math.max(0, (feedTimes.get(position) ?? deadline) - acked));
  // One command at a time: the next waits for this one's change to be drawn.
  await new Promise((resolve) => setTimeout(resolve, 300));
}
feed.abort();
await live;
const ratio = (a, b) => (b > 0 ? (a / b).toFixed(1) : "n/a");
console.log(
  `ack -> board changed in the browser: p50 ${percentile(boardLatency, 50)} ms, p99 ${percentile(boardLatency, 99)} ms` +
    ` (raw live feed, same events: p50 ${percentile(feedLatency, 50)} ms, p99 ${percentile(feedLatency, 99)} ms;` +
    ` the board is told at once, then fetches and swaps the board)`,
);

// 3. Render time of the whole board (2,000 gates) next to the sign-in page.
async function renderTime(path, runs) {
  const times = [];
  for (let k = 0; k < runs; k++) {
    await page.goto(`${base}${path}`, { waitUntil: "load" });
    times.push(await page.evaluate(() => {
      const [navigation] = performance.getEntriesByType("navigation");
      return navigation.loadEventEnd - navigation.startTime;
    }));
  }
  return percentile(times, 50);
}
const signinContext = await browser.newContext({ viewport: { width: 1366, height: 768 } });
const signinPage = await signinContext.newPage();
const signinTimes = [];
for (let k = 0; k < 5; k++) {
  await signinPage.goto(`${base}/signin`, { waitUntil: "load" });
  signinTimes.push(await signinPage.evaluate(() => performance.getEntriesByType("navigation")[0].loadEventEnd));
}
const big = await renderTime("/", 5);
const baseline = percentile(signinTimes, 50);
console.log(`board with ${gates.length + 8} gates, navigation to load, median of 5: ${big.toFixed(0)} ms (sign-in page: ${baseline.toFixed(0)} ms; ${ratio(big, baseline)}x)`);
await browser.close();
