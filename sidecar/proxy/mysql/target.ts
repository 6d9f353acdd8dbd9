import { z } from "zod";

const tlsSettings = z.looseObject({
  rejectUnauthorized: z.boolean().optional(),
  ca: z.string().optional(),
});

/** The part of a `mysql` registration's `connection` the proxy uses (the adapter validated it all). */
const targetSchema = z.looseObject({
  host: z.string().min(1),
  port: z.number().int().min(1).max(65535).default(3306),
  ssl: z.union([z.boolean(), tlsSettings]).optional(),
});

export type MysqlProxyTarget = z.output<typeof targetSchema>;

/** The backend of a registration, or null when its `connection` lacks what the proxy needs. */
export function mysqlTargetOf(connection: Record<string, unknown>): MysqlProxyTarget | null {
  const r = targetSchema.safeParse(connection);
  return r.success ? r.data : null;
}
