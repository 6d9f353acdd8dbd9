import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type CryptoKey, exportJWK, generateKeyPair, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Redis } from "ioredis";
import { createDelegationTokens } from "../../sidecar/identity/delegation-token.js";
import { LeaseTokenKeys, mintIdentityAssertion } from "../../sidecar/identity/index.js";
import { dropPrefix, REDIS_URL, testPrefix } from "../support/redis.js";
import { expectError, StackClient } from "../support/e2e-client.js";
import { type Stack, startStack } from "../support/stack.js";

/*
 * Issue 16, attack 8, against the built CLI and a running sidecar: delegation chains are no
 * longer the agent's own word. A self-signed token carrying `act` is refused; a chain an issuer
 * vouches for is read as RFC 8693 §4.1 says (`act.sub` acts, `sub` is acted for).
 */

const A = "spiffe://example.org/agent/a";
const OPS = "spiffe://example.org/operator/ops";
const ALICE = "user:alice@example.org";
const IDP = "https://idp.attack-delegation.test";
const USE = 'Action::"checkout", Action::"reveal", Action::"renew", Action::"tool_call"';

const POLICY = `@id("agents-read-orders")
permit (principal, action in [${USE}], resource == Resource::"orders-db")
when { context.intent == "read" };

@id("agents-read-billing")
permit (principal, action in [${USE}], resource == Resource::"billing-db")
when { context.intent == "read" };

// What the attacker wanted: a rule that trusts who the agent claims to act for.
@id("alice-may-drop")
permit (principal, action in [${USE}], resource == Resource::"orders-db")
when { context.intent == "drop" && context has on_behalf_of && context.on_behalf_of == "${ALICE}" };
`;

let stack: Stack;
let c: StackClient;
let admin: string;
let keyA: string;
let idpKey: CryptoKey;
let idpDir: string;

const body = (resource: string, action = "read") => ({
  resource,
  task: { id: "ATTACK-8" },
  intent: { action, tool: "psql" },
  ttl: 60,
  wait: 30,
});

/** A token the IdP issues: agent a acting for `sub` (RFC 8693 §4.1). */
function issued(sub: string, act: Record<string, unknown>, scope?: string): Promise<string> {
  return new SignJWT({ act, ...(scope === undefined ? {} : { scope }) })
    .setProtectedHeader({ alg: "ES256", kid: "idp-1", typ: "JWT" })
    .setIssuer(IDP)
    .setSubject(sub)
    .setAudience("leasehold")
    .setJti(crypto.randomUUID())
    .setIssuedAt()
    .setExpirationTime("2m")
    .sign(idpKey);
}

beforeAll(async () => {
  idpDir = await mkdtemp(join(tmpdir(), "lh-attack8-"));
  const pair = await generateKeyPair("ES256");
  idpKey = pair.privateKey;
  const idpJwks = join(idpDir, "idp.jwks.json");
  const pub = { ...(await exportJWK(pair.publicKey)), kid: "idp-1", alg: "ES256", use: "sig" };
  await writeFile(idpJwks, JSON.stringify({ keys: [pub] }));
  stack = await startStack({
    policy: POLICY,
    operators: ["ops"],
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
          { kind: "issuer", jwks: idpJwks, issuer: IDP, subjects: ["spiffe://example.org/agent/*"] },
        ],
      },
    },
  });
  c = new StackClient(stack);
  admin = await c.adminToken();
  keyA = await c.keyFile("a");
  await stack.createRole("app_orders_1", "initial-orders-123456789");
  await stack.createRole("app_billing_1", "initial-billing-123456789");
  await c.registerPostgres("orders-db", { accounts: ["app_orders_1"] });
  await c.registerPostgres("billing-db", { accounts: ["app_billing_1"] });
}, 180_000);

afterAll(async () => {
  await stack?.close();
  if (idpDir !== undefined) await rm(idpDir, { recursive: true, force: true });
});

describe("attack 8: delegation chains are self-asserted", () => {
  it("a delegation token leasehold did not sign, or garbage, beside the identity gets 401", async () => {
    const redis = new Redis(REDIS_URL);
    const prefix = testPrefix("attack8");
    try {
      const keys = await LeaseTokenKeys.load({ file: join(idpDir, "foreign-signing.jwk") });
      const foreign = createDelegationTokens({
        keys,
        redis,
        prefix,
        trust: [{ subjects: ["spiffe://example.org/operator/*", "spiffe://example.org/agent/*"] }],
      });
      const self = { subject: OPS, claims: {}, trustKind: "agents" as const, attributes: {} };
      const { access_token } = await foreign.mint(self, A, ["orders-db"]);
      for (const delegation of [access_token, "garbage"]) {
        const jwt = await mintIdentityAssertion({ keyFile: keyA, audience: "leasehold" });
        const r = await c.http("POST", "/v1/checkout", {
          token: jwt,
          body: body("orders-db", "drop"),
          headers: { "x-leasehold-delegation": delegation },
        });
        expect(expectError(r, 401, "unauthenticated")).toContain("delegation");
      }
      await c.waitForAccounts("orders-db", "available");
      expect(JSON.stringify(await c.auditRecords())).not.toContain(OPS);
    } finally {
      await dropPrefix(prefix);
      redis.disconnect();
    }
  });

  it("a self-signed token whose act names a human and an operator gets 401; nothing is recorded as delegated", async () => {
    const forged = await mintIdentityAssertion({
      keyFile: keyA,
      audience: "leasehold",
      extraClaims: { act: { sub: ALICE, act: { sub: OPS } } },
    });
    for (const resource of ["orders-db", "billing-db"]) {
      for (const action of ["read", "drop"]) {
        const r = await c.http("POST", "/v1/checkout", { token: forged, body: body(resource, action) });
        expect(expectError(r, 401, "unauthenticated")).toContain("delegation is self-asserted");
      }
    }
    // Nothing changed: no lease, every account still available, no record names alice or ops.
    const leases = await c.http("GET", "/v1/leases", { token: admin });
    expect(leases.status).toBe(200);
    expect(JSON.stringify(leases.json)).not.toContain(A);
    await c.waitForAccounts("orders-db", "available");
    const records = await c.auditRecords();
    expect(records.filter((r) => JSON.stringify(r.agent_chain ?? []) !== "[]")).toEqual([]);
    expect(JSON.stringify(records)).not.toContain(ALICE);
  });

  it("an issuer's delegated token: the agent is the principal, the party acted for is on_behalf_of; scope and jti hold", async () => {
    const token = await issued(OPS, { sub: A }, "orders-db");
    const co = await c.http("POST", "/v1/checkout", { token, body: body("orders-db") });
    expect(co.status, JSON.stringify(co.json)).toBe(201);
    const lease = co.json.lease as { id: string; agent: string; agent_chain: string[] };
    expect(lease.agent).toBe(A);
    expect(lease.agent_chain).toEqual([OPS]);
    const decision = (await c.auditRecords()).find(
      (r) => r.event === "decision" && r.scope === "checkout" && r.decision === "allow" && r.agent === A,
    );
    expect(decision).toMatchObject({ agent: A, agent_chain: [OPS] });
    // The same token again: one-time jti.
    const again = await c.http("POST", "/v1/checkout", { token, body: body("orders-db") });
    expect(expectError(again, 401, "unauthenticated")).toContain("already used");
    // Outside the delegated scope: 403, and billing-db stays available.
    const wider = await c.http("POST", "/v1/checkout", {
      token: await issued(OPS, { sub: A }, "orders-db"),
      body: body("billing-db"),
    });
    expect(expectError(wider, 403, "policy_denied")).toContain("outside the scope delegated");
    await c.waitForAccounts("billing-db", "available");
    // A scope that widens along the chain is refused outright.
    const widening = await issued(OPS, { sub: A, scope: "orders-db" }, "orders-db billing-db");
    const widened = await c.http("POST", "/v1/checkout", { token: widening, body: body("billing-db") });
    expect(expectError(widened, 401, "unauthenticated")).toContain("scope widens");
    // A human is no delegator unless identity.delegation.humans names one (default: none).
    const human = await issued(ALICE, { sub: A });
    const r = await c.http("POST", "/v1/checkout", { token: human, body: body("orders-db", "drop") });
    expect(expectError(r, 401, "unauthenticated")).toContain("not trusted");
    const token2 = co.json.token as string;
    expect((await c.http("DELETE", `/v1/leases/${lease.id}`, { token: token2 })).status).toBe(202);
  });
  it("token exchange: an operator delegates orders-db to agent a; a acts for it once, within the scope; the audit names both", async () => {
    const exchange = async (scope: string) =>
      c.http("POST", "/v1/token-exchange", {
        body: {
          grant_type: "urn:ietf:params:oauth:grant-type:token-exchange",
          subject_token: await mintIdentityAssertion({
            keyFile: await c.keyFile("ops"),
            audience: "leasehold",
          }),
          subject_token_type: "urn:ietf:params:oauth:token-type:jwt",
          audience: A,
          scope,
        },
      });
    const ex = await exchange("orders-db");
    expect(ex.status, JSON.stringify(ex.json)).toBe(200);
    const delegation = String((ex.json as { access_token: string }).access_token);
    c.secrets.push(delegation);
    const checkout = async (resource: string, token: string) =>
      c.http("POST", "/v1/checkout", {
        token: await mintIdentityAssertion({ keyFile: keyA, audience: "leasehold" }),
        body: body(resource),
        headers: { "x-leasehold-delegation": token },
      });
    const ok = await checkout("orders-db", delegation);
    expect(ok.status, JSON.stringify(ok.json)).toBe(201);
    const lease = (ok.json as { lease: { id: string; agent: string; agent_chain?: string[] } }).lease;
    expect(lease.agent).toBe(A);
    expect(lease.agent_chain).toEqual([OPS]);
    const records = await c.auditRecords();
    const issuedRec = records.find((r) => r.scope === "token_exchange" && r.agent === A);
    expect(issuedRec).toMatchObject({ decision: "allow", agent_chain: [OPS], reason: "scope: orders-db" });
    const decided = records.find((r) => r.event === "checkout" && r.lease_id === lease.id);
    expect(decided).toMatchObject({ agent: A, agent_chain: [OPS] });
    // The delegation token is one-time: the same token again is refused.
    expectError(await checkout("orders-db", delegation), 401, "unauthenticated");
    // A resource outside the delegated scope is refused by the scope, whatever policy says.
    const other = await exchange("orders-db");
    const outside = await checkout(
      "billing-db",
      String((other.json as { access_token: string }).access_token),
    );
    expectError(outside, 403, "policy_denied");
    // Nothing about the token in the audit trail.
    expect(JSON.stringify(records)).not.toContain(delegation);
    await c.http("DELETE", `/v1/leases/${lease.id}`, { token: String((ok.json as { token: string }).token) });
    await c.waitForAccounts("orders-db", "available");
  });
});
