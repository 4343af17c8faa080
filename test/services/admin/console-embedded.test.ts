/**
 * The console on `npm start` itself, as a child process: it prints the console's URL, serves the
 * page, and its fleet figures carry the in-process edge's own metrics.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { RawDevice } from "../../harness/raw-device.ts";
import { type Embedded, startEmbedded } from "../../shared/sdk/embedded-process.ts";
import { bearer } from "./helpers.ts";

describe("the console on the embedded mode's own process", { timeout: 60_000 }, () => {
  let embedded: Embedded;

  before(async () => {
    embedded = await startEmbedded();
  });

  after(async () => {
    await embedded?.stop("SIGTERM");
  });

  test("npm start prints the console's URL, and the page is served there", async () => {
    assert.match(embedded.output(), new RegExp(`console\\s+${embedded.adminUrl}/console`));
    const page = await fetch(`${embedded.adminUrl}/console`);
    assert.equal(page.status, 200);
    assert.match(await page.text(), /console\.js/);
  });

  test("the fleet figures carry the edge's own counters, and the device's connect is among its events", async () => {
    const device = new RawDevice({ deviceId: "embedded-console-1" });
    await device.connect(embedded.devicePort);
    device.request("e-1", "echo", { a: 1 });
    await device.waitFor(() => device.answeredIds().has("e-1"), { what: "the echo answer" });
    const headers = bearer(embedded.adminToken);
    const stats = (await (await fetch(`${embedded.adminUrl}/v1/fleet/stats`, { headers })).json()) as {
      edges: { metrics: { requests: number; connections: number } | null }[];
    };
    assert.equal(stats.edges.length, 1);
    assert.ok((stats.edges[0]?.metrics?.requests ?? 0) >= 1, JSON.stringify(stats));
    assert.equal(stats.edges[0]?.metrics?.connections, 1);
    const deadline = Date.now() + 5000;
    let events: { event: string }[] = [];
    while (events.length === 0 && Date.now() < deadline) {
      const answer = await fetch(`${embedded.adminUrl}/v1/devices/embedded-console-1/events`, { headers });
      events = ((await answer.json()) as { events: { event: string }[] }).events;
      if (events.length === 0) await new Promise((done) => setTimeout(done, 100));
    }
    assert.deepEqual(
      events.map((event) => event.event),
      ["connected"],
    );
    device.close();
  });
});
