/** The admin API's OpenAPI document and its docs page at /docs (@fastify/swagger, swagger-ui). */

import type { FastifyDynamicSwaggerOptions } from "@fastify/swagger";
import type { FastifySwaggerUiOptions } from "@fastify/swagger-ui";
import type { FastifySchema } from "fastify";

/** Tags in the order the docs page lists them; every route names one. */
export const openapiTags = [
  { name: "fleet", description: "The fleet as a whole: live edges, the devices each holds, fleet figures, events" },
  {
    name: "devices",
    description: "One device: where it is connected, its events and outbox, pushes to it, kicking it",
  },
  { name: "dead-letters", description: "Requests the workers gave up on: list them and replay them" },
  { name: "operations", description: "Liveness and readiness, for orchestrators and load balancers; no token" },
  { name: "console", description: "The operator console's page and files; no token" },
] as const;

type RouteResponses = Readonly<Record<string, { readonly description?: unknown } | undefined>>;

/**
 * Gives a response that has no description of its own its route's summary, so that the document
 * never says "Default Response". Only the document is changed, not the schemas the route
 * serializes with.
 */
function describeResponses({ schema, url }: { schema: FastifySchema; url: string }): {
  schema: FastifySchema;
  url: string;
} {
  const responses = schema?.response as RouteResponses | undefined;
  const summary = (schema as { summary?: unknown } | undefined)?.summary;
  if (responses === undefined || typeof summary !== "string") return { schema, url };
  const described = Object.fromEntries(
    Object.entries(responses).map(([status, response]) =>
      response === undefined || typeof response.description === "string"
        ? [status, response]
        : [status, { ...response, description: summary }],
    ),
  );
  return { schema: { ...schema, response: described }, url };
}

/** Options of @fastify/swagger: the document's info, tags, security scheme and shared schemas. */
export const openapiOptions: FastifyDynamicSwaggerOptions = {
  openapi: {
    openapi: "3.1.0",
    info: {
      title: "Tether admin API",
      version: "1",
      description:
        "Operate a Tether fleet: live edges, device lookup, pushes and kicks, dead letters. Every /v1 route needs " +
        "`Authorization: Bearer <TETHER_ADMIN_TOKEN>`. Every error answer is an `ApiError` " +
        "(`{statusCode, code, message}`), whose `code` is one of a closed list.",
    },
    tags: [...openapiTags],
    components: {
      securitySchemes: { bearerAuth: { type: "http", scheme: "bearer", description: "TETHER_ADMIN_TOKEN" } },
    },
  },
  // A schema registered with `addSchema` becomes a component named by its `$id` (`ApiError`),
  // not `def-0`: the name is part of the document's contract, as operationIds are.
  refResolver: {
    buildLocalReference: (json, _baseUri, _fragment, i) => (typeof json.$id === "string" ? json.$id : `def-${i}`),
  },
  transform: describeResponses,
};

/** Tether's mark: a device (the dot) held to the fleet (the ring) by its connection. */
const MARK = `<circle cx="20" cy="20" r="13" fill="none" stroke="#49cc90" stroke-width="4"/><line x1="20" y1="20" x2="36" y2="6" stroke="#49cc90" stroke-width="3" stroke-linecap="round"/><circle cx="20" cy="20" r="4.5" fill="#ffffff"/>`;

/** The docs page's favicon: the mark alone. */
export const FAVICON_SVG = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 40 40">${MARK}</svg>`;

/** The docs page's top bar logo (the bar is dark): the mark and the product's name. */
export const LOGO_SVG = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 250 40" width="250" height="40">${MARK}<text x="48" y="28" font-family="Helvetica, Arial, sans-serif" font-size="22" font-weight="700" fill="#ffffff">Tether</text><text x="124" y="28" font-family="Helvetica, Arial, sans-serif" font-size="18" fill="#c8c8c8">admin API</text></svg>`;

/**
 * Everything the page loads comes from this server: swagger-ui's own files from its package, the
 * logo inline, the favicon from the theme route. No CDN, no online validator.
 */
const DOCS_CSP = [
  "default-src 'self'",
  "base-uri 'self'",
  "connect-src 'self'",
  "font-src 'self' data:",
  "frame-ancestors 'self'",
  "img-src 'self' data:",
  "object-src 'none'",
  "script-src 'self'",
  "script-src-attr 'none'",
  "style-src 'self'",
].join("; ");

/** Options of @fastify/swagger-ui: the Tether-branded docs page at /docs. */
export const docsPageOptions: FastifySwaggerUiOptions = {
  routePrefix: "/docs",
  theme: {
    title: "Tether admin API",
    favicon: [{ filename: "tether.svg", rel: "icon", type: "image/svg+xml", sizes: "any", content: FAVICON_SVG }],
  },
  logo: { type: "image/svg+xml", content: LOGO_SVG, href: "/docs", target: "_self" },
  uiConfig: { deepLinking: true, docExpansion: "list", defaultModelsExpandDepth: 1, displayOperationId: true },
  validatorUrl: false,
  staticCSP: DOCS_CSP,
};
