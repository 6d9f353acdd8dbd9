import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type CryptoKey, exportJWK, generateKeyPair, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createDelegationChecker,
  createIdentityVerifier,
  generateAgentKey,
  type IdentityVerifier,
  MAX_DELEGATION_DEPTH,
  mintIdentityAssertion,
  withDelegation,
} from "../../sidecar/identity/index.js";
import { expectRefusal, tempDir } from "./support.js";

const ACTOR = "spiffe://example.org/agent/worker";
const BOSS = "spiffe://example.org/agent/boss";
const ALICE = "user:alice@example.org";
const trust = [{ subjects: ["spiffe://example.org/agent/*"] }];
const check = createDelegationChecker({ trust, humans: ["user:*@example.org"] });

/**
 * RFC 8693 §4.1 claims of a token in which ACTOR acts through `delegators` (nearest first):
 * `sub` is the last of them (the party acted for), `act.sub` is ACTOR, and each nested `act`
 * a prior actor, the most recent first.
 */
function rfc(delegators: readonly string[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  let prior: Record<string, unknown> | undefined;
  for (const sub of delegators.slice(0, -1).reverse()) prior = { sub, ...(prior ? { act: prior } : {}) };
  return { sub: delegators.at(-1), act: { sub: ACTOR, ...(prior ? { act: prior } : {}) }, ...extra };
}

/** Runs the checker and turns its refusal into a rejected promise, as expectRefusal wants. */
const run = (claims: Record<string, unknown>) => Promise.resolve().then(() => check(ACTOR, claims));

/** `depth` agent delegators: agent/d1 (nearest) ... agent/d<depth> (the origin). */
const agents = (depth: number) =>
  Array.from({ length: depth }, (_, i) => `spiffe://example.org/agent/d${i + 1}`);

describe("delegation chains (act, RFC 8693 §4.1)", () => {
  it("a token without act delegates nothing", () => {
    expect(check(ACTOR, { sub: ACTOR })).toBeUndefined();
  });

  it("reads sub as the party acted for and nested act as prior actors, nearest delegator first", () => {
    expect(check(ACTOR, rfc([BOSS]))).toEqual({ chain: [BOSS], onBehalfOf: BOSS });
    // alice delegated to boss, boss to the worker: act.act.sub is boss, sub is alice.
    expect(check(ACTOR, { sub: ALICE, act: { sub: ACTOR, act: { sub: BOSS } } })).toEqual({
      chain: [BOSS, ALICE],
      onBehalfOf: ALICE,
    });
  });

  it(`accepts ${MAX_DELEGATION_DEPTH} delegators and refuses a deeper chain`, async () => {
    expect(check(ACTOR, rfc(agents(5)))?.chain).toEqual(agents(5));
    await expectRefusal(run(rfc(agents(6))), "", "delegation chain is deeper than 5 hops");
    // Very deep JSON is refused at the limit, not walked to the end.
    await expectRefusal(run(rfc(agents(5000))), "", "deeper than 5 hops");
    const shallow = createDelegationChecker({ trust, maxDepth: 2 });
    await expectRefusal(
      Promise.resolve().then(() => shallow(ACTOR, rfc(agents(3)))),
      "",
      "deeper than 2 hops",
    );
    expect(() => createDelegationChecker({ trust, maxDepth: 6 })).toThrow(/maxDepth/);
  });

  it("refuses malformed act claims and a delegation without sub", async () => {
    const cases: Array<[unknown, string]> = [
      [ACTOR, "hop 1 is not an object"],
      [[{ sub: ACTOR }], "hop 1 is not an object"],
      [null, "hop 1 is not an object"],
      [{}, "hop 1 has no sub"],
      [{ sub: 42 }, "hop 1 has no sub"],
      [{ sub: ACTOR, act: "x" }, "hop 2 is not an object"],
      [{ sub: ACTOR, exp: 1 }, 'hop 1 has member "exp"'],
      [{ sub: ACTOR, act: { sub: BOSS, exp: 1 } }, 'hop 2 has member "exp"'],
      [{ sub: ACTOR, iss: 7 }, "hop 1 iss"],
      [{ sub: ACTOR, scope: 7 }, "scope of hop 1 is malformed"],
    ];
    for (const [act, message] of cases) {
      await expectRefusal(run({ sub: BOSS, act }), "", message);
    }
    await expectRefusal(run({ act: { sub: ACTOR } }), "", "delegation has no sub");
  });

  it("refuses delegators outside the trust configuration, and cycles", async () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [rfc(["spiffe://evil.example/agent/boss"]), "delegator at hop 2 is not trusted"],
      [rfc(["spiffe://example.org/agent/a/b"]), "delegator at hop 2 is not trusted"],
      [rfc(["spiffe://example.org/agent/../admin"]), "delegator at hop 2 is not trusted"],
      [rfc([BOSS, "user:mallory@evil.example"]), "delegator at hop 3 is not trusted"],
      [rfc(["user:alice"]), "delegator at hop 2 is not trusted"],
      [rfc(["alice@example.org"]), "delegator at hop 2 is not trusted"],
      [rfc([ACTOR]), "repeats a subject"],
      [rfc([BOSS, BOSS]), "repeats a subject"],
    ];
    for (const [claims, message] of cases) {
      await expectRefusal(run(claims), "", message);
    }
    // identity.delegation.humans defaults to none: a human delegator must be allowed by name.
    const agentsOnly = createDelegationChecker({ trust });
    await expectRefusal(
      Promise.resolve().then(() => agentsOnly(ACTOR, rfc([ALICE]))),
      "",
      "not trusted",
    );
  });

  it("scope can only narrow from the origin towards the acting agent", async () => {
    // alice gave boss orders-db and billing-db; boss gave the worker orders-db.
    const narrowing = {
      sub: ALICE,
      act: { sub: ACTOR, scope: "orders-db", act: { sub: BOSS, scope: "orders-db billing-db" } },
    };
    expect(check(ACTOR, narrowing)).toEqual({
      chain: [BOSS, ALICE],
      onBehalfOf: ALICE,
      scope: ["orders-db"],
    });
    expect(check(ACTOR, rfc([BOSS], { scope: "billing-db" }))).toMatchObject({ scope: ["billing-db"] });
    await expectRefusal(
      run({
        sub: ALICE,
        act: { sub: ACTOR, scope: "orders-db billing-db", act: { sub: BOSS, scope: "orders-db" } },
      }),
      "",
      "scope widens along the delegation chain",
    );
    await expectRefusal(
      run({ sub: BOSS, act: { sub: ACTOR, scope: "orders-db" }, scope: "orders-db crm-db" }),
      "",
      "scope widens",
    );
  });
});

describe("withDelegation on a real identity verifier", () => {
  const AUDIENCE = "leasehold";
  const ISSUER = "https://idp.delegation.test";
  const WORKLOAD = "spiffe://example.org/workload/reports";
  let dir: string;
  let cleanup: () => Promise<void>;
  let keyFile: string;
  let issuerKey: CryptoKey;
  let verifier: IdentityVerifier;

  const issued = (claims: Record<string, unknown>) =>
    new SignJWT(claims)
      .setProtectedHeader({ alg: "ES256", kid: "idp-1", typ: "JWT" })
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setJti(crypto.randomUUID())
      .setIssuedAt()
      .setExpirationTime("1m")
      .sign(issuerKey);

  beforeAll(async () => {
    ({ dir, cleanup } = await tempDir("delegation"));
    const bundleFile = join(dir, "agents.jwks.json");
    ({ keyFile } = await generateAgentKey({ id: ACTOR, outDir: dir, bundle: bundleFile }));
    await generateAgentKey({ id: BOSS, outDir: dir, bundle: bundleFile });
    const pair = await generateKeyPair("ES256");
    issuerKey = pair.privateKey;
    const issuerJwks = join(dir, "issuer.jwks.json");
    const pub = { ...(await exportJWK(pair.publicKey)), kid: "idp-1", alg: "ES256", use: "sig" };
    await writeFile(issuerJwks, JSON.stringify({ keys: [pub] }));
    const entries = [
      { kind: "agents" as const, jwks: bundleFile, subjects: ["spiffe://example.org/agent/*"] },
      {
        kind: "issuer" as const,
        jwks: issuerJwks,
        issuer: ISSUER,
        subjects: ["spiffe://example.org/workload/*"],
      },
    ];
    verifier = withDelegation(
      createIdentityVerifier({ audience: AUDIENCE, trust: entries, maxTokenLifetime: 3600, clockSkew: 30 }),
      { trust: entries, humans: ["user:*@example.org"] },
    );
  });
  afterAll(async () => {
    await cleanup();
  });

  it("refuses act in a self-signed token (401): an agent cannot name its own delegators", async () => {
    const plain = await verifier.verify(await mintIdentityAssertion({ keyFile, audience: AUDIENCE }));
    expect(plain.subject).toBe(ACTOR);
    expect(plain.delegation).toBeUndefined();
    // The attack of issue 16: the agent names a human and an operator as its delegators.
    for (const act of [
      { sub: "user:alice@example.org", act: { sub: "user:operator@example.org" } },
      { sub: ACTOR, act: { sub: BOSS } },
      "garbage",
    ]) {
      const forged = await mintIdentityAssertion({ keyFile, audience: AUDIENCE, extraClaims: { act } });
      await expectRefusal(verifier.verify(forged), forged, "delegation is self-asserted");
    }
  });

  it("reads an issuer's delegated token per RFC 8693: the actor is the subject, sub the party acted for", async () => {
    const token = await issued({
      sub: ALICE,
      act: { sub: WORKLOAD, act: { sub: BOSS } },
      scope: "orders-db",
    });
    await expect(verifier.verify(token)).resolves.toMatchObject({
      subject: WORKLOAD,
      trustKind: "issuer",
      delegation: { chain: [BOSS, ALICE], onBehalfOf: ALICE, scope: ["orders-db"] },
    });
    // The issuer vouches for the actor only within its subject globs, whoever sub names.
    const outside = await issued({ sub: ALICE, act: { sub: BOSS } });
    await expectRefusal(verifier.verify(outside), outside, "subject is not trusted");
    const deep = await issued({ sub: ALICE, act: { sub: WORKLOAD, act: { sub: BOSS, act: { sub: BOSS } } } });
    await expectRefusal(verifier.verify(deep), deep, "repeats a subject");
    const human = await issued({ sub: "user:mallory@evil.example", act: { sub: WORKLOAD } });
    await expectRefusal(verifier.verify(human), human, "not trusted");
  });
});
