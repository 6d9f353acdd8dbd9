import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { stringify } from "yaml";
import { freePort } from "./free-port.js";
import { type ScramPostgres, startScramPostgres } from "./pg-cluster.js";
import { dropPrefix } from "./redis.js";
import { runCli, type SidecarProcess, startSidecarProcess } from "./sidecar-process.js";
import { useVault, type VaultHandle } from "./vault.js";

export const DEMO_POLICY = `// Agents of example.org may read orders-db for up to 10 minutes.
@id("agents-read-orders")
permit (
  principal,
  action in [Action::"checkout", Action::"reveal", Action::"renew", Action::"tool_call"],
  resource == Resource::"orders-db"
)
when { context.intent == "read" && context.ttl <= 600 };
`;

/** A policy letting every agent read each of `resources` (checkout, reveal, renew, tool calls). */
export function agentsReadPolicy(resources: readonly string[]): string {
  return resources
    .map(
      (r) => `@id("agents-read-${r}")
permit (
  principal,
  action in [Action::"checkout", Action::"reveal", Action::"renew", Action::"tool_call"],
  resource == Resource::"${r}"
)
when { context.intent == "read" };
`,
    )
    .join("\n");
}

/**
 * Writes to `resource` wait for an approval: a `write` checkout is permitted once approved
 * (`writes-need-approval`), and the writer may then reveal, renew and report tool calls on its
 * lease (`writers-use-their-lease`).
 */
export function approvedWritesPolicy(resource: string): string {
  return `@id("writes-need-approval")
permit (principal, action == Action::"checkout", resource == Resource::"${resource}")
when { context.intent == "write" && context.approved };

@id("writers-use-their-lease")
permit (principal, action in [Action::"reveal", Action::"renew", Action::"tool_call"], resource == Resource::"${resource}")
when { context.intent == "write" };
`;
}

export interface Stack {
  readonly dir: string;
  readonly configFile: string;
  readonly port: number;
  readonly prefix: string;
  readonly vault: Awaited<ReturnType<typeof useVault>>;
  readonly pg: ScramPostgres;
  readonly adminPassword: string;
  sidecar: SidecarProcess;
  /** Runs the built CLI against this stack's config. */
  cli(...args: string[]): ReturnType<typeof runCli>;
  /** Runs `fn` on a superuser connection to the private cluster, closed afterwards. */
  asSuperuser<T>(fn: (su: pg.Client) => Promise<T>): Promise<T>;
  /** Creates a login role in the private cluster (as superuser). */
  createRole(name: string, password: string, extra?: string): Promise<void>;
  /** Tries to log into the private cluster; true when the password is accepted. */
  canLogin(user: string, password: string): Promise<boolean>;
  /** Restarts the sidecar process (same config). */
  restart(env?: NodeJS.ProcessEnv): Promise<void>;
  close(): Promise<void>;
}

function quoteIdent(s: string): string {
  return `"${s.replaceAll('"', '""')}"`;
}

/**
 * The whole system on this machine: a private scram PostgreSQL cluster, Vault (dev server or
 * the real one named by VAULT_ADDR), local Redis under a unique prefix, and the sidecar as a
 * child process of the built CLI.
 */
export async function startStack(
  opts: {
    policy?: string;
    env?: NodeJS.ProcessEnv;
    logLevel?: string;
    config?: Record<string, unknown>;
    /** A Vault the caller manages (and closes); default: useVault(). */
    vault?: VaultHandle;
    /**
     * Operator names: each gets a key for `spiffe://example.org/operator/<name>` in a second
     * trust bundle (trust/operators.jwks.json), so tests can act as an operator identity.
     */
    operators?: string[];
  } = {},
): Promise<Stack> {
  const dir = await mkdtemp(join(tmpdir(), "leasehold-stack-"));
  const [pgc, vault, port] = await Promise.all([startScramPostgres(), opts.vault ?? useVault(), freePort()]);
  const prefix = `lhtest:stack:${randomBytes(4).toString("hex")}:`;
  const vaultPrefix = `leasehold-test-${randomBytes(4).toString("hex")}`;
  const superuser = () =>
    new pg.Client({
      host: pgc.host,
      port: pgc.port,
      user: "postgres",
      password: pgc.superuser.password,
      database: "postgres",
    });
  const asSuperuser = async <T>(fn: (su: pg.Client) => Promise<T>): Promise<T> => {
    const c = superuser();
    await c.connect();
    try {
      return await fn(c);
    } finally {
      await c.end();
    }
  };
  const createRole = async (name: string, password: string, extra = "") => {
    const lit = `'${password.replaceAll("'", "''")}'`;
    await asSuperuser((c) => c.query(`CREATE ROLE ${quoteIdent(name)} LOGIN PASSWORD ${lit} ${extra}`));
  };
  const adminPassword = randomBytes(18).toString("base64url");
  await createRole("leasehold_admin", adminPassword, "CREATEROLE");
  const trustDir = join(dir, "trust");
  const { identity: identityExtra, ...configRest } = opts.config ?? {};
  const config = {
    listen: { host: "127.0.0.1", port },
    redis: { url: "redis://127.0.0.1:6379/0", prefix },
    vault: {
      address: vault.address,
      auth: { method: "token", token: "${LH_TEST_VAULT_TOKEN}" },
      mount: vault.mount,
      prefix: vaultPrefix,
    },
    identity: {
      audience: "leasehold",
      trust: [
        { kind: "agents", jwks: "./trust/agents.jwks.json", subjects: ["spiffe://example.org/agent/*"] },
        ...(opts.operators?.length
          ? [
              {
                kind: "agents",
                jwks: "./trust/operators.jwks.json",
                subjects: ["spiffe://example.org/operator/*"],
              },
            ]
          : []),
      ],
      // A test's identity settings (e.g. bindCaller) join the trust the stack sets up.
      ...(identityExtra as Record<string, unknown> | undefined),
    },
    tokens: { signingKey: "./state/signing.jwk" },
    policy: { file: "./policy.cedar" },
    audit: { file: "./state/audit.jsonl" },
    admin: { tokenFile: "./state/admin.token" },
    reaper: { intervalMs: 100 },
    log: { level: opts.logLevel ?? "info" },
    ...configRest,
  };
  const configFile = join(dir, "leasehold.yaml");
  await writeFile(configFile, stringify(config));
  await writeFile(join(dir, "policy.cedar"), opts.policy ?? DEMO_POLICY);
  const env = { LH_TEST_VAULT_TOKEN: vault.token, ...opts.env };
  const cli = (...args: string[]) => runCli(["--config", configFile, ...args], env);
  for (const agent of ["a", "b"]) {
    const r = await cli("agent", "keygen", "--id", `spiffe://example.org/agent/${agent}`, "--out", trustDir);
    if (r.code !== 0) throw new Error(`agent keygen failed: ${r.stderr}`);
  }
  for (const name of opts.operators ?? []) {
    const id = `spiffe://example.org/operator/${name}`;
    const bundle = join(trustDir, "operators.jwks.json");
    const r = await cli("agent", "keygen", "--id", id, "--out", trustDir, "--bundle", bundle);
    if (r.code !== 0) throw new Error(`operator keygen failed: ${r.stderr}`);
  }
  const sidecar = await startSidecarProcess({ configFile, port, env });
  const stack: Stack = {
    dir,
    configFile,
    port,
    prefix,
    vault,
    pg: pgc,
    adminPassword,
    sidecar,
    cli,
    asSuperuser,
    createRole,
    canLogin: async (user, password) => {
      const c = new pg.Client({
        host: pgc.host,
        port: pgc.port,
        user,
        password,
        database: "postgres",
        connectionTimeoutMillis: 5000,
      });
      try {
        await c.connect();
        await c.end();
        return true;
      } catch (err) {
        const code = (err as { code?: string }).code;
        if (code === "28P01" || code === "28000") return false;
        throw err;
      }
    },
    restart: async (extraEnv) => {
      await stack.sidecar.stop();
      stack.sidecar = await startSidecarProcess({ configFile, port, env: { ...env, ...extraEnv } });
    },
    close: async () => {
      await stack.sidecar.stop().catch(() => undefined);
      await Promise.allSettled([
        pgc.stop(),
        opts.vault ? Promise.resolve() : vault.close(),
        dropPrefix(prefix),
      ]);
      await rm(dir, { recursive: true, force: true });
    },
  };
  return stack;
}
