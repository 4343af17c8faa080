import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import type { DeadLetterRecord } from "../../../shared/records/index.ts";
import { DeadLetterList, DeadLettersQuery, ReplayBody, ReplayResult } from "../console-schemas.ts";
import { startedTail } from "../console-sources.ts";
import type { RouteDeps } from "../deps.ts";
import { bearerSecurity, commonErrors } from "../schemas.ts";
import type { TailEntry } from "../tail.ts";

function replayable(letter: DeadLetterRecord): boolean {
  return letter.request !== null && typeof letter.request === "object";
}

function view(entry: TailEntry<DeadLetterRecord>) {
  const letter = entry.value;
  return {
    id: entry.id,
    deviceId: entry.key,
    error: letter.error,
    attempts: letter.attempts,
    request: letter.request,
    ...(letter.rawValue === undefined ? {} : { rawValue: letter.rawValue }),
    source: letter.source,
    failedAt: letter.failedAt,
    replayable: replayable(letter),
  };
}

/** Requests the workers gave up on: listed, and written back to `requests` on an operator's word. */
export const deadLetterRoutes: FastifyPluginAsyncTypebox<{ deps: RouteDeps }> = async (app, { deps }) => {
  app.get(
    "/dead-letters",
    {
      schema: {
        operationId: "listDeadLetters",
        summary: "List dead letters",
        description:
          "Recent `requests.dlq` records, newest first: the error that made the worker give up, its attempts and the " +
          "request. The API holds the last two thousand; `written` counts every one the topic received.",
        tags: ["dead-letters"],
        security: bearerSecurity,
        querystring: DeadLettersQuery,
        response: { 200: DeadLetterList, ...commonErrors },
      },
    },
    async (request) => {
      const tail = await startedTail(deps.console.deadLetters, "dead letters");
      const ends = deps.admin === undefined ? [] : await deps.admin.endOffsets(deps.names.dlqTopic);
      const items = tail.recent(request.query.limit).map(view);
      return { written: ends.reduce((sum, end) => sum + end, 0), items };
    },
  );

  app.post(
    "/dead-letters/replay",
    {
      schema: {
        operationId: "replayDeadLetters",
        summary: "Replay dead letters",
        description:
          "Writes the request of each named dead letter back to `requests`, with its original key and headers, so the " +
          "answer takes the original reply route (an edge parks it when that connection is gone). Each replay is " +
          "logged as an audit record. Ids the API does not hold, or letters without a valid request, are refused " +
          "one by one. A worker answers a request it already answered inside its dedupe window from that window.",
        tags: ["dead-letters"],
        security: bearerSecurity,
        body: ReplayBody,
        response: { 202: ReplayResult, ...commonErrors },
      },
    },
    async (request, reply) => {
      const tail = await startedTail(deps.console.deadLetters, "dead letters");
      // The audit records are written whatever the log level, unless logging is off altogether.
      const audit = request.log.level === "silent" ? request.log : request.log.child({}, { level: "info" });
      const replayed: { id: string; partition: number; offset: string }[] = [];
      const refused: { id: string; reason: "unknown" | "not_replayable" }[] = [];
      for (const id of request.body.ids) {
        const entry = tail.find(id);
        if (entry === undefined) {
          refused.push({ id, reason: "unknown" });
          continue;
        }
        const letter = entry.value;
        if (!replayable(letter)) {
          refused.push({ id, reason: "not_replayable" });
          continue;
        }
        const report = await deps.producer.send(
          {
            topic: deps.names.requestsTopic,
            key: entry.key,
            value: JSON.stringify(letter.request),
            headers: letter.headers,
          },
          { timeoutMs: deps.dependencyTimeoutMs },
        );
        replayed.push({ id, partition: report.partition, offset: report.offset });
        // Its reqId ties it to the request's own line (address, status).
        audit.info(
          {
            audit: "dead_letter_replay",
            deadLetter: id,
            deviceId: entry.key,
            requestId: letter.request?.id,
            type: letter.request?.type,
            to: { topic: report.topic, partition: report.partition, offset: report.offset },
          },
          "dead letter replayed",
        );
      }
      reply.code(202);
      return { replayed, refused };
    },
  );
};
