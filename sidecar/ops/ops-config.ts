import { z } from "zod";

/** The `ops:` section of leasehold.yaml (metrics, event stream, alerts). */
export const opsConfigSchema = z
  .strictObject({
    /** Seconds before expires_at that an `expiring_soon` event is emitted. @default 60 */
    expiringSoonSeconds: z.number().int().min(1).max(86400).default(60),
    /** How often leases are checked for `expiring_soon`, ms. @default 1000 */
    expiringSoonIntervalMs: z.number().int().min(50).max(60000).default(1000),
    /** Comment line on idle event streams, ms. @default 15000 */
    heartbeatMs: z.number().int().min(100).max(300000).default(15000),
    /** Require the admin token on /metrics. @default false (the Host guard keeps it local) */
    metricsRequireToken: z.boolean().default(false),
    /** Alert webhook; null for none. @default null */
    webhook: z
      .strictObject({
        /** Receives a POST of each event's JSON. */
        url: z.url({ protocol: /^https?$/ }),
        /** HMAC-SHA256 key of the `x-leasehold-signature` header; use `${ENV}`. */
        secret: z.string().min(16),
        /** @default ["rotation_failed", "quarantined", "expiring_soon"] */
        events: z
          .array(
            z.enum([
              "issued",
              "renewed",
              "ended",
              "expiring_soon",
              "rotated",
              "rotation_failed",
              "quarantined",
              "approval_requested",
              "approval_decided",
            ]),
          )
          .min(1)
          .default(["rotation_failed", "quarantined", "expiring_soon"]),
      })
      .nullable()
      .default(null),
  })
  .prefault({});

export type OpsConfig = z.output<typeof opsConfigSchema>;
