/**
 * The strict side of the soak: a share of the devices speaks the protocol over raw sockets
 * (test/harness/raw-device.ts) and never sends a request twice. They go through the same
 * balancer as the SDK devices, send `echo` at the same rate per device, and after any
 * disconnect open a new connection through the balancer that says only hello. An acked request
 * of theirs that no connection ever answered is a loss the SDK's resend cannot have hidden.
 *
 * They ask for answer acknowledgements (protocol 1.1) and ack every answer, so that the edge
 * keeps an answer until the device has it: without them the protocol counts an answer handed
 * to a socket that then died as delivered, and only a resend would get it back.
 */
import { hmacToken } from "../../shared/auth/index.ts";
import { recoveredByResend } from "../guarantees/raw-load.ts";
import { delay } from "../harness/process.ts";
import { type RawConnection, RawDevice, type ReceivedFrame } from "../harness/raw-device.ts";
import { AUTH_SECRET } from "./fleet.ts";

/** Share of the SDK device count run as raw devices, and the least number of them. */
export const RAW_SHARE = 0.1;
export const RAW_MIN_DEVICES = 20;

/** Raw devices next to `sdkDevices` SDK devices. */
export function rawDeviceCount(sdkDevices: number): number {
  return Math.max(RAW_MIN_DEVICES, Math.ceil(sdkDevices * RAW_SHARE));
}

function welcomed(connection: RawConnection | undefined): boolean {
  return connection?.isOpen === true && connection.welcome !== undefined;
}

/** Error codes that refuse a request instead of answering it (it was never taken). */
const REFUSALS: ReadonlySet<string> = new Set(["unavailable", "rate_limited", "duplicate_id"]);

export interface RawShareOptions {
  readonly host?: string;
  /** The balancer's port. */
  readonly port: number;
  readonly devices: number;
  /** Device ids are `${devicePrefix}${index}`. */
  readonly devicePrefix: string;
  /** Requests per second across the raw devices. */
  readonly rate: number;
}

export interface RawStats {
  readonly devices: number;
  readonly sent: number;
  readonly acked: number;
  /** Final answers (`res`, or `error` that is not a refusal) on any connection. */
  readonly answered: number;
  /** Acked and never answered on any connection: the loss no resend hid. */
  readonly lostWithoutResend: number;
  /** Answered with no ack seen (the ack went down with its connection, or the answer overtook it). */
  readonly answeredUnacked: number;
  /** Refused (`unavailable`, `rate_limited`): never taken, and a raw device does not try again. */
  readonly refused: number;
  /** Neither acked nor answered: sent on a connection that closed first, or still waiting at the end. */
  readonly neverAcked: number;
  /** Final `error` answers and refusals, by code. */
  readonly errors: Readonly<Record<string, number>>;
  /** `res` whose body was not the one sent. */
  readonly wrong: number;
  /** Sends skipped because the device had no welcomed connection at its turn. */
  readonly skipped: number;
  readonly reconnects: number;
  /** Afterwards, apart from the figures above: lost requests a resend (same id) then got answered. */
  readonly recoveredByResend: number;
}

interface Outcome {
  readonly device: number;
  readonly conn: number;
  acked: boolean;
  /** `res`, a final error code, a refusal code, or undefined while open. */
  answer: string | undefined;
  wrong: boolean;
}

export class RawShare {
  readonly options: RawShareOptions;
  readonly devices: RawDevice[] = [];
  readonly #outcomes = new Map<string, Outcome>();
  readonly #reconnecting = new Set<RawDevice>();
  #seq = 0;
  #skipped = 0;
  #reconnects = 0;
  #recovered = 0;
  #sending = false;
  #closed = false;
  /** Set once the figures are final: what a resend brings in afterwards is counted apart. */
  #final = false;
  #loop: Promise<void> | undefined;

  constructor(options: RawShareOptions) {
    this.options = options;
  }

  /**
   * Creates and connects every device; throws when one is not welcomed within `welcomeMs`. A
   * refused hello (`unavailable` while the edge is busy) is tried again, as any device would.
   */
  async connect(concurrency = 50, welcomeMs = 60_000): Promise<void> {
    for (let index = 0; index < this.options.devices; index++) {
      const deviceId = `${this.options.devicePrefix}${index}`;
      const device = new RawDevice({
        deviceId,
        token: hmacToken(AUTH_SECRET, deviceId),
        ackAnswers: true,
        ...(this.options.host === undefined ? {} : { host: this.options.host }),
      });
      device.onFrame = (received) => this.#record(index, received);
      device.onClose = (connection) => this.#closedOn(device, connection);
      this.devices.push(device);
    }
    let next = 0;
    await Promise.all(
      Array.from({ length: Math.min(concurrency, this.devices.length) }, async () => {
        while (next < this.devices.length) {
          const device = this.devices[next++] as RawDevice;
          try {
            await device.connect(this.options.port);
          } catch {
            // No welcome in time: closing it hands the device to the reconnect loop.
            device.current?.socket.destroy();
          }
          // A refusal closes the connection, which starts the reconnect loop too.
          await device.waitFor(() => welcomed(device.current), {
            timeoutMs: welcomeMs,
            what: `welcome of raw device ${device.deviceId} (last answer ${JSON.stringify(device.current?.refusal ?? null)})`,
          });
        }
      }),
    );
  }

  /** Starts sending at the configured total rate, round-robin over the devices. */
  start(): void {
    if (this.#sending || this.devices.length === 0) return;
    this.#sending = true;
    this.#loop = this.#pace();
  }

  async stop(): Promise<void> {
    this.#sending = false;
    await this.#loop;
  }

  async #pace(): Promise<void> {
    const started = performance.now();
    let sent = 0;
    while (this.#sending) {
      const due = Math.floor(((performance.now() - started) / 1000) * this.options.rate);
      const burst = Math.min(due - sent, Math.max(1, this.options.rate));
      for (let i = 0; i < burst; i++) this.#sendOne((sent + i) % this.devices.length);
      sent += burst;
      await delay(5);
    }
  }

  #sendOne(index: number): void {
    const device = this.devices[index] as RawDevice;
    const connection = device.current;
    if (connection === undefined || !welcomed(connection)) {
      this.#skipped += 1;
      return;
    }
    this.#seq += 1;
    // Its own id space: the balancer counts answers per id across SDK and raw devices.
    const id = `r${this.#seq.toString(36)}`;
    this.#outcomes.set(id, { device: index, conn: connection.index, acked: false, answer: undefined, wrong: false });
    device.request(id, "echo", { id }, connection);
  }

  #record(index: number, received: ReceivedFrame): void {
    if (this.#final) return;
    const { frame } = received;
    const id = frame.id;
    if (typeof id !== "string") return;
    const outcome = this.#outcomes.get(id);
    if (outcome === undefined || outcome.device !== index) return;
    if (frame.t === "ack") {
      outcome.acked = true;
    } else if (frame.t === "res") {
      if (outcome.answer === undefined || REFUSALS.has(outcome.answer)) {
        outcome.answer = "res";
        outcome.wrong = (frame.body as { id?: unknown } | null)?.id !== id;
      }
    } else if (frame.t === "error" && outcome.answer === undefined) {
      outcome.answer = String(frame.code);
    }
  }

  /** Any close of a device's newest connection starts one reconnect loop through the balancer. */
  #closedOn(device: RawDevice, connection: RawConnection): void {
    if (this.#closed || connection !== device.current || this.#reconnecting.has(device)) return;
    this.#reconnecting.add(device);
    void this.#reconnect(device).finally(() => this.#reconnecting.delete(device));
  }

  async #reconnect(device: RawDevice): Promise<void> {
    for (let attempt = 0; !this.#closed; attempt++) {
      await delay(Math.min(2000, 100 * 2 ** Math.min(attempt, 5)));
      if (this.#closed) return;
      try {
        // Nothing but the hello: requests still open stay unsent.
        const connection = await device.reconnect(this.options.port, { timeoutMs: 15_000 });
        if (welcomed(connection)) {
          // The first welcome of a device refused at the start is not a reconnect.
          if (device.connections.some((other) => other !== connection && other.welcome !== undefined)) {
            this.#reconnects += 1;
          }
          return;
        }
        connection.socket.destroy();
      } catch {
        // Refused, not welcomed in time, or the balancer had no edge: try again.
        device.current?.socket.destroy();
      }
    }
  }

  #open(): { acked: number; inFlight: number } {
    let acked = 0;
    let inFlight = 0;
    for (const outcome of this.#outcomes.values()) {
      // Answered or refused: nothing more will come for it.
      if (outcome.answer !== undefined) continue;
      if (outcome.acked) acked += 1;
      else if (this.devices[outcome.device]?.connections[outcome.conn]?.isOpen === true) inFlight += 1;
    }
    return { acked, inFlight };
  }

  /**
   * Waits until every acked request is answered and nothing sent on a still open connection
   * waits for its ack, or `graceMs` passed. Then, apart from the figures, sends each request
   * still lost once more (same id) and counts what that recovered.
   */
  async settle(graceMs: number, resendMs = 10_000): Promise<void> {
    const deadline = Date.now() + graceMs;
    while (Date.now() < deadline) {
      const open = this.#open();
      if (open.acked === 0 && open.inFlight === 0) break;
      await delay(200);
    }
    this.#final = true;
    if (this.#lost().length > 0) this.#recovered = await recoveredByResend(this.devices, resendMs);
  }

  #lost(): string[] {
    const ids: string[] = [];
    for (const [id, outcome] of this.#outcomes) {
      const answered = outcome.answer !== undefined && !REFUSALS.has(outcome.answer);
      if (outcome.acked && !answered) ids.push(id);
    }
    return ids;
  }

  /** Lost request ids as `deviceId/id`, for the notes. */
  lostIds(limit = 20): string[] {
    return this.#lost()
      .slice(0, limit)
      .map((id) => `${this.devices[this.#outcomes.get(id)?.device ?? -1]?.deviceId}/${id}`);
  }

  stats(): RawStats {
    let acked = 0;
    let answered = 0;
    let lost = 0;
    let answeredUnacked = 0;
    let refused = 0;
    let neverAcked = 0;
    let wrong = 0;
    const errors: Record<string, number> = {};
    for (const outcome of this.#outcomes.values()) {
      const { answer } = outcome;
      const final = answer !== undefined && !REFUSALS.has(answer);
      if (outcome.acked) acked += 1;
      if (answer !== undefined && answer !== "res") errors[answer] = (errors[answer] ?? 0) + 1;
      if (final) {
        answered += 1;
        if (!outcome.acked) answeredUnacked += 1;
        if (outcome.wrong) wrong += 1;
      } else if (outcome.acked) lost += 1;
      else if (answer !== undefined) refused += 1;
      else neverAcked += 1;
    }
    return {
      devices: this.devices.length,
      sent: this.#outcomes.size,
      acked,
      answered,
      lostWithoutResend: lost,
      answeredUnacked,
      refused,
      neverAcked,
      errors,
      wrong,
      skipped: this.#skipped,
      reconnects: this.#reconnects,
      recoveredByResend: this.#recovered,
    };
  }

  /** Stops sending and reconnecting and closes every connection. Safe to call twice. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.stop();
    for (const device of this.devices) device.close();
  }
}
