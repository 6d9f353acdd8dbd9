// Rule: config.ts owns the whole leasehold.yaml schema; each module receives its typed section (e.g. OpsConfig).
import { isAbsolute, resolve } from "node:path";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import {
  EXEC_COMMAND_NAME,
  lookupOsUser,
  MAX_TIMEOUT_SECONDS,
  OS_USER_NAME,
} from "../adapters/exec/index.js";
import { ConfigError, expandEnv, readConfigFile } from "./config-file.js";
import { closeKeyIn } from "./config-keys.js";
import { LEASE_EVENT_TYPES } from "./events/types.js";
import { CALLER_PARTS } from "./leases/caller.js";
import { webhookKey } from "./ops/webhook-signature.js";
import { describeIssues } from "./util/zod-errors.js";

export { ConfigError, configPathFrom } from "./config-file.js";

const trustEntry = z.discriminatedUnion("kind", [
  z.strictObject({
    kind: z.literal("agents"),
    /** JWKS file; each key's `sub` member names the one subject it may sign for. */
    jwks: z.string().min(1),
    subjects: z.array(z.string().min(1)).min(1),
    algorithms: z.array(z.string()).optional(),
  }),
  z.strictObject({
    kind: z.literal("issuer"),
    /** JWKS file or https URL. */
    jwks: z.string().min(1),
    issuer: z.string().optional(),
    /** Kubernetes service-account tokens: `system:serviceaccount:NS:SA` becomes `spiffe://<trustDomain>/ns/NS/sa/SA`. */
    kubernetes: z.strictObject({ trustDomain: z.string().min(1) }).optional(),
    subjects: z.array(z.string().min(1)).min(1),
    algorithms: z.array(z.string()).optional(),
  }),
]);

const vaultAuth = z.discriminatedUnion("method", [
  z.strictObject({ method: z.literal("token"), token: z.string().min(1) }),
  z.strictObject({
    method: z.literal("approle"),
    roleId: z.string().min(1),
    secretId: z.string().min(1),
    mount: z.string().default("approle"),
  }),
  z.strictObject({
    method: z.literal("jwt"),
    role: z.string().min(1),
    jwtFile: z.string().min(1),
    mount: z.string().default("jwt"),
  }),
]);

const port = z.number().int().min(0).max(65535);

/** One of the operator's commands for `exec` resources (`exec.commands.<name>`). */
const execCommand = z.strictObject({
  /**
   * The program (an absolute path, no PATH lookup) and its fixed arguments, run without a
   * shell: `["/opt/bin/rotate-mainframe", "--prod"]`. Secrets never go here: leasehold sends
   * them on stdin.
   */
  command: z
    .array(
      z
        .string()
        .min(1)
        .refine((arg) => !arg.includes("\0"), "must not contain NUL"),
    )
    .min(1, "must name the program to run")
    .refine((argv) => argv[0] === undefined || isAbsolute(argv[0]), {
      path: [0],
      message: "must be an absolute path (no PATH lookup)",
    }),
  /** Seconds before the command's whole process group is killed (a retryable failure). @default 30 */
  timeoutSeconds: z.number().int().min(1).max(MAX_TIMEOUT_SECONDS).default(30),
  /**
   * The OS user the command runs as, with that user's primary group and no supplementary
   * groups. A user that does not exist is refused when the config is loaded; a sidecar that is
   * not root refuses to start rather than run the command as itself. @default the sidecar's own user
   */
  user: z.string().regex(OS_USER_NAME, "must be an OS user name").optional(),
  /**
   * The command's entire environment besides PATH (nothing of leasehold's own environment,
   * such as VAULT_TOKEN, is passed on). Not for secrets: a process's environment is readable
   * by its user. PATH may be overridden here. @default { PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" }
   */
  env: z
    .record(
      z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "environment variable names are letters, digits and _"),
      z.string().refine((v) => !v.includes("\0"), "must not contain NUL"),
    )
    .optional(),
  /** Working directory, absolute. @default the program's folder */
  cwd: z
    .string()
    .refine((dir) => isAbsolute(dir), "must be an absolute path")
    .optional(),
});

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
        /**
         * The signing secret of the Standard Webhooks `webhook-signature` header: `whsec_` and a
         * base64 key of at least 24 bytes (`whsec_$(openssl rand -base64 32)`), as receivers'
         * libraries take it; or any string of 16+ characters (its UTF-8 bytes are the key; a
         * receiver's library takes `whsec_` and that string in base64). Use `${ENV}`.
         */
        secret: z
          .string()
          .min(16)
          .superRefine((secret, ctx) => {
            if (secret.length < 16) return; // too short: min(16)'s issue already
            try {
              webhookKey(secret);
            } catch (err) {
              ctx.addIssue({
                code: "custom",
                message: (err as Error).message.replace(/^webhook secret: /, ""),
              });
            }
          }),
        /** @default ["rotation_failed", "quarantined", "expiring_soon", "caller_mismatch"] */
        events: z
          .array(z.enum(LEASE_EVENT_TYPES))
          .min(1)
          .default(["rotation_failed", "quarantined", "expiring_soon", "caller_mismatch"]),
      })
      .nullable()
      .default(null),
  })
  .prefault({});

export const configSchema = z.strictObject({
  listen: z
    .strictObject({
      /** @default "127.0.0.1" */
      host: z.string().default("127.0.0.1"),
      /** @default 7733 */
      port: port.default(7733),
      /** Optional Unix socket path (mode 0660). @default null */
      socket: z.string().nullable().default(null),
      /** Allow a non-loopback host. @default false */
      allowRemote: z.boolean().default(false),
      /** Extra Host names accepted besides localhost, 127.0.0.1 and [::1]. @default [] */
      allowedHosts: z.array(z.string()).default([]),
      /** Origins accepted on requests that carry an Origin header. @default [] */
      allowedOrigins: z.array(z.string()).default([]),
    })
    .prefault({}),
  redis: z
    .strictObject({
      /** @default "redis://127.0.0.1:6379/0" */
      url: z.string().default("redis://127.0.0.1:6379/0"),
      /** @default "leasehold:" */
      prefix: z.string().min(1).default("leasehold:"),
      /** Redis Cluster: seed nodes ("host:port"); when set, `url` is ignored. */
      cluster: z.array(z.string().regex(/^[^:\s]+:\d+$/, "must be host:port")).optional(),
      /** Redis Sentinel: the master's name and the sentinels ("host:port"); when set, `url` gives password/db only. */
      sentinel: z
        .strictObject({
          name: z.string().min(1),
          sentinels: z.array(z.string().regex(/^[^:\s]+:\d+$/, "must be host:port")).min(1),
        })
        .optional(),
    })
    .prefault({}),
  vault: z.strictObject({
    /** @default "http://127.0.0.1:8200" */
    address: z.url().default("http://127.0.0.1:8200"),
    auth: vaultAuth,
    /** KV v2 mount. @default "secret" */
    mount: z.string().min(1).default("secret"),
    /** @default "leasehold" */
    prefix: z.string().min(1).default("leasehold"),
    /** Per-call timeout in milliseconds. @default 5000 */
    timeoutMs: z.number().int().positive().default(5000),
  }),
  identity: z.strictObject({
    /** @default "leasehold" */
    audience: z.string().min(1).default("leasehold"),
    trust: z.array(trustEntry).default([]),
    /** Longest accepted exp - iat, seconds: a stolen identity token is worth little for long. @default 300 */
    maxTokenLifetime: z.number().int().positive().default(300),
    /** @default 30 */
    clockSkew: z.number().int().min(0).max(300).default(30),
    /**
     * Requests that change state or hand out a token (checkout, an agent's approval poll, approve,
     * deny, revoke, register, token exchange) accept each identity token's `jti` once (replay cache
     * in Redis until the token expires); operators' read-only requests (lists, views) may present a
     * token again within its lifetime. false lets every request replay a token until it expires.
     * @default true
     */
    oneTimeJti: z.boolean().default(true),
    /** DPoP proofs (RFC 9449) that bind lease tokens to an agent's key. */
    dpop: z
      .strictObject({
        /** Proof algorithms accepted (asymmetric only). @default ["EdDSA","ES256","ES384","PS256","RS256"] */
        algorithms: z.array(z.string()).min(1).optional(),
        /** How old a proof's iat may be, seconds. @default 60 */
        window: z.number().int().min(1).max(600).default(60),
      })
      .prefault({}),
    /**
     * Which parts of the local caller that checked a lease out bind the lease (issue 22): every later
     * use of it (HTTP with its token, a listener login, renew, check-in) must come from a caller
     * equal on each part. `uid`: the same user; `cgroup`: the same cgroup (container, systemd unit);
     * `exe`: the same executable (SHA-256 of its bytes); `process`: the process that checked out or
     * one of its descendants (pid and start time). `[]` binds nothing. A lease checked out by a
     * caller that could not be attested is bound to nothing (policy decides with
     * `context.caller.attested`). @default ["uid"]
     */
    bindCaller: z
      .array(z.enum(CALLER_PARTS))
      .refine((parts) => new Set(parts).size === parts.length, { message: "each part at most once" })
      .default(["uid"]),
    /**
     * What a use of a bound lease by another caller does: `refuse` it (401 caller_mismatch), or
     * `revoke` the lease at the first mismatch (its password rotates) and refuse. A caller that
     * could not be attested is only refused, under either. @default "refuse"
     */
    onCallerMismatch: z.enum(["refuse", "revoke"]).default("refuse"),
    /** Delegation chains (RFC 8693 `act` claims) vouched for by an issuer or by leasehold's token exchange. */
    delegation: z
      .strictObject({
        /** Most `act` hops accepted (1-5). @default 5 */
        maxDepth: z.number().int().min(1).max(5).default(5),
        /** Globs a human delegator (`user:<e-mail>`) must match; the default [] accepts agents only. @default [] */
        humans: z.array(z.string().min(1)).default([]),
      })
      .prefault({}),
  }),
  tokens: z
    .strictObject({
      /** Lease-token signing key file (Ed25519, created 0600 if absent). @default "./state/signing.jwk" */
      signingKey: z.string().default("./state/signing.jwk"),
      /** TTL of the public keys each sidecar publishes in Redis for the cluster, seconds; a key that leaves the file stops being accepted everywhere within it. @default 60 */
      publishTtl: z.number().int().min(3).max(86400).default(60),
    })
    .prefault({}),
  policy: z.strictObject({ file: z.string().nullable().default("./policy.cedar") }).prefault({}),
  audit: z
    .strictObject({
      /** The live audit file (JSONL); rotated files sit beside it as `<file>.1`, `<file>.2`, ... @default "./state/audit.jsonl" */
      file: z.string().default("./state/audit.jsonl"),
      /** Rotate the file before a write would take it past this many bytes; 0: never. @default 104857600 */
      maxBytes: z
        .number()
        .int()
        .min(0)
        .default(100 * 1024 * 1024),
      /** HMAC key file (0600, >= 32 bytes; `leasehold audit keygen`) for each record's `hmac`; null: none. @default null */
      hmacKeyFile: z.string().nullable().default(null),
      stream: z
        .strictObject({
          /** Mirror each record (statement records: see `statements`) to the Redis stream `<redis.prefix>audit` for live readers. @default true */
          enabled: z.boolean().default(true),
          /** Approximate cap on the stream's length (XADD MAXLEN ~). @default 100000 */
          maxLen: z.number().int().min(1).default(100_000),
          /**
           * Mirror the protocol listeners' statement records (`proxy_statement`) too: one XADD per
           * statement, and at thousands a second they crowd everything else out of the capped
           * stream. The file always has them. @default false
           */
          statements: z.boolean().default(false),
        })
        .prefault({}),
    })
    .prefault({}),
  admin: z.strictObject({ tokenFile: z.string().default("./state/admin.token") }).prefault({}),
  rotation: z
    .strictObject({
      /** Failures before an account is quarantined. @default 5 */
      maxFailures: z.number().int().positive().default(5),
      /** First retry delay, seconds (doubles up to maxBackoff). @default 10 */
      backoff: z.number().positive().default(10),
      /** @default 300 */
      maxBackoff: z.number().positive().default(300),
      /** How often the reconciler looks for dirty accounts, seconds. @default 10 */
      reconcileInterval: z.number().positive().default(10),
      /** Rotation lock TTL (renewed while a rotation runs), seconds. @default 10 */
      lockTtl: z.number().positive().max(300).default(10),
      /** Timeout of one call to a legacy system, seconds. @default 10 */
      adapterTimeout: z.number().positive().max(600).default(10),
    })
    .prefault({}),
  approvals: z
    .strictObject({
      /** How long an approval request stays open, seconds. @default 900 */
      ttl: z.number().int().min(1).max(86400).default(900),
      /**
       * Distinct approvers a checkout needs before it is approved (four eyes: never the requester
       * nor its delegators; any deny denies). The admin token names its approver, so whoever holds
       * it can vote under several names: give approvers their own identities. @default 1
       */
      minApprovers: z.number().int().min(1).max(10).default(1),
      /** Approval requests one agent may have pending at once (429 rate_limited beyond). @default 5 */
      maxPendingPerAgent: z.number().int().min(1).max(1000).default(5),
    })
    .prefault({}),
  limits: z
    .strictObject({
      /** Checkouts one agent may request per minute (429 rate_limited beyond). 0 = no limit. @default 600 */
      checkoutsPerMinute: z.number().int().min(0).default(600),
      /** Tool calls without a lease (`POST /v1/tool-calls`) one agent may report per minute, each one audit record (429 rate_limited beyond). 0 = no limit. @default 120 */
      toolCallsPerMinute: z.number().int().min(0).default(120),
      /** Catalog reads (`GET /v1/catalog`) one agent may make per minute, counted before its DPoP proof or caller pin is checked (429 rate_limited beyond). 0 = no limit. @default 60 */
      catalogReadsPerMinute: z.number().int().min(0).default(60),
    })
    .prefault({}),
  ops: opsConfigSchema,
  proxy: z
    .strictObject({
      /** Audit of proxied PostgreSQL and MySQL statements: none, digest (SHA-256) or text. @default "none" */
      auditStatements: z.enum(["none", "digest", "text"]).default("none"),
      /** Time a client has from connecting to a listener to a logged-in session (the backend login included), ms. @default 5000 */
      handshakeTimeoutMs: z.number().int().min(100).max(120000).default(5000),
      /** Connections of one listener still logging in; when all are taken the oldest one idle on its client is closed. @default 64 */
      maxHandshakes: z.number().int().min(1).max(10000).default(64),
      /** Logged-in connections one lease may hold at once; beyond, the client gets an error naming this setting. @default 16 */
      maxConnectionsPerLease: z.number().int().min(1).max(1000).default(16),
      /** TLS offered to clients that ask (PostgreSQL SSLRequest, MySQL CLIENT_SSL, LDAP StartTLS or ldaps://): a self-signed certificate, or off. @default "self-signed" */
      tls: z.enum(["self-signed", "off"]).default("self-signed"),
      /**
       * Under statement policy (a registration's `proxy.statementPolicy`), a statement the
       * protocol's grammar cannot parse (Redis: an unknown command, or keys its key specs cannot
       * tell) is refused (`deny`, SQLSTATE 42501 or `-NOPERM`, audited) or let through undecided
       * (`allow`). @default "deny"
       */
      unparseable: z.enum(["deny", "allow"]).default("deny"),
    })
    .prefault({}),
  mcp: z
    .strictObject({
      /**
       * MCP over HTTP (`/mcp`, the Streamable HTTP transport, and its protected-resource metadata):
       * `leasehold mcp`'s tools for an agent's identity JWT, which trusts nothing new (the same
       * token checks out through `/v1/checkout`). false: those routes answer 404. @default true
       */
      http: z.boolean().default(true),
      /** A session with no request for this long ends (the leases it holds are checked in), seconds. @default 900 */
      sessionIdleSeconds: z.number().int().min(10).max(86400).default(900),
      /** MCP sessions one agent may hold open at once (429 rate_limited beyond). @default 8 */
      maxSessionsPerAgent: z.number().int().min(1).max(1000).default(8),
    })
    .prefault({}),
  reaper: z
    .strictObject({
      /** How often due leases are claimed, milliseconds. @default 200 */
      intervalMs: z.number().int().min(10).default(200),
    })
    .prefault({}),
  log: z
    .strictObject({
      level: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
    })
    .prefault({}),
  resources: z.array(z.string()).default([]),
  adapters: z.array(z.strictObject({ module: z.string().min(1) })).default([]),
  exec: z
    .strictObject({
      /**
       * The commands `exec` resources may run, by name (1-63 of a-z 0-9 . _ -), each
       * `{ command: [program, args...], timeoutSeconds, user?, env?, cwd? }`. A registration
       * names one (`connection: { command: <name> }`) and never carries a program, a path or
       * arguments, so registering a resource never chooses what runs. @default {}
       */
      commands: z
        .record(
          z
            .string()
            .regex(
              EXEC_COMMAND_NAME,
              "command names are 1-63 of a-z 0-9 . _ - starting with a letter or digit",
            ),
          execCommand,
        )
        .default({}),
    })
    .prefault({}),
});

export type Config = z.output<typeof configSchema> & { readonly configDir: string };

/** The `ops:` section, as the ops layer receives it. */
export type OpsConfig = Config["ops"];

const LOOPBACK = new Set(["127.0.0.1", "localhost", "::1", "[::1]"]);

/** A command whose `user` does not exist is refused at load, not when a rotation needs it. */
function checkExecUsers(commands: Readonly<Record<string, { readonly user?: string | undefined }>>): void {
  for (const [name, c] of Object.entries(commands)) {
    if (c.user !== undefined && lookupOsUser(c.user) === undefined) {
      throw new ConfigError(`exec.commands.${name}.user: there is no OS user "${c.user}"`);
    }
  }
}

function resolvePath(dir: string, p: string): string {
  return isAbsolute(p) ? p : resolve(dir, p);
}

/**
 * Validates a parsed config object. Relative paths resolve against `configDir`.
 * Throws ConfigError naming the key on any problem; the result is frozen.
 */
export function parseConfig(raw: unknown, configDir: string, env: NodeJS.ProcessEnv = process.env): Config {
  const withEnv = expandEnv(raw ?? {}, env, "");
  const parsed = configSchema.safeParse(withEnv);
  if (!parsed.success)
    throw new ConfigError(
      `invalid config: ${describeIssues(parsed.error.issues, "", closeKeyIn(configSchema))}`,
    );
  const c = parsed.data;
  checkExecUsers(c.exec.commands);
  if (!LOOPBACK.has(c.listen.host) && !c.listen.allowRemote) {
    throw new ConfigError(
      `listen.host: "${c.listen.host}" is not a loopback address; set listen.allowRemote: true to allow it`,
    );
  }
  const out: Config = {
    ...c,
    configDir,
    listen: {
      ...c.listen,
      socket: c.listen.socket === null ? null : resolvePath(configDir, c.listen.socket),
    },
    vault:
      c.vault.auth.method === "jwt"
        ? { ...c.vault, auth: { ...c.vault.auth, jwtFile: resolvePath(configDir, c.vault.auth.jwtFile) } }
        : c.vault,
    identity: {
      ...c.identity,
      trust: c.identity.trust.map((t) =>
        /^https?:\/\//.test(t.jwks) ? t : { ...t, jwks: resolvePath(configDir, t.jwks) },
      ),
    },
    tokens: { ...c.tokens, signingKey: resolvePath(configDir, c.tokens.signingKey) },
    policy: { file: c.policy.file === null ? null : resolvePath(configDir, c.policy.file) },
    audit: {
      ...c.audit,
      file: resolvePath(configDir, c.audit.file),
      hmacKeyFile: c.audit.hmacKeyFile === null ? null : resolvePath(configDir, c.audit.hmacKeyFile),
    },
    admin: { tokenFile: resolvePath(configDir, c.admin.tokenFile) },
    resources: c.resources.map((r) => resolvePath(configDir, r)),
    adapters: c.adapters.map((a) => ({ module: resolvePath(configDir, a.module) })),
  };
  return deepFreeze(out);
}

/** Reads, interpolates and validates a YAML (or JSON) config file. */
export function loadConfig(file: string, env: NodeJS.ProcessEnv = process.env): Config {
  const { raw, dir } = readConfigFile(file, parseYaml);
  return parseConfig(raw, dir, env);
}

function deepFreeze<T>(o: T): T {
  if (o !== null && typeof o === "object" && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o)) deepFreeze(v);
  }
  return o;
}

/** Fault tests only: the rotation step at which the process kills itself (LEASEHOLD_CRASH_AT). */
export function crashPointFromEnv(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const v = env.LEASEHOLD_CRASH_AT;
  return v === undefined || v === "" ? undefined : v;
}
