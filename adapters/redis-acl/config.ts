import { z } from "zod";

/** TLS settings for the connection to the server. */
const tls = z.strictObject({
  /** Refuse a server certificate that does not chain to a trusted CA or does not name the host. @default true */
  rejectUnauthorized: z.boolean().optional(),
  /** PEM bundle of the CA(s) to trust instead of the system store. */
  ca: z.string().min(1).optional(),
  /** Host name to check the certificate against (and send as SNI). @default host */
  servername: z.string().min(1).optional(),
});

/** Connection settings of a `redis-acl` resource (DESIGN.md adapters table). Unknown keys are refused. */
export const redisAclConfig = z.strictObject({
  /** Server host name or IP address. */
  host: z.string().min(1),
  /** @default 6379 */
  port: z.number().int().min(1).max(65535).default(6379),
  /** `true` for TLS with default checks, or TLS settings. @default no TLS */
  tls: z.union([z.boolean(), tls]).optional(),
  /** Cap on establishing one connection, ms; the call's own timeout applies anyway. */
  connectTimeoutMs: z.number().int().positive().optional(),
  /**
   * Where a changed password must also be written for it to survive a server restart:
   * `aclfile` runs `ACL SAVE` after every change (the server loads users from an aclfile;
   * the admin needs `+acl|save`). `none` leaves it in memory only, which is right when
   * nothing reloads users from disk. @default "none"
   */
  persist: z.enum(["none", "aclfile"]).default("none"),
});

/** A validated `redis-acl` connection (defaults applied). */
export type RedisAclTarget = z.output<typeof redisAclConfig>;
