import { createHmac } from "node:crypto";

/**
 * Header names of a webhook delivery: the Standard Webhooks headers
 * (https://www.standardwebhooks.com/), which receivers verify with a stock library.
 */
export const WEBHOOK_HEADERS = {
  /** The delivery's id: the event's id, the same on every retry of it. */
  id: "webhook-id",
  /** When this attempt was sent, integer Unix seconds. */
  timestamp: "webhook-timestamp",
  /** `v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`. */
  signature: "webhook-signature",
} as const;

/**
 * The headers of version 0.1, still sent beside the Standard Webhooks ones for one version so
 * that receivers can move over; removed in the next version.
 * @deprecated verify `webhook-signature` instead.
 */
export const LEGACY_WEBHOOK_HEADERS = {
  signature: "x-leasehold-signature",
  timestamp: "x-leasehold-timestamp",
  event: "x-leasehold-event",
  id: "x-leasehold-event-id",
} as const;

/** The prefix of a secret in the Standard Webhooks form: `whsec_` and the key in base64. */
export const WEBHOOK_SECRET_PREFIX = "whsec_";

/** Fewest key bytes of a `whsec_` secret (the specification asks for 24 to 64). */
export const MIN_WEBHOOK_KEY_BYTES = 24;

/**
 * The HMAC key of a configured secret: the base64-decoded bytes after `whsec_` (the Standard
 * Webhooks form, as the receivers' libraries take it), else the secret's own UTF-8 bytes (a
 * receiver's library then takes `whsec_` + the secret in base64).
 * @throws Error naming the rule when a `whsec_` secret is not base64 of at least 24 bytes, or
 * another secret is shorter than 16 characters; never echoes the secret.
 */
export function webhookKey(secret: string): Buffer {
  if (!secret.startsWith(WEBHOOK_SECRET_PREFIX)) {
    if (secret.length < 16) throw new Error("webhook secret: at least 16 characters");
    return Buffer.from(secret, "utf8");
  }
  const encoded = secret.slice(WEBHOOK_SECRET_PREFIX.length);
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(encoded) || encoded.length % 4 !== 0) {
    throw new Error("webhook secret: after whsec_ must come base64 (e.g. whsec_$(openssl rand -base64 32))");
  }
  const key = Buffer.from(encoded, "base64");
  if (key.length < MIN_WEBHOOK_KEY_BYTES) {
    throw new Error(`webhook secret: a whsec_ secret must hold at least ${MIN_WEBHOOK_KEY_BYTES} bytes`);
  }
  return key;
}

/**
 * The `webhook-signature` value of one delivery (Standard Webhooks, version 1): `v1,` and the
 * base64 HMAC-SHA256, keyed by {@link webhookKey}, of `<id>.<timestamp>.<body>`.
 */
export function signWebhook(key: Buffer, id: string, timestamp: number, body: string): string {
  return `v1,${createHmac("sha256", key).update(`${id}.${timestamp}.${body}`).digest("base64")}`;
}

/**
 * The `x-leasehold-signature` value of version 0.1: `sha256=` + hex HMAC-SHA256, keyed by the
 * secret string as configured, over `<timestamp>.<body>`.
 * @deprecated sent for one version beside {@link signWebhook}.
 */
export function signLegacyWebhook(secret: string, timestamp: number, body: string): string {
  return `sha256=${createHmac("sha256", secret).update(`${timestamp}.${body}`).digest("hex")}`;
}

/** Every header of one delivery attempt: the Standard Webhooks ones, then the deprecated ones. */
export function webhookHeaders(
  secret: string,
  delivery: { readonly id: string; readonly type: string; readonly timestamp: number; readonly body: string },
): Record<string, string> {
  const { id, type, timestamp, body } = delivery;
  return {
    [WEBHOOK_HEADERS.id]: id,
    [WEBHOOK_HEADERS.timestamp]: String(timestamp),
    [WEBHOOK_HEADERS.signature]: signWebhook(webhookKey(secret), id, timestamp, body),
    [LEGACY_WEBHOOK_HEADERS.event]: type,
    [LEGACY_WEBHOOK_HEADERS.id]: id,
    [LEGACY_WEBHOOK_HEADERS.timestamp]: String(timestamp),
    [LEGACY_WEBHOOK_HEADERS.signature]: signLegacyWebhook(secret, timestamp, body),
  };
}
