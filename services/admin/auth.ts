import { createHash, timingSafeEqual } from "node:crypto";
import type { FastifyReply, FastifyRequest, onRequestHookHandler } from "fastify";
import { ApiError } from "./errors.ts";

function digest(value: string): Buffer {
  return createHash("sha256").update(value, "utf8").digest();
}

/**
 * A hook that lets a request through only with `Authorization: Bearer <token>`. Both sides are
 * hashed first so that the comparison takes the same time whatever the length or content of
 * the presented token.
 */
export function bearerAuth(token: string): onRequestHookHandler {
  if (token === "") throw new Error("the admin token must not be empty");
  const expected = digest(token);
  return function checkBearer(request: FastifyRequest, _reply: FastifyReply, done: (error?: Error) => void): void {
    const header = request.headers.authorization;
    const match = typeof header === "string" ? /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header) : null;
    const presented = match?.[1];
    if (presented !== undefined && timingSafeEqual(digest(presented), expected)) {
      done();
      return;
    }
    done(new ApiError("unauthorized", "missing or wrong bearer token"));
  };
}
