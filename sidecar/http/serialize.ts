import { isDeepStrictEqual } from "node:util";
import fastJsonStringify from "fast-json-stringify";
import type { FastifySerializerCompiler } from "fastify/types/schema.js";
import { z } from "zod";
import type { RouteDoc } from "./route.js";

type JsonSchema = Record<string, unknown>;

const compiled = new WeakMap<z.ZodType, JsonSchema>();

/** A response's zod schema as a self-contained JSON Schema (what the route answers, `io: output`). */
function jsonSchemaOf(schema: z.ZodType): JsonSchema {
  let js = compiled.get(schema);
  if (js === undefined) {
    const { $schema: _drop, ...rest } = z.toJSONSchema(schema, {
      io: "output",
      unrepresentable: "any",
      reused: "inline",
    }) as JsonSchema;
    js = rest;
    compiled.set(schema, js);
  }
  return js;
}

/**
 * The route's documented JSON answers by status, for fastify to compile into serializers
 * (fast-json-stringify): the answer is written from the schema the OpenAPI document states.
 * Text answers (no schema) and error answers (not documented per route) keep `JSON.stringify`.
 */
export function responseSchemas(route: RouteDoc): Record<number, JsonSchema> | undefined {
  const out: Record<number, JsonSchema> = {};
  for (const [status, res] of Object.entries(route.responses)) {
    if (res.schema !== undefined) out[Number(status)] = jsonSchemaOf(res.schema);
  }
  return Object.keys(out).length > 0 ? out : undefined;
}

/**
 * fast-json-stringify writes only what a schema names, so an answer the schema does not describe
 * (a field added without documenting it, a renamed one, a number where a string is documented)
 * would be changed silently. With `check`, every answer is also written with `JSON.stringify`
 * and one that differs is a fault (500): tests run the sidecar that way, so the difference fails
 * them instead of reaching a client.
 */
export function responseSerializerCompiler(check: boolean): FastifySerializerCompiler<JsonSchema> {
  return ({ schema, method, url, httpStatus }) => {
    // Compiled on the route's first answer of this status, not at start: one serializer per
    // documented answer of every route cost a few hundred ms of each start (issue 19).
    let compiled: ((data: unknown) => string) | undefined;
    const write = (data: unknown) => {
      compiled ??= fastJsonStringify(schema);
      return compiled(data);
    };
    if (!check) return write;
    return (data: unknown) => {
      const out = write(data);
      if (!isDeepStrictEqual(JSON.parse(out), JSON.parse(JSON.stringify(data) ?? "null"))) {
        throw new Error(
          `${method} ${url} ${httpStatus}: the answer differs from its documented schema (a field undocumented, renamed or of another type)`,
        );
      }
      return out;
    };
  };
}
