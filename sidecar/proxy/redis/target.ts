import { z } from "zod";

/** The part of a `redis-acl` registration's `connection` the proxy uses. */
const targetSchema = z.looseObject({
  host: z.string().min(1),
  port: z.number().int().min(1).max(65535).default(6379),
  tls: z
    .union([
      z.boolean(),
      z.looseObject({
        rejectUnauthorized: z.boolean().optional(),
        ca: z.string().optional(),
        servername: z.string().optional(),
      }),
    ])
    .optional(),
});

export type RedisTarget = z.output<typeof targetSchema>;

/** The backend of a registration, or null when its `connection` lacks what the proxy needs. */
export function redisTargetOf(connection: Record<string, unknown>): RedisTarget | null {
  const r = targetSchema.safeParse(connection);
  return r.success ? r.data : null;
}
