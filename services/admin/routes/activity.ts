import type { ServerResponse } from "node:http";
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import type { PresenceEvent } from "../../../shared/records/index.ts";
import {
  DeviceEvents,
  DeviceEventsQuery,
  DeviceOutbox,
  EventStreamQuery,
  MAX_DEVICE_EVENTS,
} from "../console-schemas.ts";
import { startedTail } from "../console-sources.ts";
import type { RouteDeps } from "../deps.ts";
import { ApiError } from "../errors.ts";
import { bearerSecurity, commonErrors, DeviceParams, ErrorResponse } from "../schemas.ts";
import type { TailEntry } from "../tail.ts";

/** Event streams open at once; one more is 429 `overloaded`. */
const MAX_STREAMS = 32;
/** A comment line this often keeps proxies from closing a quiet stream. */
const HEARTBEAT_MS = 15_000;
/** A client this far behind is cut off rather than buffered for. */
const MAX_STREAM_BUFFER_BYTES = 1024 * 1024;
const OUTBOX_LIMIT = 100;

function view(entry: TailEntry<PresenceEvent>) {
  return { id: entry.id, ...entry.value };
}

function frameKind(frame: unknown): string {
  if (typeof frame === "object" && frame !== null && "t" in frame && typeof frame.t === "string") return frame.t;
  return "unknown";
}

function parseFrame(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** What the console shows of devices over time: presence events (recent and live) and outboxes. */
export const activityRoutes: FastifyPluginAsyncTypebox<{ deps: RouteDeps }> = async (app, { deps }) => {
  const streams = new Set<ServerResponse>();
  // Open streams would hold `close()` forever: they end first.
  app.addHook("preClose", async () => {
    for (const stream of streams) stream.end();
    streams.clear();
  });

  app.get(
    "/devices/:deviceId/events",
    {
      schema: {
        operationId: "listDeviceEvents",
        summary: "A device's recent presence events",
        description:
          "Connects and disconnects (with reasons) of the device among the recent `events` records the API holds " +
          "(the last few hundred per partition when it started reading, and everything since), newest first.",
        tags: ["devices"],
        security: bearerSecurity,
        params: DeviceParams,
        querystring: DeviceEventsQuery,
        response: { 200: DeviceEvents, ...commonErrors },
      },
    },
    async (request) => {
      const { deviceId } = request.params;
      const tail = await startedTail(deps.console.events, "presence events");
      const events = tail.recent(request.query.limit, (entry) => entry.value.deviceId === deviceId).map(view);
      return { deviceId, events };
    },
  );

  app.get(
    "/devices/:deviceId/outbox",
    {
      schema: {
        operationId: "listDeviceOutbox",
        summary: "A device's outbox",
        description:
          "Answers and pushes parked for the device until it connects and acks them, oldest first; expired ones are " +
          `not listed. At most ${OUTBOX_LIMIT}.`,
        tags: ["devices"],
        security: bearerSecurity,
        params: DeviceParams,
        response: { 200: DeviceOutbox, ...commonErrors },
      },
    },
    async (request) => {
      const { deviceId } = request.params;
      const entries = await deps.registry.outbox.list(deviceId, OUTBOX_LIMIT);
      const items = entries.map((entry) => {
        const frame = parseFrame(entry.frame);
        return {
          messageId: entry.messageId,
          kind: frameKind(frame),
          frame,
          createdAt: entry.createdAt,
          expiresAt: entry.expiresAt,
        };
      });
      return { deviceId, items };
    },
  );

  app.get(
    "/events/stream",
    {
      schema: {
        operationId: "streamEvents",
        summary: "Live presence events (Server-Sent Events)",
        description:
          "A `text/event-stream` of presence events from the `events` topic: each is an SSE event `presence` whose " +
          "data is the event as JSON (the shape of listDeviceEvents' items). `backlog` recent events come first. " +
          `With \`deviceId\`, only that device's. At most ${MAX_STREAMS} streams at once; ` +
          "the bearer token goes in the `Authorization` header as everywhere else.",
        tags: ["fleet"],
        security: bearerSecurity,
        querystring: EventStreamQuery,
        produces: ["text/event-stream"],
        response: {
          200: {
            description: "the stream; it stays open until the client or the API closes it",
            content: { "text/event-stream": { schema: { type: "string" } } },
          },
          429: ErrorResponse,
          ...commonErrors,
        },
      },
    },
    async (request, reply) => {
      const { deviceId, backlog } = request.query;
      if (streams.size >= MAX_STREAMS) {
        throw new ApiError("overloaded", "too many event streams open; retry later", { retryAfterSeconds: 5 });
      }
      const tail = await startedTail(deps.console.events, "presence events");
      const accept = (entry: TailEntry<PresenceEvent>): boolean =>
        deviceId === undefined || entry.value.deviceId === deviceId;
      reply.hijack();
      const response = reply.raw;
      response.writeHead(200, {
        "content-type": "text/event-stream; charset=utf-8",
        "cache-control": "no-store",
        "x-accel-buffering": "no",
      });
      streams.add(response);
      const send = (entry: TailEntry<PresenceEvent>): void => {
        if (response.writableLength > MAX_STREAM_BUFFER_BYTES) {
          response.end();
          return;
        }
        response.write(`id: ${entry.id}\nevent: presence\ndata: ${JSON.stringify(view(entry))}\n\n`);
      };
      response.write(": stream open\n\n");
      for (const entry of tail.recent(Math.min(backlog, MAX_DEVICE_EVENTS), accept).reverse()) send(entry);
      const unsubscribe = tail.subscribe((entry) => {
        if (accept(entry)) send(entry);
      });
      const heartbeat = setInterval(() => response.write(": keep-alive\n\n"), HEARTBEAT_MS);
      heartbeat.unref();
      response.once("close", () => {
        clearInterval(heartbeat);
        unsubscribe();
        streams.delete(response);
      });
      request.log.info({ deviceId }, "event stream opened");
    },
  );
};
