import { type FastifyReply, type FastifyRequest, LogController } from "fastify";
import { rejectionOf } from "./errors.ts";

/**
 * One log line per request, written when its response is sent: what was asked, the status,
 * the time taken and, for a refusal, its code and reason. Fastify's own logging writes one line
 * when a request arrives and one when it completes, and the error handler added a third; a flood
 * of refused requests then cost three lines each.
 */
export class RequestLog extends LogController {
  override incomingRequest(): void {
    // Folded into the completion line.
  }

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    const rejection = rejectionOf(request);
    const fields = {
      req: request,
      res: reply,
      responseTime: reply.elapsedTime,
      ...(rejection === undefined ? {} : { code: rejection.code, reason: rejection.reason }),
    };
    if (error) request.log.error({ ...fields, err: error }, "request errored");
    else request.log.info(fields, "request completed");
  }
}
