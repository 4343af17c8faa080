import type { SlotLease } from "../../shared/registry/types.ts";

/** Reads one edge's Prometheus text (its ops port's `/metrics`). */
export interface EdgeMetricsReader {
  read(edge: Pick<SlotLease, "edgeId" | "host">, timeoutMs: number): Promise<string>;
}

/**
 * Reads an edge's metrics over HTTP at the host its lease names and the edges' ops port: how the
 * admin API sees a fleet.
 */
export function httpEdgeMetrics(port: number): EdgeMetricsReader {
  return {
    async read(edge, timeoutMs) {
      const host = edge.host.includes(":") ? `[${edge.host}]` : edge.host;
      const response = await fetch(`http://${host}:${port}/metrics`, { signal: AbortSignal.timeout(timeoutMs) });
      if (!response.ok) throw new Error(`edge ${edge.edgeId} answered ${response.status} on /metrics`);
      return response.text();
    },
  };
}

/** A histogram's running totals: the mean over an interval is Δsum / Δcount. */
export interface Totals {
  readonly sum: number;
  readonly count: number;
}

/** The counters of one edge the console charts; cumulative since the edge started. */
export interface EdgeCounters {
  readonly connections: number;
  readonly requests: number;
  readonly acks: number;
  readonly ackLatencySeconds: Totals;
  readonly roundTripSeconds: Totals;
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{[^}]*\})?\s+(\S+)/;

/** Sums the samples of each metric name (over all label sets) in Prometheus text. */
export function sumSamples(text: string): Map<string, number> {
  const sums = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const match = SAMPLE.exec(line);
    if (match === null) continue;
    const [, name, raw] = match;
    const value = Number(raw);
    if (name === undefined || !Number.isFinite(value)) continue;
    sums.set(name, (sums.get(name) ?? 0) + value);
  }
  return sums;
}

/** The console's counters out of an edge's metrics text; a missing metric reads as 0. */
export function edgeCounters(text: string): EdgeCounters {
  const sums = sumSamples(text);
  const get = (name: string): number => sums.get(name) ?? 0;
  return {
    connections: get("tether_edge_connections"),
    requests: get("tether_edge_requests_total"),
    acks: get("tether_edge_acks_total"),
    ackLatencySeconds: {
      sum: get("tether_edge_ack_latency_seconds_sum"),
      count: get("tether_edge_ack_latency_seconds_count"),
    },
    roundTripSeconds: {
      sum: get("tether_edge_reply_latency_seconds_sum"),
      count: get("tether_edge_reply_latency_seconds_count"),
    },
  };
}
