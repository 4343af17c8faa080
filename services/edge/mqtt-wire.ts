import {
  generate,
  type IConnectPacket,
  type IPublishPacket,
  type ISubscribePacket,
  type Packet,
  type Parser,
  parser,
  type UserProperties,
} from "mqtt-packet";
import type { Logger } from "../../shared/log/index.ts";
import { MAX_REQUEST_ID_LENGTH } from "../../shared/protocol/index.ts";
import type { PresenceWill } from "../../shared/records/index.ts";
import type { EdgeLimits } from "./config.ts";
import {
  connackRefusal,
  disconnectReason,
  PUSH_PREFIX,
  parseRequestTopic,
  pubackReason,
  RESPONSE_PREFIX,
  Reason,
  ReturnCode,
  responseTopicAllowed,
  SUBACK_FAILURE_V311,
  SUBACK_REFUSED_V5,
  subscriptionAllowed,
} from "./mqtt-topics.ts";
import { Paused, type Session } from "./session.ts";
import { ConnectionProtocol, type Wire } from "./wire.ts";

/** Bytes an MQTT packet may carry beyond the request body (topic, properties, headers). */
const PACKET_OVERHEAD = 1024;
/** Packet ids are 16 bits, 0 excluded. */
const MAX_PACKET_ID = 0xffff;
const PING_LINE = Buffer.from('{"t":"ping"}');
const BYE_LINE = Buffer.from('{"t":"bye"}');

export interface MqttWireOptions {
  readonly session: Session;
  /** Hands a line to the device protocol, as if an NDJSON device had sent it. */
  readonly line: (line: Buffer) => void;
  readonly limits: EdgeLimits;
  readonly log: Logger;
  readonly websocket: boolean;
}

/** Where the answer to a request goes (5.0: the response topic and correlation data). */
interface AnswerRoute {
  readonly topic: string;
  readonly correlation: Buffer | undefined;
}

/** Subsets of the frames the edge writes, as the wire reads them. */
interface EdgeFrame {
  readonly t?: unknown;
  readonly id?: unknown;
  readonly code?: unknown;
  readonly message?: unknown;
  readonly retryable?: unknown;
  readonly reason?: unknown;
  readonly reconnectMs?: unknown;
  readonly retryAfterMs?: unknown;
  readonly type?: unknown;
  readonly body?: unknown;
  readonly connId?: unknown;
  readonly edgeId?: unknown;
}

/**
 * MQTT 3.1.1 and 5.0 on one session: packets parsed and written by mqtt-packet and mapped onto
 * the device protocol, so that auth, ownership, takeover, rate limits, acks and delivery are the
 * NDJSON session's own. CONNECT is a hello (client id, password = token), a request PUBLISH a
 * `req` whose PUBACK is the `ack`, a device's PUBACK of an answer or push is its `ack`, PINGREQ
 * a `ping`, DISCONNECT a `bye`. Packets read before CONNACK wait for it.
 */
export class MqttWire implements Wire {
  readonly #options: MqttWireOptions;
  readonly #session: Session;
  /** Made when bytes come and dropped once they formed whole packets: idle connections hold none. */
  #parser: Parser | undefined;
  #version: 4 | 5 | undefined;
  #connected = false;
  #welcomed = false;
  #stopped = false;
  #answerNext = false;
  #assigned = 0;
  #nextPacketId = 1;
  /** Packets read between CONNECT and CONNACK. */
  #held: Packet[] | undefined;
  /** Request id -> packet id of its PUBLISH, until the PUBACK (or refusal) is written. */
  readonly #inbound = new Map<string, number>();
  /** Request id -> where its answer goes (5.0 response topic, correlation data). */
  readonly #routes = new Map<string, AnswerRoute>();
  /** Packet id of an answer or push written -> the request or message id its PUBACK acks. */
  readonly #outbound = new Map<number, string>();
  /** The Will of the CONNECT, until a DISCONNECT without it. */
  #will: PresenceWill | undefined;

  constructor(options: MqttWireOptions) {
    this.#options = options;
    this.#session = options.session;
  }

  get protocol(): ConnectionProtocol {
    const ws = this.#options.websocket;
    if (this.#version === 4) return ws ? ConnectionProtocol.Mqtt311Ws : ConnectionProtocol.Mqtt311;
    return ws ? ConnectionProtocol.Mqtt5Ws : ConnectionProtocol.Mqtt5;
  }

  get #v5(): boolean {
    return this.#version === 5;
  }

  receive(chunk: Buffer): void {
    if (this.#stopped) return;
    const reader = this.#parser ?? this.#newParser();
    this.#parser = reader;
    const pending = reader.parse(chunk);
    if (this.#stopped) return;
    if (pending > this.#maxPacketBytes()) this.#tooLarge();
    else if (pending === 0 && this.#parser === reader && betweenPackets(reader)) this.#parser = undefined;
  }

  #newParser(): Parser {
    const reader = parser(this.#version === undefined ? {} : { protocolVersion: this.#version });
    reader.on("packet", (packet: Packet) => this.#packet(packet));
    reader.on("error", (error: unknown) => this.#malformed(error));
    return reader;
  }

  #maxPacketBytes(): number {
    const limits = this.#options.limits;
    return this.#connected ? limits.maxFrameBytes + PACKET_OVERHEAD : limits.maxHelloBytes;
  }

  answerNext(): void {
    this.#answerNext = true;
  }

  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#held = undefined;
  }

  get will(): PresenceWill | undefined {
    return this.#welcomed ? this.#will : undefined;
  }

  // ---- device to edge ----

  #packet(packet: Packet): void {
    if (this.#stopped) return;
    if ((packet.length ?? 0) > this.#maxPacketBytes()) {
      this.#tooLarge();
      return;
    }
    if (!this.#connected) {
      if (packet.cmd === "connect") this.#connect(packet);
      else this.#protocolError("the first packet must be CONNECT");
      return;
    }
    if (!this.#welcomed) {
      // The hello is being checked: what follows waits for CONNACK, as NDJSON lines wait for welcome.
      this.#held ??= [];
      this.#held.push(packet);
      this.#session.pause(Paused.Hello);
      return;
    }
    this.#open(packet);
  }

  #connect(packet: IConnectPacket): void {
    const version = packet.protocolVersion;
    if (version !== 4 && version !== 5) {
      this.#version = 4;
      this.#write({ cmd: "connack", returnCode: ReturnCode.UnacceptableVersion, sessionPresent: false });
      this.#session.close("bad_hello");
      return;
    }
    this.#version = version;
    this.#connected = true;
    const heartbeatS = Math.max(1, Math.round(this.#options.limits.heartbeatMs / 1000));
    const keepalive = packet.keepalive ?? 0;
    // MQTT's keep-alive is the idle bound: 1.5 x keepalive. 5.0 clients are told the edge's
    // heartbeat when they ask for none or a longer one; 3.1.1 clients cannot be told.
    const effective = keepalive === 0 || (this.#v5 && keepalive > heartbeatS) ? heartbeatS : keepalive;
    this.#serverKeepAlive = this.#v5 && effective !== keepalive ? effective : undefined;
    if (keepalive !== 0 || this.#v5) this.#session.setIdleMs(Math.ceil(effective * 1500));
    if (packet.will !== undefined) {
      const payload = packet.will.payload;
      this.#will = {
        topic: packet.will.topic,
        payload: typeof payload === "string" ? payload : payload.toString("utf8"),
      };
    }
    const hello: Record<string, unknown> = { t: "hello", v: 1, deviceId: packet.clientId, ackAnswers: true };
    if (packet.password !== undefined && packet.password.length > 0) hello.token = packet.password.toString("utf8");
    this.#options.line(Buffer.from(JSON.stringify(hello)));
  }

  #serverKeepAlive: number | undefined;

  #open(packet: Packet): void {
    const session = this.#session;
    if (!session.isOpen) return;
    switch (packet.cmd) {
      case "publish":
        this.#publish(packet);
        return;
      case "puback": {
        const id = packet.messageId === undefined ? undefined : this.#outbound.get(packet.messageId);
        if (id === undefined || packet.messageId === undefined) return;
        this.#outbound.delete(packet.messageId);
        this.#routes.delete(id);
        this.#options.line(Buffer.from(JSON.stringify({ t: "ack", id })));
        return;
      }
      case "subscribe":
        this.#subscribe(packet);
        return;
      case "unsubscribe":
        this.#write({
          cmd: "unsuback",
          messageId: packet.messageId ?? 0,
          granted: packet.unsubscriptions.map(() => Reason.Success),
        });
        return;
      case "pingreq":
        this.#options.line(PING_LINE);
        return;
      case "disconnect":
        // 5.0 reason 0x04: disconnect with the Will message; any other clean DISCONNECT drops it.
        if (packet.reasonCode !== 0x04) this.#will = undefined;
        this.#options.line(BYE_LINE);
        return;
      case "connect":
        this.#protocolError("CONNECT is sent once");
        return;
      default:
        if (packet.cmd === "pubrec" || packet.cmd === "pubrel" || packet.cmd === "pubcomp") {
          this.#disconnect(Reason.QosNotSupported, "QoS 2 is not supported", "bad_packet");
          return;
        }
        this.#protocolError(`${packet.cmd.toUpperCase()} is not a client packet here`);
    }
  }

  #publish(packet: IPublishPacket): void {
    const v5 = this.#v5;
    if (packet.qos === 2) {
      this.#disconnect(Reason.QosNotSupported, "QoS 2 is not supported", "bad_packet");
      return;
    }
    const topic = parseRequestTopic(packet.topic, v5);
    if (!topic.ok) {
      this.#refusePublish(packet, Reason.TopicNameInvalid, "publish requests to tether/req/<type>");
      return;
    }
    const properties = packet.properties;
    const responseTopic = properties?.responseTopic;
    if (responseTopic !== undefined && !responseTopicAllowed(responseTopic)) {
      this.#refusePublish(packet, Reason.NotAuthorized, "the response topic must begin with tether/res/");
      return;
    }
    const correlation = properties?.correlationData;
    const id = topic.id ?? (correlation !== undefined ? correlation.toString("utf8") : this.#assignId());
    if (id.length === 0 || id.length > MAX_REQUEST_ID_LENGTH) {
      this.#refusePublish(
        packet,
        Reason.PayloadFormatInvalid,
        `the request id must be 1 to ${MAX_REQUEST_ID_LENGTH} characters`,
      );
      return;
    }
    const payload = typeof packet.payload === "string" ? Buffer.from(packet.payload) : packet.payload;
    const body = payload.toString("utf8");
    if (!isJson(body)) {
      this.#refusePublish(packet, Reason.PayloadFormatInvalid, "the payload must be JSON");
      return;
    }
    if (this.#inbound.has(id)) {
      this.#refusePublish(packet, Reason.PacketIdInUse, "a request with this id is still open");
      return;
    }
    this.#session.goodFrame();
    if (packet.qos === 1 && packet.messageId !== undefined) this.#inbound.set(id, packet.messageId);
    this.#routes.set(id, { topic: responseTopic ?? `${RESPONSE_PREFIX}${id}`, correlation });
    // The body goes in as the device's own bytes: the ingress writes them to the request record.
    const line = `{"t":"req","id":${JSON.stringify(id)},"type":${JSON.stringify(topic.type)},"body":${body}}`;
    this.#options.line(Buffer.from(line));
  }

  #assignId(): string {
    this.#assigned += 1;
    return `${this.#session.connId}.${this.#assigned.toString(36)}`;
  }

  /** A PUBLISH the edge does not take: 5.0 gets a PUBACK with the reason, 3.1.1 is closed. */
  #refusePublish(packet: IPublishPacket, reason: Reason, message: string): void {
    if (!this.#v5) {
      this.#options.log.info({ connId: this.#session.connId, message }, "MQTT publish refused; closing");
      this.#session.close("bad_frame");
      return;
    }
    if (packet.qos === 1 && packet.messageId !== undefined) {
      this.#write({
        cmd: "puback",
        messageId: packet.messageId,
        reasonCode: reason,
        properties: { reasonString: message },
      });
    }
    if (this.#session.badFrame()) this.#disconnect(Reason.Unspecified, "too many refused packets", "bad_frames");
  }

  #subscribe(packet: ISubscribePacket): void {
    const v5 = this.#v5;
    const granted = packet.subscriptions.map((subscription) => {
      if (!subscriptionAllowed(subscription.topic)) return v5 ? SUBACK_REFUSED_V5 : SUBACK_FAILURE_V311;
      return Math.min(subscription.qos, 1);
    });
    this.#write({ cmd: "suback", messageId: packet.messageId ?? 0, granted });
  }

  #malformed(error: unknown): void {
    const message = error instanceof Error ? error.message : "malformed packet";
    this.#disconnect(Reason.Malformed, message, "bad_packet");
  }

  #protocolError(message: string): void {
    this.#disconnect(Reason.ProtocolError, message, "bad_packet");
  }

  #tooLarge(): void {
    this.#options.session.sendError({ code: "frame_too_large" });
    this.#disconnect(Reason.PacketTooLarge, "packet too large", "frame_too_large");
  }

  /** Ends the connection; a 5.0 client that got CONNACK is told why first. */
  #disconnect(reason: Reason, message: string, closeReason: string): void {
    if (this.#stopped) return;
    if (this.#v5 && this.#welcomed) {
      this.#write({ cmd: "disconnect", reasonCode: reason, properties: { reasonString: message } });
    }
    this.#session.close(closeReason);
  }

  // ---- edge to device ----

  encode(frame: string | Buffer): Buffer | undefined {
    let parsed: EdgeFrame;
    try {
      parsed = JSON.parse(typeof frame === "string" ? frame : frame.toString("utf8")) as EdgeFrame;
    } catch {
      return undefined;
    }
    const answer = this.#answerNext;
    this.#answerNext = false;
    if (typeof parsed !== "object" || parsed === null) return undefined;
    if (!this.#welcomed) return this.#beforeWelcome(parsed);
    const id = typeof parsed.id === "string" ? parsed.id : undefined;
    switch (parsed.t) {
      case "ack": {
        const packetId = id === undefined ? undefined : this.#inbound.get(id);
        if (packetId === undefined || id === undefined) return undefined;
        this.#inbound.delete(id);
        return this.#packetBytes({ cmd: "puback", messageId: packetId, reasonCode: Reason.Success });
      }
      case "res":
        return id === undefined ? undefined : this.#answer(id, parsed, frame);
      case "error":
        if (id === undefined) return undefined;
        if (!answer && this.#inbound.has(id)) return this.#refusal(id, parsed);
        return this.#answer(id, parsed, frame);
      case "push":
        return this.#push(parsed);
      case "pong":
        return this.#packetBytes({ cmd: "pingresp" });
      case "bye":
        return this.#bye(parsed);
      default:
        return undefined;
    }
  }

  #beforeWelcome(frame: EdgeFrame): Buffer | undefined {
    if (!this.#connected) return undefined;
    if (frame.t === "welcome") {
      this.#welcomed = true;
      const held = this.#held;
      this.#held = undefined;
      if (held !== undefined) queueMicrotask(() => this.#replay(held));
      return this.#packetBytes(this.#connack(frame));
    }
    const refusal =
      frame.t === "error"
        ? connackRefusal(typeof frame.code === "string" ? frame.code : "")
        : {
            v5: frame.reason === "draining" ? Reason.ServerBusy : Reason.ServerUnavailable,
            v311: ReturnCode.ServerUnavailable,
          };
    if (this.#v5) {
      const message = typeof frame.message === "string" ? frame.message : undefined;
      return this.#packetBytes({
        cmd: "connack",
        reasonCode: refusal.v5,
        sessionPresent: false,
        ...(message === undefined ? {} : { properties: { reasonString: message } }),
      });
    }
    return this.#packetBytes({ cmd: "connack", returnCode: refusal.v311, sessionPresent: false });
  }

  #connack(welcome: EdgeFrame): Packet {
    if (!this.#v5) return { cmd: "connack", returnCode: ReturnCode.Accepted, sessionPresent: false };
    const limits = this.#options.limits;
    const userProperties: UserProperties = {};
    if (typeof welcome.connId === "string") userProperties.connId = welcome.connId;
    if (typeof welcome.edgeId === "string") userProperties.edgeId = welcome.edgeId;
    return {
      cmd: "connack",
      reasonCode: Reason.Success,
      sessionPresent: false,
      properties: {
        maximumQoS: 1,
        retainAvailable: false,
        receiveMaximum: limits.maxInflight,
        maximumPacketSize: limits.maxFrameBytes + PACKET_OVERHEAD,
        topicAliasMaximum: 0,
        wildcardSubscriptionAvailable: true,
        subscriptionIdentifiersAvailable: false,
        sharedSubscriptionAvailable: false,
        ...(this.#serverKeepAlive === undefined ? {} : { serverKeepAlive: this.#serverKeepAlive }),
        userProperties,
      },
    };
  }

  #replay(held: Packet[]): void {
    this.#session.unpause(Paused.Hello);
    for (const packet of held) {
      if (this.#stopped || !this.#session.isOpen) return;
      this.#open(packet);
    }
  }

  /** An error frame that refuses a request whose PUBACK is still due: 5.0 PUBACK with the reason; 3.1.1 none. */
  #refusal(id: string, frame: EdgeFrame): Buffer | undefined {
    const packetId = this.#inbound.get(id);
    this.#inbound.delete(id);
    this.#routes.delete(id);
    if (!this.#v5 || packetId === undefined) return undefined;
    const code = typeof frame.code === "string" ? frame.code : "";
    const userProperties: UserProperties = { error: code };
    if (typeof frame.retryAfterMs === "number") userProperties.retryAfterMs = String(frame.retryAfterMs);
    return this.#packetBytes({
      cmd: "puback",
      messageId: packetId,
      reasonCode: pubackReason(code),
      properties: { reasonString: typeof frame.message === "string" ? frame.message : code, userProperties },
    });
  }

  /** A final answer: PUBLISH QoS 1 to the request's response topic; its PUBACK is the answer's ack. */
  #answer(id: string, frame: EdgeFrame, raw: string | Buffer): Buffer | undefined {
    const route = this.#routes.get(id);
    // Answers delivered on a later connection than their request's go to tether/res/<id>.
    const topic = route?.topic ?? `${RESPONSE_PREFIX}${id}`;
    const correlation = route?.correlation ?? Buffer.from(id, "utf8");
    const isError = frame.t === "error";
    const payload = isError ? Buffer.from(rawLine(raw)) : Buffer.from(JSON.stringify(frame.body ?? null));
    const userProperties: UserProperties = {};
    if (isError) {
      userProperties.error = typeof frame.code === "string" ? frame.code : "internal";
      userProperties.retryable = String(frame.retryable === true);
    }
    return this.#outgoingPublish(topic, payload, this.#packetId(id), {
      correlationData: correlation,
      ...(isError ? { userProperties } : {}),
    });
  }

  /** PUBLISH QoS 1 of a JSON payload; MQTT 5 also says so and carries `properties`. */
  #outgoingPublish(
    topic: string,
    payload: Buffer,
    messageId: number,
    properties: { correlationData?: Buffer; userProperties?: UserProperties },
  ): Buffer | undefined {
    const publish = { cmd: "publish", topic, payload, qos: 1, dup: false, retain: false, messageId } as const;
    if (!this.#v5) return this.#packetBytes(publish);
    return this.#packetBytes({
      ...publish,
      properties: { payloadFormatIndicator: true, contentType: "application/json", ...properties },
    });
  }

  #push(frame: EdgeFrame): Buffer | undefined {
    if (typeof frame.id !== "string" || typeof frame.type !== "string") return undefined;
    const topic = `${PUSH_PREFIX}${frame.type}`;
    const payload = Buffer.from(JSON.stringify(frame.body ?? null));
    return this.#outgoingPublish(topic, payload, this.#packetId(frame.id), { userProperties: { id: frame.id } });
  }

  #bye(frame: EdgeFrame): Buffer | undefined {
    if (!this.#v5) return undefined;
    const reason = typeof frame.reason === "string" ? frame.reason : "";
    const userProperties: UserProperties = { reason };
    if (typeof frame.reconnectMs === "number") userProperties.reconnectMs = String(frame.reconnectMs);
    return this.#packetBytes({
      cmd: "disconnect",
      reasonCode: disconnectReason(reason),
      properties: { reasonString: reason, userProperties },
    });
  }

  /** A free packet id for a PUBLISH to the device, remembered with the id its PUBACK acks. */
  #packetId(ackId: string): number {
    for (let tries = 0; tries < MAX_PACKET_ID; tries++) {
      const packetId = this.#nextPacketId;
      this.#nextPacketId = packetId >= MAX_PACKET_ID ? 1 : packetId + 1;
      if (this.#outbound.has(packetId)) continue;
      this.#outbound.set(packetId, ackId);
      return packetId;
    }
    // 65,535 unacked messages: the oldest id is reused (the queued-bytes bound cuts long before).
    this.#outbound.set(this.#nextPacketId, ackId);
    return this.#nextPacketId;
  }

  #packetBytes(packet: Packet): Buffer | undefined {
    try {
      return generate(packet, { protocolVersion: this.#version ?? 4 });
    } catch (error) {
      // A packet mqtt-packet cannot write (a field out of its range) is left out; the
      // connection and the edge go on. An answer left out stays unacked and is parked at close.
      this.#options.log.warn({ err: error, connId: this.#session.connId, cmd: packet.cmd }, "MQTT packet not written");
      return undefined;
    }
  }

  /** A packet of the wire itself (CONNACK refusal, SUBACK, DISCONNECT), in order with the session's writes. */
  #write(packet: Packet): void {
    const socket = this.#session.socket;
    if (socket.destroyed || socket.writableEnded) return;
    const bytes = this.#packetBytes(packet);
    if (bytes !== undefined) socket.write(bytes);
  }
}

/**
 * True when the parser holds no part of a packet. mqtt-packet has no public call for it; its
 * state index is 0 only between packets (a header byte already read leaves it at 1 with nothing
 * buffered). When the field is not there, the parser is kept.
 */
function betweenPackets(reader: Parser): boolean {
  return (reader as unknown as { _stateCounter?: unknown })._stateCounter === 0;
}

function isJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

function rawLine(raw: string | Buffer): string {
  return (typeof raw === "string" ? raw : raw.toString("utf8")).trim();
}
