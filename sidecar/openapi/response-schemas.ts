import { z } from "zod";
import { ERROR_STATUS, type ErrorCode } from "../errors.js";

/*
 * What the routes answer, as zod schemas: the OpenAPI document is generated from them and
 * test/docs/openapi.test.ts parses real answers of a real sidecar with them. Objects are strict
 * so that a field the code adds without documenting it fails that test.
 */

const time = z.iso.datetime().describe("RFC 3339 UTC");

const task = z.strictObject({
  id: z.string().describe("the task (ticket) the lease is for"),
  description: z.string().optional(),
});

const intent = z.strictObject({
  action: z.string().describe("what the agent means to do, e.g. read"),
  tool: z.string().optional().describe("the tool it will use, e.g. psql"),
});

/** `Lease` of DESIGN.md. */
export const leaseSchema = z
  .strictObject({
    id: z.string().describe("lse_…"),
    resource: z.string(),
    account: z.string().describe("the account of the resource's pool this lease holds"),
    agent: z.string().describe("the agent's SPIFFE ID"),
    agent_chain: z.array(z.string()).optional().describe("delegating agents, outermost first"),
    approver: z.string().optional().describe("the human who approved the checkout"),
    task,
    intent,
    state: z.enum(["active", "ended"]),
    issued_at: time,
    expires_at: time,
    max_expires_at: time.describe("renewals never go past it"),
    ended_at: time.optional(),
    end_reason: z.enum(["checkin", "expired", "revoked"]).optional(),
  })
  .describe("A lease: one checkout of one account by one agent for one task.");

/** A lease in an operator's list, with the seconds it has left. */
export const listedLeaseSchema = leaseSchema.extend({ ttl_seconds: z.number().int().min(0) });

/** A checkout that policy allows only with a human's approval. */
export const approvalSchema = z.strictObject({
  id: z.string().describe("apr_…"),
  status: z.enum(["pending", "approved", "denied", "expired"]),
  agent: z.string(),
  agent_chain: z
    .array(z.string())
    .optional()
    .describe("the requester's delegators, nearest first: none of them may approve it"),
  resource: z.string(),
  task,
  intent,
  ttl: z.number().int().describe("the lease TTL asked for, seconds"),
  policies: z.array(z.string()).describe("ids of the policies that asked for approval"),
  requested_at: time,
  expires_at: time.describe("the request is void after this"),
  decided_at: time.optional(),
  approver: z
    .string()
    .optional()
    .describe("who approved it (the distinct approvers, comma separated), or who denied it"),
  approvers: z
    .array(z.string())
    .optional()
    .describe("the distinct approvers so far (approvals.minApprovers are needed)"),
  reason: z.string().optional(),
  lease_id: z.string().optional().describe("the lease the approval became"),
});

/** `DPoP` when the checkout carried a DPoP proof: the token is bound to the agent's key. */
const tokenType = z.enum(["Bearer", "DPoP"]).describe("the Authorization scheme to send the token with");

/** Where the resource's local listener waits for the lease's holder (Bearer tokens only). */
const proxyBlockSchema = z
  .strictObject({
    host: z.string(),
    port: z.number().int(),
    username: z.string().describe("the login name at the listener: the lease id"),
  })
  .describe("the resource's listener: log in with user = the lease id, password = the lease token");

export const checkoutCreatedSchema = z.strictObject({
  lease: leaseSchema,
  token: z.string().describe("the lease token (EdDSA JWT)"),
  token_type: tokenType,
  proxy: proxyBlockSchema.optional(),
});

export const checkoutPendingSchema = z.strictObject({ approval: approvalSchema });

/** The agent's poll: once approved, the lease; the token only on the poll that redeemed it. */
export const approvalPollSchema = z.strictObject({
  approval: approvalSchema.extend({
    lease: leaseSchema.optional(),
    token: z.string().optional().describe("only on the first poll after approval: no second token"),
    token_type: tokenType.optional(),
    proxy: proxyBlockSchema.optional().describe("with the token, when the resource has a listener"),
  }),
});

export const approvalOneSchema = z.strictObject({ approval: approvalSchema });
export const approvalListSchema = z.strictObject({
  approvals: z.array(approvalSchema),
  total: z.number().int().min(0).describe("approvals that match, on every page together"),
  next: z.string().optional().describe("the cursor of the next page; absent on the last"),
});

export const credentialSchema = z
  .strictObject({
    username: z.string(),
    password: z.string(),
    connection: z.record(z.string(), z.unknown()).describe("the resource's connection settings"),
    expires_at: time,
  })
  .describe("The leased account's password. Sent with Cache-Control: no-store; never logged.");

export const leaseOneSchema = z.strictObject({ lease: leaseSchema });
export const leaseManySchema = z.strictObject({ leases: z.array(leaseSchema) });
export const leaseListSchema = z.strictObject({
  leases: z.array(listedLeaseSchema),
  next_cursor: z.string().optional().describe("pass as `cursor` for the next page; absent on the last page"),
});
export const acceptedSchema = z.strictObject({ accepted: z.literal(true) });

export const accountViewSchema = z.strictObject({
  name: z.string(),
  state: z.enum(["available", "leased", "rotating", "quarantined"]),
  lease_id: z.string().optional(),
  last_rotated_at: time.optional(),
  failures: z.number().int().optional().describe("consecutive rotation failures"),
});

/** A registered resource and its accounts' states; never a password. */
export const resourceViewSchema = z.strictObject({
  name: z.string(),
  adapter: z.string(),
  description: z.string().optional().describe("what the resource is, as its DBA described it"),
  connection: z.record(z.string(), z.unknown()),
  rotateWith: z.enum(["admin", "self"]),
  reveal: z.boolean(),
  lease: z.strictObject({ defaultTtl: z.number().int(), maxTtl: z.number().int() }),
  accounts: z.array(accountViewSchema),
});

/** `GET /v1/catalog`: the resources an agent could check out, as policy sees it. */
export const catalogSchema = z.strictObject({
  resources: z.array(
    z.strictObject({
      name: z.string(),
      adapter: z.string().describe("the adapter's id: postgres, mysql, redis, ldap, ..."),
      description: z.string().optional().describe("what the resource is, as its DBA described it"),
      groups: z.array(z.string()).describe("its groups for policy (Cedar ResourceGroup)"),
      session: z
        .enum(["proxy", "credential"])
        .describe(
          "proxy: sessions go through the resource's listener (it has one on this sidecar, or its password is never revealed: reveal false); credential: the holder asks for the password",
        ),
    }),
  ),
});

export const resourceListSchema = z.strictObject({
  resources: z.array(
    z.strictObject({
      name: z.string(),
      adapter: z.string(),
      accounts: z.number().int().describe("pool size"),
    }),
  ),
});

/** One account's line of a registration: checked (and imported) or FAIL with the target's reason. */
const registerAccountSchema = z.strictObject({
  account: z.string(),
  ok: z.boolean(),
  detail: z
    .string()
    .describe("ok: what was checked and done; FAIL: the target's own reason (the step it failed at)"),
  record: z
    .enum(["removed", "kept"])
    .optional()
    .describe(
      "an account left out after its import failed (allow_partial): whether its Vault record went or stayed (see detail)",
    ),
});

export const registerResultSchema = z.strictObject({
  created: z.boolean().describe("the resource is new"),
  dryRun: z.boolean(),
  registered: z
    .boolean()
    .describe(
      "the registration was stored; false only for a dry run (a registration that stores nothing is an error)",
    ),
  resource: resourceViewSchema,
  checks: z
    .array(z.string())
    .describe("checks of the registration as a whole (the admin credential), in order"),
  accounts: z.array(registerAccountSchema).describe("one line per account, in the registration's order"),
  failed: z
    .array(z.string())
    .describe("the accounts that failed: left out (allow_partial), or that would fail (dry run)"),
  warnings: z
    .array(z.string())
    .describe(
      "what the registration should know but was not refused for, one line each naming the field (a listener whose connection to the server is plaintext: connection.ssl / connection.tls not set, or an ldap:// url without connection.startTls)",
    ),
});

export const verifyResultSchema = z.strictObject({
  name: z.string(),
  results: z.array(z.strictObject({ account: z.string(), ok: z.boolean(), reason: z.string().optional() })),
});

export const rotateResultSchema = z.strictObject({
  name: z.string(),
  results: z.array(
    z.strictObject({
      account: z.string(),
      status: z.string().describe("rotated, failed, busy, gone, or skipped (leased)"),
      error: z.string().optional(),
    }),
  ),
});

export const removeResultSchema = z.strictObject({
  name: z.string(),
  removed: z.literal(true),
  accounts: z
    .array(
      z.strictObject({
        account: z.string(),
        password: z
          .enum(["rotated", "unchanged", "quarantined", "gone", "busy", "failed"])
          .describe(
            "what the password on the target was left as: rotated; unchanged (no lease saw it since its last rotation); quarantined, gone (the target no longer has the account), busy or failed: left as is",
          ),
        detail: z.string().describe("the last error, or why nothing was done"),
        lease_id: z.string().optional().describe("the lease that saw the password left on the target"),
      }),
    )
    .describe("one line per account"),
  kept: z.string().describe("where the account records stay in Vault, and why"),
});

export const adapterListSchema = z.strictObject({
  adapters: z.array(
    z.strictObject({
      id: z.string(),
      description: z.string(),
      config: z.record(z.string(), z.unknown()).describe("JSON Schema of the adapter's `connection`"),
      constraints: z.strictObject({
        minLength: z.number().int(),
        maxLength: z.number().int(),
        forbidden: z.string().describe("characters never used in its passwords"),
      }),
    }),
  ),
});

export const healthSchema = z.strictObject({ status: z.literal("ok") });

export const readySchema = z.strictObject({
  status: z.enum(["ready", "unavailable"]),
  checks: z.record(z.string(), z.boolean()).describe("redis, vault, audit, cluster"),
  reasons: z
    .record(z.string(), z.string())
    .optional()
    .describe(
      "why each failing check fails, naming the address and the cause " +
        "(`redis 127.0.0.1:6379: connection refused (ECONNREFUSED)`; for `cluster`: `cluster_mismatch: …` " +
        "naming both the Vault prefix and the Redis keyspace); never a credential",
    ),
});

const clusterViewShape = {
  status: z.enum(["ok", "cluster_mismatch", "unknown"]),
  cluster_id: z.string().optional().describe("with status ok: the cluster's id"),
  vault_cluster_id: z.string().nullable().optional(),
  redis_cluster_id: z.string().nullable().optional(),
  vault: z.string().describe("the Vault prefix: address, KV mount and prefix"),
  redis: z.string().describe("the Redis keyspace: address, database and prefix (no credentials)"),
  reason: z.string().optional().describe("why the cluster is not whole, in words an operator can act on"),
};

export const clusterViewSchema = z
  .strictObject(clusterViewShape)
  .describe("Whether this sidecar's Vault prefix and Redis keyspace form one cluster.");

export const clusterAdoptResultSchema = z.strictObject({
  ...clusterViewShape,
  previous_redis_cluster_id: z.string().nullable().describe("what the Redis keyspace held before"),
});

export const jwksSchema = z
  .strictObject({ keys: z.array(z.record(z.string(), z.unknown())) })
  .describe("Public keys of every sidecar of the cluster that sign lease tokens (Ed25519 JWKs).");

export const protectedResourceSchema = z
  .strictObject({
    resource: z.string().describe("the MCP endpoint, as the request's host names it: http://<host>/mcp"),
    authorization_servers: z
      .array(z.string())
      .optional()
      .describe(
        "the issuers of the trust entries (`identity.trust[].issuer`); absent when every entry is self-signed agents",
      ),
    bearer_methods_supported: z.array(z.literal("header")),
    resource_name: z.literal("leasehold"),
    dpop_signing_alg_values_supported: z.array(z.string()),
  })
  .describe("OAuth 2.0 Protected Resource Metadata (RFC 9728) of the MCP endpoint.");

export const auditPageSchema = z.strictObject({
  records: z.array(z.record(z.string(), z.unknown())).describe("audit records, newest first"),
  next_cursor: z.string().optional(),
});

/** Every error code, in the order of sidecar/errors.ts. */
export const ERROR_CODES = Object.keys(ERROR_STATUS) as ErrorCode[];

/** `{ error: { code, message, request_id } }`, the one error shape of every route. */
export const errorSchema = z
  .strictObject({
    error: z.strictObject({
      code: z.enum(ERROR_CODES as [ErrorCode, ...ErrorCode[]]),
      message: z.string().describe("human readable; names the field for invalid_request; never a secret"),
      request_id: z.string().describe("the same as the x-request-id header"),
      retry_after: z.number().optional().describe("seconds; with resource_busy and rate_limited"),
      details: z
        .array(
          z.strictObject({
            field: z.string().describe("the field this reason is about, e.g. registration.accounts.1"),
            message: z.string().describe("the reason; never a secret"),
          }),
        )
        .optional()
        .describe("one reason per failed item behind the message (e.g. each account of a registration)"),
      hint: z
        .string()
        .optional()
        .describe(
          "what to do next; with policy_denied, the `leasehold policy check …` command (POSIX shell quoting) that reproduces the decision offline against the policy file",
        ),
    }),
  })
  .describe("The error shape of every route.");

/** The OpenAPI document itself (an object; its schema is OpenAPI 3.1's). */
export const openApiDocumentSchema = z.record(z.string(), z.unknown());

/** `POST /v1/token-exchange` (RFC 8693 §2.2.1): a one-time delegation token for the named actor. */
export const tokenExchangeResultSchema = z.strictObject({
  access_token: z.string(),
  issued_token_type: z.literal("urn:ietf:params:oauth:token-type:jwt"),
  token_type: z.literal("N_A"),
  expires_in: z.number().int().min(1),
});
