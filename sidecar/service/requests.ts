import { z } from "zod";
import { plainText } from "../util/text.js";

/*
 * The bodies agents send to the lease use cases. The route table validates them at the edge
 * (before identity, rate limiting or policy run); the use cases take the parsed values. Every
 * identifier and free-text field is `plainText`: no control characters, no bidi overrides.
 */

const ttlSeconds = z
  .number()
  .int()
  .min(1)
  .max(7 * 86400);

/** A task id, as checkout's `task.id` and the task routes' `{id}` take it. */
export const taskIdText = plainText(200, 1);

/** `POST /v1/checkout`. */
export const checkoutSchema = z.strictObject({
  resource: plainText(63, 1),
  task: z.strictObject({ id: taskIdText, description: plainText(2000).optional() }),
  intent: z.strictObject({ action: plainText(64, 1), tool: plainText(128, 1).optional() }),
  ttl: ttlSeconds.optional(),
  wait: z.number().min(0).max(300).optional(),
});
export type CheckoutRequest = z.output<typeof checkoutSchema>;

/** `POST /v1/leases/{id}/renew`. */
export const renewSchema = z.strictObject({ ttl: ttlSeconds.optional() });
export type RenewRequest = z.output<typeof renewSchema>;

/** `POST /v1/leases/{id}/tool-calls` and, without a lease, `POST /v1/tool-calls`. */
export const toolCallSchema = z.strictObject({
  tool: plainText(128, 1),
  action: plainText(64, 1),
  target: plainText(1000).optional(),
  digest: z
    .string()
    .regex(/^(sha256:)?[0-9a-f]{64}$/, "must be a hex SHA-256 digest")
    .optional(),
  /** The client the call came through: an MCP client's name from `initialize`. */
  client: plainText(128, 1).optional(),
});
export type ToolCallRequest = z.output<typeof toolCallSchema>;

/** `POST /v1/leases/{id}/revoke`, `POST /v1/resources/{name}/revoke`. */
export const revokeSchema = z.strictObject({ reason: plainText(500).optional() });
export type RevokeRequest = z.output<typeof revokeSchema>;
