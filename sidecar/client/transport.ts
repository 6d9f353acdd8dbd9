import { request as httpRequest, type IncomingHttpHeaders } from "node:http";
import { request as httpsRequest } from "node:https";
import { LeaseholdClientError, type LeaseholdErrorDetail, type ServerErrorCode } from "./errors.js";

/** Where the sidecar listens: a base URL (`http://127.0.0.1:7733`) or a Unix socket. */
export type Endpoint = { readonly url: string } | { readonly socketPath: string };

export interface TransportRequest {
  readonly method: "GET" | "POST" | "PUT" | "DELETE";
  /** Path and query, starting with `/`. */
  readonly path: string;
  readonly headers?: Record<string, string>;
  /** Sent as JSON. */
  readonly body?: unknown;
  readonly timeoutMs: number;
  readonly signal?: AbortSignal | undefined;
}

export interface TransportResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly json: Record<string, unknown>;
}

const MAX_RESPONSE_BYTES = 1024 * 1024;

/** One HTTP exchange with the sidecar, over TCP or a Unix socket. */
export interface Transport {
  /**
   * The URL a DPoP proof names for `path` (RFC 9449 `htu`): the origin the request is sent to
   * (over a Unix socket, `http://localhost`) and the path without query.
   */
  htu(path: string): string;
  /**
   * Sends one request and parses the JSON answer, whatever its status.
   * @throws LeaseholdClientError `unreachable`, `aborted` or `bad_response`.
   */
  send(req: TransportRequest): Promise<TransportResponse>;
}

/** Builds the transport for an endpoint. Every request carries `X-Leasehold-Request: true`. */
export function createTransport(endpoint: Endpoint): Transport {
  const socketPath = "socketPath" in endpoint ? endpoint.socketPath : undefined;
  const base = "url" in endpoint ? new URL(endpoint.url) : new URL("http://localhost");
  if (base.protocol !== "http:" && base.protocol !== "https:") {
    throw new Error(`url must be http:// or https://, not ${base.protocol}`);
  }
  const request = base.protocol === "https:" ? httpsRequest : httpRequest;
  const where = socketPath === undefined ? base.origin : `unix:${socketPath}`;

  return {
    htu: (path) => `${base.origin}${path.replace(/[?#].*$/, "")}`,
    send: (req) =>
      new Promise<TransportResponse>((resolve, reject) => {
        const payload = req.body === undefined ? undefined : Buffer.from(JSON.stringify(req.body));
        const headers: Record<string, string> = {
          accept: "application/json",
          // The sidecar's CSRF rule: no browser can add this header to a cross-site request blindly.
          "x-leasehold-request": "true",
          ...req.headers,
        };
        if (payload !== undefined) {
          headers["content-type"] = "application/json";
          headers["content-length"] = String(payload.length);
        }
        if (socketPath !== undefined) headers.host = "localhost";
        const r = request(
          {
            ...(socketPath === undefined
              ? {
                  protocol: base.protocol,
                  hostname: base.hostname.replace(/^\[(.*)\]$/, "$1"),
                  port: base.port,
                }
              : { socketPath }),
            method: req.method,
            path: req.path,
            headers,
            timeout: req.timeoutMs,
            ...(req.signal === undefined ? {} : { signal: req.signal }),
          },
          (res) => {
            const chunks: Buffer[] = [];
            let size = 0;
            res.on("data", (d: Buffer) => {
              size += d.length;
              if (size > MAX_RESPONSE_BYTES) {
                res.destroy();
                reject(
                  new LeaseholdClientError(
                    "bad_response",
                    "the sidecar's answer is too large",
                    res.statusCode,
                  ),
                );
                return;
              }
              chunks.push(d);
            });
            res.on("error", (err) => reject(unreachable(where, err)));
            res.on("end", () => {
              const text = Buffer.concat(chunks).toString("utf8");
              let json: unknown;
              try {
                json = text.length === 0 ? {} : JSON.parse(text);
              } catch {
                reject(
                  new LeaseholdClientError(
                    "bad_response",
                    `the sidecar answered ${res.statusCode ?? 0} with a non-JSON body`,
                    res.statusCode,
                  ),
                );
                return;
              }
              if (typeof json !== "object" || json === null || Array.isArray(json)) {
                reject(new LeaseholdClientError("bad_response", "the sidecar's answer is not a JSON object"));
                return;
              }
              resolve({
                status: res.statusCode ?? 0,
                headers: res.headers,
                json: json as Record<string, unknown>,
              });
            });
          },
        );
        r.on("timeout", () => r.destroy(new Error(`no answer within ${req.timeoutMs} ms`)));
        r.on("error", (err) => {
          if (req.signal?.aborted) reject(new LeaseholdClientError("aborted", "the request was aborted"));
          else reject(unreachable(where, err));
        });
        r.end(payload);
      }),
  };
}

function unreachable(where: string, err: Error): LeaseholdClientError {
  return new LeaseholdClientError(
    "unreachable",
    `cannot reach the sidecar at ${where}: ${err.message}`,
    0,
    undefined,
    undefined,
    {
      cause: err,
    },
  );
}

/** Turns a non-2xx answer into the error it describes (with its `details` and `hint`, if any). */
export function answerError(res: TransportResponse): LeaseholdClientError {
  const e = res.json.error as
    | {
        code?: unknown;
        message?: unknown;
        request_id?: unknown;
        retry_after?: unknown;
        details?: unknown;
        hint?: unknown;
      }
    | undefined;
  const code = typeof e?.code === "string" ? (e.code as ServerErrorCode) : "internal";
  const message = typeof e?.message === "string" ? e.message : `the sidecar answered ${res.status}`;
  const details = Array.isArray(e?.details) ? e.details.filter(isErrorDetail) : undefined;
  return new LeaseholdClientError(
    code,
    message,
    res.status,
    typeof e?.request_id === "string" ? e.request_id : undefined,
    typeof e?.retry_after === "number" ? e.retry_after : undefined,
    {
      ...(details === undefined ? {} : { details }),
      ...(typeof e?.hint === "string" ? { hint: e.hint } : {}),
    },
  );
}

/** One well-formed `error.details` item: `{ field, message }` strings (anything else is dropped). */
function isErrorDetail(v: unknown): v is LeaseholdErrorDetail {
  const d = v as { field?: unknown; message?: unknown } | null;
  return typeof d === "object" && d !== null && typeof d.field === "string" && typeof d.message === "string";
}
