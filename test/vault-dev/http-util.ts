/**
 * What goes on the wire: Go-compatible JSON, and the reply shapes Vault's HTTP
 * layer produces (encoder output with a trailing newline, raw bodies without one,
 * `{"errors":[...]}`), independent of how the bytes are finally written.
 */

/** A finished HTTP answer; `body` is sent as is (empty for 204). */
export interface HttpReply {
  readonly status: number;
  readonly body: string;
  /** Extra headers besides Content-Type and Cache-Control, which every reply carries. */
  readonly headers?: Readonly<Record<string, string>>;
}

const HTML_ESCAPES: Record<string, string> = {
  "<": "\\u003c",
  ">": "\\u003e",
  "&": "\\u0026",
  "\u2028": "\\u2028",
  "\u2029": "\\u2029",
};

/**
 * `encoding/json` output: like `JSON.stringify`, plus Go's default HTML escaping
 * (these characters can only occur inside strings, so a global replace is safe).
 */
export function goJson(value: unknown): string {
  return JSON.stringify(value).replace(/[<>&\u2028\u2029]/g, (c) => HTML_ESCAPES[c] ?? c);
}

/** Go `sort.Strings` order: byte-wise on UTF-8. */
export function compareGoStrings(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
}

/** Go encodes maps with sorted keys at every level; arrays keep their order. */
export function sortKeysDeep(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeysDeep);
  if (typeof value !== "object" || value === null) return value;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(value).sort(compareGoStrings)) {
    out[key] = sortKeysDeep((value as Record<string, unknown>)[key]);
  }
  return out;
}

/** `respondOk`/`respondError`: `json.Encoder.Encode`, so the body ends with a newline. */
export function jsonReply(status: number, value: unknown): HttpReply {
  return { status, body: `${goJson(value)}\n` };
}

/** `logical.RespondWithStatusCode`: `json.Marshal` output, no trailing newline. */
export function rawJsonReply(status: number, value: unknown): HttpReply {
  return { status, body: goJson(value) };
}

/** A reply without a body (204, or KV's empty 404). Content-Type is still sent. */
export function emptyReply(status: number): HttpReply {
  return { status, body: "" };
}

/** `{"errors":[...]}`; the list may be empty. */
export function errorReply(status: number, errors: readonly string[]): HttpReply {
  return jsonReply(status, { errors });
}

/** How `go-multierror` renders the errors it collected. */
export function multierror(messages: readonly string[]): string {
  const head = messages.length === 1 ? "1 error occurred:" : `${messages.length} errors occurred:`;
  return `${head}\n${messages.map((m) => `\t* ${m}`).join("\n")}\n\n`;
}
