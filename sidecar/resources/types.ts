import { z } from "zod";
import { parseDurationMs } from "../util/duration.js";
import { plainText } from "../util/text.js";

export const RESOURCE_NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;

/** Shortest interval between two rotations of an admin password. */
export const ADMIN_ROTATION_MIN_MS = 15 * 60_000;
/** Longest interval between two rotations of an admin password. */
export const ADMIN_ROTATION_MAX_MS = 366 * 86_400_000;

/** `rotation.admin.every`: a duration like 30m, 24h or 7d, between 15m and 366d. */
const adminEvery = z.string().superRefine((value, ctx) => {
  const ms = parseDurationMs(value);
  if (ms === null) {
    ctx.addIssue({ code: "custom", message: "expected a duration like 30m, 24h or 7d (s, m, h, d or w)" });
  } else if (ms < ADMIN_ROTATION_MIN_MS || ms > ADMIN_ROTATION_MAX_MS) {
    ctx.addIssue({ code: "custom", message: "must be at least 15m and at most 366d" });
  }
});

const accountItem = z.union([
  plainText(256, 1),
  z.strictObject({ name: plainText(256, 1), password: z.string().min(1).max(1024).optional() }),
]);

/** A DBA's registration file (DESIGN.md), before the adapter checks `connection`. */
export const registrationSchema = z.strictObject({
  name: z.string().regex(RESOURCE_NAME, "must be 1-63 of a-z 0-9 . _ - starting with a letter or digit"),
  adapter: plainText(128, 1),
  /** What the resource is, for the agents that may check it out (`GET /v1/catalog`). @default absent */
  description: plainText(500).optional(),
  connection: z.record(z.string(), z.unknown()),
  /** @default "admin" */
  rotateWith: z.enum(["admin", "self"]).default("admin"),
  admin: z
    .strictObject({ username: plainText(256, 1), password: z.string().min(1).max(1024).optional() })
    .optional(),
  accounts: z.array(accountItem).min(1).max(1000),
  /** @default true */
  importRotation: z.boolean().default(true),
  /** @default true */
  reveal: z.boolean().default(true),
  proxy: z
    .strictObject({
      port: z.number().int().min(0).max(65535),
      /** @default absent (connection.database only) */
      databases: z.array(plainText(63, 1)).min(1).max(64).optional(),
      /**
       * Decide each statement sent through the listener by Cedar (`Action::"statement"`; PostgreSQL,
       * MySQL and Redis listeners: a Redis command is a statement). Off: statements are not parsed and
       * policy is not asked. @default false
       */
      statementPolicy: z.boolean().optional(),
      /**
       * Caps per lease, across all its sessions on this sidecar process (each sidecar of a
       * cluster counts its own), so an agent cannot dump a table it may read. @default absent (no caps)
       */
      limits: z
        .strictObject({
          /**
           * Statements a second (PostgreSQL: each Query and each Execute; MySQL: each COM_QUERY and
           * COM_STMT_EXECUTE; Redis: each command; LDAP: each request but Unbind and Abandon), this
           * many at once; beyond, the client's further
           * input waits until the lease is back under the rate (nothing is refused). @default absent
           */
          statementsPerSecond: z.number().int().min(1).max(1_000_000).optional(),
          /**
           * Bytes the server may return to the lease's sessions in all, for the lease's life. The
           * session that passes it is ended before the chunk that passed it is relayed (PostgreSQL:
           * the server's message in progress is finished when it ends in that chunk, then FATAL
           * 53400; else the connection is closed; LDAP: a Notice of
           * Disconnection with adminLimitExceeded), audited as a `decision` with scope
           * `proxy_limit`; later logins of the lease are refused (53400, MySQL 1226, Redis `-ERR`,
           * LDAP 11 adminLimitExceeded). @default absent
           */
          bytesReturned: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER).optional(),
        })
        .optional(),
    })
    .optional(),
  lease: z
    .strictObject({
      /** @default 300 */
      defaultTtl: z.number().int().min(1).max(86400).default(300),
      /** @default 3600 */
      maxTtl: z
        .number()
        .int()
        .min(1)
        .max(7 * 86400)
        .default(3600),
    })
    .prefault({}),
  rotation: z
    .strictObject({
      /** @default 32 */
      length: z.number().int().min(12).max(128).default(32),
      /** @default true */
      terminateSessions: z.boolean().default(true),
      /** Characters never used in generated passwords. @default "" */
      exclude: z.string().max(64).default(""),
      /**
       * Rotate the resource's admin password on its target too, `every` so often (needs
       * `rotateWith: admin`). Off when absent; recommended on (docs/operations.md, "Admin
       * password rotation"). @default absent (off)
       */
      admin: z.strictObject({ every: adminEvery }).optional(),
    })
    .prefault({}),
  /** Groups for policy (Cedar ResourceGroup). @default [] */
  groups: z.array(plainText(128, 1)).default([]),
});

export type RegistrationInput = z.input<typeof registrationSchema>;
export type Registration = z.output<typeof registrationSchema>;

/** What is stored in Vault at <prefix>/resources/<name>/config: no password anywhere. */
export interface StoredRegistration {
  readonly name: string;
  readonly adapter: string;
  /** What the resource is, as its DBA described it. */
  readonly description?: string | undefined;
  readonly connection: Record<string, unknown>;
  readonly rotateWith: "admin" | "self";
  readonly admin?: { readonly username: string } | undefined;
  readonly accounts: readonly string[];
  readonly reveal: boolean;
  readonly proxy?:
    | {
        readonly port: number;
        readonly databases?: readonly string[] | undefined;
        readonly statementPolicy?: boolean | undefined;
        readonly limits?:
          | { readonly statementsPerSecond?: number | undefined; readonly bytesReturned?: number | undefined }
          | undefined;
      }
    | undefined;
  readonly lease: { readonly defaultTtl: number; readonly maxTtl: number };
  readonly rotation: {
    readonly length: number;
    readonly terminateSessions: boolean;
    readonly exclude: string;
    /** Admin password rotation (absent in registrations made before it existed: off). */
    readonly admin?: { readonly every: string } | undefined;
  };
  readonly groups: readonly string[];
  readonly registered_at: string;
}

export type AccountRecordState = "available" | "leased" | "rotating" | "quarantined";

/** The account record in Vault; its KV version is the fencing token of every change. */
export interface AccountRecord {
  readonly username: string;
  /** A password that works on the target (empty only while an import rotation runs). */
  readonly password: string;
  readonly previous_password?: string | undefined;
  readonly pending_password?: string | undefined;
  readonly state: AccountRecordState;
  readonly lease_id?: string | undefined;
  /**
   * With state "leased": the lease's maximum expiry (ms since the epoch) as checked out. Past
   * it the account is rotated whatever Redis says about the lease. Absent in records written
   * before it existed.
   */
  readonly max_expires_at?: number | undefined;
  readonly rotation_id?: string | undefined;
  readonly last_rotated_at?: string | undefined;
  readonly failures?: number | undefined;
  readonly last_error?: string | undefined;
  readonly next_attempt_at?: string | undefined;
}

/**
 * The admin record in Vault at <prefix>/resources/<name>/admin. `username` and `password` are
 * the credential in force; the rest is the admin rotation's state (same protocol as accounts:
 * the pending password is written before the target changes). Its KV version fences changes.
 */
export interface AdminRecord {
  readonly username: string;
  readonly password: string;
  /** The password being set on the target by a rotation in flight. */
  readonly pending_password?: string | undefined;
  /** The password before `password`: a last resort when neither of the others logs in. */
  readonly previous_password?: string | undefined;
  readonly rotation_id?: string | undefined;
  /** When the admin password was last rotated (absent: never; the registration time counts). */
  readonly last_rotated_at?: string | undefined;
  readonly failures?: number | undefined;
  readonly last_error?: string | undefined;
  /** Earliest time of the next attempt after a failure. */
  readonly next_attempt_at?: string | undefined;
}
