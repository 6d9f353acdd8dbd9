import { type IncomingHttpHeaders, request } from "node:http";

/** A response as it came off the wire. */
export interface RawResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  /** The exact body text. */
  readonly text: string;
  /** The body parsed as JSON, `undefined` when empty. */
  readonly json: unknown;
}

export interface RawCallOptions {
  readonly token?: string;
  /** Serialised as JSON, with `Content-Type: application/json` unless `contentType` says otherwise. */
  readonly body?: unknown;
  /** Sent verbatim (wins over `body`), with no Content-Type unless `contentType` is given. */
  readonly rawBody?: string;
  readonly contentType?: string;
  readonly headers?: Readonly<Record<string, string>>;
}

/**
 * One request with Node's `http` client on a fresh connection, so any verb
 * (including `LIST`) goes out exactly as written and nothing is normalised.
 */
export function rawCall(
  base: string,
  method: string,
  path: string,
  options: RawCallOptions = {},
): Promise<RawResponse> {
  const payload = options.rawBody ?? (options.body === undefined ? undefined : JSON.stringify(options.body));
  const headers: Record<string, string> = { ...options.headers };
  if (options.token !== undefined) headers["X-Vault-Token"] = options.token;
  const contentType =
    options.contentType ??
    (options.rawBody === undefined && payload !== undefined ? "application/json" : undefined);
  if (contentType !== undefined) headers["Content-Type"] = contentType;
  if (payload !== undefined) headers["Content-Length"] = String(Buffer.byteLength(payload));
  return new Promise((resolve, reject) => {
    const req = request(`${base}${path}`, { method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("error", reject);
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          text,
          json: text === "" ? undefined : JSON.parse(text),
        });
      });
    });
    req.on("error", reject);
    req.end(payload);
  });
}

/** Top-level keys in the order they appear in the body. */
export function keyOrder(text: string): string[] {
  return Object.keys(JSON.parse(text) as object);
}

/** The field order of Vault's response envelope (recent Vault, with `mount_type`). */
export const ENVELOPE_KEYS = [
  "request_id",
  "lease_id",
  "renewable",
  "lease_duration",
  "data",
  "wrap_info",
  "warnings",
  "auth",
  "mount_type",
];

/** The field order of the raw KV 404 bodies (built inside the plugin: no `mount_type`). */
export const RAW_ENVELOPE_KEYS = ENVELOPE_KEYS.slice(0, -1);

/** The field order of the `auth` block (1.14 `HTTPAuth`). */
export const AUTH_KEYS = [
  "client_token",
  "accessor",
  "policies",
  "token_policies",
  "metadata",
  "lease_duration",
  "renewable",
  "entity_id",
  "token_type",
  "orphan",
  "mfa_requirement",
  "num_uses",
];
