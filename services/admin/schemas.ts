import { type Static, type TUnsafe, Type } from "typebox";
import { DEVICE_ID_PATTERN, TYPE_PATTERN } from "../../shared/protocol/frames.ts";
import { type ApiErrorCode, apiErrorCodes } from "./errors.ts";

/** Longest push lifetime: the outbox keeps nothing longer than a week. */
export const MAX_TTL_SECONDS = 7 * 24 * 60 * 60;
export const DEFAULT_TTL_SECONDS = 24 * 60 * 60;
export const MAX_PAGE_SIZE = 1000;
export const DEFAULT_PAGE_SIZE = 100;

/** Edge ids follow the device id alphabet: they travel in the same headers and URLs. */
export const EDGE_ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;

export const DeviceId = Type.String({
  pattern: DEVICE_ID_PATTERN.source,
  description: "1 to 128 characters of A-Z a-z 0-9 . _ : -",
  examples: ["sensor-42"],
});

export const EdgeId = Type.String({
  pattern: EDGE_ID_PATTERN.source,
  description: "1 to 128 characters of A-Z a-z 0-9 . _ : -",
});

const Millis = Type.Integer({ description: "milliseconds since the Unix epoch" });

/**
 * The body of every error answer. Registered once on the app (`sharedSchemas`), so the OpenAPI
 * document holds it once, as the component `ApiError`, and error responses refer to it.
 */
export const ApiErrorSchema = Type.Object(
  {
    statusCode: Type.Integer({ description: "the HTTP status, repeated" }),
    // One enum rather than a union of constants: one line in the document, one type in clients.
    code: Type.Unsafe<ApiErrorCode>({
      type: "string",
      enum: apiErrorCodes,
      description: "what went wrong; one of a closed list (docs/admin-api.md)",
    }),
    message: Type.String({ description: "for people; may change" }),
  },
  { $id: "ApiError", description: "Every error answer has this shape." },
);

/** Schemas every route may refer to by `$ref`; `buildApp` adds them before any route. */
export const sharedSchemas = [ApiErrorSchema] as const;

/** An error response: a reference to {@link ApiErrorSchema}, described for the status it is. */
export function errorResponse(description: string): TUnsafe<Static<typeof ApiErrorSchema>> {
  return Type.Unsafe<Static<typeof ApiErrorSchema>>({ $ref: "ApiError#", description });
}

/** An error response with nothing to say beyond its status and code. */
export const ErrorResponse = errorResponse("An error; `code` says which.");

export const DeviceParams = Type.Object({ deviceId: DeviceId }, { additionalProperties: false });
export const EdgeParams = Type.Object({ edgeId: EdgeId }, { additionalProperties: false });

export const Edge = Type.Object({
  edgeId: EdgeId,
  slot: Type.Integer({ minimum: 0, description: "partition of `replies` the edge consumes" }),
  host: Type.String(),
  startedAt: Millis,
  leaseUntil: Millis,
  connections: Type.Union([Type.Integer({ minimum: 0 }), Type.Null()], {
    description: "open connections at the edge's last lease renewal; null before its first report",
  }),
});

export const EdgeList = Type.Object(
  { edges: Type.Array(Edge) },
  { description: "The edges whose slot lease has not expired, by slot." },
);

export const Device = Type.Object(
  {
    deviceId: DeviceId,
    online: Type.Boolean({ description: "true while the edge named here holds a live lease on its slot" }),
    edgeId: EdgeId,
    slot: Type.Integer({ minimum: 0 }),
    connId: Type.String(),
    connectedAt: Millis,
    epoch: Type.Integer({
      description: "the connection's ownership epoch: of two connections of the device, the higher is newer",
    }),
    protocol: Type.String({
      description: "what the device speaks: ndjson, mqtt5 or mqtt3.1.1, with +ws when carried by a WebSocket",
    }),
  },
  { description: "The device's newest connection, and whether it is live." },
);

export const EdgeDevicesQuery = Type.Object(
  {
    limit: Type.Integer({ minimum: 1, maximum: MAX_PAGE_SIZE, default: DEFAULT_PAGE_SIZE }),
    cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 4096, description: "from the previous page" })),
  },
  { additionalProperties: false },
);

export const EdgeDevice = Type.Object({
  deviceId: DeviceId,
  connId: Type.String(),
  slot: Type.Integer({ minimum: 0 }),
  epoch: Type.Integer(),
  connectedAt: Millis,
  protocol: Type.String({ description: "ndjson, mqtt5 or mqtt3.1.1, with +ws when carried by a WebSocket" }),
});

export const EdgeDevicePage = Type.Object(
  {
    edgeId: EdgeId,
    items: Type.Array(EdgeDevice),
    cursor: Type.Optional(Type.String({ description: "pass back as `cursor` for the next page; absent on the last" })),
  },
  { description: "A page of the connection records that name the edge." },
);

export const PushBody = Type.Object(
  {
    type: Type.String({ pattern: TYPE_PATTERN.source, description: "the push frame's `type`" }),
    body: Type.Unknown({ description: "any JSON; delivered to the device unchanged" }),
    ttlSeconds: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: MAX_TTL_SECONDS,
        description: `how long an offline device may still get it; default ${DEFAULT_TTL_SECONDS}`,
      }),
    ),
  },
  { additionalProperties: false },
);

export const PushAccepted = Type.Object(
  {
    messageId: Type.String({ description: "the push frame's `id`; the device acks it" }),
    online: Type.Boolean({ description: "whether the device had a live connection when the push was accepted" }),
    expiresAt: Millis,
  },
  { description: "Kafka has the push; a worker delivers it, or keeps it in the outbox until `expiresAt`." },
);

export const KickAccepted = Type.Object(
  {
    deviceId: DeviceId,
    edgeId: EdgeId,
    connId: Type.String(),
  },
  { description: "Kafka has the kick; the edge named closes the connection with `bye kicked`." },
);

/** Error responses any /v1 route can give besides its own: for the OpenAPI document. */
export const commonErrors = {
  400: errorResponse("The request does not match its schema (`validation_failed`) or cannot be read (`bad_request`)."),
  401: errorResponse("No bearer token, or the wrong one (`unauthorized`)."),
  500: errorResponse("A bug (`internal`); the log has the details."),
  503: errorResponse("Kafka or DynamoDB did not answer in time (`unavailable`); retry."),
} as const;

/**
 * 429 from any /v1 route: the API's bound on requests in flight, or the limit on failed
 * authentications. Apart from {@link commonErrors}, since a route may have a 429 of its own.
 */
export const busyError = errorResponse(
  "Too many requests in flight (`overloaded`), or too many failed authentications from this address " +
    "(`rate_limited`); retry after `Retry-After` seconds.",
);

export const bearerSecurity = [{ bearerAuth: [] }];
