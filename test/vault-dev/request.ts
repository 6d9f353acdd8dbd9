import { FieldError, isJsonObject, parseDurationSeconds, parseGoBool } from "./go-format.js";
import { type HttpReply, errorReply } from "./http-util.js";

/** An HTTP request as received, before any Vault semantics are applied. */
export interface RawRequest {
  readonly method: string;
  readonly url: string;
  /** Lower-case header names. */
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Buffer;
  /** The body exceeded the server's limit and was cut off. */
  readonly bodyTooLarge?: boolean;
}

/** Vault's logical operations (HEAD/"header" is only served by sys/health). */
export type Operation = "read" | "list" | "update" | "patch" | "delete";

/** A request translated the way `http/logical.go` `buildLogicalRequestNoAuth` does it. */
export interface LogicalRequest {
  readonly operation: Operation;
  /** Decoded path without `/v1/`; list operations always end with `/`. */
  readonly path: string;
  /** Query parameters or the parsed body; `null` when there were none. */
  readonly data: Record<string, unknown> | null;
  /** From `X-Vault-Token`, else `Authorization: Bearer`; `""` when absent. */
  readonly token: string;
  /** Seconds from `X-Vault-Wrap-TTL`; 0 = do not wrap. */
  readonly wrapTtl: number;
}

/** Vault's default `max_request_size` (32 MiB). */
export const MAX_REQUEST_SIZE = 32 * 1024 * 1024;

const PATCH_CONTENT_TYPE = "application/merge-patch+json";

/**
 * Splits `/v1/<path>?query` into the decoded logical path and the query. Anything
 * outside `/v1/` is Vault's 404 with an empty error list.
 */
export function splitUrl(url: string): { path: string; query: URLSearchParams } | HttpReply {
  const questionMark = url.indexOf("?");
  const pathname = questionMark === -1 ? url : url.slice(0, questionMark);
  const query = new URLSearchParams(questionMark === -1 ? "" : url.slice(questionMark + 1));
  if (!pathname.startsWith("/v1/")) return errorReply(404, []);
  try {
    return { path: decodeURIComponent(pathname.slice("/v1/".length)), query };
  } catch {
    return errorReply(400, []);
  }
}

/** The client token: `X-Vault-Token` wins over `Authorization: Bearer` (RFC 6750). */
export function requestToken(headers: Readonly<Record<string, string>>): string {
  const direct = headers["x-vault-token"];
  if (direct !== undefined && direct !== "") return direct;
  const authorization = headers.authorization ?? "";
  const match = /^bearer\s+(.+)$/i.exec(authorization.trim());
  return match?.[1]?.trim() ?? "";
}

/**
 * Builds the logical request, or the reply Vault gives when it cannot: 405 for an
 * unknown method, 400 for a bad `list=` value or bad JSON, 415/400 for a PATCH with
 * the wrong Content-Type, 413 for an oversized body.
 */
export function parseLogicalRequest(
  raw: RawRequest,
  path: string,
  query: URLSearchParams,
): LogicalRequest | HttpReply {
  const method = raw.method.toUpperCase();
  let operation: Operation;
  let data: Record<string, unknown> | null;
  let logicalPath = path;
  switch (method) {
    case "GET": {
      operation = "read";
      data = queryData(query);
      const list = query.get("list");
      if (list !== null && list !== "") {
        const parsed = parseGoBool(list);
        if (parsed === undefined) return errorReply(400, []);
        if (parsed) {
          operation = "list";
          if (data) delete data.list;
          if (data && Object.keys(data).length === 0) data = null;
          if (!logicalPath.endsWith("/")) logicalPath += "/";
        }
      }
      break;
    }
    case "LIST":
      operation = "list";
      data = queryData(query);
      if (!logicalPath.endsWith("/")) logicalPath += "/";
      break;
    case "DELETE":
      operation = "delete";
      data = queryData(query);
      break;
    case "POST":
    case "PUT": {
      operation = "update";
      if (raw.bodyTooLarge) return errorReply(413, ["http: request body too large"]);
      const parsed = parseBody(raw);
      if ("status" in parsed) return parsed;
      data = parsed.data;
      break;
    }
    case "PATCH": {
      operation = "patch";
      const mediaType = parseMediaType(raw.headers["content-type"]);
      if (mediaType instanceof Error) return errorReply(400, [mediaType.message]);
      if (mediaType !== PATCH_CONTENT_TYPE) {
        return errorReply(415, [
          `PATCH requires Content-Type of ${PATCH_CONTENT_TYPE}, provided ${mediaType}`,
        ]);
      }
      if (raw.bodyTooLarge) return errorReply(413, ["http: request body too large"]);
      const parsed = parseJson(raw.body);
      if ("status" in parsed) return parsed;
      data = parsed.data;
      break;
    }
    default:
      return errorReply(405, []);
  }
  const wrapTtl = parseWrapTtl(raw.headers["x-vault-wrap-ttl"]);
  if (typeof wrapTtl !== "number") return wrapTtl;
  return { operation, path: logicalPath, data, token: requestToken(raw.headers), wrapTtl };
}

/** `parseQuery`: single values become strings, repeated ones arrays; `help` is reserved. */
function queryData(query: URLSearchParams): Record<string, unknown> | null {
  const data: Record<string, unknown> = {};
  for (const key of new Set(query.keys())) {
    if (key === "help") continue;
    const values = query.getAll(key);
    data[key] = values.length === 1 ? values[0] : values;
  }
  return Object.keys(data).length > 0 ? data : null;
}

/** Form bodies only when declared as such and not starting like JSON; JSON otherwise. */
function parseBody(raw: RawRequest): { data: Record<string, unknown> | null } | HttpReply {
  const mediaType = parseMediaType(raw.headers["content-type"]);
  const text = raw.body.toString("utf8");
  const first = text.trimStart()[0];
  if (mediaType === "application/x-www-form-urlencoded" && first !== "{" && first !== "[") {
    return { data: queryData(new URLSearchParams(text)) };
  }
  return parseJson(raw.body);
}

function parseJson(body: Buffer): { data: Record<string, unknown> | null } | HttpReply {
  const text = body.toString("utf8");
  if (text.trim() === "") return { data: null };
  try {
    const value: unknown = JSON.parse(text);
    if (value === null) return { data: null };
    if (!isJsonObject(value)) return errorReply(400, ["error parsing JSON"]);
    return { data: value };
  } catch {
    return errorReply(400, ["error parsing JSON"]);
  }
}

/** Go `mime.ParseMediaType`, reduced to what Vault looks at. */
function parseMediaType(header: string | undefined): string | Error {
  const type = (header ?? "").split(";")[0]?.trim().toLowerCase() ?? "";
  if (type === "") return new Error("mime: no media type");
  if (!/^[!#$%&'*+\-.^_`|~0-9a-z]+\/[!#$%&'*+\-.^_`|~0-9a-z]+$/.test(type)) {
    return new Error("mime: expected slash after first token");
  }
  return type;
}

function parseWrapTtl(header: string | undefined): number | HttpReply {
  if (header === undefined || header.trim() === "") return 0;
  try {
    const seconds = parseDurationSeconds(header);
    if (seconds < 0) {
      return errorReply(400, [
        "error parsing X-Vault-Wrap-TTL header: requested wrap ttl cannot be negative",
      ]);
    }
    return Math.trunc(seconds);
  } catch (err) {
    if (err instanceof FieldError)
      return errorReply(400, [`error parsing X-Vault-Wrap-TTL header: ${err.message}`]);
    throw err;
  }
}
