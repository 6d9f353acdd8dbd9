import { z } from "zod";

/*
 * The bodies agents send to the lease use cases. The route table validates them at the edge
 * (before identity, rate limiting or policy run); the use cases take the parsed values.
 */

const ttlSeconds = z
  .number()
  .int()
  .min(1)
  .max(7 * 86400);

/** `POST /v1/checkout`. */
export const checkoutSchema = z.strictObject({
  resource: z.string().min(1).max(63),
  task: z.strictObject({ id: z.string().min(1).max(200), description: z.string().max(2000).optional() }),
  intent: z.strictObject({ action: z.string().min(1).max(64), tool: z.string().min(1).max(128).optional() }),
  ttl: ttlSeconds.optional(),
  wait: z.number().min(0).max(300).optional(),
});
export type CheckoutRequest = z.output<typeof checkoutSchema>;

/** `POST /v1/leases/{id}/renew`. */
export const renewSchema = z.strictObject({ ttl: ttlSeconds.optional() });
export type RenewRequest = z.output<typeof renewSchema>;

/** `POST /v1/leases/{id}/tool-calls`. */
export const toolCallSchema = z.strictObject({
  tool: z.string().min(1).max(128),
  action: z.string().min(1).max(64),
  target: z.string().max(1000).optional(),
  digest: z
    .string()
    .regex(/^(sha256:)?[0-9a-f]{64}$/, "must be a hex SHA-256 digest")
    .optional(),
});
export type ToolCallRequest = z.output<typeof toolCallSchema>;

/** `POST /v1/leases/{id}/revoke`, `POST /v1/resources/{name}/revoke`. */
export const revokeSchema = z.strictObject({ reason: z.string().max(500).optional() });
export type RevokeRequest = z.output<typeof revokeSchema>;
