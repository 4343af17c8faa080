/**
 * A browser as the device: Chromium (headless, driven by puppeteer-core) opens the edge's
 * WebSocket port with its own WebSocket, speaks NDJSON in text messages, and speaks MQTT 5
 * through mqtt.js's browser bundle (subprotocol `mqtt`).
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import puppeteer, { type Browser, type Page } from "puppeteer-core";
import { EchoWorker, memoryFleet, startEdge } from "./helpers.ts";

const CHROMIUM = "/usr/bin/chromium";
const MQTT_BUNDLE = fileURLToPath(new URL("../../../node_modules/mqtt/dist/mqtt.min.js", import.meta.url));

/** The part of mqtt.js's browser client the page uses. */
interface BrowserClient {
  on(event: string, listener: (...args: never[]) => void): void;
  subscribe(topic: string, options: object, done: () => void): void;
  publish(topic: string, payload: string, options: object): void;
  end(force: boolean): void;
}

describe("a browser device on the WebSocket port (Chromium)", { timeout: 60_000 }, () => {
  let browser: Browser;
  let page: Page;
  let url: string;
  const cleanup: Array<() => Promise<unknown> | unknown> = [];

  before(async () => {
    assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install -y chromium`);
    const fleet = await memoryFleet(4);
    const worker = new EchoWorker(fleet.broker, fleet.common.names);
    await worker.start();
    cleanup.push(() => worker.close());
    const { edge } = await startEdge(fleet);
    cleanup.push(() => edge.close());
    url = `ws://127.0.0.1:${edge.wsAddress().port}/`;
    browser = await puppeteer.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--no-first-run"],
    });
    cleanup.push(() => browser.close());
    // The page comes from a loopback origin, as a local web app would: Chromium's local network
    // checks refuse a loopback WebSocket from about:blank.
    const server = createServer((_request, response) => {
      response.writeHead(200, { "content-type": "text/html" });
      response.end("<!doctype html><title>device</title>");
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
    cleanup.push(() => {
      server.closeAllConnections();
      server.close();
    });
    page = await browser.newPage();
    await page.goto(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
  });
  after(async () => {
    for (const step of cleanup.reverse()) await step();
  });

  it("says hello, sends a request and gets its ack and answer as text messages", async () => {
    const frames = await page.evaluate(
      (wsUrl) =>
        new Promise<unknown[]>((resolve, reject) => {
          const seen: unknown[] = [];
          const ws = new WebSocket(wsUrl);
          const timer = setTimeout(() => reject(new Error(`timed out; got ${JSON.stringify(seen)}`)), 10_000);
          ws.onopen = () => ws.send(JSON.stringify({ t: "hello", v: 1, deviceId: "browser-1" }));
          ws.onerror = () => reject(new Error("WebSocket error"));
          ws.onmessage = (event) => {
            const frame = JSON.parse(String(event.data)) as { t: string };
            seen.push(frame);
            if (frame.t === "welcome")
              ws.send(JSON.stringify({ t: "req", id: "b1", type: "echo", body: { from: "chromium" } }));
            if (frame.t === "res") {
              clearTimeout(timer);
              ws.close();
              resolve(seen);
            }
          };
        }),
      url,
    );
    const types = frames.map((frame) => (frame as { t: string }).t);
    assert.deepEqual(types, ["welcome", "ack", "res"]);
    assert.deepEqual((frames[2] as { body: unknown }).body, { from: "chromium" });
  });

  it("speaks MQTT 5 over the same port with mqtt.js in the page", async () => {
    await page.addScriptTag({ path: MQTT_BUNDLE });
    const answer = await page.evaluate(
      (wsUrl) =>
        new Promise<{ topic: string; payload: string; correlation: string }>((resolve, reject) => {
          const lib = (globalThis as unknown as { mqtt: { connect: (url: string, options: object) => BrowserClient } })
            .mqtt;
          const client = lib.connect(wsUrl, { clientId: "browser-mqtt", protocolVersion: 5, reconnectPeriod: 0 });
          const timer = setTimeout(() => reject(new Error("timed out")), 10_000);
          client.on("error", (error: Error) => reject(error));
          client.on("connect", () => {
            client.subscribe("tether/res/#", { qos: 1 }, () => {
              client.publish("tether/req/echo", JSON.stringify({ via: "mqtt over ws" }), {
                qos: 1,
                properties: { responseTopic: "tether/res/browser", correlationData: new TextEncoder().encode("bm-1") },
              });
            });
          });
          client.on(
            "message",
            (topic: string, payload: Uint8Array, packet: { properties?: { correlationData?: Uint8Array } }) => {
              clearTimeout(timer);
              client.end(true);
              resolve({
                topic,
                payload: new TextDecoder().decode(payload),
                correlation: new TextDecoder().decode(packet.properties?.correlationData ?? new Uint8Array()),
              });
            },
          );
        }),
      url,
    );
    assert.equal(answer.topic, "tether/res/browser");
    assert.deepEqual(JSON.parse(answer.payload), { via: "mqtt over ws" });
    assert.equal(answer.correlation, "bm-1");
  });
});
