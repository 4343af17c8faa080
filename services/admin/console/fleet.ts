import { LiveChart } from "./chart.ts";
import { h, relative, replace, table } from "./dom.ts";
import { describeError, type Page, type PageContext } from "./page.ts";
import type { EdgeStats, FleetStats } from "./types.ts";

const POLL_MS = 2000;

interface Reading {
  readonly at: number;
  readonly requests: number;
  readonly ackSum: number;
  readonly ackCount: number;
  readonly tripSum: number;
  readonly tripCount: number;
}

/** Sums the edges' counters; an edge whose metrics are missing counts for nothing. */
function reading(stats: FleetStats): Map<string, Reading> {
  const readings = new Map<string, Reading>();
  for (const edge of stats.edges) {
    if (edge.metrics === null) continue;
    readings.set(edge.edgeId, {
      at: stats.at,
      requests: edge.metrics.requests,
      ackSum: edge.metrics.ackLatencySeconds.sum,
      ackCount: edge.metrics.ackLatencySeconds.count,
      tripSum: edge.metrics.roundTripSeconds.sum,
      tripCount: edge.metrics.roundTripSeconds.count,
    });
  }
  return readings;
}

/** Edges, their slots, leases and connections; requests/s and latencies charted live. */
export function fleetPage(context: PageContext): Page {
  const requestsChart = new LiveChart("Requests", "/s", "chart-requests");
  const ackChart = new LiveChart("Ack latency", "ms", "chart-ack");
  const tripChart = new LiveChart("Round trip", "ms", "chart-round-trip");
  const edges = h("div", { class: "edges" });
  const tiles = h("div", { class: "tiles" });
  const status = h("p", { class: "status", "data-test": "fleet-status" }, "Loading…");
  const element = h(
    "section",
    { "data-test": "fleet-page" },
    h("h2", {}, "Fleet"),
    status,
    tiles,
    h("div", { class: "charts" }, requestsChart.element, ackChart.element, tripChart.element),
    h("h3", {}, "Edges"),
    edges,
  );
  let previous = new Map<string, Reading>();
  let timer: ReturnType<typeof setTimeout> | undefined;
  let disposed = false;

  const rate = (stats: FleetStats): void => {
    const current = reading(stats);
    let requests = 0;
    let seconds = 0;
    let ackSum = 0;
    let ackCount = 0;
    let tripSum = 0;
    let tripCount = 0;
    for (const [edgeId, now] of current) {
      const before = previous.get(edgeId);
      // A restarted edge starts its counters from zero: no delta across a restart.
      if (before === undefined || now.requests < before.requests) continue;
      seconds = Math.max(seconds, (now.at - before.at) / 1000);
      requests += now.requests - before.requests;
      ackSum += now.ackSum - before.ackSum;
      ackCount += now.ackCount - before.ackCount;
      tripSum += now.tripSum - before.tripSum;
      tripCount += now.tripCount - before.tripCount;
    }
    if (previous.size > 0 && seconds > 0) {
      requestsChart.push(stats.at, requests / seconds);
      ackChart.push(stats.at, ackCount > 0 ? (ackSum / ackCount) * 1000 : null);
      tripChart.push(stats.at, tripCount > 0 ? (tripSum / tripCount) * 1000 : null);
    }
    previous = current;
  };

  const edgeRow = (edge: EdgeStats) => [
    h("code", { "data-test": "edge-id" }, edge.edgeId),
    String(edge.slot),
    edge.host,
    h("span", { title: new Date(edge.leaseUntil).toISOString() }, relative(edge.leaseUntil, Date.now())),
    String(edge.metrics?.connections ?? edge.connections ?? "–"),
    edge.metrics === null
      ? h("span", { class: "warn" }, edge.metricsError ?? "no metrics")
      : String(edge.metrics.requests),
  ];

  const poll = async (): Promise<void> => {
    try {
      const stats = await context.api.get<FleetStats>("/v1/fleet/stats");
      if (disposed) return;
      rate(stats);
      replace(
        status,
        `${stats.edges.length} live edge${stats.edges.length === 1 ? "" : "s"} · updated ${new Date(stats.at).toLocaleTimeString()}`,
      );
      replace(
        tiles,
        h(
          "div",
          { class: "tile" },
          h("span", {}, "Worker lag"),
          h("strong", { "data-test": "worker-lag" }, String(stats.workerLag ?? "–")),
        ),
        h(
          "a",
          { class: "tile", href: "#/dead-letters" },
          h("span", {}, "Dead letters"),
          h("strong", { "data-test": "dead-letter-count" }, String(stats.deadLetters ?? "–")),
        ),
      );
      replace(
        edges,
        stats.edges.length === 0
          ? h("p", {}, "No live edge.")
          : table(
              ["Edge", "Slot", "Host", "Lease expires", "Connections", "Requests"],
              stats.edges.map(edgeRow),
              "edges",
            ),
      );
    } catch (error) {
      if (!disposed) replace(status, h("span", { class: "error" }, describeError(error)));
    } finally {
      if (!disposed) timer = setTimeout(() => void poll(), POLL_MS);
    }
  };
  void poll();

  return {
    element,
    dispose() {
      disposed = true;
      clearTimeout(timer);
      requestsChart.destroy();
      ackChart.destroy();
      tripChart.destroy();
    },
  };
}
