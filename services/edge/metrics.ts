import { Counter, Gauge, Histogram, Registry } from "prom-client";

/** Frame types counted by name; anything else a device sends is counted as `other`. */
const CLIENT_TYPES = ["hello", "req", "ack", "ping", "bye", "other"] as const;
const SERVER_TYPES = ["welcome", "ack", "res", "error", "push", "pong", "bye"] as const;

type Inc = { inc(value?: number): void };

/**
 * The edge's Prometheus metrics, on a registry of its own so that several edges (tests, the
 * embedded mode) can live in one process. Hot-path counters are bound to their labels once.
 */
export class EdgeMetrics {
  readonly registry = new Registry();
  readonly connections: Gauge;
  readonly connectionsOpened: Counter;
  /** Connections closed because handling their input failed unexpectedly (a bug, never the process). */
  readonly connectionFaults: Counter;
  readonly framesIn: Counter<"type">;
  readonly framesOut: Counter<"type">;
  readonly requests: Counter;
  readonly acks: Counter;
  readonly replies: Counter<"outcome">;
  readonly errors: Counter<"code">;
  readonly closes: Counter<"reason">;
  readonly ackLatency: Histogram;
  readonly replyLatency: Histogram;
  readonly leaseRenewals: Counter<"outcome">;
  readonly leaseLosses: Counter;
  /** What the slot lease reports: each renewal's outcome, and its loss to another edge. */
  readonly lease: { renewed(ok: boolean): void; lost(): void };
  readonly #framesIn = new Map<string, Inc>();
  readonly #framesOut = new Map<string, Inc>();
  readonly #replies = new Map<string, Inc>();
  readonly #errors = new Map<string, Inc>();

  constructor() {
    const registers = [this.registry];
    this.connections = new Gauge({ name: "tether_edge_connections", help: "Open device connections", registers });
    this.connectionsOpened = new Counter({
      name: "tether_edge_connections_opened_total",
      help: "Device connections accepted",
      registers,
    });
    this.connectionFaults = new Counter({
      name: "tether_edge_connection_faults_total",
      help: "Device connections closed because handling their input failed unexpectedly",
      registers,
    });
    this.framesIn = new Counter({
      name: "tether_edge_frames_in_total",
      help: "Frames read from devices, by type",
      labelNames: ["type"],
      registers,
    });
    this.framesOut = new Counter({
      name: "tether_edge_frames_out_total",
      help: "Frames written to devices, by type",
      labelNames: ["type"],
      registers,
    });
    this.requests = new Counter({
      name: "tether_edge_requests_total",
      help: "Requests accepted from devices",
      registers,
    });
    this.acks = new Counter({ name: "tether_edge_acks_total", help: "Requests acked after delivery", registers });
    this.replies = new Counter({
      name: "tether_edge_replies_total",
      help: "Replies read from the slot, by outcome (delivered, forwarded, parked, dropped)",
      labelNames: ["outcome"],
      registers,
    });
    this.errors = new Counter({
      name: "tether_edge_errors_total",
      help: "Error frames sent to devices, by code",
      labelNames: ["code"],
      registers,
    });
    this.closes = new Counter({
      name: "tether_edge_closes_total",
      help: "Device connections closed, by reason",
      labelNames: ["reason"],
      registers,
    });
    const buckets = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
    this.ackLatency = new Histogram({
      name: "tether_edge_ack_latency_seconds",
      help: "From reading a request to its ack (the broker's delivery report)",
      buckets,
      registers,
    });
    this.replyLatency = new Histogram({
      name: "tether_edge_reply_latency_seconds",
      help: "From reading a request to writing its answer to the device",
      buckets,
      registers,
    });
    this.leaseRenewals = new Counter({
      name: "tether_edge_lease_renewals_total",
      help: "Renewals of the edge's slot lease, by outcome (ok, failed: the registry did not answer or refused)",
      labelNames: ["outcome"],
      registers,
    });
    this.leaseLosses = new Counter({
      name: "tether_edge_lease_losses_total",
      help: "Slot leases lost because another edge provably took the slot (the edge then stops)",
      registers,
    });
    const renewedOk = this.leaseRenewals.labels("ok");
    const renewalFailed = this.leaseRenewals.labels("failed");
    this.lease = {
      renewed: (ok) => (ok ? renewedOk : renewalFailed).inc(),
      lost: () => this.leaseLosses.inc(),
    };
    for (const type of CLIENT_TYPES) this.#framesIn.set(type, this.framesIn.labels(type));
    for (const type of SERVER_TYPES) this.#framesOut.set(type, this.framesOut.labels(type));
  }

  frameIn(type: string): void {
    bound(
      this.#framesIn,
      this.framesIn,
      CLIENT_TYPES.includes(type as (typeof CLIENT_TYPES)[number]) ? type : "other",
    ).inc();
  }

  frameOut(type: (typeof SERVER_TYPES)[number]): void {
    bound(this.#framesOut, this.framesOut, type).inc();
  }

  reply(outcome: "delivered" | "forwarded" | "parked" | "dropped"): void {
    bound(this.#replies, this.replies, outcome).inc();
  }

  /** Counts an error frame; codes come from a closed list (ours) so labels stay bounded. */
  error(code: string): void {
    bound(this.#errors, this.errors, code).inc();
    bound(this.#framesOut, this.framesOut, "error").inc();
  }

  close(reason: string): void {
    this.closes.labels(reason).inc();
  }
}

function bound<L extends string>(cache: Map<string, Inc>, counter: Counter<L>, value: string): Inc {
  let child = cache.get(value);
  if (child === undefined) {
    child = counter.labels(value);
    cache.set(value, child);
  }
  return child;
}
