/** The admin API's answers as the console reads them (see the OpenAPI document at /openapi.json). */

export interface Totals {
  readonly sum: number;
  readonly count: number;
}

export interface EdgeStats {
  readonly edgeId: string;
  readonly slot: number;
  readonly host: string;
  readonly startedAt: number;
  readonly leaseUntil: number;
  readonly connections: number | null;
  readonly metrics: {
    readonly connections: number;
    readonly requests: number;
    readonly acks: number;
    readonly ackLatencySeconds: Totals;
    readonly roundTripSeconds: Totals;
  } | null;
  readonly metricsError?: string;
}

export interface FleetStats {
  readonly at: number;
  readonly edges: readonly EdgeStats[];
  readonly workerLag: number | null;
  readonly deadLetters: number | null;
}

export interface Device {
  readonly deviceId: string;
  readonly online: boolean;
  readonly edgeId: string;
  readonly slot: number;
  readonly connId: string;
  readonly connectedAt: number;
  readonly epoch?: number;
  readonly protocol?: string;
}

export interface PresenceEvent {
  readonly id: string;
  readonly event: "connected" | "disconnected";
  readonly deviceId: string;
  readonly edgeId: string;
  readonly connId: string;
  readonly at: number;
  readonly reason?: string;
  readonly epoch?: number;
}

export interface OutboxItem {
  readonly messageId: string;
  readonly kind: string;
  readonly frame: unknown;
  readonly createdAt: number;
  readonly expiresAt: number;
}

export interface DeadLetter {
  readonly id: string;
  readonly deviceId: string | null;
  readonly error: { readonly name: string; readonly message: string; readonly stack?: string };
  readonly attempts: number;
  readonly request: unknown;
  readonly rawValue?: string;
  readonly source: { readonly topic: string; readonly partition: number; readonly offset: string };
  readonly failedAt: number;
  readonly replayable: boolean;
}

export interface ReplayResult {
  readonly replayed: readonly { readonly id: string; readonly partition: number; readonly offset: string }[];
  readonly refused: readonly { readonly id: string; readonly reason: string }[];
}
