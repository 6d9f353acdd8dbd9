import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Connection } from "mysql2/promise";
import { parseConfig } from "../../sidecar/config.js";
import { generateAgentKey, mintIdentityAssertion } from "../../sidecar/identity/index.js";
import { createLogger, type Logger } from "../../sidecar/logger.js";
import type { CrashPoint } from "../../sidecar/rotation/index.js";
import { createSidecar, type Sidecar } from "../../sidecar/wire.js";
import type { McpServerFactory } from "../../sidecar/wire/mcp.js";
import { createMariadbAccount, dropMariadbAccount, localMariadb, mariadbRoot } from "../support/mariadb.js";
import { dropPrefix, REDIS_URL } from "../support/redis.js";

/** Agents of example.org may read any resource for up to 10 minutes (the demo's policy, any resource). */
export const READ_ANY_POLICY = `@id("agents-read-any")
permit (
  principal,
  action in [Action::"checkout", Action::"reveal", Action::"renew", Action::"tool_call"],
  resource
)
when { context.intent == "read" && context.ttl <= 600 };
`;

/** Where the sidecar keeps its secrets: a Vault and a token that may or may not be root. */
export interface VaultTarget {
  readonly address: string;
  readonly token: string;
  readonly mount: string;
}

/** A sidecar wired from a real config in this process (no listener), with a MariaDB resource. */
export interface InProcessSidecar {
  readonly sidecar: Sidecar;
  readonly dir: string;
  /** The Vault prefix the config names. */
  readonly vaultPrefix: string;
  /** The Redis key prefix the config names (unique per sidecar). */
  readonly redisPrefix: string;
  /** A registration for the local MariaDB, whose admin and account exist (resource name unique). */
  readonly registration: Record<string, unknown>;
  readonly resource: string;
  /** A fresh identity JWT of spiffe://example.org/agent/<name> ("a" and "b" exist). */
  identity(agent?: "a" | "b"): Promise<string>;
  /** The private key file of spiffe://example.org/agent/<name>, for the SDK's `keyFile`. */
  keyFile(agent?: "a" | "b"): string;
  /** Listens on a free port of 127.0.0.1; the base URL. */
  listen(): Promise<string>;
  close(): Promise<void>;
}

/**
 * Builds the real sidecar (createSidecar: Redis, Vault, policy, audit, identity) from a config
 * passed through parseConfig, with background loops off; `app.inject()` drives it. The MariaDB
 * admin and account are created with random names and passwords and dropped on close.
 */
export async function startInProcessSidecar(opts: {
  vault: VaultTarget;
  /** Vault prefix. @default a unique one */
  vaultPrefix?: string;
  /** Cedar policy text. @default READ_ANY_POLICY */
  policy?: string;
  /** More top-level sections of the config (e.g. `exec`). @default none */
  config?: Record<string, unknown>;
  /** Called at each rotation step (CrashPoint), e.g. to act in the middle of an admin rotation. */
  crashHook?: (point: CrashPoint) => void;
  /** The MCP server each `/mcp` session runs. @default leasehold's tools */
  mcpServer?: McpServerFactory;
  /** The sidecar's logger. @default a silent one */
  log?: Logger;
}): Promise<InProcessSidecar> {
  const dir = await mkdtemp(join(tmpdir(), "leasehold-inproc-"));
  const tag = randomBytes(4).toString("hex");
  const prefix = `lhtest:docs:${tag}:`;
  const vaultPrefix = opts.vaultPrefix ?? `leasehold-docs-${tag}`;
  const keys: Record<string, string> = {};
  for (const agent of ["a", "b"]) {
    const k = await generateAgentKey({
      id: `spiffe://example.org/agent/${agent}`,
      outDir: join(dir, "trust"),
    });
    keys[agent] = k.keyFile;
  }
  await writeFile(join(dir, "policy.cedar"), opts.policy ?? READ_ANY_POLICY);
  const raw = {
    redis: { url: REDIS_URL, prefix },
    vault: {
      address: opts.vault.address,
      auth: { method: "token", token: "${LH_INPROC_VAULT_TOKEN}" },
      mount: opts.vault.mount,
      prefix: vaultPrefix,
    },
    identity: {
      trust: [
        { kind: "agents", jwks: "./trust/agents.jwks.json", subjects: ["spiffe://example.org/agent/*"] },
      ],
    },
    policy: { file: "./policy.cedar" },
    log: { level: "silent" },
    ...opts.config,
  };
  const config = parseConfig(raw, dir, { LH_INPROC_VAULT_TOKEN: opts.vault.token });
  const sidecar = await createSidecar({
    config,
    log: opts.log ?? createLogger("silent"),
    background: false,
    crashHook: opts.crashHook,
    // Every answer is checked against its documented schema as it is written.
    checkResponses: true,
    ...(opts.mcpServer ? { mcpServer: opts.mcpServer } : {}),
  });

  const root: Connection = await mariadbRoot();
  const adminUser = `lhdoc_adm_${tag}`;
  const account = `lhdoc_acc_${tag}`;
  const adminPassword = randomBytes(18).toString("base64url");
  await createMariadbAccount(root, adminUser, adminPassword);
  await root.query(`GRANT CREATE USER, PROCESS, CONNECTION ADMIN ON *.* TO '${adminUser}'@'%'`);
  await createMariadbAccount(root, account, randomBytes(18).toString("base64url"));
  const resource = `orders-${tag}`;
  const registration = {
    name: resource,
    adapter: "mysql",
    connection: { host: localMariadb.host, port: localMariadb.port },
    rotateWith: "admin",
    admin: { username: adminUser, password: adminPassword },
    accounts: [account],
    lease: { defaultTtl: 120, maxTtl: 600 },
  };
  return {
    sidecar,
    dir,
    vaultPrefix,
    redisPrefix: prefix,
    registration,
    resource,
    identity: (agent = "a") =>
      mintIdentityAssertion({ keyFile: keys[agent] ?? "", audience: "leasehold", ttlSeconds: 60 }),
    keyFile: (agent = "a") => keys[agent] ?? "",
    listen: async () => {
      await sidecar.app.listen({ host: "127.0.0.1", port: 0 });
      const address = sidecar.app.server.address();
      if (address === null || typeof address === "string") throw new Error("no TCP address");
      return `http://127.0.0.1:${address.port}`;
    },
    close: async () => {
      await sidecar.close();
      await dropMariadbAccount(root, account).catch(() => undefined);
      await dropMariadbAccount(root, adminUser).catch(() => undefined);
      await root.end();
      await dropPrefix(prefix);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
