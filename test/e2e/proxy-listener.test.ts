import { randomBytes } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import pg from "pg";
import { stringify } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { StackClient } from "../support/e2e-client.js";
import { type Stack, startStack } from "../support/stack.js";
import { waitFor } from "../support/wait-for.js";
import { run, start, toolEnv } from "../proxy/processes.js";

/**
 * Proxy mode through the built CLI and the HTTP API: a DBA registers a PostgreSQL resource that
 * never reveals its password; the agent reaches it only through the sidecar's listener, with its
 * lease id and lease token, and the end of the lease ends its session.
 */

const PSQL = "/usr/bin/psql";
const RESOURCE = "ledger-db";
const ACCOUNT = "app_ledger_1";
const INITIAL_PASSWORD = `initial-${randomBytes(9).toString("hex")}`;
const POLICY = `@id("agents-read-ledger")
permit (
  principal,
  action in [Action::"checkout", Action::"reveal", Action::"renew", Action::"tool_call"],
  resource == Resource::"${RESOURCE}"
)
when { context.intent == "read" };
`;

let stack: Stack;
let c: StackClient;

interface ProxyInfo {
  host: string;
  port: number;
  username: string;
}

interface Checkout {
  id: string;
  token: string;
  proxy: ProxyInfo;
}

async function checkout(): Promise<Checkout> {
  const res = await c.http("POST", "/v1/checkout", {
    token: await c.assertion("a"),
    body: {
      resource: RESOURCE,
      task: { id: "LEDGER-7" },
      intent: { action: "read", tool: "psql" },
      ttl: 120,
    },
  });
  expect(res.status, JSON.stringify(res.json)).toBe(201);
  const token = res.json.token as string;
  c.secrets.push(token);
  return { id: (res.json.lease as { id: string }).id, token, proxy: res.json.proxy as ProxyInfo };
}

function psqlArgs(l: Checkout, extra: readonly string[]): string[] {
  const p = l.proxy;
  return [`host=${p.host} port=${p.port} user=${p.username} dbname=postgres sslmode=require`, "-X", ...extra];
}

function psqlEnv(password: string): NodeJS.ProcessEnv {
  return toolEnv({ PGPASSWORD: password, PGCONNECT_TIMEOUT: "10" });
}

async function backendSessions(account: string): Promise<number> {
  return stack.asSuperuser(async (su) => {
    const r = await su.query<{ n: string }>("select count(*) as n from pg_stat_activity where usename = $1", [
      account,
    ]);
    return Number(r.rows[0]?.n ?? 0);
  });
}

async function proxyRecords(leaseId: string, scope: string): Promise<Array<Record<string, unknown>>> {
  return (await c.auditRecords()).filter((r) => r.lease_id === leaseId && r.scope === scope);
}

beforeAll(async () => {
  stack = await startStack({
    policy: POLICY,
    logLevel: "debug",
    config: { proxy: { auditStatements: "text" } },
  });
  c = new StackClient(stack);
  c.secrets.push(stack.adminPassword, INITIAL_PASSWORD);
  await c.adminToken();
  await stack.createRole(ACCOUNT, INITIAL_PASSWORD);
  // As docs/adapters.md tells the DBA: rotation ends the account's sessions with pg_terminate_backend.
  await stack.asSuperuser((su) => su.query("GRANT pg_signal_backend TO leasehold_admin"));
  const reg = {
    name: RESOURCE,
    adapter: "postgres",
    connection: { host: "127.0.0.1", port: stack.pg.port, database: "postgres" },
    admin: { username: "leasehold_admin", password: stack.adminPassword },
    accounts: [ACCOUNT],
    reveal: false,
    proxy: { port: 0 },
    lease: { defaultTtl: 60, maxTtl: 600 },
  };
  const file = join(stack.dir, `${RESOURCE}.yaml`);
  await writeFile(file, stringify(reg));
  const dry = await stack.cli("resources", "register", "-f", file, "--dry-run");
  expect(dry.code, dry.stderr).toBe(0);
  // No connection.ssl: the DBA is told the listener's leg to the server is plaintext.
  expect(dry.stdout).toMatch(
    /^ {2}warn {2}registration\.connection\.ssl: not set, so the listener's connection to the server is plaintext/m,
  );
  const r = await stack.cli("resources", "register", "-f", file);
  expect(r.code, r.stderr).toBe(0);
  expect(r.stdout).toContain("warn  registration.connection.ssl");
  await c.waitForAccounts(RESOURCE, "available");
}, 120_000);

afterAll(async () => {
  await stack?.close();
});

describe("proxy mode: the agent connects through the listener and never holds the password", () => {
  let lease: Checkout;

  it("checkout names the listener; the credential endpoint refuses to reveal", async () => {
    lease = await checkout();
    expect(lease.proxy).toEqual({ host: "127.0.0.1", port: expect.any(Number), username: lease.id });
    expect(lease.proxy.port).toBeGreaterThan(0);
    const cred = await c.http("GET", `/v1/leases/${lease.id}/credential`, { token: lease.token });
    expect(cred.status).toBe(403);
    expect((cred.json.error as { code: string }).code).toBe("policy_denied");
    expect(JSON.stringify(cred.json)).not.toContain(INITIAL_PASSWORD);
    // The operator's view of the account: its password is held where the agent cannot read it.
    const rec = await c.vaultAccount(RESOURCE, ACCOUNT);
    expect(rec.state).toBe("leased");
    expect(rec.password).not.toBe(INITIAL_PASSWORD);
  });

  it("psql (over TLS) and the pg library run queries as the leased account with the lease token", async () => {
    const r = await run(PSQL, psqlArgs(lease, ["-At", "-c", "select current_user"]), psqlEnv(lease.token));
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(ACCOUNT);

    const client = new pg.Client({
      host: lease.proxy.host,
      port: lease.proxy.port,
      user: lease.proxy.username,
      password: lease.token,
      database: "postgres",
    });
    await client.connect();
    try {
      const q = await client.query<{ who: string; n: number }>(
        "select current_user as who, $1::int + 1 as n",
        [41],
      );
      expect(q.rows).toEqual([{ who: ACCOUNT, n: 42 }]);
    } finally {
      await client.end();
    }
  });

  it("a wrong token is refused with 28P01 and the refusal is audited", async () => {
    const wrong = new pg.Client({
      host: lease.proxy.host,
      port: lease.proxy.port,
      user: lease.id,
      password: `${lease.token.slice(0, -4)}AAAA`,
      database: "postgres",
    });
    await expect(wrong.connect()).rejects.toMatchObject({ code: "28P01" });
    const r = await run(PSQL, psqlArgs(lease, ["-At", "-c", "select 1"]), psqlEnv("not-a-lease-token"));
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("password authentication failed");
    await waitFor("the refusals in the audit file", async () => {
      const denied = (await proxyRecords(lease.id, "proxy_session")).filter((x) => x.decision === "deny");
      return denied.length >= 2 && denied.every((x) => String(x.reason).startsWith("28P01"));
    });
  });

  it("revoking the lease with the CLI ends the open psql session within a second and refuses the token", async () => {
    const p = start(PSQL, psqlArgs(lease, ["-At", "-c", "select pg_sleep(30)"]), psqlEnv(lease.token));
    p.child.stdin.end();
    await waitFor("the sleeping session", async () => (await backendSessions(ACCOUNT)) === 1);
    const revoke = await stack.cli("leases", "revoke", lease.id, "--reason", "e2e proxy test");
    expect(revoke.code, revoke.stderr).toBe(0);
    const ended = await Promise.race([
      p.result,
      new Promise<undefined>((r) => setTimeout(() => r(undefined), 1000)),
    ]);
    if (!ended) p.child.kill("SIGKILL");
    expect(ended, "psql was still connected 1 s after the revoke command returned").toBeDefined();
    expect(ended?.code).not.toBe(0);
    expect(ended?.stderr).toContain("terminating connection because the lease was revoked");
    await waitFor("the backend session to end", async () => (await backendSessions(ACCOUNT)) === 0);

    const after = new pg.Client({
      host: lease.proxy.host,
      port: lease.proxy.port,
      user: lease.id,
      password: lease.token,
      database: "postgres",
    });
    await expect(after.connect()).rejects.toMatchObject({ code: "28P01" });
  });

  it("the audit file holds each proxied connection and each statement", async () => {
    let sessions: Array<Record<string, unknown>> = [];
    await waitFor("three allowed proxy sessions in the audit file", async () => {
      sessions = (await proxyRecords(lease.id, "proxy_session")).filter((x) => x.decision === "allow");
      return sessions.length >= 3;
    });
    for (const s of sessions) {
      expect(s).toMatchObject({
        event: "tool_call",
        tool: "postgres",
        resource: RESOURCE,
        account: ACCOUNT,
        agent: "spiffe://example.org/agent/a",
        task_id: "LEDGER-7",
      });
      expect(s.target).toMatch(/^127\.0\.0\.1:\d+$/);
      expect(s.bytes_in).toBeGreaterThan(0);
      expect(typeof s.duration_ms).toBe("number");
    }
    // The revoked session's query never answered: only the two finished ones got bytes back.
    expect(sessions.map((s) => s.reason).sort()).toEqual(["closed", "closed", "the lease was revoked"]);
    expect(sessions.filter((s) => (s.bytes_out as number) > 0)).toHaveLength(2);
    const statements = (await proxyRecords(lease.id, "proxy_statement")).map((s) => s.statement);
    expect(statements).toEqual(expect.arrayContaining(["select current_user", "select pg_sleep(30)"]));
    const connects = await proxyRecords(lease.id, "proxy_connect");
    expect(connects.length).toBeGreaterThanOrEqual(3);
  });

  it("neither the lease token nor any password of the account appears in the sidecar's logs or audit", async () => {
    await c.waitForAccounts(RESOURCE, "available");
    await c.vaultAccount(RESOURCE, ACCOUNT);
    const logs = stack.sidecar.output();
    expect(logs).toContain("proxy listener started");
    const audit = await readFile(join(stack.dir, "state", "audit.jsonl"), "utf8");
    expect(c.secrets.length).toBeGreaterThanOrEqual(5);
    for (const s of c.secrets) {
      expect(logs.includes(s), "a secret in the sidecar's output").toBe(false);
      expect(audit.includes(s), "a secret in the audit file").toBe(false);
    }
    expect(logs).not.toContain(lease.token);
  });

  it("SIGTERM writes every statement record still queued before the sidecar exits (group commit loses nothing on a clean stop)", async () => {
    const l = await checkout();
    const client = new pg.Client({
      host: l.proxy.host,
      port: l.proxy.port,
      user: l.id,
      password: l.token,
      database: "postgres",
    });
    client.on("error", () => undefined);
    await client.connect();
    const tag = randomBytes(4).toString("hex");
    const n = 500;
    for (let i = 0; i < n; i++) await client.query(`select '${tag}-${i}'`);
    // Every statement was answered, so every record is queued or written; stop at once.
    expect(await stack.sidecar.stop()).toBe(0);
    const statements = (await proxyRecords(l.id, "proxy_statement")).map((s) => s.statement);
    expect(statements.filter((s) => String(s).includes(tag))).toEqual(
      Array.from({ length: n }, (_, i) => `select '${tag}-${i}'`),
    );
    const verify = await stack.cli("audit", "verify");
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);
  });
});
