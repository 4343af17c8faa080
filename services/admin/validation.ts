import type { FastifySchemaCompiler, FastifySchemaValidationError } from "fastify";
import type { TSchema } from "typebox";
import { Compile } from "typebox/compile";

type JsonSchema = {
  readonly type?: unknown;
  readonly default?: unknown;
  readonly properties?: Readonly<Record<string, JsonSchema>>;
};

const numeric = /^-?\d+(\.\d+)?$/;

/**
 * Deepest nesting of objects and arrays a request body may have. A push's body reaches the
 * device inside a frame as deep as the request (`{"type","body"}` becomes `{"t","id","type",
 * "body"}`), and the devices' parsers stop at this depth; deeper values would also overflow the
 * stack of code that walks them recursively, as `JSON.stringify` does.
 */
export const MAX_JSON_DEPTH = 64;

/**
 * Whether a parsed JSON value nests objects and arrays more than `max` deep (`{}` and `[1]` are
 * 1 deep, a scalar 0). Iterative, so any depth is safe to ask about, and it stops at the first
 * container past `max`, so the work is bounded by the size of the value.
 */
export function jsonDepthExceeds(value: unknown, max: number): boolean {
  const pending: unknown[] = [value];
  const depths: number[] = [1];
  for (;;) {
    const current = pending.pop();
    const depth = depths.pop();
    if (depth === undefined) return false;
    if (typeof current !== "object" || current === null) continue;
    if (depth > max) return true;
    const children = Array.isArray(current) ? current : Object.values(current);
    for (const child of children) {
      if (typeof child === "object" && child !== null) {
        pending.push(child);
        depths.push(depth + 1);
      }
    }
  }
}

/**
 * Query strings and path parameters arrive as strings: turn the ones the schema wants as numbers
 * or booleans into them (only when they spell one exactly), and fill in defaults. Nothing else
 * is converted, so `limit=2.5` stays a fraction and fails an integer schema.
 */
function fromStrings(schema: JsonSchema, input: unknown): unknown {
  if (typeof input !== "object" || input === null || schema.properties === undefined) return input;
  const output: Record<string, unknown> = { ...(input as Record<string, unknown>) };
  for (const [name, property] of Object.entries(schema.properties)) {
    const value = output[name];
    if (value === undefined) {
      if (property.default !== undefined) output[name] = property.default;
      continue;
    }
    if (typeof value !== "string") continue;
    if ((property.type === "integer" || property.type === "number") && numeric.test(value)) {
      output[name] = Number(value);
    } else if (property.type === "boolean" && (value === "true" || value === "false")) {
      output[name] = value === "true";
    }
  }
  return output;
}

function nameUnknownFields(error: FastifySchemaValidationError): FastifySchemaValidationError {
  const extra = (error.params as { additionalProperties?: unknown }).additionalProperties;
  if (error.keyword !== "additionalProperties" || !Array.isArray(extra)) return error;
  return { ...error, message: `must not have unknown fields: ${extra.map(String).join(", ")}` };
}

/**
 * Validates with TypeBox's compiler. Bodies are checked exactly as sent: no type coercion and no
 * removal of unknown fields, so `{"ttlSeconds":"60"}` or an extra field is a 400, not a guess.
 */
export const validatorCompiler: FastifySchemaCompiler<TSchema> = ({ schema, httpPart }) => {
  const check = Compile(schema);
  const prepare = httpPart === "body" ? (value: unknown) => value : (value: unknown) => fromStrings(schema, value);
  return (input: unknown) => {
    const value = prepare(input);
    // Before the schema, so that nothing walks a value too deep to walk.
    if (httpPart === "body" && jsonDepthExceeds(value, MAX_JSON_DEPTH)) {
      const tooDeep: FastifySchemaValidationError = {
        keyword: "maxDepth",
        instancePath: "",
        schemaPath: "#",
        params: { limit: MAX_JSON_DEPTH },
        message: `must not nest objects and arrays more than ${MAX_JSON_DEPTH} deep`,
      };
      return { error: [tooDeep] };
    }
    if (check.Check(value)) return { value };
    const errors = check.Errors(value) as FastifySchemaValidationError[];
    // `additionalProperties: false` reports each extra field twice; keep the readable one.
    const readable = errors.filter((error) => error.keyword !== "boolean").map(nameUnknownFields);
    return { error: readable.length > 0 ? readable : errors };
  };
};
