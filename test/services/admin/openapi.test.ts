import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { describe, type TestContext, test } from "node:test";
import { type AdminApp, buildApp } from "../../../services/admin/app.ts";
import { FAVICON_SVG, LOGO_SVG } from "../../../services/admin/openapi.ts";
import { MemoryBroker, tetherTopics } from "../../../shared/broker/index.ts";
import { resourceNames } from "../../../shared/config/index.ts";
import { silentLogger } from "../../../shared/log/index.ts";
import { MemoryRegistry } from "../../../shared/registry/index.ts";

interface Operation {
  readonly operationId?: string;
  readonly tags?: readonly string[];
  readonly responses: Readonly<
    Record<string, { readonly description?: string; readonly content?: Record<string, { schema?: unknown }> }>
  >;
}

interface Document {
  readonly tags?: ReadonlyArray<{ readonly name: string; readonly description?: string }>;
  readonly paths: Readonly<Record<string, Readonly<Record<string, Operation>>>>;
  readonly components: { readonly schemas?: Readonly<Record<string, unknown>> };
}

async function setup(t: TestContext): Promise<AdminApp> {
  const names = resourceNames("");
  const broker = new MemoryBroker();
  const admin = broker.admin();
  await admin.ensureTopics(tetherTopics({ names, maxEdges: 4, workPartitions: 4 }));
  const registry = new MemoryRegistry({});
  const producer = broker.producer();
  await producer.connect();
  const app = await buildApp({
    registry,
    producer,
    admin,
    broker,
    names,
    maxEdges: 4,
    adminToken: "openapi-test-token",
    logger: silentLogger(),
    defaultMetrics: false,
  });
  t.after(async () => {
    await app.close();
    await producer.close();
    await admin.close();
    await registry.close();
  });
  return app;
}

async function fetchDocument(app: AdminApp): Promise<Document> {
  const response = await app.inject({ method: "GET", url: "/openapi.json" });
  assert.equal(response.statusCode, 200);
  return response.json() as Document;
}

function operations(document: Document): Array<[string, Operation]> {
  return Object.entries(document.paths).flatMap(([path, methods]) =>
    Object.entries(methods).map(([method, operation]): [string, Operation] => [
      `${method.toUpperCase()} ${path}`,
      operation,
    ]),
  );
}

/** Every object in `value`, however deep, that has all of `keys` as properties. */
function objectsWithProperties(value: unknown, keys: readonly string[]): unknown[] {
  if (typeof value !== "object" || value === null) return [];
  const found: unknown[] = [];
  const properties = (value as { properties?: unknown }).properties;
  if (typeof properties === "object" && properties !== null && keys.every((key) => key in properties)) {
    found.push(value);
  }
  for (const child of Object.values(value)) found.push(...objectsWithProperties(child, keys));
  return found;
}

describe("the OpenAPI document", () => {
  test("gives every operation a unique camelCase operationId", async (t) => {
    const document = await fetchDocument(await setup(t));
    const seen = new Map<string, string>();
    const all = operations(document);
    assert.ok(all.length >= 10, `${all.length} operations`);
    for (const [name, operation] of all) {
      const id = operation.operationId;
      assert.ok(id !== undefined, `${name} has an operationId`);
      assert.match(id, /^[a-z][A-Za-z0-9]*$/, `${name}: ${id} is camelCase`);
      assert.equal(seen.get(id), undefined, `${id} is used by ${seen.get(id)} and ${name}`);
      seen.set(id, name);
    }
    // Stable names: clients generated from the document call these.
    assert.equal(seen.get("getDevice"), "GET /v1/devices/{deviceId}");
    assert.equal(seen.get("pushMessage"), "POST /v1/devices/{deviceId}/messages");
    assert.equal(seen.get("kickDevice"), "DELETE /v1/devices/{deviceId}/connection");
    assert.equal(seen.get("listEdges"), "GET /v1/edges");
    assert.equal(seen.get("listEdgeDevices"), "GET /v1/edges/{edgeId}/devices");
    assert.equal(seen.get("getLiveness"), "GET /healthz");
    assert.equal(seen.get("getReadiness"), "GET /readyz");
  });

  test("describes every response, none of them as Default Response", async (t) => {
    const document = await fetchDocument(await setup(t));
    for (const [name, operation] of operations(document)) {
      for (const [status, response] of Object.entries(operation.responses)) {
        assert.ok((response.description ?? "").length > 3, `${name} ${status} has a description`);
        assert.notEqual(response.description, "Default Response", `${name} ${status}`);
      }
    }
    const kick = document.paths["/v1/devices/{deviceId}/connection"]?.delete;
    assert.match(kick?.responses["404"]?.description ?? "", /device_not_found.*device_offline/);
    assert.match(kick?.responses["401"]?.description ?? "", /unauthorized/);
  });

  test("holds the error schema once, under components, and every error response refers to it", async (t) => {
    const document = await fetchDocument(await setup(t));
    const errorShapes = objectsWithProperties(document, ["statusCode", "code", "message"]);
    assert.equal(errorShapes.length, 1, "the error shape is written out once");
    assert.equal(errorShapes[0], document.components.schemas?.ApiError, "and that once is the ApiError component");
    let references = 0;
    for (const [name, operation] of operations(document)) {
      for (const [status, response] of Object.entries(operation.responses)) {
        // Readiness answers 503 with its report of checks, not with an error.
        if (Number(status) < 400 || name === "GET /readyz") continue;
        const media = Object.values(response.content ?? {});
        assert.ok(media.length > 0, `${name} ${status} has a body`);
        for (const { schema } of media) {
          assert.deepEqual(schema, { $ref: "#/components/schemas/ApiError" }, `${name} ${status}`);
        }
        references++;
      }
    }
    assert.ok(references >= 40, `${references} error responses refer to ApiError`);
  });

  test("declares every tag the operations use, each with a description", async (t) => {
    const document = await fetchDocument(await setup(t));
    const declared = new Map((document.tags ?? []).map((tag) => [tag.name, tag.description ?? ""]));
    for (const [name, operation] of operations(document)) {
      assert.ok((operation.tags ?? []).length > 0, `${name} has a tag`);
      for (const tag of operation.tags ?? []) {
        assert.ok((declared.get(tag) ?? "").length > 10, `${name}: tag ${tag} is declared with a description`);
      }
    }
  });

  test("still answers errors in the shape the document gives", async (t) => {
    const app = await setup(t);
    const response = await app.inject({
      method: "GET",
      url: "/v1/devices/no%20spaces",
      headers: { authorization: "Bearer openapi-test-token" },
    });
    assert.equal(response.statusCode, 400);
    const body = response.json() as Record<string, unknown>;
    assert.deepEqual(Object.keys(body).sort(), ["code", "message", "statusCode"]);
    assert.equal(body.code, "validation_failed");
    assert.equal(body.statusCode, 400);
  });

  test("is described in docs/admin-api.md with the same operationIds", async (t) => {
    const document = await fetchDocument(await setup(t));
    const docs = await readFile(new URL("../../../docs/admin-api.md", import.meta.url), "utf8");
    for (const id of ["getDevice", "pushMessage", "kickDevice", "listEdges", "listEdgeDevices"]) {
      assert.ok(docs.includes(`\`${id}\``), `docs/admin-api.md names ${id}`);
      assert.ok(operations(document).some(([, operation]) => operation.operationId === id));
    }
    assert.match(docs, /ApiError/);
  });
});

describe("the docs page", () => {
  test("is Tether's: its title, logo and favicon, nothing of Fastify's or Swagger's, nothing from elsewhere", async (t) => {
    const app = await setup(t);
    const page = await app.inject({ method: "GET", url: "/docs" });
    assert.equal(page.statusCode, 200);
    assert.match(page.body, /<title>Tether admin API<\/title>/);
    assert.doesNotMatch(page.body, /favicon-(16|32)x\d+\.png/, "not Swagger's favicon");
    assert.doesNotMatch(page.body, /(src|href)="(https?:)?\/\//, "every file comes from this server");
    assert.match(page.body, /<link rel="icon" type="image\/svg\+xml" href="[^"]*\/theme\/tether\.svg"/);
    const csp = String(page.headers["content-security-policy"]);
    assert.match(csp, /default-src 'self'/);
    assert.match(csp, /script-src 'self';/);

    const favicon = await app.inject({ method: "GET", url: "/docs/static/theme/tether.svg" });
    assert.equal(favicon.statusCode, 200);
    assert.equal(favicon.body, FAVICON_SVG);

    const initializer = await app.inject({ method: "GET", url: "/docs/static/swagger-initializer.js" });
    assert.equal(initializer.statusCode, 200);
    assert.ok(initializer.body.includes(Buffer.from(LOGO_SVG).toString("base64")), "the logo is Tether's");
    const fastifyLogo = await readFile(
      new URL("../../../node_modules/@fastify/swagger-ui/static/logo.svg", import.meta.url),
    );
    assert.ok(!initializer.body.includes(fastifyLogo.toString("base64")), "not Fastify's logo");
    assert.match(Buffer.from(LOGO_SVG).toString("utf8"), />Tether</);
    assert.match(initializer.body, /validatorUrl: null/, "no online validator");
  });
});
