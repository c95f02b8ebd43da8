// The dashboard in a real browser: Debian's Chromium driven by Playwright (playwright-core,
// no browser download), against a `gridwatch serve --demo` that the e2e test `browser`
// started. Every page at phone (360x740) and desk (1366x768) sizes: no console error, no
// failed request, no serious or critical axe-core finding; a screenshot of each.
//
// Environment: GRIDWATCH_URL, GRIDWATCH_TOKEN (admin), GRIDWATCH_SCREENSHOTS (a directory),
// CHROMIUM (the executable; /usr/bin/chromium by default).
// Prints one line per check; exits 1 naming every failure.

import { chromium, request as playwrightRequest } from "playwright-core";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

const base = process.env.GRIDWATCH_URL;
const token = process.env.GRIDWATCH_TOKEN;
const fieldToken = process.env.GRIDWATCH_FIELD_TOKEN;
const fieldLink = process.env.GRIDWATCH_FIELD_LINK;
const shots = process.env.GRIDWATCH_SCREENSHOTS;
if (!base || !token || !fieldToken || !shots) {
  console.error("GRIDWATCH_URL, GRIDWATCH_TOKEN, GRIDWATCH_FIELD_TOKEN and GRIDWATCH_SCREENSHOTS must be set");
  process.exit(2);
}
mkdirSync(shots, { recursive: true });
const axeSource = readFileSync(new URL("./node_modules/axe-core/axe.min.js", import.meta.url), "utf8");

const SIZES = {
  phone: { width: 360, height: 740 },
  desk: { width: 1366, height: 768 },
};

const failures = [];
function fail(message) {
  failures.push(message);
  console.log(`FAIL ${message}`);
}
function pass(message) {
  console.log(`ok   ${message}`);
}
function check(condition, message) {
  if (condition) pass(message);
  else fail(message);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  // The machine has no network: without these, Chromium's own connections fail, many at a time.
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
  ],
});

/// A page that records its console errors, page errors and failed requests.
async function watchedPage(context, label) {
  const page = await context.newPage();
  page.on("console", (message) => {
    if (message.type() !== "error") return;
    // The browser notes every 4xx answer in the console; a test that expects one says so.
    const status = /status of (\d{3})/.exec(message.text());
    if (status && page.expectedErrors?.has(Number(status[1]))) return;
    // With the network cut off, htmx says so of the requests it could not send.
    if (page.expectOffline && (message.text().includes("ERR_INTERNET_DISCONNECTED") || /^htmx:(sendError|afterRequest|sseError)/.test(message.text()))) return;
    fail(`${label}: console error: ${message.text()}`);
  });
  page.on("pageerror", (error) => fail(`${label}: page error: ${error.message}`));
  page.on("requestfailed", (request) => {
    const reason = request.failure()?.errorText ?? "";
    // A live feed or a refresh cut short by leaving the page is not a failure, nor is a
    // request the test made with the network cut off.
    if (reason.includes("ERR_ABORTED")) return;
    if (page.expectOffline && reason.includes("ERR_INTERNET_DISCONNECTED")) return;
    fail(`${label}: request failed: ${request.method()} ${request.url()} ${reason}`);
  });
  page.on("response", (response) => {
    if (response.status() >= 400 && !page.expectedErrors?.has(response.status())) {
      fail(`${label}: ${response.status()} for ${response.request().method()} ${response.url()}`);
    }
  });
  return page;
}

/// axe-core on the page as it is now: serious and critical findings fail.
async function accessible(page, label) {
  await page.evaluate(axeSource);
  const findings = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const result = await axe.run(document, { resultTypes: ["violations"] });
    return result.violations
      .filter((violation) => violation.impact === "serious" || violation.impact === "critical")
      .map((violation) => `${violation.id} (${violation.impact}): ${violation.nodes.map((node) => node.target.join(" ")).slice(0, 3).join(", ")}`);
  });
  check(findings.length === 0, `${label}: axe-core finds nothing serious${findings.length ? ": " + findings.join("; ") : ""}`);
}

/// Every button, link, field and choice is at least 44 px high (and wide, for choices).
async function checkTouchTargets(page, label) {
  const small = await page.evaluate(() =>
    [...document.querySelectorAll("main button, main select, main input:not([type=hidden]):not([type=radio]), main textarea, main .toggle-choices label")]
      .filter((element) => {
        const box = element.getBoundingClientRect();
        return box.height < 44 || box.width < 44;
      })
      .map((element) => element.outerHTML.slice(0, 80)),
  );
  check(small.length === 0, `${label}: touch targets of at least 44 px${small.length ? ": " + small.join(" | ") : ""}`);
  const tiny = await page.evaluate(() =>
    [...document.querySelectorAll("main label, main button, main input, main select, main textarea, main p")]
      .filter((element) => parseFloat(getComputedStyle(element).fontSize) < 16)
      .map((element) => element.outerHTML.slice(0, 60)),
  );
  check(tiny.length === 0, `${label}: text of at least 16 px${tiny.length ? ": " + tiny.join(" | ") : ""}`);
}

async function screenshot(page, name) {
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
}

/// A command through the API (what another client does while the page watches).
async function command(context, name, data) {
  const response = await context.request.post(`${base}/api/v1/commands`, {
    headers: { Authorization: `Bearer ${token}` },
    data: { command: name, data },
  });
  if (response.status() !== 201) throw new Error(`${name}: ${response.status()} ${await response.text()}`);
  const body = await response.json();
  return body.events[body.events.length - 1].global_position;
}

async function signIn(page, label, as = token) {
  await page.goto(`${base}/`);
  check(new URL(page.url()).pathname === "/signin", `${label}: a visitor is sent to sign in`);
  await accessible(page, `${label} sign-in page`);
  await screenshot(page, `signin-${label}`);
  await page.getByLabel(/Token|令牌/).fill(as);
  await page.getByRole("button", { name: /Sign in|登录/ }).click();
  await page.waitForURL(`${base}/`);
  check((await page.locator("#board").count()) === 1, `${label}: signed in, the board is shown`);
}

try {
  for (const [size, viewport] of Object.entries(SIZES)) {
    const context = await browser.newContext({ viewport, locale: "en-US" });
    const page = await watchedPage(context, size);
    await signIn(page, size);
    const gates = await page.locator("li.gate").count();
    check(gates >= 8, `${size}: the board lists the demo's gates (${gates})`);
    const words = await page.locator("li.gate .badge").allInnerTexts();
    check(words.every((word) => word.trim().length > 0), `${size}: every gate's state is in words`);
    await accessible(page, `${size} board`);
    await screenshot(page, `board-${size}`);

    // Gate staff on a phone record a check through the form; this board changes by itself.
    {
      // The field pages at this run's size (a phone's, or a desk's for a supervisor's check).
      const phone = await browser.newContext({ viewport, locale: "en-US", hasTouch: size === "phone", isMobile: size === "phone" });
      const form = await watchedPage(phone, `${size} field phone`);
      if (size === "phone") {
        // Signed in with the one-time link an admin sent; the link then works no more.
        await form.goto(fieldLink);
        await accessible(form, "sign-in link page");
        await form.getByRole("button", { name: "Sign in" }).click();
        await form.waitForURL(`${base}/`);
        check((await form.locator(".who").innerText()).includes("grid-2"), "phone: signed in with the one-time link");
        const other = await browser.newContext({ viewport: SIZES.phone });
        const again = await watchedPage(other, "spent link");
        again.expectedErrors = new Set([401]);
        await again.goto(fieldLink);
        await again.getByRole("button", { name: "Sign in" }).click();
        await again.waitForLoadState();
        check((await again.locator("[role=alert]").innerText()).includes("used already"), "a spent link signs no one in");
        await other.close();
      } else {
        await signIn(form, `${size} field phone`, fieldToken);
      }
      await form.goto(`${base}/gates/longwu-main/check`);
      await accessible(form, `${size} check form`);
      await checkTouchTargets(form, `${size} check form`);
      await screenshot(form, `check-${size}`);
      await form.getByRole("radiogroup", { name: "Staff on duty at the gate" }).getByText("Yes").click();
      await form.getByRole("radiogroup", { name: "Queue orderly" }).getByText("No").click();
      await form.getByText("Issue found").click();
      await form.getByLabel("Weather").selectOption("rain");
      await form.getByLabel("Note").fill("couriers queue past the gate");
      const before = Number(await page.locator("#board").getAttribute("data-position"));
      const started = Date.now();
      await form.getByRole("button", { name: "Record the check" }).click();
      await form.waitForURL(/\/gates\/longwu-main\/check\?done=/);
      check((await form.getByRole("status").innerText()).includes("Recorded"), `${size}: the form says the check is recorded`);
      await page.waitForFunction(
        (was) => Number(document.querySelector("#board")?.dataset.position) > was,
        before,
        { timeout: 10_000 },
      );
      const last = await page.locator("[data-checkpoint='longwu-main'] .last").innerText();
      check(/Grid worker \(south\): issue found/.test(last), `${size}: the board shows the form's check without a reload (${Date.now() - started} ms)`);
      if (size === "desk") {
        // The issue form and an issue's page at desk size too.
        await form.goto(`${base}/gates/longwu-main/issue`);
        await accessible(form, "desk issue form");
        await screenshot(form, "raise-desk");
        await form.goto(`${base}/issues`);
        await form.locator("li.issue-row a").first().click();
        await form.waitForURL(/\/issues\/./);
        await accessible(form, "desk issue page");
        await screenshot(form, "issue-desk");
      }
      if (size === "phone") {
        // No signal: the check waits on the phone, then goes once when the signal is back.
        await form.goto(`${base}/gates/longwu-main/check`);
        await form.evaluate(() => navigator.serviceWorker.ready);
        const eventId = await form.locator("[name=event_id]").inputValue();
        await phone.setOffline(true);
        form.expectOffline = true;
        await form.getByText("All in order").click();
        await form.getByLabel("Note").fill("recorded with no signal");
        await form.getByRole("button", { name: "Record the check" }).click();
        await form.locator("[data-outbox-status]:not([hidden])").waitFor();
        const saved = await form.locator("[data-outbox-status]").innerText();
        check(/Saved on this phone, not sent/.test(saved), `phone offline: "${saved}"`);
        check(/1 saved on this phone, not sent/.test(await form.locator("#outbox-banner").innerText()), "phone offline: the banner counts it");
        check((await form.locator("[name=event_id]").inputValue()) !== eventId, "phone offline: the next record gets a new event id");
        const find = async () => {
          const response = await context.request.get(`${base}/api/v1/events?from=1&limit=10000`, { headers: { Authorization: `Bearer ${token}` } });
          return (await response.json()).filter((event) => event.event_id === eventId);
        };
        check((await find()).length === 0, "phone offline: nothing reached the server");
        const waiting = await form.evaluate(() => gridwatchOutbox.all());
        await phone.setOffline(false);
        form.expectOffline = false;
        await form.locator("#outbox-sent:not([hidden])").waitFor({ timeout: 10_000 });
        check(/1 saved record\(s\) sent/.test(await form.locator("#outbox-sent").innerText()), "phone back online: the saved check is sent");
        const recorded = await find();
        check(recorded.length === 1 && recorded[0].occurred_at < recorded[0].recorded_at,
          `phone back online: recorded once, at the moment it was saved (${recorded[0]?.occurred_at} < ${recorded[0]?.recorded_at})`);
        // Sent again (a retry after a lost answer): still once.
        await form.evaluate((entry) => gridwatchOutbox.save(entry), waiting[0]);
        await form.evaluate(() => window.dispatchEvent(new Event("online")));
        await form.waitForFunction(() => document.getElementById("outbox-banner").hidden);
        check((await find()).length === 1, "phone: a record sent twice is recorded once");

        // Bad input: told next to the field, nothing recorded.
        await form.goto(`${base}/gates/longwu-main/issue`);
        await accessible(form, "issue form");
        await checkTouchTargets(form, "issue form");
        await screenshot(form, "raise-phone");
        await form.evaluate(() => document.querySelectorAll("[required]").forEach((field) => field.removeAttribute("required")));
        form.expectedErrors = new Set([422]);
        await form.getByRole("button", { name: "Raise the issue" }).click();
        await form.waitForLoadState();
        const message = await form.locator("#summary-error").innerText();
        check(message.includes("Say in a line what is wrong."), `phone: a missing summary is told next to its field: "${message}"`);
        check((await form.locator("#summary").getAttribute("aria-invalid")) === "true", "phone: the field is marked invalid");
        await accessible(form, "issue form with errors");
        form.expectedErrors = undefined;
        await form.getByLabel("What is it about").selectOption("courier_congestion");
        await form.getByText("High").click();
        await form.getByLabel("In a line").fill("tricycles block the gate");
        await form.getByRole("button", { name: "Raise the issue" }).click();
        await form.waitForURL(/\/issues\/issue-/);
        check((await form.locator("h1").innerText()).includes("tricycles block the gate"), "phone: the issue page opens");
        await accessible(form, "issue page");
        await screenshot(form, "issue-phone");
      }
      await phone.close();
    }

    if (size === "desk") {
      // A check recorded elsewhere shows on this board without a reload.
      const before = await page.locator("#board").getAttribute("data-position");
      const started = Date.now();
      const position = await command(context, "record-patrol-check", {
        checkpoint_id: "longwu-main",
        staff_id: "grid-2",
        result: "issue_found",
      });
      await page.waitForFunction(
        (wanted) => Number(document.querySelector("#board")?.dataset.position) >= wanted,
        position,
        { timeout: 10_000 },
      );
      const last = await page.locator("[data-checkpoint='longwu-main'] .last").innerText();
      check(
        Number(before) < position && /issue found/.test(last),
        `desk: the board changed without a reload (${Date.now() - started} ms): "${last.trim()}"`,
      );
      const reloaded = await page.evaluate(() => performance.getEntriesByType("navigation").length);
      check(reloaded === 1, "desk: the page was not reloaded");

      // The connection drops; a check is recorded meanwhile; the board catches up once the
      // connection is back (the live board resumes from the last position it told).
      page.expectOffline = true;
      await context.setOffline(true);
      const outside = await playwrightRequest.newContext();
      const missed = await outside.post(`${base}/api/v1/commands`, {
        headers: { Authorization: `Bearer ${token}` },
        data: { command: "record-patrol-check", data: { checkpoint_id: "feicui-main", staff_id: "grid-1", result: "issue_found" } },
      });
      const missedAt = (await missed.json()).events[0].global_position;
      await outside.dispose();
      await page.waitForTimeout(1500);
      await context.setOffline(false);
      await page.waitForFunction(
        (wanted) => Number(document.querySelector("#board")?.dataset.position) >= wanted,
        missedAt,
        { timeout: 30_000 },
      );
      page.expectOffline = false;
      const feicui = await page.locator("[data-checkpoint='feicui-main'] .last").innerText();
      check(/issue found/.test(feicui), `desk: after a dropped connection the board caught up without a reload: "${feicui.trim()}"`);
    }

    if (size === "desk" || size === "phone") {
      // The replay of the courier day: its integrity, and the slider showing Longwu's gate
      // before and after the courier issue.
      if (size === "phone") {
        await page.goto(`${base}/days/2019-06-01/replay`);
        check(/Not sealed yet/.test(await page.locator(".integrity").innerText()), "replay: a day without a seal says so");
        const sealed = await context.request.post(`${base}/api/v1/days/2020-02-20/seal`, { headers: { Authorization: `Bearer ${token}` } });
        check([200, 201].includes(sealed.status()), `the day is sealed on demand (${sealed.status()})`);
      }
      await page.goto(`${base}/days/2020-02-20/replay`);
      const sealedWords = await page.locator(".integrity").innerText();
      // The desk's late arrivals show as not sealed yet, or, if the server's minute sealer
      // came first, as covered by an addendum.
      check(size === "desk" ? /later arrivals|Sealed and verified \(2 seals/.test(sealedWords) : /Sealed and verified \(1/.test(sealedWords),
        `${size} replay: the day's integrity: "${sealedWords.trim()}"`);
      await accessible(page, `${size} replay`);
      const raised = page.locator("li.event", { hasText: "courier congestion" });
      const index = Number(await raised.getAttribute("data-index"));
      const longwu = () => page.locator("#moment [data-checkpoint='longwu-main']");
      const slide = async (to) => {
        await page.evaluate((value) => {
          const range = document.getElementById("step");
          range.value = String(value);
          range.dispatchEvent(new Event("input", { bubbles: true }));
        }, to);
        await page.waitForFunction((value) => document.querySelector("#moment li.event.current")?.dataset.index === String(value) || (value === 0 && !document.querySelector("#moment li.event.current")), to);
      };
      await slide(index - 1);
      check((await longwu().getAttribute("data-state")) !== "issue" && (await longwu().locator(".issues").count()) === 0,
        `${size} replay: no open issue at Longwu before the courier issue was raised (step ${index - 1})`);
      await page.getByRole("button", { name: /Next/ }).click();
      await page.waitForFunction((value) => document.querySelector("#moment li.event.current")?.dataset.index === String(value), index);
      const issues = await longwu().locator(".issues").innerText();
      check((await longwu().getAttribute("data-state")) === "issue" && /courier/i.test(issues),
        `${size} replay: the open courier issue after it (the Next button): "${issues.trim()}"`);
      await screenshot(page, `replay-${size}`);
      await page.goto(`${base}/days/2020-02-21/replay`);
      const resolvedLine = await page.locator("li.event", { hasText: "Resolved:" }).first().innerText();
      const stateAtEnd = await longwu().getAttribute("data-state");
      check(stateAtEnd !== "issue" && (await longwu().locator(".issues").count()) === 0,
        `${size} replay of 2020-02-21: Longwu's courier issue is resolved by the day's end ("${resolvedLine.trim()}")`);
      if (size === "phone") {
        // A late arrival for the sealed day: the desk run then sees it unsealed.
        const late = await context.request.post(`${base}/api/v1/commands`, {
          headers: { Authorization: `Bearer ${token}` },
          data: { command: "record-field-note", data: { author: "cadre-1", text: "paper record of the evening, typed in late" }, occurred_at: "2020-02-20T20:30:00+08:00" },
        });
        check(late.status() === 201, `a late arrival for the sealed day is recorded (${late.status()})`);
      }
      await page.goto(`${base}/`);
    }

    // The issues list and a gate's poster.
    await page.goto(`${base}/issues`);
    await accessible(page, `${size} issues`);
    check((await page.locator("li.issue-row").count()) > 0, `${size}: the issues list lists issues`);
    await screenshot(page, `issues-${size}`);
    await page.goto(`${base}/gates/longwu-main/poster`);
    await accessible(page, `${size} poster`);
    check((await page.locator("svg.qr[role=img]").count()) === 1, `${size}: the gate poster has its QR code`);
    await screenshot(page, `poster-${size}`);

    // The after-action report with its charts, printable, and "copy as text".
    await page.goto(`${base}/report?day=2020-02-20`);
    await accessible(page, `${size} report`);
    const charts = await page.locator("figure svg.chart[role=img]").count();
    check(charts === 3, `${size} report: three charts drawn on the server (${charts})`);
    check((await page.locator(".report-body h1").innerText()).includes("2020-02-20"), `${size} report: the server's report is shown`);
    await screenshot(page, `report-${size}`);
    if (size === "desk") {
      await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: base });
      await page.getByRole("button", { name: "Copy as text" }).click();
      await page.waitForFunction(() => document.querySelector("[data-copy-status]").textContent.length > 0);
      const copied = await page.evaluate(() => navigator.clipboard.readText());
      const expected = await page.locator("#report-text").inputValue();
      check(copied === expected && copied.includes("2020-02-20"), `desk report: "copy as text" copies the text report (${copied.length} characters)`);
      await page.emulateMedia({ media: "print" });
      check(!(await page.locator("header.top").isVisible()) && (await page.locator("svg.chart").first().isVisible()),
        "desk report: printed without the page's controls, with its charts");
      const pdf = await page.pdf({ format: "A4", printBackground: true });
      check(pdf.length > 10_000, `desk report: prints to A4 (${pdf.length} bytes of PDF)`);
      await page.emulateMedia({ media: "screen" });
    }
    await page.goto(`${base}/`);

    // The language switch, remembered.
    await page.getByRole("link", { name: "中文" }).click();
    await page.waitForURL(`${base}/`);
    check((await page.locator("html").getAttribute("lang")) === "zh-CN", `${size}: switched to Chinese`);
    check((await page.locator("h1").innerText()).includes("状态看板"), `${size}: the heading is in Chinese`);
    await accessible(page, `${size} board (Chinese)`);
    await screenshot(page, `board-zh-${size}`);
    await page.reload();
    check((await page.locator("html").getAttribute("lang")) === "zh-CN", `${size}: the choice is remembered`);
    await page.getByRole("link", { name: "English" }).click();
    await page.waitForURL(`${base}/`);
    check((await page.locator("h1").innerText()).includes("Status board"), `${size}: back in English`);
    await context.close();
  }
  // The browser's first choice decides when nothing was chosen.
  const context = await browser.newContext({ viewport: SIZES.phone, locale: "zh-CN" });
  const page = await watchedPage(context, "zh browser");
  await page.goto(`${base}/signin`);
  check((await page.locator("html").getAttribute("lang")) === "zh-CN", "a Chinese browser gets Chinese first");
  await context.close();
} catch (error) {
  fail(`the run stopped: ${error.stack ?? error}`);
} finally {
  await browser.close();
}

if (failures.length > 0) {
  console.log(`${failures.length} failure(s)`);
  process.exit(1);
}
console.log("all browser checks passed");
