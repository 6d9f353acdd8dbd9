import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type CryptoKey, exportJWK, generateKeyPair, importJWK, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createIdentityVerifier,
  generateAgentKey,
  type IdentityVerifier,
  mintIdentityAssertion,
} from "../../sidecar/identity/index.js";
import { expectRefusal, tempDir } from "./support.js";

const AUDIENCE = "leasehold-test-attributes";
const BILLING = "spiffe://example.org/agent/billing";
const PLAIN = "spiffe://example.org/agent/plain";
const WORKLOAD = "spiffe://example.org/workload/reports";
const ISSUER = "https://spire.attributes.test";

let dir: string;
let cleanup: () => Promise<void>;
let bundle: string;
let billingKey: string;
let plainKey: string;
let issuerKey: CryptoKey;
let verifier: IdentityVerifier;

beforeAll(async () => {
  ({ dir, cleanup } = await tempDir("attrs"));
  bundle = join(dir, "agents.jwks.json");
  ({ keyFile: billingKey } = await generateAgentKey({
    id: BILLING,
    outDir: dir,
    bundle,
    attributes: { team: "billing", groups: ["payments", "dba"], operator: false },
  }));
  ({ keyFile: plainKey } = await generateAgentKey({ id: PLAIN, outDir: dir, bundle }));
  const pair = await generateKeyPair("ES256");
  issuerKey = pair.privateKey;
  const issuerJwks = join(dir, "issuer.jwks.json");
  const pub = { ...(await exportJWK(pair.publicKey)), kid: "spire-1", alg: "ES256", use: "sig" };
  await writeFile(issuerJwks, JSON.stringify({ keys: [pub] }));
  verifier = createIdentityVerifier({
    audience: AUDIENCE,
    maxTokenLifetime: 300,
    clockSkew: 30,
    trust: [
      { kind: "agents", jwks: bundle, subjects: ["spiffe://example.org/agent/*"] },
      { kind: "issuer", jwks: issuerJwks, issuer: ISSUER, subjects: ["spiffe://example.org/workload/*"] },
    ],
  });
});

afterAll(async () => {
  await cleanup();
});

/** What a self-signed agent would claim to pass a rule meant for issuer identities. */
const FORGED_CLAIMS = { trust_kind: "issuer", team: "platform", groups: ["admins"], operator: true };

describe("policy attributes come from who can vouch for them", () => {
  it("a self-signed token's claims never become attributes: trust_kind and iss are the verifier's", async () => {
    const jwt = await mintIdentityAssertion({
      keyFile: plainKey,
      audience: AUDIENCE,
      extraClaims: FORGED_CLAIMS,
    });
    const identity = await verifier.verify(jwt);
    expect(identity.trustKind).toBe("agents");
    expect(identity.claims.trust_kind).toBe("issuer");
    expect(identity.attributes).toEqual({ trust_kind: "agents" });
    expect(identity.issuer).toBeUndefined();
  });

  it("an iss claim in a self-signed token is neither the issuer nor an attribute", async () => {
    const raw = JSON.parse(await readFile(plainKey, "utf8")) as Record<string, string>;
    const key = await importJWK(raw, "EdDSA");
    const token = await new SignJWT({ ...FORGED_CLAIMS, jti: "forged-iss" })
      .setProtectedHeader({ alg: "EdDSA", kid: raw.kid ?? "", typ: "JWT" })
      .setIssuer(ISSUER)
      .setSubject(PLAIN)
      .setAudience(AUDIENCE)
      .setIssuedAt()
      .setExpirationTime("1m")
      .sign(key);
    const identity = await verifier.verify(token);
    expect(identity.issuer).toBeUndefined();
    expect(identity.attributes).toEqual({ trust_kind: "agents" });
  });

  it("a self-signed agent's attributes are the ones the operator put beside its key", async () => {
    const jwt = await mintIdentityAssertion({
      keyFile: billingKey,
      audience: AUDIENCE,
      extraClaims: FORGED_CLAIMS,
    });
    const identity = await verifier.verify(jwt);
    expect(identity.attributes).toEqual({
      team: "billing",
      groups: ["payments", "dba"],
      operator: false,
      trust_kind: "agents",
    });
  });

  it("an issuer's token: its claims are attributes, except the token's own and the reserved ones", async () => {
    const token = await new SignJWT({ team: "reports", groups: ["bi"], trust_kind: "agents", scope: "x" })
      .setProtectedHeader({ alg: "ES256", kid: "spire-1", typ: "JWT" })
      .setIssuer(ISSUER)
      .setSubject(WORKLOAD)
      .setAudience(AUDIENCE)
      .setJti("issuer-jti")
      .setIssuedAt()
      .setExpirationTime("1m")
      .sign(issuerKey);
    const identity = await verifier.verify(token);
    expect(identity.issuer).toBe(ISSUER);
    expect(identity.attributes).toEqual({
      team: "reports",
      groups: ["bi"],
      trust_kind: "issuer",
      iss: ISSUER,
    });
  });

  it("a key whose bundle attributes are unusable verifies nothing, and says why", async () => {
    const text = JSON.parse(await readFile(bundle, "utf8")) as { keys: Record<string, unknown>[] };
    const broken = join(dir, "broken.jwks.json");
    for (const attributes of [
      { trust_kind: "issuer" },
      { iss: ISSUER },
      { team: "bill\u001b[2Jing" },
      { team: { nested: true } },
      ["team"],
    ]) {
      const keys = text.keys.map((k) => (k.sub === PLAIN ? { ...k, attributes } : k));
      await writeFile(broken, JSON.stringify({ keys }));
      const strict = createIdentityVerifier({
        audience: AUDIENCE,
        maxTokenLifetime: 300,
        clockSkew: 30,
        trust: [{ kind: "agents", jwks: broken, subjects: ["spiffe://example.org/agent/*"] }],
      });
      const jwt = await mintIdentityAssertion({ keyFile: plainKey, audience: AUDIENCE });
      await expectRefusal(strict.verify(jwt), jwt, "unusable attributes in the trust bundle");
    }
  });

  it("an attribute named __proto__ in a bundle stays a plain key and changes no prototype", async () => {
    const text = JSON.parse(await readFile(bundle, "utf8")) as { keys: Record<string, unknown>[] };
    const odd = join(dir, "proto.jwks.json");
    const keys = text.keys.map((k) =>
      k.sub === PLAIN ? { ...k, attributes: { team: "t", PROTO: ["x"] } } : k,
    );
    // JSON text is the only way to write an own "__proto__" member.
    await writeFile(odd, JSON.stringify({ keys }).replace('"PROTO"', '"__proto__"'));
    const v = createIdentityVerifier({
      audience: AUDIENCE,
      maxTokenLifetime: 300,
      clockSkew: 30,
      trust: [{ kind: "agents", jwks: odd, subjects: ["spiffe://example.org/agent/*"] }],
    });
    const identity = await v.verify(await mintIdentityAssertion({ keyFile: plainKey, audience: AUDIENCE }));
    expect(Object.getPrototypeOf(identity.attributes)).toBe(Object.prototype);
    expect(Object.hasOwn(identity.attributes, "__proto__")).toBe(true);
    expect(identity.attributes.team).toBe("t");
  });

  it("keygen refuses reserved, malformed and control-character attributes", async () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ trust_kind: "issuer" }, "reserved"],
      [{ iss: ISSUER }, "reserved"],
      [{ sub: BILLING }, "reserved"],
      [{ "bad name": "x" }, "not a valid name"],
      [{ team: "a\u202eb" }, "control characters"],
      [{ team: 1.5 }, "safe integer"],
    ];
    for (const [attributes, message] of cases) {
      await expect(
        generateAgentKey({
          id: `spiffe://example.org/agent/k${Math.random().toString(36).slice(2, 8)}`,
          outDir: join(dir, "refused"),
          attributes: attributes as Record<string, string>,
        }),
      ).rejects.toThrow(message);
    }
  });
});
