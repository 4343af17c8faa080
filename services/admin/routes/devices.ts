import { randomUUID } from "node:crypto";
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import {
  type ControlRecord,
  controlRecord,
  type DownlinkRecord,
  downlinkRecord,
  pushFrame,
} from "../../../shared/records/index.ts";
import type { RouteDeps } from "../deps.ts";
import { ApiError } from "../errors.ts";
import { lookupDevice } from "../presence.ts";
import {
  bearerSecurity,
  busyError,
  commonErrors,
  DEFAULT_TTL_SECONDS,
  Device,
  DeviceParams,
  errorResponse,
  KickAccepted,
  PushAccepted,
  PushBody,
} from "../schemas.ts";

/** Largest accepted JSON body of a push request. */
export const PUSH_BODY_LIMIT = 64 * 1024;

/** One device: where it is, pushes to it, and kicking it. */
export const deviceRoutes: FastifyPluginAsyncTypebox<{ deps: RouteDeps }> = async (app, { deps }) => {
  app.get(
    "/devices/:deviceId",
    {
      schema: {
        operationId: "getDevice",
        summary: "Look a device up",
        description:
          "The device's newest connection. `online` is true only while the edge named holds a live lease on the slot; " +
          "a record left behind by an edge that died answers 200 with `online: false` and the last known connection. " +
          "A device with no record (never connected, or its last connection closed) is 404 `device_not_found`.",
        tags: ["devices"],
        security: bearerSecurity,
        params: DeviceParams,
        response: {
          200: Device,
          404: errorResponse("The device has no connection record (`device_not_found`)."),
          429: busyError,
          ...commonErrors,
        },
      },
    },
    async (request) => {
      const { deviceId } = request.params;
      const presence = await lookupDevice(deps, deviceId);
      if (presence === null) throw new ApiError("device_not_found", `no connection record for device ${deviceId}`);
      const { record, online } = presence;
      return {
        deviceId: record.deviceId,
        online,
        edgeId: record.edgeId,
        slot: record.slot,
        connId: record.connId,
        connectedAt: record.connectedAt,
        epoch: record.epoch,
        protocol: record.protocol ?? "ndjson",
      };
    },
  );

  app.post(
    "/devices/:deviceId/messages",
    {
      bodyLimit: PUSH_BODY_LIMIT,
      schema: {
        operationId: "pushMessage",
        summary: "Push a message to a device",
        description:
          "Writes the push to `downlink` (key = deviceId). The worker delivers it to the device's edge, or keeps it in " +
          "the outbox until the device connects, up to `ttlSeconds`. Accepted once Kafka has it: 202.",
        tags: ["devices"],
        security: bearerSecurity,
        params: DeviceParams,
        body: PushBody,
        response: {
          202: PushAccepted,
          413: errorResponse(
            "The body is over 64 KiB, or the push frame the device would get is over its frame limit (`payload_too_large`).",
          ),
          415: errorResponse("The body is not `application/json` (`unsupported_media_type`)."),
          429: busyError,
          ...commonErrors,
        },
      },
    },
    async (request, reply) => {
      const { deviceId } = request.params;
      const { type, body, ttlSeconds = DEFAULT_TTL_SECONDS } = request.body;
      const messageId = randomUUID();
      // The device gets this exact frame; one the edge's clients would refuse is refused here.
      const frameBytes = Buffer.byteLength(pushFrame({ messageId, type, body }), "utf8");
      if (frameBytes > deps.maxFrameBytes) {
        throw new ApiError(
          "payload_too_large",
          `push frame is ${frameBytes} bytes; the limit is ${deps.maxFrameBytes}`,
        );
      }
      // Looked up before producing so that a registry failure leaves nothing behind to retry over.
      const presence = await lookupDevice(deps, deviceId);
      const createdAt = deps.now();
      const record: DownlinkRecord = {
        deviceId,
        messageId,
        type,
        body,
        expiresAt: createdAt + ttlSeconds * 1000,
        createdAt,
      };
      await deps.producer.send(downlinkRecord(deps.names.downlinkTopic, record), {
        timeoutMs: deps.dependencyTimeoutMs,
      });
      request.log.info({ deviceId, messageId, type }, "push accepted");
      reply.code(202);
      return { messageId, online: presence?.online ?? false, expiresAt: record.expiresAt };
    },
  );

  app.delete(
    "/devices/:deviceId/connection",
    {
      schema: {
        operationId: "kickDevice",
        summary: "Kick a device",
        description:
          "Tells the edge holding the device's connection to close it with `bye kicked` (a control record on the " +
          "edge's partition of `replies`). 404 `device_not_found` without a record, `device_offline` when the record's " +
          "edge is gone.",
        tags: ["devices"],
        security: bearerSecurity,
        params: DeviceParams,
        response: {
          202: KickAccepted,
          404: errorResponse(
            "The device has no connection record (`device_not_found`), or its record's edge is gone (`device_offline`).",
          ),
          429: busyError,
          ...commonErrors,
        },
      },
    },
    async (request, reply) => {
      const { deviceId } = request.params;
      const presence = await lookupDevice(deps, deviceId);
      if (presence === null) throw new ApiError("device_not_found", `no connection record for device ${deviceId}`);
      if (!presence.online) throw new ApiError("device_offline", `device ${deviceId} has no live connection`);
      const { record } = presence;
      const control: ControlRecord = { op: "close", deviceId, connId: record.connId, reason: "kicked" };
      await deps.producer.send(controlRecord(deps.names.repliesTopic, record.slot, control), {
        timeoutMs: deps.dependencyTimeoutMs,
      });
      request.log.info({ deviceId, edgeId: record.edgeId, connId: record.connId }, "kick sent");
      reply.code(202);
      return { deviceId, edgeId: record.edgeId, connId: record.connId };
    },
  );
};
