import { randomUUID } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { request } from "node:http";
import { join } from "node:path";
import { Redis } from "ioredis";
import { type CryptoKey, exportJWK, generateKeyPair, importJWK, type JWK, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ErrorBody, expectError, type HttpResult, StackClient } from "../support/e2e-client.js";
import { REDIS_URL } from "../support/redis.js";
import { type Stack, startStack } from "../support/stack.js";

/*
 * Issue 16, attacks 3, 9 and 12, against the built CLI and a running sidecar: who vouches for
 * policy attributes, identity tokens that replay, and the small ones (an oversized token, a Host
 * that only starts like [::1], an agent on the operators' lists).
 */

const A = "spiffe://example.org/agent/a";
const C = "spiffe://example.org/agent/c";
const ALICE = "spiffe://example.org/operator/alice";
const WORKLOAD = "spiffe://example.org/workload/reports";
const SPIRE = "https://spire.example.org";
const USE = 'Action::"checkout", Action::"reveal", Action::"renew", Action::"tool_call"';

const POLICY = `@id("agents-read-orders")
permit (principal, action in [${USE}], resource == Resource::"orders-db")
when { context.intent == "read" && context.ttl <= 600 };

@id("spire-workloads-only")
permit (principal, action in [${USE}], resource == Resource::"spire-db")
when { principal has trust_kind && principal.trust_kind == "issuer" && principal has iss && principal.iss == "${SPIRE}" };

@id("billing-team-only")
permit (principal, action in [${USE}], resource == Resource::"billing-db")
when { principal has team && principal.team == "billing" };

@id("alice-revokes-orders")
permit (principal == Agent::"${ALICE}", action == Action::"revoke", resource == Resource::"orders-db");
`;

let stack: Stack;
let c: StackClient;
let admin: string;
let redis: Redis;
let spireKey: CryptoKey;

const body = (resource: string) => ({
  resource,
  task: { id: "ATTACK-16" },
  intent: { action: "read", tool: "psql" },
  ttl: 60,
  // The account may still be rotating after the previous test's check-in.
  wait: 30,
});

/** A token signed with an agent's own key, saying whatever its agent likes (as an attacker would). */
async function selfSigned(agent: string, claims: Record<string, unknown>): Promise<string> {
  const jwk = JSON.parse(await readFile(await c.keyFile(agent), "utf8")) as JWK & { sub: string };
  const key = await importJWK(jwk, "EdDSA");
  const iat = Math.floor(Date.now() / 1000);
  const jwt = await new SignJWT(claims)
    .setProtectedHeader({ alg: "EdDSA", kid: jwk.kid ?? "", typ: "JWT" })
    .setSubject(jwk.sub)
    .setAudience("leasehold")
    .setIssuedAt(iat)
    .setExpirationTime(iat + 60)
    .setJti(randomUUID())
    .sign(key);
  c.secrets.push(jwt);
  return jwt;
}

/** A token the SPIRE issuer signed for one of its workloads. */
async function spireToken(claims: Record<string, unknown> = {}): Promise<string> {
  const iat = Math.floor(Date.now() / 1000);
  return new SignJWT(claims)
    .setProtectedHeader({ alg: "ES256", kid: "spire-1", typ: "JWT" })
    .setIssuer(SPIRE)
    .setSubject(WORKLOAD)
    .setAudience("leasehold")
    .setIssuedAt(iat)
    .setExpirationTime(iat + 60)
    .setJti(randomUUID())
    .sign(spireKey);
}

/** The attributes kept on a lease record in Redis (what later decisions on the lease see). */
async function leaseAttrs(resource: string, id: string): Promise<unknown> {
  const json = await redis.hget(`${stack.prefix}{r:${resource}}:lease:${id}`, "json");
  return (JSON.parse(json ?? "{}") as { attrs?: unknown }).attrs;
}

async function activeLeases(resource: string): Promise<Array<{ id: string; agent: string }>> {
  const r = await c.http("GET", `/v1/leases?resource=${resource}&state=active`, { token: admin });
  expect(r.status).toBe(200);
  return r.json.leases as Array<{ id: string; agent: string }>;
}

async function checkin(co: HttpResult): Promise<void> {
  const id = (co.json.lease as { id: string }).id;
  expect((await c.http("DELETE", `/v1/leases/${id}`, { token: co.json.token as string })).status).toBe(202);
}

/** The audit records a request left, by its x-request-id. */
async function recordsOf(r: HttpResult): Promise<Array<Record<string, unknown>>> {
  const requestId = r.headers.get("x-request-id");
  expect(requestId).toMatch(/^req_/);
  return (await c.auditRecords()).filter((x) => x.request_id === requestId);
}

beforeAll(async () => {
  stack = await startStack({
    policy: POLICY,
    operators: ["alice"],
    config: {
      identity: {
        audience: "leasehold",
        trust: [
          { kind: "agents", jwks: "./trust/agents.jwks.json", subjects: ["spiffe://example.org/agent/*"] },
          {
            kind: "agents",
            jwks: "./trust/operators.jwks.json",
            subjects: ["spiffe://example.org/operator/*"],
          },
          {
            kind: "issuer",
            jwks: "./trust/spire.jwks.json",
            issuer: SPIRE,
            subjects: ["spiffe://example.org/workload/*"],
          },
        ],
      },
    },
  });
  c = new StackClient(stack);
  admin = await c.adminToken();
  redis = new Redis(REDIS_URL);
  const pair = await generateKeyPair("ES256");
  spireKey = pair.privateKey;
  const pub = { ...(await exportJWK(pair.publicKey)), kid: "spire-1", alg: "ES256", use: "sig" };
  // The sidecar reads a trust bundle again when it changes: no restart needed.
  await writeFile(join(stack.dir, "trust", "spire.jwks.json"), JSON.stringify({ keys: [pub] }));
  // Agent c's team is the operator's word, kept beside its key in the bundle.
  const keygen = await stack.cli(
    "agent",
    "keygen",
    "--id",
    C,
    "--out",
    join(stack.dir, "trust"),
    "--attribute",
    "team=billing",
  );
  expect(keygen.code, keygen.stderr).toBe(0);
  for (const [resource, roles] of [
    ["orders-db", ["app_orders_1", "app_orders_2"]],
    ["spire-db", ["app_spire_1"]],
    ["billing-db", ["app_billing_1"]],
  ] as const) {
    for (const role of roles) await stack.createRole(role, `initial-${role}-123456789`);
    await c.registerPostgres(resource, { accounts: [...roles] });
  }
}, 180_000);

afterAll(async () => {
  redis?.disconnect();
  await stack?.close();
});

describe("attack 3: attributes come from who can vouch for them", () => {
  it("a self-signed token claiming trust_kind issuer and SPIRE's iss is denied by the rule for issuer identities", async () => {
    const forged = await selfSigned("a", { trust_kind: "issuer", iss: SPIRE, team: "billing" });
    const denied = await c.http("POST", "/v1/checkout", { token: forged, body: body("spire-db") });
    expectError(denied, 403, "policy_denied");
    const [decision, ...rest] = await recordsOf(denied);
    expect(rest).toEqual([]);
    expect(decision).toMatchObject({ event: "decision", agent: A, resource: "spire-db", decision: "deny" });
    expect(decision?.policies).toEqual([]);
    // The record names how the identity was really verified, whatever it claimed.
    expect(decision?.trust_kind).toBe("agents");
    // The same for a team claimed in the token rather than given in the bundle.
    const team = await selfSigned("a", { team: "billing", trust_kind: "issuer" });
    expectError(
      await c.http("POST", "/v1/checkout", { token: team, body: body("billing-db") }),
      403,
      "policy_denied",
    );
    expect(await activeLeases("spire-db")).toEqual([]);
    expect(await activeLeases("billing-db")).toEqual([]);
  });

  it("the rules still pass those who are vouched for: SPIRE's own token, and the bundle's team", async () => {
    const spire = await c.http("POST", "/v1/checkout", { token: await spireToken(), body: body("spire-db") });
    expect(spire.status, JSON.stringify(spire.json)).toBe(201);
    c.secrets.push(spire.json.token as string);
    const spireLease = (spire.json.lease as { id: string }).id;
    expect(await leaseAttrs("spire-db", spireLease)).toEqual({ trust_kind: "issuer", iss: SPIRE });
    await checkin(spire);

    // Agent c claims another team in its token: the bundle's word stands.
    const billing = await c.http("POST", "/v1/checkout", {
      token: await selfSigned("c", { team: "platform", trust_kind: "issuer" }),
      body: body("billing-db"),
    });
    expect(billing.status, JSON.stringify(billing.json)).toBe(201);
    c.secrets.push(billing.json.token as string);
    const billingLease = (billing.json.lease as { id: string }).id;
    expect(await leaseAttrs("billing-db", billingLease)).toEqual({ team: "billing", trust_kind: "agents" });
    await checkin(billing);
  });

  it("a lease taken with a forged token keeps none of its claims for later decisions", async () => {
    const forged = await selfSigned("a", { trust_kind: "issuer", iss: SPIRE, team: "billing" });
    const co = await c.http("POST", "/v1/checkout", { token: forged, body: body("orders-db") });
    expect(co.status, JSON.stringify(co.json)).toBe(201);
    c.secrets.push(co.json.token as string);
    expect(await leaseAttrs("orders-db", (co.json.lease as { id: string }).id)).toEqual({
      trust_kind: "agents",
    });
    const record = (await recordsOf(co)).find((r) => r.event === "decision");
    expect(record).toMatchObject({ agent: A, decision: "allow", policies: ["agents-read-orders"] });
    await checkin(co);
  });
});

describe("attack 9: identity tokens do not replay", () => {
  it("a replayed identity JWT on checkout gets 401 and changes nothing", async () => {
    const jwt = await c.assertion("a");
    const first = await c.http("POST", "/v1/checkout", { token: jwt, body: body("orders-db") });
    expect(first.status, JSON.stringify(first.json)).toBe(201);
    c.secrets.push(first.json.token as string);
    const before = await activeLeases("orders-db");
    const replay = await c.http("POST", "/v1/checkout", { token: jwt, body: body("orders-db") });
    expect(expectError(replay, 401, "unauthenticated")).toContain("already used");
    expect(await recordsOf(replay)).toEqual([]);
    expect(await activeLeases("orders-db")).toEqual(before);
    await checkin(first);
  });

  it("refuses a token whose lifetime is over 300 s by default; 300 s passes", async () => {
    const long = await c.assertion("a", "--ttl", "301");
    const refused = await c.http("POST", "/v1/checkout", { token: long, body: body("orders-db") });
    expect(expectError(refused, 401, "unauthenticated")).toContain("lifetime exceeds the maximum");
    expect(await recordsOf(refused)).toEqual([]);
    const ok = await c.http("POST", "/v1/checkout", {
      token: await c.assertion("a", "--ttl", "300"),
      body: body("orders-db"),
    });
    expect(ok.status, JSON.stringify(ok.json)).toBe(201);
    c.secrets.push(ok.json.token as string);
    await checkin(ok);
  });

  it("an operator's token may be read with again, but acts once", async () => {
    const leases = [];
    for (const agent of ["a", "b"]) {
      const co = await c.http("POST", "/v1/checkout", {
        token: await c.assertion(agent),
        body: body("orders-db"),
      });
      expect(co.status, JSON.stringify(co.json)).toBe(201);
      c.secrets.push(co.json.token as string);
      leases.push(co);
    }
    const [first, second] = leases.map((l) => (l.json.lease as { id: string }).id);
    const jwt = await c.assertion("alice");
    for (let i = 0; i < 2; i++) {
      const listed = await c.http("GET", "/v1/leases?resource=orders-db", { token: jwt });
      expect(listed.status, JSON.stringify(listed.json)).toBe(200);
    }
    const revoked = await c.http("POST", `/v1/leases/${first}/revoke`, { token: jwt, body: {} });
    expect(revoked.status, JSON.stringify(revoked.json)).toBe(202);
    const replay = await c.http("POST", `/v1/leases/${second}/revoke`, { token: jwt, body: {} });
    expect(expectError(replay, 401, "unauthenticated")).toContain("already used");
    expect((await activeLeases("orders-db")).map((l) => l.id)).toEqual([second]);
    await checkin(leases[1] as HttpResult);
    await c.waitForAccounts("orders-db", "available");
  });
});

describe("attack 12: the small ones", () => {
  it("a 9 KiB identity JWT is refused with 401 naming the 8 KiB limit", async () => {
    const big = await selfSigned("a", { pad: "x".repeat(7000) });
    expect(big.length).toBeGreaterThan(9 * 1024);
    const r = await c.http("POST", "/v1/checkout", { token: big, body: body("orders-db") });
    expect(expectError(r, 401, "unauthenticated")).toContain("8192-byte (8 KiB) limit");
    expect(await recordsOf(r)).toEqual([]);
    expect(await activeLeases("orders-db")).toEqual([]);
  });

  it("Host: [::1].evil.com is 403 forbidden_host; [::1]:port is local", async () => {
    const get = (host: string, path: string) =>
      new Promise<{ status: number; json: ErrorBody }>((resolve, reject) => {
        const req = request(
          { host: "127.0.0.1", port: stack.port, path, headers: { host, authorization: `Bearer ${admin}` } },
          (res) => {
            let data = "";
            res.on("data", (d: Buffer) => {
              data += d.toString();
            });
            res.on("end", () =>
              resolve({ status: res.statusCode ?? 0, json: JSON.parse(data) as ErrorBody }),
            );
          },
        );
        req.on("error", reject);
        req.end();
      });
    for (const host of ["[::1].evil.com", "[::1].evil.com:7733", "[::1]evil.com"]) {
      const r = await get(host, "/v1/leases");
      expect(r.status, host).toBe(403);
      expect(r.json.error.code).toBe("forbidden_host");
    }
    expect((await get(`[::1]:${stack.port}`, "/v1/leases")).status).toBe(200);
  });

  it("an agent identity on GET /v1/leases is 403 policy_denied (HTTP and CLI), audited; an operator still lists", async () => {
    const r = await c.http("GET", "/v1/leases", { token: await c.assertion("a") });
    expect(expectError(r, 403, "policy_denied")).toContain("on no resource");
    expect(await recordsOf(r)).toEqual([
      expect.objectContaining({ event: "decision", agent: A, scope: "revoke", decision: "deny" }),
    ]);
    const cli = await stack.cli("--identity-key", await c.keyFile("a"), "leases", "list");
    expect(cli.code).toBe(1);
    expect(cli.stderr).toContain("policy_denied");
    // Alice may revoke on orders-db: with no active lease, an empty list is her answer, not a refusal.
    const alice = await c.http("GET", "/v1/leases?resource=orders-db&state=active", {
      token: await c.assertion("alice"),
    });
    expect(alice.status, JSON.stringify(alice.json)).toBe(200);
    expect(alice.json.leases).toEqual([]);
  });
});
