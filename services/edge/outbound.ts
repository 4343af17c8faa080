import type { Producer } from "../../shared/broker/types.ts";
import type { Logger } from "../../shared/log/index.ts";
import { type ControlRecord, controlRecord, type PresenceEvent, presenceRecord } from "../../shared/records/index.ts";
import type { EdgeConfig } from "./config.ts";

/**
 * Records the edge writes that nobody waits for: presence events for the backend, and control
 * orders for other edges (close a replaced connection, deliver an outbox). A failure is logged;
 * the record's purpose is served again by the next event or lease expiry.
 */
export class Outbound {
  readonly #config: EdgeConfig;
  readonly #producer: Producer;
  readonly #log: Logger;

  constructor(config: EdgeConfig, producer: Producer, log: Logger) {
    this.#config = config;
    this.#producer = producer;
    this.#log = log;
  }

  presence(event: PresenceEvent): void {
    this.#producer
      .send(presenceRecord(this.#config.common.names.eventsTopic, event), { timeoutMs: this.#config.produceTimeoutMs })
      .catch((error: unknown) => {
        this.#log.warn({ err: error, deviceId: event.deviceId, event: event.event }, "presence event not written");
      });
  }

  control(slot: number, control: ControlRecord): void {
    const record = controlRecord(this.#config.common.names.repliesTopic, slot, control);
    this.#producer.send(record, { timeoutMs: this.#config.produceTimeoutMs }).catch((error: unknown) => {
      this.#log.warn({ err: error, slot, deviceId: control.deviceId, op: control.op }, "control record not written");
    });
  }
}
