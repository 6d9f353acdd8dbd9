import { createHmac, timingSafeEqual } from "node:crypto";

/** Header names of a webhook delivery. */
export const WEBHOOK_HEADERS = {
  signature: "x-leasehold-signature",
  timestamp: "x-leasehold-timestamp",
  event: "x-leasehold-event",
  id: "x-leasehold-event-id",
} as const;

/**
 * The signature header value: `sha256=` + hex HMAC-SHA256 over `<timestamp>.<body>`. Signing the
 * timestamp with the body lets receivers refuse replays of an old delivery.
 */
export function signWebhook(secret: string, timestamp: number, body: string): string {
  return `sha256=${createHmac("sha256", secret).update(`${timestamp}.${body}`).digest("hex")}`;
}

/**
 * What a receiver runs: true when the signature matches the body and timestamp, and the
 * timestamp is within `toleranceSeconds` of `nowSeconds`.
 */
export function verifyWebhookSignature(
  secret: string,
  body: string,
  timestamp: string | undefined,
  signature: string | undefined,
  nowSeconds: number = Math.floor(Date.now() / 1000),
  toleranceSeconds = 300,
): boolean {
  if (!timestamp || !signature || !/^\d{1,12}$/.test(timestamp)) return false;
  const t = Number(timestamp);
  if (Math.abs(nowSeconds - t) > toleranceSeconds) return false;
  const want = Buffer.from(signWebhook(secret, t, body));
  const got = Buffer.from(signature);
  return want.length === got.length && timingSafeEqual(want, got);
}
