import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import type { FastifyReply } from "fastify";
import { Type } from "typebox";
import { type ConsoleAssets, loadConsoleAssets } from "../console-assets.ts";
import { ApiError } from "../errors.ts";
import { ErrorResponse } from "../schemas.ts";

/**
 * Everything the page may load comes from this API: no CDN, no inline script, no framing. uPlot
 * sizes its canvas through style attributes, hence the inline styles.
 */
const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");

const AssetParams = Type.Object(
  { file: Type.String({ pattern: "^[a-z]{1,32}\\.[a-z]{1,8}$", description: "console.js or console.css" }) },
  { additionalProperties: false },
);

export interface ConsoleRouteOptions {
  /** Where the console's files are; next to the admin API's module when omitted. */
  readonly assetsDir?: string;
}

/**
 * The operator console: a static page and its two bundled files. They are public, like any login
 * page; everything they show comes from the /v1 routes, behind the admin token.
 */
export const consoleRoutes: FastifyPluginAsyncTypebox<ConsoleRouteOptions> = async (app, options) => {
  // Read (or, from a checkout, bundled) on first use, once: most API processes never serve it.
  let assets: Promise<ConsoleAssets> | undefined;
  const serve = async (reply: FastifyReply, name: string): Promise<FastifyReply> => {
    assets ??= loadConsoleAssets(options.assetsDir).catch((error: unknown) => {
      assets = undefined;
      throw error;
    });
    let loaded: ConsoleAssets;
    try {
      loaded = await assets;
    } catch (error) {
      reply.log.error({ err: error }, "console assets could not be loaded");
      throw new ApiError("internal", "the console is not available", { cause: error });
    }
    const asset = loaded.get(name);
    if (asset === undefined) throw new ApiError("not_found", `no console file ${name}`);
    reply
      .header("content-type", asset.contentType)
      .header("content-security-policy", CONTENT_SECURITY_POLICY)
      .header("x-content-type-options", "nosniff")
      .header("referrer-policy", "no-referrer")
      .header("cache-control", "no-cache");
    return reply.send(asset.body);
  };

  app.get(
    "/",
    {
      schema: {
        operationId: "getRoot",
        summary: "Go to the console",
        description: "Redirects to /console.",
        tags: ["console"],
        response: { 302: { description: "to /console", type: "null" } },
      },
    },
    async (_request, reply) => reply.redirect("/console", 302),
  );

  for (const path of ["/console", "/console/"]) {
    app.get(
      path,
      {
        schema: {
          operationId: path === "/console" ? "getConsole" : "getConsoleSlash",
          summary: "The operator console",
          description:
            "The console's page (HTML). It asks for the admin token and keeps it in the tab's sessionStorage; the " +
            "token goes only in the Authorization header of its /v1 calls.",
          tags: ["console"],
          ...(path === "/console/" ? { hide: true } : {}),
          response: {
            200: { description: "the page", content: { "text/html": { schema: { type: "string" } } } },
            500: ErrorResponse,
          },
        },
      },
      async (_request, reply) => serve(reply, "index.html"),
    );
  }

  app.get(
    "/console/assets/:file",
    {
      schema: {
        operationId: "getConsoleAsset",
        summary: "A file of the console",
        description: "The console's script and style sheet, bundled with esbuild.",
        tags: ["console"],
        params: AssetParams,
        response: {
          200: {
            description: "the file",
            content: {
              "text/javascript": { schema: { type: "string" } },
              "text/css": { schema: { type: "string" } },
            },
          },
          400: ErrorResponse,
          404: ErrorResponse,
          500: ErrorResponse,
        },
      },
    },
    async (request, reply) => serve(reply, request.params.file),
  );
};
