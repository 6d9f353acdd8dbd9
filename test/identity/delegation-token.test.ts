import { join } from "node:path";
import { Redis } from "ioredis";
import { decodeJwt, decodeProtectedHeader } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LeaseholdError } from "../../sidecar/errors.js";
import {
  createDelegationTokens,
  DELEGATION_TOKEN_TYP,
  type DelegationTokens,
  exchangeToken,
  JWT_TOKEN_TYPE,
  TOKEN_EXCHANGE_GRANT,
} from "../../sidecar/identity/delegation-token.js";
import {
  createIdentityVerifier,
  generateAgentKey,
  type IdentityVerifier,
  LeaseTokenKeys,
  mintIdentityAssertion,
  type VerifiedIdentity,
  withDelegation,
  withReplayGuard,
} from "../../sidecar/identity/index.js";
import { dropPrefix, REDIS_URL, testPrefix } from "../support/redis.js";
import { expectRefusal, tempDir } from "./support.js";

const OPS = "spiffe://example.org/operator/ops";
const A = "spiffe://example.org/agent/a";
const B = "spiffe://example.org/agent/b";
const trust = [{ subjects: ["spiffe://example.org/agent/*", "spiffe://example.org/operator/*"] }];

const identity = (subject: string, extra: Partial<VerifiedIdentity> = {}): VerifiedIdentity => ({
  subject,
  claims: {},
  trustKind: "agents",
  attributes: {},
  ...extra,
});

describe("leasehold's delegation tokens (RFC 8693 token exchange)", () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let redis: Redis;
  let prefix: string;
  let tokens: DelegationTokens;
  let verifier: IdentityVerifier;
  let keyA: string;
  let keyB: string;

  beforeAll(async () => {
    ({ dir, cleanup } = await tempDir("deltok"));
    redis = new Redis(REDIS_URL);
    prefix = testPrefix("deltok");
    const keys = await LeaseTokenKeys.load({ file: join(dir, "signing.jwk") });
    tokens = createDelegationTokens({ keys, redis, prefix, trust, ttlSeconds: 60 });
    const bundle = join(dir, "agents.jwks.json");
    ({ keyFile: keyA } = await generateAgentKey({ id: A, outDir: dir, bundle }));
    ({ keyFile: keyB } = await generateAgentKey({ id: B, outDir: dir, bundle }));
    const entries = [{ kind: "agents" as const, jwks: bundle, subjects: ["spiffe://example.org/agent/*"] }];
    verifier = withDelegation(
      createIdentityVerifier({ audience: "leasehold", trust: entries, maxTokenLifetime: 300, clockSkew: 30 }),
      { trust },
      tokens,
    );
  });
  afterAll(async () => {
    await dropPrefix(prefix);
    redis.disconnect();
    await cleanup();
  });

  it("mints a short-lived token in RFC 8693's form: sub acted for, act.sub the actor", async () => {
    const issued = await tokens.mint(identity(OPS), A, ["orders-db"]);
    expect(issued).toMatchObject({ issued_token_type: JWT_TOKEN_TYPE, token_type: "N_A", expires_in: 60 });
    expect(decodeProtectedHeader(issued.access_token)).toMatchObject({
      typ: DELEGATION_TOKEN_TYP,
      alg: "EdDSA",
    });
    const claims = decodeJwt(issued.access_token);
    expect(claims).toMatchObject({
      sub: OPS,
      act: { sub: A },
      scope: "orders-db",
      aud: "leasehold:delegation",
    });
    expect(typeof claims.jti).toBe("string");
    expect(Number(claims.exp) - Number(claims.iat)).toBe(60);
  });

  it("the named actor presents it beside its own identity, once; another agent cannot", async () => {
    const { access_token } = await tokens.mint(identity(OPS), A, ["orders-db"]);
    // Agent b holds a's delegation token: refused, and the token is not spent by the attempt.
    const asB = await mintIdentityAssertion({ keyFile: keyB, audience: "leasehold" });
    await expectRefusal(verifier.verify(asB, { delegation: access_token }), asB, "names another actor");
    const asA = await mintIdentityAssertion({ keyFile: keyA, audience: "leasehold" });
    await expect(verifier.verify(asA, { delegation: access_token })).resolves.toMatchObject({
      subject: A,
      delegation: { chain: [OPS], onBehalfOf: OPS, scope: ["orders-db"] },
    });
    const again = await mintIdentityAssertion({ keyFile: keyA, audience: "leasehold" });
    await expectRefusal(verifier.verify(again, { delegation: access_token }), again, "already used");
  });

  it("refuses a forged, retyped or foreign token and a widened scope", async () => {
    const asA = () => mintIdentityAssertion({ keyFile: keyA, audience: "leasehold" });
    const { access_token } = await tokens.mint(identity(OPS), A);
    const [h, p, s] = access_token.split(".");
    const tampered = `${h}.${Buffer.from(JSON.stringify({ ...decodeJwt(access_token), scope: "x" })).toString("base64url")}.${s}`;
    await expectRefusal(
      verifier.verify(await asA(), { delegation: tampered }),
      tampered,
      "delegation token invalid",
    );
    const identityJwt = await asA();
    await expectRefusal(
      verifier.verify(await asA(), { delegation: identityJwt }),
      identityJwt,
      "type not allowed",
    );
    await expectRefusal(verifier.verify(await asA(), { delegation: "x" }), "x", "malformed");
    expect(p).toBeDefined();
    // A delegated delegator can only narrow what it was given.
    const delegated = identity(B, { delegation: { chain: [OPS], onBehalfOf: OPS, scope: ["orders-db"] } });
    const widened = await tokens.mint(delegated, A, ["orders-db", "billing-db"]).catch((e: unknown) => e);
    expect(widened).toBeInstanceOf(LeaseholdError);
    expect((widened as LeaseholdError).code).toBe("policy_denied");
    const narrowed = await tokens.mint(delegated, A);
    expect(decodeJwt(narrowed.access_token)).toMatchObject({
      sub: OPS,
      act: { sub: A, act: { sub: B } },
      scope: "orders-db",
    });
    await expect(verifier.verify(await asA(), { delegation: narrowed.access_token })).resolves.toMatchObject({
      delegation: { chain: [B, OPS], onBehalfOf: OPS, scope: ["orders-db"] },
    });
  });

  it("refuses an actor that is not a SPIFFE ID or is the delegator (400 naming audience)", async () => {
    for (const actor of ["user:alice@example.org", OPS, ""]) {
      const err = await tokens.mint(identity(OPS), actor).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(LeaseholdError);
      expect((err as LeaseholdError).code).toBe("invalid_request");
      expect((err as LeaseholdError).message).toMatch(/^audience:/);
    }
    const bad = await tokens.mint(identity(OPS), A, ["bad name"]).catch((e: unknown) => e);
    expect((bad as LeaseholdError).message).toMatch(/^scope:/);
  });

  it("without delegation tokens configured, a presented one is refused", async () => {
    const plain = withDelegation(
      createIdentityVerifier({
        audience: "leasehold",
        trust: [
          { kind: "agents", jwks: join(dir, "agents.jwks.json"), subjects: ["spiffe://example.org/agent/*"] },
        ],
        maxTokenLifetime: 300,
        clockSkew: 30,
      }),
      { trust },
    );
    const { access_token } = await tokens.mint(identity(OPS), A);
    const jwt = await mintIdentityAssertion({ keyFile: keyA, audience: "leasehold" });
    await expectRefusal(plain.verify(jwt, { delegation: access_token }), jwt, "not accepted");
  });
});

describe("the token exchange body (RFC 8693 §2.1 names)", () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let redis: Redis;
  let prefix: string;
  let tokens: DelegationTokens;
  let keyOps: string;
  let verifier: IdentityVerifier;

  beforeAll(async () => {
    ({ dir, cleanup } = await tempDir("exchange"));
    redis = new Redis(REDIS_URL);
    prefix = testPrefix("exchange");
    const keys = await LeaseTokenKeys.load({ file: join(dir, "signing.jwk") });
    tokens = createDelegationTokens({ keys, redis, prefix, trust });
    const bundle = join(dir, "operators.jwks.json");
    ({ keyFile: keyOps } = await generateAgentKey({ id: OPS, outDir: dir, bundle }));
    verifier = withReplayGuard(
      withDelegation(
        createIdentityVerifier({
          audience: "leasehold",
          trust: [{ kind: "agents", jwks: bundle, subjects: ["spiffe://example.org/operator/*"] }],
          maxTokenLifetime: 300,
          clockSkew: 30,
        }),
        { trust },
        tokens,
      ),
      { redis, prefix, clockSkew: 30 },
    );
  });
  afterAll(async () => {
    await dropPrefix(prefix);
    redis.disconnect();
    await cleanup();
  });

  const valid = async (extra: Record<string, unknown> = {}) => ({
    grant_type: TOKEN_EXCHANGE_GRANT,
    subject_token: await mintIdentityAssertion({ keyFile: keyOps, audience: "leasehold" }),
    subject_token_type: JWT_TOKEN_TYPE,
    audience: A,
    scope: "orders-db",
    ...extra,
  });

  it("issues a delegation from the delegator's own identity, which is spent", async () => {
    const body = await valid();
    const out = await exchangeToken(body, verifier, tokens);
    expect(out).toMatchObject({ delegator: OPS, actor: A, onBehalfOf: OPS, scope: ["orders-db"] });
    expect(out.issued.issued_token_type).toBe(JWT_TOKEN_TYPE);
    await expectRefusal(exchangeToken(body, verifier, tokens), body.subject_token, "already used");
  });

  it("refuses a bad member with 400 naming it", async () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ grant_type: "client_credentials" }, "grant_type"],
      [{ subject_token_type: "urn:ietf:params:oauth:token-type:access_token" }, "subject_token_type"],
      [{ subject_token: 7 }, "subject_token"],
      [{ audience: "user:alice@example.org" }, "audience"],
      [{ scope: 7 }, "scope"],
      [{ requested_token_type: "x" }, "requested_token_type"],
      [{ actor_token: "x" }, "actor_token"],
    ];
    for (const [extra, field] of cases) {
      const err = await exchangeToken(await valid(extra), verifier, tokens).catch((e: unknown) => e);
      expect(err, field).toBeInstanceOf(LeaseholdError);
      expect((err as LeaseholdError).code).toBe("invalid_request");
      expect((err as LeaseholdError).message.startsWith(`${field}:`), field).toBe(true);
    }
  });
});
