import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createDelegationChecker,
  createIdentityVerifier,
  generateAgentKey,
  MAX_DELEGATION_DEPTH,
  mintIdentityAssertion,
  withDelegation,
} from "../../sidecar/identity/index.js";
import { expectRefusal, tempDir } from "./support.js";

const ACTOR = "spiffe://example.org/agent/worker";
const BOSS = "spiffe://example.org/agent/boss";
const trust = [{ subjects: ["spiffe://example.org/agent/*"] }];
const check = createDelegationChecker({ trust, humans: ["user:*@example.org"] });

/** Runs the checker and turns its refusal into a rejected promise, as expectRefusal wants. */
const run = (claims: Record<string, unknown>) => Promise.resolve().then(() => check(ACTOR, claims));

/** A chain of `depth` agent hops: agent/d1 delegated by agent/d2 ... */
function nested(depth: number): Record<string, unknown> | undefined {
  let act: Record<string, unknown> | undefined;
  for (let i = depth; i >= 1; i--) act = { sub: `spiffe://example.org/agent/d${i}`, ...(act ? { act } : {}) };
  return act;
}

describe("delegation chains (act)", () => {
  it("a token without act delegates nothing", () => {
    expect(check(ACTOR, { sub: ACTOR })).toBeUndefined();
  });

  it("records the chain nearest delegator first, agents and humans", () => {
    expect(check(ACTOR, { act: { sub: BOSS } })).toEqual({ chain: [BOSS] });
    expect(check(ACTOR, { act: { sub: BOSS, act: { sub: "user:alice@example.org" } } })).toEqual({
      chain: [BOSS, "user:alice@example.org"],
    });
  });

  it(`accepts ${MAX_DELEGATION_DEPTH} hops and refuses a deeper chain`, async () => {
    expect(check(ACTOR, { act: nested(5) })?.chain).toHaveLength(5);
    await expectRefusal(run({ act: nested(6) }), "", "delegation chain is deeper than 5 hops");
    // Very deep JSON is refused at the limit, not walked to the end.
    await expectRefusal(run({ act: nested(5000) }), "", "deeper than 5 hops");
    const shallow = createDelegationChecker({ trust, maxDepth: 2 });
    await expectRefusal(
      Promise.resolve().then(() => shallow(ACTOR, { act: nested(3) })),
      "",
      "deeper than 2 hops",
    );
    expect(() => createDelegationChecker({ trust, maxDepth: 6 })).toThrow(/maxDepth/);
  });

  it("refuses malformed act claims", async () => {
    const cases: Array<[unknown, string]> = [
      ["spiffe://example.org/agent/boss", "hop 1 is not an object"],
      [[{ sub: BOSS }], "hop 1 is not an object"],
      [null, "hop 1 is not an object"],
      [{}, "hop 1 has no sub"],
      [{ sub: 42 }, "hop 1 has no sub"],
      [{ sub: BOSS, act: "x" }, "hop 2 is not an object"],
      [{ sub: BOSS, exp: 1 }, 'hop 1 has member "exp"'],
      [{ sub: BOSS, iss: 7 }, "hop 1 iss"],
      [{ sub: BOSS, scope: 7 }, "scope of hop 1 is malformed"],
    ];
    for (const [act, message] of cases) {
      await expectRefusal(run({ act }), "", message);
    }
  });

  it("refuses delegators outside the trust configuration, and cycles", async () => {
    const cases: Array<[unknown, string]> = [
      [{ sub: "spiffe://evil.example/agent/boss" }, "delegator at hop 1 is not trusted"],
      [{ sub: "spiffe://example.org/agent/a/b" }, "delegator at hop 1 is not trusted"],
      [{ sub: "spiffe://example.org/agent/../admin" }, "delegator at hop 1 is not trusted"],
      [{ sub: BOSS, act: { sub: "user:mallory@evil.example" } }, "delegator at hop 2 is not trusted"],
      [{ sub: "user:alice" }, "delegator at hop 1 is not trusted"],
      [{ sub: "alice@example.org" }, "delegator at hop 1 is not trusted"],
      [{ sub: ACTOR }, "repeats a subject"],
      [{ sub: BOSS, act: { sub: BOSS } }, "repeats a subject"],
    ];
    for (const [act, message] of cases) {
      await expectRefusal(run({ act }), "", message);
    }
    const agentsOnly = createDelegationChecker({ trust, humans: [] });
    await expectRefusal(
      Promise.resolve().then(() => agentsOnly(ACTOR, { act: { sub: "user:alice@example.org" } })),
      "",
      "not trusted",
    );
  });

  it("scope can only narrow from the origin towards the acting agent", async () => {
    const act = {
      sub: BOSS,
      scope: "orders-db",
      act: { sub: "user:alice@example.org", scope: "orders-db billing-db" },
    };
    expect(check(ACTOR, { act })).toEqual({ chain: [BOSS, "user:alice@example.org"], scope: ["orders-db"] });
    expect(check(ACTOR, { act: { sub: BOSS, scope: "orders-db billing-db" }, scope: "billing-db" })).toEqual({
      chain: [BOSS],
      scope: ["billing-db"],
    });
    await expectRefusal(
      run({
        act: {
          sub: BOSS,
          scope: "orders-db billing-db",
          act: { sub: "user:alice@example.org", scope: "orders-db" },
        },
      }),
      "",
      "scope widens along the delegation chain",
    );
    await expectRefusal(
      run({ act: { sub: BOSS, scope: "orders-db" }, scope: "orders-db crm-db" }),
      "",
      "scope widens",
    );
  });
});

describe("withDelegation on a real identity verifier", () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let keyFile: string;
  let bundleFile: string;

  beforeAll(async () => {
    ({ dir, cleanup } = await tempDir("delegation"));
    ({ keyFile, bundleFile } = await generateAgentKey({ id: ACTOR, outDir: dir }));
  });
  afterAll(async () => {
    await cleanup();
  });

  it("attaches the verified chain, and refuses a bad one after the signature checks out", async () => {
    const verifier = withDelegation(
      createIdentityVerifier({
        audience: "leasehold",
        trust: [{ kind: "agents", jwks: bundleFile, subjects: ["spiffe://example.org/agent/*"] }],
        maxTokenLifetime: 3600,
        clockSkew: 30,
      }),
      { trust },
    );
    const plain = await verifier.verify(await mintIdentityAssertion({ keyFile, audience: "leasehold" }));
    expect(plain.subject).toBe(ACTOR);
    expect(plain.delegation).toBeUndefined();
    const delegated = await mintIdentityAssertion({
      keyFile,
      audience: "leasehold",
      extraClaims: { act: { sub: BOSS, act: { sub: "user:alice@example.org" } } },
    });
    await expect(verifier.verify(delegated)).resolves.toMatchObject({
      subject: ACTOR,
      delegation: { chain: [BOSS, "user:alice@example.org"] },
    });
    const deep = await mintIdentityAssertion({
      keyFile,
      audience: "leasehold",
      extraClaims: { act: nested(6) },
    });
    await expectRefusal(verifier.verify(deep), deep, "deeper than 5 hops");
  });
});
