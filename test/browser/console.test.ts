/**
 * The operator console in real Chromium (Debian's /usr/bin/chromium, driven by puppeteer-core;
 * nothing is downloaded), against the embedded mode, with a real device on a raw TCP connection:
 * sign in, see the edge, look the device up, push to it, kick it, see the kick in the live tail,
 * replay a dead letter and see the device answered.
 *
 * TETHER_CONSOLE_SCREENSHOTS=<dir> also saves a screenshot of each page there (docs/ keeps them).
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import puppeteer, { type Browser, type Page } from "puppeteer-core";
import { RawDevice } from "../harness/raw-device.ts";
import { type EmbeddedTether, startEmbedded } from "./embedded.ts";

const CHROMIUM = "/usr/bin/chromium";
const screenshotDir = process.env.TETHER_CONSOLE_SCREENSHOTS;
const DEVICE = "sensor-7";

/** The text of the first element matching `selector`, once it matches `pattern`. */
async function waitForText(page: Page, selector: string, pattern: RegExp, timeout = 10_000): Promise<string> {
  const handle = await page.waitForFunction(
    (sel: string, source: string, flags: string) => {
      const element = (
        globalThis as unknown as { document: { querySelector(s: string): { textContent: string | null } | null } }
      ).document.querySelector(sel);
      const text = element?.textContent ?? "";
      return new RegExp(source, flags).test(text) ? text : false;
    },
    { timeout },
    selector,
    pattern.source,
    pattern.flags,
  );
  return String(await handle.jsonValue());
}

async function screenshot(page: Page, name: string): Promise<void> {
  if (screenshotDir === undefined || screenshotDir === "") return;
  await page.screenshot({ path: join(screenshotDir, `console-${name}.png`) as `${string}.png`, fullPage: true });
}

async function go(page: Page, hash: string): Promise<void> {
  await page.evaluate((target: string) => {
    (globalThis as unknown as { location: { hash: string } }).location.hash = target;
  }, hash);
}

describe("the operator console in Chromium, on the embedded mode", { timeout: 180_000 }, () => {
  let tether: EmbeddedTether;
  let browser: Browser;
  let page: Page;
  let device: RawDevice;
  const requested: string[] = [];

  before(async () => {
    assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install -y chromium`);
    tether = await startEmbedded();
    device = new RawDevice({ deviceId: DEVICE });
    const connection = await device.connect(tether.devicePort);
    assert.ok(connection.welcome, "the device is welcomed");
    browser = await puppeteer.launch({
      executablePath: CHROMIUM,
      headless: true,
      // Root in a container has no user namespace for the sandbox.
      args: ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--no-first-run"],
    });
    page = await browser.newPage();
    await page.setViewport({ width: 1280, height: 900 });
    page.on("request", (request) => requested.push(request.url()));
  });

  after(async () => {
    device?.close();
    const child = browser?.process();
    await browser?.close().catch(() => {});
    // Whatever happened above, no Chromium outlives the test.
    if (child !== null && child !== undefined && child.exitCode === null) child.kill("SIGKILL");
    await tether?.close();
  });

  test("a wrong token is refused on the login form and the right one signs in, kept out of the URL", async () => {
    await page.goto(`${tether.adminUrl}/console`, { waitUntil: "load" });
    await page.waitForSelector("[data-test=login-form]");
    await page.type("[data-test=token]", "not-the-token");
    await page.click("[data-test=sign-in]");
    await waitForText(page, "[data-test=login-error]", /unauthorized/);
    await page.$eval("[data-test=token]", (input) => {
      (input as unknown as { value: string }).value = "";
    });
    await page.type("[data-test=token]", tether.adminToken);
    await screenshot(page, "login");
    await page.click("[data-test=sign-in]");
    await page.waitForSelector("[data-test=fleet-page]");
    assert.ok(!page.url().includes(tether.adminToken), "the token is not in the URL");
    const kept = await page.evaluate(() =>
      (globalThis as unknown as { sessionStorage: { getItem(k: string): string | null } }).sessionStorage.getItem(
        "tether.adminToken",
      ),
    );
    assert.equal(kept, tether.adminToken);
  });

  test("the fleet page shows the edge with its slot and connections, and charts requests", async () => {
    const edges = await waitForText(page, "[data-test=edges]", new RegExp(tether.edgeId));
    assert.match(edges, /Lease expires/);
    // Some traffic for the charts: the device's echo requests between two readings.
    for (let index = 0; index < 20; index += 1) device.request(`echo-${index}`, "echo", { index });
    await device.waitFor(() => device.answeredIds().size >= 20, { what: "20 echo answers" });
    const rate = await waitForText(page, "[data-test=chart-requests-latest]", /\/s$/, 15_000);
    assert.match(rate, /^[\d.]+ \/s$/);
    await waitForText(page, "[data-test=chart-round-trip-latest]", /ms$/, 15_000);
    if (screenshotDir !== undefined) {
      // A few readings' worth of steady traffic, so that the charts in the picture have lines.
      for (let index = 0; index < 48; index += 1) {
        device.request(`steady-${index}`, "echo", { index });
        await new Promise((done) => setTimeout(done, 250));
      }
    }
    await screenshot(page, "fleet");
  });

  test("the device page finds the device online on its connection, a push reaches it, and a kick closes it with bye kicked", async () => {
    await go(page, "#/device");
    await page.waitForSelector("[data-test=device-id]");
    await page.type("[data-test=device-id]", DEVICE);
    await page.click("[data-test=lookup-form] button");
    await waitForText(page, "[data-test=device-status]", /^online$/);
    const connId = device.current?.welcome?.connId;
    assert.equal(await waitForText(page, "[data-test=device-conn]", /./), connId);
    await waitForText(page, "[data-test=device-events]", /connected/);

    await page.$eval("[data-test=push-body]", (area) => {
      (area as unknown as { value: string }).value = '{"text":"from the console"}';
    });
    await page.click("[data-test=push-send]");
    await waitForText(page, "[data-test=push-result]", /^Accepted: .+ \(device online\)$/);
    await device.waitFor(() => device.framesOf("push").length === 1, { what: "the push" });
    const push = device.framesOf("push")[0]?.frame;
    assert.equal(push?.type, "note");
    assert.deepEqual(push?.body, { text: "from the console" });
    await screenshot(page, "device");

    await page.click("[data-test=kick]");
    await waitForText(page, "[data-test=kick-result]", /^Kick sent to connection /);
    await device.waitFor(() => device.framesOf("bye").length === 1, { what: "bye kicked" });
    assert.equal(device.framesOf("bye")[0]?.frame.reason, "kicked");
  });

  test("the live tail shows the kick as a disconnect with its reason, for the device filtered on", async () => {
    await go(page, `#/events/${DEVICE}`);
    await waitForText(page, "[data-test=events-status]", /live/);
    await page.waitForSelector(
      `[data-test=events-rows] tr[data-event=disconnected][data-reason=kicked][data-device="${DEVICE}"]`,
    );
    // A new connection of the device arrives live.
    await device.reconnect(tether.devicePort);
    await page.waitForFunction(
      () =>
        (
          globalThis as unknown as { document: { querySelectorAll(s: string): { length: number } } }
        ).document.querySelectorAll("[data-test=events-rows] tr[data-event=connected]").length >= 2,
      { timeout: 10_000 },
    );
    await screenshot(page, "events");
  });

  test("a dead letter is listed with its error, and replaying it answers the device", async () => {
    tether.flaky.failing = true;
    device.request("flaky-1", "flaky", { n: 1 });
    await device.waitFor(() => device.errorCodes().get("flaky-1") === "internal", { what: "the internal error" });
    tether.flaky.failing = false;

    await go(page, "#/dead-letters");
    const listed = await waitForText(page, "[data-test=dead-letters]", /flaky handler failed on purpose/);
    assert.match(listed, /flaky #flaky-1/);
    await screenshot(page, "dead-letters");
    await page.click("[data-test=replay-one]");
    await waitForText(page, "[data-test=replay-result]", /^Replayed 1: /);
    await device.waitFor(() => device.framesOf("res").some((received) => received.frame.id === "flaky-1"), {
      what: "the replayed request's answer",
    });
    const answer = device.framesOf("res").find((received) => received.frame.id === "flaky-1")?.frame;
    assert.deepEqual(answer?.body, { handled: { n: 1 } });
  });

  test("everything the console loaded came from the admin API's own origin", () => {
    assert.ok(requested.length > 0);
    const foreign = requested.filter((url) => !url.startsWith(`${tether.adminUrl}/`));
    assert.deepEqual(foreign, []);
  });
});
