/**
 * Load for the guarantee tests: raw devices (never resending) sending requests at a steady
 * pace, moving to another edge when their connection closes, and the tally the guarantees are
 * judged by: acked, answered, acked but never answered.
 */
import type { EdgeFleet, FleetProcess } from "../harness/edge-fleet.ts";
import { delay } from "../harness/process.ts";
import type { RawConnection, RawDevice } from "../harness/raw-device.ts";

/**
 * Reported apart from the guarantee: sends every acked-but-unanswered request once more (same
 * id) on the device's newest open connection and counts how many then get an answer.
 */
export async function recoveredByResend(devices: readonly RawDevice[], timeoutMs = 20_000): Promise<number> {
  const lost = devices.map((device) => ({ device, ids: device.lostAcked() }));
  let tried = 0;
  for (const { device, ids } of lost) {
    const connection = device.current;
    if (connection === undefined || !connection.isOpen || connection.welcome === undefined) continue;
    for (const id of ids) device.resend(id, connection);
    tried += ids.length;
  }
  if (tried === 0) return 0;
  const recovered = (): number =>
    lost.reduce((sum, { device, ids }) => sum + ids.filter((id) => device.answeredIds().has(id)).length, 0);
  const deadline = Date.now() + timeoutMs;
  while (recovered() < tried && Date.now() < deadline) await delay(100);
  return recovered();
}

export interface RawLoadOptions {
  readonly fleet: EdgeFleet;
  readonly devices: number;
  readonly devicePrefix: string;
  /** Requests per device per second while `run()` goes on. */
  readonly perDeviceRate: number;
  /** Request type and body; default `echo` with a counter. */
  readonly request?: (seq: number) => { type: string; body: unknown };
  /** Edges new connections go to (default: every running edge, round-robin). */
  readonly edges?: () => readonly FleetProcess[];
  /** Reconnect when a connection closes (default true); never resends. */
  readonly reconnect?: boolean;
  readonly ackAnswers?: boolean;
}

export interface LoadTally {
  readonly sent: number;
  readonly acked: number;
  readonly answered: number;
  readonly lostAcked: number;
  /** `error` answers by code. */
  readonly errors: Readonly<Record<string, number>>;
  /** Connections closed by the edge side (not by the test). */
  readonly closedByEdge: number;
  readonly reconnects: number;
}

export class RawLoad {
  readonly options: RawLoadOptions;
  readonly devices: RawDevice[] = [];
  readonly #closingByTest = new Set<RawConnection>();
  #running = false;
  #loop: Promise<void> | undefined;
  #seq = 0;
  #next = 0;
  reconnects = 0;
  closedByEdge = 0;
  readonly reconnectErrors: string[] = [];

  constructor(options: RawLoadOptions) {
    this.options = options;
  }

  #edges(): readonly FleetProcess[] {
    return (this.options.edges ?? (() => this.options.fleet.liveEdges()))();
  }

  /** The next edge port, round-robin. */
  nextPort(): number {
    const edges = this.#edges();
    if (edges.length === 0) throw new Error("no edge to connect to");
    const edge = edges[this.#next % edges.length] as FleetProcess;
    this.#next += 1;
    return edge.devicePort;
  }

  /** Connects every device, to `port(i)` or round-robin. */
  async connect(port?: (index: number) => number): Promise<void> {
    for (let index = 0; index < this.options.devices; index++) {
      const device = this.options.fleet.device(`${this.options.devicePrefix}${index}`, {
        ...(this.options.ackAnswers === undefined ? {} : { ackAnswers: this.options.ackAnswers }),
      });
      device.onClose = (connection) => this.#closed(device, connection);
      this.devices.push(device);
      const connection = await device.connect(port === undefined ? this.nextPort() : port(index));
      if (connection.welcome === undefined) {
        throw new Error(`${device.deviceId} not welcomed: ${JSON.stringify(connection.refusal ?? null)}`);
      }
    }
  }

  #closed(device: RawDevice, connection: RawConnection): void {
    if (this.#closingByTest.has(connection)) return;
    this.closedByEdge += 1;
    if (this.options.reconnect === false || connection !== device.current) return;
    void this.#reconnect(device);
  }

  async #reconnect(device: RawDevice): Promise<void> {
    for (let attempt = 0; attempt < 20; attempt++) {
      await delay(Math.min(2000, 100 * 2 ** attempt));
      try {
        const connection = await device.reconnect(this.nextPort());
        if (connection.welcome !== undefined) {
          this.reconnects += 1;
          return;
        }
      } catch (error) {
        this.reconnectErrors.push(`${device.deviceId}: ${String(error)}`);
      }
    }
  }

  /** Moves a device to a new connection on `port` (closing none: the edge replaces the old one). */
  async move(device: RawDevice, port: number): Promise<RawConnection> {
    const connection = await device.reconnect(port);
    this.reconnects += 1;
    return connection;
  }

  /** Closes a connection on the test's side (not counted as closed by the edge). */
  closeByTest(connection: RawConnection): void {
    this.#closingByTest.add(connection);
    connection.socket.destroy();
  }

  /** Starts sending on every device's newest welcomed connection. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    const intervalMs = 1000 / this.options.perDeviceRate;
    this.#loop = (async () => {
      while (this.#running) {
        const started = Date.now();
        for (const device of this.devices) this.sendOne(device);
        await delay(Math.max(1, intervalMs - (Date.now() - started)));
      }
    })();
  }

  /** One request on the device's newest connection, if it is open and welcomed. */
  sendOne(device: RawDevice): string | undefined {
    const connection = device.current;
    if (connection === undefined || !connection.isOpen || connection.welcome === undefined) return undefined;
    this.#seq += 1;
    const id = `q${this.#seq}`;
    const { type, body } = this.options.request?.(this.#seq) ?? { type: "echo", body: this.#seq };
    device.request(id, type, body, connection);
    return id;
  }

  async stop(): Promise<void> {
    this.#running = false;
    await this.#loop;
  }

  /** Acked but never answered, as `deviceId/requestId`. */
  lost(): string[] {
    return this.devices.flatMap((device) => device.lostAcked().map((id) => `${device.deviceId}/${id}`));
  }

  /** Waits until nothing acked is left unanswered, or the time is up; returns what is left. */
  async settle(timeoutMs: number): Promise<string[]> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (this.lost().length === 0) return [];
      await delay(100);
    }
    return this.lost();
  }

  tally(): LoadTally {
    let sent = 0;
    let acked = 0;
    let answered = 0;
    const errors: Record<string, number> = {};
    for (const device of this.devices) {
      sent += device.sent.size;
      acked += device.ackedIds().size;
      answered += device.answeredIds().size;
      for (const code of device.errorCodes().values()) errors[code] = (errors[code] ?? 0) + 1;
    }
    return {
      sent,
      acked,
      answered,
      lostAcked: this.lost().length,
      errors,
      closedByEdge: this.closedByEdge,
      reconnects: this.reconnects,
    };
  }

  close(): void {
    for (const device of this.devices) {
      for (const connection of device.connections) this.#closingByTest.add(connection);
      device.close();
    }
  }
}
