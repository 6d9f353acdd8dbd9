import { type ChildProcess, spawn } from "node:child_process";
import { chmod, mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type CryptoKey, decodeJwt, exportJWK, generateKeyPair, SignJWT } from "jose";
import pg from "pg";
import { parse as parseYaml, stringify } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDpopKey, type DpopKey } from "../../sidecar/client/dpop-key.js";
import { createClient, type Lease, LeaseholdClientError } from "../../sidecar/client/index.js";
import { mintIdentityAssertion } from "../../sidecar/identity/index.js";
import { type ErrorBody, expectError, type HttpResult, StackClient } from "../support/e2e-client.js";
import { cliPath, repoRoot, STARTUP_TIMEOUT_MS } from "../support/sidecar-process.js";
import { type Stack, startStack } from "../support/stack.js";
import { abortWhenExited, waitFor } from "../support/wait-for.js";

/** Issue 7 end to end: DPoP-bound lease tokens, delegation chains, the Unix socket, the CSRF rule, the SDK. */

const READ_ACTIONS = `[Action::"checkout", Action::"reveal", Action::"renew", Action::"tool_call"]`;
const POLICY = `@id("read-orders")
permit (principal, action in ${READ_ACTIONS}, resource == Resource::"orders-db")
when { context.intent == "read" && context.ttl <= 600 };

@id("secure-read")
permit (principal, action in ${READ_ACTIONS}, resource == Resource::"secure-db")
when { context.intent == "read" };

// The documented way to require DPoP for one resource.
@id("secure-db-requires-dpop")
forbid (principal, action, resource == Resource::"secure-db")
unless { context.dpop };

@id("approval-checkout")
permit (principal, action == Action::"checkout", resource == Resource::"approval-db")
when { context.approved };

@id("approval-use")
permit (principal, action in [Action::"reveal", Action::"renew", Action::"tool_call"], resource == Resource::"approval-db");

@id("alice-delegates")
permit (principal, action in ${READ_ACTIONS}, resource == Resource::"delegated-db")
when { context has delegated_by && context.delegated_by == "user:alice@example.org" };
`;

const ALICE = "user:alice@example.org";
const AGENT_A = "spiffe://example.org/agent/a";
const AGENT_B = "spiffe://example.org/agent/b";
/** An IdP that issues delegated tokens in RFC 8693's form (Okta, Entra, AgentCore do). */
const IDP = "https://idp.identity-binding.test";
const ORDERS = 3;

let stack: Stack;
let c: StackClient;
let admin: string;
let keyA: string;
let idpKey: CryptoKey;
let idpDir: string;
const secrets: string[] = [];

const read = (resource: string) => ({
  resource,
  task: { id: "TICKET-7" },
  intent: { action: "read", tool: "psql" },
  ttl: 120,
  wait: 10,
});

/** An identity assertion of agent a, minted in-process (the CLI's `agent assert` is tested elsewhere). */
async function assertA(extraClaims?: Record<string, unknown>): Promise<string> {
  const jwt = await mintIdentityAssertion({
    keyFile: keyA,
    audience: "leasehold",
    ...(extraClaims ? { extraClaims } : {}),
  });
  secrets.push(jwt);
  return jwt;
}

/**
 * A token the IdP issues for agent a acting for `sub` (RFC 8693 §4.1: `act.sub` is the actor,
 * nested `act` prior actors); `act` members beyond `sub: agent/a` come from `act`.
 */
async function delegatedA(sub: string, act: Record<string, unknown> = {}): Promise<string> {
  const jwt = await new SignJWT({ act: { sub: AGENT_A, ...act } })
    .setProtectedHeader({ alg: "ES256", kid: "idp-1", typ: "JWT" })
    .setIssuer(IDP)
    .setSubject(sub)
    .setAudience("leasehold")
    .setJti(crypto.randomUUID())
    .setIssuedAt()
    .setExpirationTime("2m")
    .sign(idpKey);
  secrets.push(jwt);
  return jwt;
}

/** A request with a lease token and, unless told otherwise, a fresh proof for exactly this request. */
async function withProof(
  key: DpopKey,
  method: string,
  path: string,
  token: string,
  opts: { body?: unknown; proof?: string; scheme?: string } = {},
): Promise<HttpResult> {
  const proof = opts.proof ?? (await key.proof(method, `${stack.sidecar.url}${path}`, token));
  secrets.push(proof);
  return c.http(method, path, {
    body: opts.body,
    headers: { authorization: `${opts.scheme ?? "DPoP"} ${token}`, dpop: proof },
  });
}

/** Checks out with a DPoP proof made by `key`. */
async function dpopCheckout(
  key: DpopKey,
  body: Record<string, unknown>,
  identity?: string,
): Promise<HttpResult> {
  const jwt = identity ?? (await assertA());
  const proof = await key.proof("POST", `${stack.sidecar.url}/v1/checkout`);
  const r = await c.http("POST", "/v1/checkout", { token: jwt, body, headers: { dpop: proof } });
  if (typeof r.json.token === "string") secrets.push(r.json.token);
  return r;
}

async function register(name: string, accounts: string[]): Promise<void> {
  const r = await c.http("PUT", `/v1/resources/${name}`, {
    token: admin,
    body: {
      name,
      adapter: "postgres",
      connection: { host: "127.0.0.1", port: stack.pg.port, database: "postgres" },
      admin: { username: "leasehold_admin", password: stack.adminPassword },
      accounts,
      lease: { defaultTtl: 60, maxTtl: 600 },
    },
  });
  expect(r.status, JSON.stringify(r.json)).toBe(201);
  await c.waitForAccounts(name, "available");
}

beforeAll(async () => {
  idpDir = await mkdtemp(join(tmpdir(), "lh-idp-"));
  const pair = await generateKeyPair("ES256");
  idpKey = pair.privateKey;
  const idpJwks = join(idpDir, "idp.jwks.json");
  const pub = { ...(await exportJWK(pair.publicKey)), kid: "idp-1", alg: "ES256", use: "sig" };
  await writeFile(idpJwks, JSON.stringify({ keys: [pub] }));
  const agents = {
    kind: "agents",
    jwks: "./trust/agents.jwks.json",
    subjects: ["spiffe://example.org/agent/*"],
  };
  const idp = { kind: "issuer", jwks: idpJwks, issuer: IDP, subjects: ["spiffe://example.org/agent/*"] };
  stack = await startStack({
    policy: POLICY,
    config: {
      identity: {
        audience: "leasehold",
        trust: [agents, idp],
        delegation: { humans: ["user:*@example.org"] },
      },
    },
  });
  c = new StackClient(stack);
  admin = await c.adminToken();
  keyA = await c.keyFile("a");
  const roles = ["app_orders_1", "app_orders_2", "app_secure_1", "app_approval_1", "app_deleg_1"];
  for (const role of roles) await stack.createRole(role, `initial-${role}-123456789`);
  await stack.asSuperuser(async (su) => {
    await su.query("create table orders (id int primary key, total numeric)");
    await su.query("insert into orders values (1, 10.5), (2, 20), (3, 30)");
    await su.query("grant select on orders to app_orders_1, app_orders_2");
  });
  await register("orders-db", ["app_orders_1", "app_orders_2"]);
  await register("secure-db", ["app_secure_1"]);
  await register("approval-db", ["app_approval_1"]);
  await register("delegated-db", ["app_deleg_1"]);
}, 180_000);

afterAll(async () => {
  await stack?.close();
  if (idpDir !== undefined) await rm(idpDir, { recursive: true, force: true });
});

describe("DPoP-bound lease tokens over HTTP", () => {
  let key: DpopKey;
  let token = "";
  let id = "";

  it("a checkout with a DPoP proof gets a token bound to the key, usable with fresh proofs", async () => {
    key = await createDpopKey();
    const co = await dpopCheckout(key, read("orders-db"));
    expect(co.status, JSON.stringify(co.json)).toBe(201);
    expect(co.json.token_type).toBe("DPoP");
    token = co.json.token as string;
    id = (co.json.lease as { id: string }).id;
    expect(decodeJwt(token).cnf).toEqual({ jkt: key.jkt });

    const own = await withProof(key, "GET", `/v1/leases/${id}`, token);
    expect(own.status, JSON.stringify(own.json)).toBe(200);
    const cred = await withProof(key, "GET", `/v1/leases/${id}/credential`, token);
    expect(cred.status, JSON.stringify(cred.json)).toBe(200);
    secrets.push(cred.json.password as string);
    const renew = await withProof(key, "POST", `/v1/leases/${id}/renew`, token, { body: { ttl: 300 } });
    expect(renew.status).toBe(200);
    const tool = await withProof(key, "POST", `/v1/leases/${id}/tool-calls`, token, {
      body: { tool: "psql", action: "read", target: "orders" },
    });
    expect(tool.status).toBe(202);
  });

  it("refuses a replayed proof, and audits it", async () => {
    const path = `/v1/leases/${id}/credential`;
    const proof = await key.proof("GET", `${stack.sidecar.url}${path}`, token);
    expect((await withProof(key, "GET", path, token, { proof })).status).toBe(200);
    const again = await withProof(key, "GET", path, token, { proof });
    expect(expectError(again, 401, "unauthenticated")).toContain("DPoP proof was already used");
  });

  it("refuses a proof made by another key", async () => {
    const thief = await createDpopKey();
    const r = await withProof(thief, "GET", `/v1/leases/${id}/credential`, token);
    expect(expectError(r, 401, "unauthenticated")).toContain("DPoP proof key does not match");
  });

  it("refuses the bound token as Bearer, without a proof, or with a proof for another request", async () => {
    const path = `/v1/leases/${id}/credential`;
    expect(expectError(await c.http("GET", path, { token }), 401, "unauthenticated")).toContain("DPoP-bound");
    const noProof = await c.http("GET", path, { headers: { authorization: `DPoP ${token}` } });
    expect(expectError(noProof, 401, "unauthenticated")).toContain("DPoP proof missing");
    const asBearer = await withProof(key, "GET", path, token, { scheme: "Bearer" });
    expect(expectError(asBearer, 401, "unauthenticated")).toContain("DPoP-bound");
    const otherUrl = await withProof(key, "GET", path, token, {
      proof: await key.proof("GET", `${stack.sidecar.url}/v1/leases/${id}`, token),
    });
    expect(expectError(otherUrl, 401, "unauthenticated")).toContain("DPoP proof htu does not match");
    const otherMethod = await withProof(key, "GET", path, token, {
      proof: await key.proof("POST", `${stack.sidecar.url}${path}`, token),
    });
    expect(expectError(otherMethod, 401, "unauthenticated")).toContain("DPoP proof htm does not match");
  });

  it("every refusal is a decision deny record naming the DPoP problem; the holder still checks in", async () => {
    const denies = (await c.auditRecords()).filter(
      (r) => r.event === "decision" && r.scope === "dpop" && r.lease_id === id,
    );
    expect(denies.length).toBeGreaterThanOrEqual(7);
    for (const d of denies) {
      expect(d).toMatchObject({
        decision: "deny",
        agent: "spiffe://example.org/agent/a",
        resource: "orders-db",
      });
      expect(String(d.reason)).toContain("DPoP");
    }
    expect((await withProof(key, "DELETE", `/v1/leases/${id}`, token)).status).toBe(202);
  });

  it("policy can require DPoP per resource (context.dpop)", async () => {
    const plain = await c.http("POST", "/v1/checkout", {
      token: await assertA(),
      body: read("secure-db"),
    });
    expectError(plain, 403, "policy_denied");
    const k = await createDpopKey();
    const bound = await dpopCheckout(k, read("secure-db"));
    expect(bound.status, JSON.stringify(bound.json)).toBe(201);
    const t = bound.json.token as string;
    const leaseId = (bound.json.lease as { id: string }).id;
    expect((await withProof(k, "GET", `/v1/leases/${leaseId}/credential`, t)).status).toBe(200);
    expect((await withProof(k, "DELETE", `/v1/leases/${leaseId}`, t)).status).toBe(202);
    const decisions = (await c.auditRecords()).filter(
      (r) => r.event === "decision" && r.resource === "secure-db",
    );
    expect(decisions.find((r) => r.decision === "deny")?.policies).toEqual(["secure-db-requires-dpop"]);
  });

  it("an invalid proof at checkout is refused and audited, and takes no account", async () => {
    const k = await createDpopKey();
    const proof = await k.proof("POST", `${stack.sidecar.url}/v1/leases`);
    const r = await c.http("POST", "/v1/checkout", {
      token: await assertA(),
      body: { ...read("secure-db"), task: { id: "TICKET-BADPROOF" } },
      headers: { dpop: proof },
    });
    expect(expectError(r, 401, "unauthenticated")).toContain("DPoP proof htu");
    const rec = (await c.auditRecords()).find((x) => x.task_id === "TICKET-BADPROOF");
    expect(rec).toMatchObject({ event: "decision", scope: "dpop", decision: "deny", resource: "secure-db" });
    await c.waitForAccounts("secure-db", "available");
  });
});

describe("delegation chains (act, RFC 8693 §4.1, vouched for by an issuer)", () => {
  it("records the chain on the lease and in the audit, and gives policy delegated_by", async () => {
    const denied = await c.http("POST", "/v1/checkout", {
      token: await assertA(),
      body: read("delegated-db"),
    });
    expectError(denied, 403, "policy_denied");
    const jwt = await delegatedA(ALICE, { act: { sub: AGENT_B } });
    // agent/b delegated to agent/a: delegated_by is agent/b, so alice's policy does not apply...
    expectError(
      await c.http("POST", "/v1/checkout", { token: jwt, body: read("delegated-db") }),
      403,
      "policy_denied",
    );
    // ...while alice delegating directly to agent/a does.
    const direct = await delegatedA(ALICE);
    const co = await c.http("POST", "/v1/checkout", { token: direct, body: read("delegated-db") });
    expect(co.status, JSON.stringify(co.json)).toBe(201);
    const lease = co.json.lease as { id: string; agent_chain: string[] };
    const token = co.json.token as string;
    secrets.push(token);
    expect(lease.agent_chain).toEqual([ALICE]);
    // Later decisions see the chain kept on the lease.
    const cred = await c.http("GET", `/v1/leases/${lease.id}/credential`, { token });
    expect(cred.status, JSON.stringify(cred.json)).toBe(200);
    secrets.push(cred.json.password as string);
    expect((await c.http("DELETE", `/v1/leases/${lease.id}`, { token })).status).toBe(202);

    const records = (await c.auditRecords()).filter((r) => r.lease_id === lease.id);
    for (const event of ["checkout", "reveal", "checkin"]) {
      expect(records.find((r) => r.event === event)?.agent_chain, event).toEqual([ALICE]);
    }
    expect((await c.http("GET", `/v1/leases/${lease.id}`, { token: admin })).json.agent_chain).toEqual([
      ALICE,
    ]);
  });

  it("keeps a two-hop chain nearest delegator first", async () => {
    const jwt = await delegatedA(ALICE, { act: { sub: AGENT_B } });
    const co = await c.http("POST", "/v1/checkout", { token: jwt, body: read("orders-db") });
    expect(co.status, JSON.stringify(co.json)).toBe(201);
    const lease = co.json.lease as { id: string; agent_chain: string[] };
    secrets.push(co.json.token as string);
    expect(lease.agent_chain).toEqual([AGENT_B, ALICE]);
    const decision = (await c.auditRecords()).find(
      (r) =>
        r.event === "decision" &&
        r.scope === "checkout" &&
        r.agent_chain !== undefined &&
        r.decision === "allow" &&
        JSON.stringify(r.agent_chain) === JSON.stringify([AGENT_B, ALICE]),
    );
    expect(decision).toBeDefined();
    expect(
      (await c.http("DELETE", `/v1/leases/${lease.id}`, { token: co.json.token as string })).status,
    ).toBe(202);
  });

  it("refuses a chain deeper than 5, a malformed act, an untrusted delegator and a widening scope", async () => {
    // Prior actors d1..d5 and the origin d6: six delegators.
    let prior: Record<string, unknown> | undefined;
    for (let i = 5; i >= 1; i--)
      prior = { sub: `spiffe://example.org/agent/d${i}`, ...(prior ? { act: prior } : {}) };
    const cases: Array<[string, Record<string, unknown>, string]> = [
      ["spiffe://example.org/agent/d6", { act: prior }, "deeper than 5 hops"],
      [ALICE, { aud: "x" }, "act claim is malformed"],
      ["spiffe://evil.example/agent/x", {}, "not trusted"],
    ];
    for (const [sub, act, message] of cases) {
      const jwt = await delegatedA(sub, act);
      const r = await c.http("POST", "/v1/checkout", { token: jwt, body: read("orders-db") });
      expect(expectError(r, 401, "unauthenticated")).toContain(message);
    }
    // Self-asserted: agent a names its own delegators in its self-signed token.
    for (const act of ["user:alice@example.org", { sub: ALICE }, { sub: AGENT_A, act: { sub: AGENT_B } }]) {
      const self = await assertA({ act });
      const r = await c.http("POST", "/v1/checkout", { token: self, body: read("orders-db") });
      expect(expectError(r, 401, "unauthenticated")).toContain("delegation is self-asserted");
    }
    const narrow = await delegatedA(ALICE, { scope: "secure-db" });
    const outside = await c.http("POST", "/v1/checkout", { token: narrow, body: read("orders-db") });
    expect(expectError(outside, 403, "policy_denied")).toContain("outside the scope delegated");
  });
});

describe("the agent SDK against the real stack", () => {
  it("withCredential checks out with DPoP, reports tool calls, renews, and checks in", async () => {
    const client = createClient({ url: stack.sidecar.url, keyFile: keyA });
    let seen: Lease | undefined;
    let renewed = false;
    const total = await client.withCredential(
      "orders-db",
      { task: { id: "TICKET-SDK" }, intent: { action: "read", tool: "psql" }, ttl: 2, wait: 10 },
      async (cred, lease) => {
        seen = lease;
        secrets.push(cred.password);
        expect(JSON.stringify(cred).includes(cred.password)).toBe(false);
        await cred.reportToolCall({ tool: "psql", action: "read", target: "orders" });
        const first = cred.expiresAt.getTime();
        // The SDK renews at about 2/3 of the 2 s TTL; wait until it has.
        await waitFor("the SDK to renew the lease", () => cred.expiresAt.getTime() > first, {
          intervalMs: 25,
        });
        renewed = cred.expiresAt.getTime() > first && !cred.signal.aborted;
        const db = new pg.Client({
          host: "127.0.0.1",
          port: stack.pg.port,
          user: cred.username,
          password: cred.password,
          database: "postgres",
        });
        await db.connect();
        const { rows } = await db.query<{ n: number }>("select count(*)::int as n from orders");
        await db.end();
        return rows[0]?.n;
      },
    );
    expect(total).toBe(ORDERS);
    expect(renewed).toBe(true);
    const id = seen?.id ?? "";
    const after = await c.http("GET", `/v1/leases/${id}`, { token: admin });
    expect(after.json).toMatchObject({ state: "ended", end_reason: "checkin" });
    const events = (await c.auditRecords()).filter((r) => r.lease_id === id).map((r) => r.event);
    expect(events).toEqual(expect.arrayContaining(["checkout", "reveal", "tool_call", "renew", "checkin"]));
  });

  it("withCredential checks in when the callback throws, and the password is rotated", async () => {
    const client = createClient({ url: stack.sidecar.url, keyFile: keyA });
    let leaseId = "";
    let password = "";
    let account = "";
    const run = client.withCredential(
      "orders-db",
      { task: { id: "TICKET-THROW" }, intent: { action: "read" }, ttl: 60, wait: 10 },
      async (cred, lease) => {
        leaseId = lease.id;
        account = lease.account;
        password = cred.password;
        secrets.push(password);
        throw new Error("the agent's tool crashed");
      },
    );
    await expect(run).rejects.toThrow("the agent's tool crashed");
    const after = await c.http("GET", `/v1/leases/${leaseId}`, { token: admin });
    expect(after.json).toMatchObject({ state: "ended", end_reason: "checkin" });
    await c.waitForAccounts("orders-db", "available");
    expect(await stack.canLogin(account, password)).toBe(false);
  });

  it("withCredential waits for a human approval, then runs", async () => {
    const client = createClient({ url: stack.sidecar.url, keyFile: keyA, approvalPollIntervalMs: 200 });
    const run = client.withCredential(
      "approval-db",
      { task: { id: "TICKET-APPROVE" }, intent: { action: "read" }, ttl: 60, approvalTimeoutMs: 30_000 },
      async (cred, lease) => {
        secrets.push(cred.password);
        return lease;
      },
    );
    const approvalId = await waitFor("the SDK's pending approval", async () => {
      const list = await c.http("GET", "/v1/approvals?status=pending", { token: admin });
      return (list.json.approvals as Array<{ id: string; task: { id: string } }> | undefined)?.find(
        (a) => a.task.id === "TICKET-APPROVE",
      )?.id;
    });
    const ok = await c.http("POST", `/v1/approvals/${approvalId}/approve`, {
      token: admin,
      body: { approver: "ops@example.org" },
    });
    expect(ok.status, JSON.stringify(ok.json)).toBe(200);
    const lease = await run;
    expect(lease).toMatchObject({ resource: "approval-db", approver: "ops@example.org" });
    const after = await c.http("GET", `/v1/leases/${lease.id}`, { token: admin });
    expect(after.json).toMatchObject({ state: "ended", end_reason: "checkin" });
  });

  it("reports refusals as typed errors", async () => {
    const client = createClient({ url: stack.sidecar.url, keyFile: keyA });
    const err = await client
      .withCredential("orders-db", { task: { id: "T" }, intent: { action: "write" } }, async () => 1)
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LeaseholdClientError);
    expect((err as LeaseholdClientError).code).toBe("policy_denied");
    expect((err as LeaseholdClientError).status).toBe(403);
  });

  it("the example agent runs a PostgreSQL query through the SDK", async () => {
    const out = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn(
        process.execPath,
        ["--import", "tsx", join(repoRoot(), "examples/agent/query-orders.ts")],
        {
          cwd: repoRoot(),
          env: {
            ...process.env,
            LEASEHOLD_URL: stack.sidecar.url,
            LEASEHOLD_AGENT_KEY: keyA,
            TASK_ID: "TICKET-EXAMPLE",
          },
          stdio: ["ignore", "pipe", "pipe"],
        },
      );
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d: Buffer) => {
        stdout += d.toString();
      });
      child.stderr.on("data", (d: Buffer) => {
        stderr += d.toString();
      });
      child.once("exit", (code) => resolve({ code, stdout, stderr }));
    });
    expect(out.code, out.stderr).toBe(0);
    const line = JSON.parse(out.stdout.trim()) as {
      lease: string;
      result: { orders: number; total: string };
    };
    expect(line.result).toEqual({ orders: ORDERS, total: "60.5" });
    const records = (await c.auditRecords()).filter((r) => r.lease_id === line.lease);
    expect(records.find((r) => r.event === "tool_call")).toMatchObject({ tool: "psql", target: "orders" });
    expect(String(records.find((r) => r.event === "tool_call")?.digest)).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(records.map((r) => r.event)).toContain("checkin");
  });
});

describe("local transport", () => {
  it("over TCP a POST needs X-Leasehold-Request or a JSON type; GETs and a bare DELETE (README's check-in) do not", async () => {
    const co = await c.http("POST", "/v1/checkout", {
      token: await assertA(),
      body: read("orders-db"),
    });
    expect(co.status, JSON.stringify(co.json)).toBe(201);
    const token = co.json.token as string;
    secrets.push(token);
    const id = (co.json.lease as { id: string }).id;
    const raw = (method: string, path: string, headers: Record<string, string>, body?: string) =>
      fetch(`${stack.sidecar.url}${path}`, {
        method,
        headers: { authorization: `Bearer ${token}`, ...headers },
        body,
      });
    // A bodiless POST and a form-encoded POST are what a cross-site page can send blindly.
    const bare = await raw("POST", `/v1/leases/${id}/renew`, {});
    expect(bare.status).toBe(403);
    const bareBody = (await bare.json()) as ErrorBody;
    expect(bareBody.error.code).toBe("forbidden_origin");
    expect(bareBody.error.message).toContain("X-Leasehold-Request");
    const form = await raw(
      "POST",
      "/v1/checkout",
      { "content-type": "application/x-www-form-urlencoded" },
      "resource=orders-db",
    );
    expect(form.status).toBe(403);
    expect(((await form.json()) as ErrorBody).error.code).toBe("forbidden_origin");
    expect((await raw("GET", `/v1/leases/${id}`, {})).status).toBe(200);
    // A DELETE needs a preflight in any browser, so the README's curl check-in works as printed.
    expect((await raw("DELETE", `/v1/leases/${id}`, {})).status).toBe(202);
    // The CLI sends the header too: its bodiless DELETE reaches the route (and finds nothing).
    const cli = await stack.cli("resources", "remove", "no-such-db");
    expect(cli.code).toBe(1);
    expect(cli.stderr).toContain("not_found");
  });

  describe("Unix socket", () => {
    let child: ChildProcess | undefined;
    let socketPath = "";
    let output = () => "";

    const overSocket = (method: string, path: string, headers: Record<string, string> = {}) =>
      new Promise<{ status: number; json: Record<string, unknown> }>((resolve, reject) => {
        const req = request({ socketPath, method, path, headers }, (res) => {
          let data = "";
          res.on("data", (d: Buffer) => {
            data += d.toString();
          });
          res.on("end", () =>
            resolve({
              status: res.statusCode ?? 0,
              json: data ? (JSON.parse(data) as Record<string, unknown>) : {},
            }),
          );
        });
        req.on("error", reject);
        req.end();
      });

    const writeConfig = async (name: string, socket: string) => {
      const cfg = parseYaml(await readFile(stack.configFile, "utf8")) as Record<string, unknown>;
      const file = join(stack.dir, `${name}.yaml`);
      await writeFile(
        file,
        stringify({ ...cfg, listen: { socket }, audit: { file: `./state/audit-${name}.jsonl` } }),
      );
      return file;
    };
    const serve = (file: string) => {
      const p = spawn(process.execPath, [cliPath(), "serve", "--config", file], {
        env: { ...process.env, LH_TEST_VAULT_TOKEN: stack.vault.token },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let out = "";
      const collect = (d: Buffer) => {
        out += d.toString();
      };
      p.stdout?.on("data", collect);
      p.stderr?.on("data", collect);
      return { p, out: () => out };
    };

    beforeAll(async () => {
      const dir = join(stack.dir, "run");
      await mkdir(dir);
      await chmod(dir, 0o750);
      socketPath = join(dir, "leasehold.sock");
      const started = serve(await writeConfig("socket", socketPath));
      child = started.p;
      output = started.out;
      const exited = new Promise((r) => started.p.once("exit", r));
      try {
        await waitFor(
          "the socket sidecar to answer /healthz",
          async () => (await overSocket("GET", "/healthz")).status === 200,
          {
            timeoutMs: STARTUP_TIMEOUT_MS,
            signal: abortWhenExited(exited, "the socket sidecar"),
          },
        );
      } catch (err) {
        throw new Error(
          `the socket sidecar did not start: ${(err as Error).message}\n${output().slice(-3000)}`,
        );
      }
    }, 120_000);

    afterAll(async () => {
      if (child && child.exitCode === null) {
        const exited = new Promise((r) => child?.once("exit", r));
        child.kill("SIGTERM");
        await exited;
      }
    });

    it("listens with mode 0660 and answers over the socket", async () => {
      expect((await stat(socketPath)).mode & 0o777).toBe(0o660);
      const r = await overSocket("GET", "/healthz");
      expect(r).toEqual({ status: 200, json: { status: "ok" } });
    });

    it("the SDK works over the socket, DPoP included; the CSRF header is not needed there", async () => {
      const client = createClient({ socketPath, keyFile: keyA });
      const lease = await client.checkout("orders-db", {
        task: { id: "TICKET-SOCK" },
        intent: { action: "read" },
        ttl: 60,
        wait: 10,
      });
      expect(lease.tokenType).toBe("DPoP");
      const cred = await lease.credential();
      secrets.push(cred.password);
      expect(cred.username).toMatch(/^app_orders_/);
      await lease.checkin();
      const checked = await c.http("GET", `/v1/leases/${lease.lease.id}`, { token: admin });
      expect(checked.json).toMatchObject({ state: "ended", end_reason: "checkin" });

      // A bare DELETE (no header, no JSON) is fine over the socket: no browser can reach it.
      const co = await new Promise<{ status: number; json: Record<string, unknown> }>((resolve, reject) => {
        void assertA().then((jwt) => {
          const body = JSON.stringify(read("orders-db"));
          const req = request(
            {
              socketPath,
              method: "POST",
              path: "/v1/checkout",
              headers: { authorization: `Bearer ${jwt}`, "content-type": "application/json" },
            },
            (res) => {
              let data = "";
              res.on("data", (d: Buffer) => {
                data += d.toString();
              });
              res.on("end", () =>
                resolve({ status: res.statusCode ?? 0, json: JSON.parse(data) as Record<string, unknown> }),
              );
            },
          );
          req.on("error", reject);
          req.end(body);
        }, reject);
      });
      expect(co.status, JSON.stringify(co.json)).toBe(201);
      secrets.push(co.json.token as string);
      const id = (co.json.lease as { id: string }).id;
      const del = await overSocket("DELETE", `/v1/leases/${id}`, {
        authorization: `Bearer ${co.json.token as string}`,
      });
      expect(del.status, JSON.stringify(del.json)).toBe(202);
    });

    it("refuses to start when the socket's directory is writable by others", async () => {
      const open = join(stack.dir, "open");
      await mkdir(open);
      await chmod(open, 0o777);
      const { p, out } = serve(await writeConfig("open", join(open, "leasehold.sock")));
      const code = await new Promise<number | null>((r) => p.once("exit", r));
      expect(code).toBe(1);
      expect(out()).toContain("is writable by others");
      await expect(stat(join(open, "leasehold.sock"))).rejects.toThrow();
    });
  });
});

describe("secrets stay out of logs and audit", () => {
  it("no token, proof or password appears in the sidecar's output or the audit file", async () => {
    const logs = stack.sidecar.output();
    const audit = await readFile(join(stack.dir, "state", "audit.jsonl"), "utf8");
    const all = [...secrets, ...c.secrets].filter((s) => s.length > 8);
    expect(all.length).toBeGreaterThan(20);
    for (const s of all) {
      expect(logs.includes(s), "a secret is in the logs").toBe(false);
      expect(audit.includes(s), "a secret is in the audit file").toBe(false);
    }
  });
});
