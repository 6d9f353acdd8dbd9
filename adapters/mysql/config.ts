import { z } from "zod";

/** TLS settings for the connection to the server. */
const tls = z.strictObject({
  /** Refuse a server certificate that does not chain to a trusted CA. @default true */
  rejectUnauthorized: z.boolean().optional(),
  /** PEM bundle of the CA(s) to trust instead of the system store. */
  ca: z.string().min(1).optional(),
});

/** Connection settings of a `mysql` resource (MariaDB or MySQL). Unknown keys are refused. */
export const mysqlConfig = z.strictObject({
  /** Server host name or IP address. */
  host: z.string().min(1),
  /** @default 3306 */
  port: z.number().int().min(1).max(65535).default(3306),
  /** `true` for TLS with default checks, or TLS settings. @default no TLS */
  ssl: z.union([z.boolean(), tls]).optional(),
  /** Cap on establishing one connection, ms; the call's own timeout applies anyway. */
  connectTimeoutMs: z.number().int().positive().optional(),
});

/** A validated `mysql` connection (defaults applied). */
export type MysqlTarget = z.output<typeof mysqlConfig>;
