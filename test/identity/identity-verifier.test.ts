import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type CryptoKey, exportJWK, generateKeyPair, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createIdentityVerifier,
  generateAgentKey,
  type IdentityOptions,
  type IdentityVerifier,
  mintIdentityAssertion,
} from "../../sidecar/identity/index.js";
import { expectRefusal, keyInfo, signRaw, tempDir, unsignedToken } from "./support.js";

const AUDIENCE = "leasehold-test-verifier";
const REPORTER = "spiffe://example.org/agent/reporter";
const OTHER = "spiffe://example.org/agent/other";
const OUTSIDER = "spiffe://evil.org/agent/x";
const ISSUER = "https://issuer.idv.test";
const T0 = 1_900_000_000_000;

let dir: string;
let cleanup: () => Promise<void>;
let bundle: string;
let issuerJwks: string;
let reporterKey: string;
let otherKey: string;
let outsiderKey: string;
let issuerKey: CryptoKey;
let strangerKey: CryptoKey;
let verifier: IdentityVerifier;

function options(overrides: Partial<IdentityOptions> = {}): IdentityOptions {
  return {
    audience: AUDIENCE,
    maxTokenLifetime: 3600,
    clockSkew: 30,
    now: () => T0,
    trust: [
      { kind: "agents", jwks: bundle, subjects: ["spiffe://example.org/agent/*"] },
      { kind: "issuer", jwks: issuerJwks, issuer: ISSUER, subjects: ["spiffe://example.org/workload/**"] },
    ],
    ...overrides,
  };
}

/** Claims of a well-formed token for `sub`, issued at T0. */
function claims(sub: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const iat = T0 / 1000;
  return { sub, aud: AUDIENCE, iat, exp: iat + 60, jti: `j-${Math.random()}`, ...extra };
}

async function reporterToken(
  header: Record<string, unknown> = {},
  payload: Record<string, unknown> = claims(REPORTER),
): Promise<string> {
  const { kid } = await keyInfo(reporterKey);
  return signRaw(reporterKey, { alg: "EdDSA", kid, typ: "JWT", ...header }, payload);
}

beforeAll(async () => {
  ({ dir, cleanup } = await tempDir("idv"));
  bundle = join(dir, "trust", "agents.jwks.json");
  ({ keyFile: reporterKey } = await generateAgentKey({ id: REPORTER, outDir: join(dir, "keys"), bundle }));
  ({ keyFile: otherKey } = await generateAgentKey({ id: OTHER, outDir: join(dir, "keys"), bundle }));
  ({ keyFile: outsiderKey } = await generateAgentKey({ id: OUTSIDER, outDir: join(dir, "keys"), bundle }));
  const pair = await generateKeyPair("ES256");
  issuerKey = pair.privateKey;
  ({ privateKey: strangerKey } = await generateKeyPair("ES256"));
  issuerJwks = join(dir, "issuer.jwks.json");
  const pub = { ...(await exportJWK(pair.publicKey)), kid: "issuer-1", alg: "ES256", use: "sig" };
  await writeFile(issuerJwks, JSON.stringify({ keys: [pub] }));
  verifier = createIdentityVerifier(options());
});

afterAll(async () => {
  await cleanup();
});

describe("accepted tokens", () => {
  it("verifies an assertion minted with the agent's key", async () => {
    const token = await mintIdentityAssertion({ keyFile: reporterKey, audience: AUDIENCE, now: () => T0 });
    const identity = await verifier.verify(token);
    expect(identity.subject).toBe(REPORTER);
    expect(identity.trustKind).toBe("agents");
    expect(identity.keyId).toBe((await keyInfo(reporterKey)).kid);
    expect(identity.claims.aud).toBe(AUDIENCE);
  });

  it("accepts aud as an array of exactly one value, typ JOSE and an absent typ", async () => {
    await expect(
      verifier.verify(await reporterToken({}, claims(REPORTER, { aud: [AUDIENCE] }))),
    ).resolves.toMatchObject({ subject: REPORTER });
    await expect(verifier.verify(await reporterToken({ typ: "JOSE" }))).resolves.toMatchObject({
      subject: REPORTER,
    });
    const { kid } = await keyInfo(reporterKey);
    const noTyp = await signRaw(reporterKey, { alg: "EdDSA", kid }, claims(REPORTER));
    await expect(verifier.verify(noTyp)).resolves.toMatchObject({ subject: REPORTER });
  });

  it("selects the key by subject when the token has no kid", async () => {
    const token = await signRaw(reporterKey, { alg: "EdDSA" }, claims(REPORTER));
    await expect(verifier.verify(token)).resolves.toMatchObject({ subject: REPORTER });
  });

  it("accepts a token that expired less than clockSkew ago", async () => {
    const late = createIdentityVerifier(options({ now: () => T0 + 80_000 }));
    await expect(late.verify(await reporterToken())).resolves.toMatchObject({ subject: REPORTER });
  });

  it("lets any issuer key sign any subject within the issuer's globs, with the exact iss", async () => {
    for (const sub of ["spiffe://example.org/workload/a", "spiffe://example.org/workload/ns/b"]) {
      const token = await new SignJWT(claims(sub, { iss: ISSUER }))
        .setProtectedHeader({ alg: "ES256", kid: "issuer-1", typ: "JWT" })
        .sign(issuerKey);
      const identity = await verifier.verify(token);
      expect(identity).toMatchObject({
        subject: sub,
        trustKind: "issuer",
        issuer: ISSUER,
        keyId: "issuer-1",
      });
    }
  });
});

describe("refused tokens", () => {
  it("refuses a forged signature", async () => {
    const good = await reporterToken();
    const [h, p] = good.split(".");
    const { kid } = await keyInfo(reporterKey);
    // Same header and claims, signed by another key.
    const forged = await signRaw(otherKey, { alg: "EdDSA", kid, typ: "JWT" }, claims(REPORTER));
    await expectRefusal(verifier.verify(forged), forged, "signature invalid");
    const garbled = `${h}.${p}.${"A".repeat(86)}`;
    await expectRefusal(verifier.verify(garbled), garbled, "signature invalid");
  });

  it("refuses a payload changed after signing", async () => {
    const good = await reporterToken();
    const [h, , s] = good.split(".");
    const changed = Buffer.from(JSON.stringify(claims(REPORTER, { admin: true }))).toString("base64url");
    const token = `${h}.${changed}.${s}`;
    await expectRefusal(verifier.verify(token), token, "signature invalid");
  });

  it("refuses a key of the bundle signing for another subject", async () => {
    const { kid } = await keyInfo(otherKey);
    const token = await signRaw(otherKey, { alg: "EdDSA", kid, typ: "JWT" }, claims(REPORTER));
    await expectRefusal(verifier.verify(token), token, "key is not bound to this subject");
    const noKid = await signRaw(otherKey, { alg: "EdDSA", typ: "JWT" }, claims(REPORTER));
    await expectRefusal(verifier.verify(noKid), noKid, "signature invalid");
  });

  it("refuses an unknown kid", async () => {
    const token = await reporterToken({ kid: "no-such-key" });
    await expectRefusal(verifier.verify(token), token, "signing key unknown");
  });

  it("refuses an expired token", async () => {
    const token = await reporterToken();
    const later = createIdentityVerifier(options({ now: () => T0 + 60_000 + 31_000 }));
    await expectRefusal(later.verify(token), token, "identity token expired");
  });

  it("refuses a lifetime (exp - iat) above maxTokenLifetime", async () => {
    const iat = T0 / 1000;
    const token = await reporterToken({}, claims(REPORTER, { exp: iat + 3601 }));
    await expectRefusal(verifier.verify(token), token, "lifetime exceeds the maximum");
    const ok = await reporterToken({}, claims(REPORTER, { exp: iat + 3600 }));
    await expect(verifier.verify(ok)).resolves.toMatchObject({ subject: REPORTER });
  });

  it("refuses iat in the future beyond clockSkew, and missing exp or iat", async () => {
    const iat = T0 / 1000 + 31;
    const future = await reporterToken({}, claims(REPORTER, { iat, exp: iat + 60 }));
    await expectRefusal(verifier.verify(future), future, "issued in the future");
    const noExp = await reporterToken({}, claims(REPORTER, { exp: undefined }));
    await expectRefusal(verifier.verify(noExp), noExp, "exp claim missing");
    const noIat = await reporterToken({}, claims(REPORTER, { iat: undefined }));
    await expectRefusal(verifier.verify(noIat), noIat, "iat claim missing");
    const notYet = await reporterToken({}, claims(REPORTER, { nbf: T0 / 1000 + 40 }));
    await expectRefusal(verifier.verify(notYet), notYet, "not yet valid");
  });

  it("refuses a missing, multiple or foreign audience", async () => {
    const missing = await reporterToken({}, claims(REPORTER, { aud: undefined }));
    await expectRefusal(verifier.verify(missing), missing, "audience missing");
    const multiple = await reporterToken({}, claims(REPORTER, { aud: [AUDIENCE, "other"] }));
    await expectRefusal(verifier.verify(multiple), multiple, "exactly one audience");
    const foreign = await reporterToken({}, claims(REPORTER, { aud: "someone-else" }));
    await expectRefusal(verifier.verify(foreign), foreign, "audience mismatch");
  });

  it("refuses alg none and HS256", async () => {
    const none = unsignedToken({ alg: "none", typ: "JWT" }, claims(REPORTER));
    await expectRefusal(verifier.verify(none), none, "algorithm not allowed");
    const hs = await new SignJWT(claims(REPORTER))
      .setProtectedHeader({ alg: "HS256", typ: "JWT" })
      .sign(new TextEncoder().encode("a-shared-secret-that-is-long-enough!!"));
    await expectRefusal(verifier.verify(hs), hs, "algorithm not allowed");
  });

  it("refuses an algorithm outside the entry's allow-list", async () => {
    const edOnly = createIdentityVerifier(
      options({
        trust: [
          { kind: "issuer", jwks: issuerJwks, subjects: ["spiffe://example.org/**"], algorithms: ["EdDSA"] },
        ],
      }),
    );
    const token = await new SignJWT(claims("spiffe://example.org/workload/a"))
      .setProtectedHeader({ alg: "ES256", kid: "issuer-1" })
      .sign(issuerKey);
    await expectRefusal(edOnly.verify(token), token, "algorithm not allowed");
  });

  it("refuses unsafe algorithms in the configuration", () => {
    for (const alg of ["none", "HS256"]) {
      expect(() =>
        createIdentityVerifier(
          options({
            trust: [{ kind: "agents", jwks: bundle, subjects: ["spiffe://x/*"], algorithms: [alg] }],
          }),
        ),
      ).toThrow(/not allowed/);
    }
    expect(() =>
      createIdentityVerifier(
        options({
          trust: [{ kind: "issuer", jwks: "http://keys.example.org/jwks", subjects: ["spiffe://x/*"] }],
        }),
      ),
    ).toThrow(/https/);
  });

  it("refuses jku, x5u, jwk and x5c headers", async () => {
    const pub = (await keyInfo(reporterKey)).kid;
    const headers: Record<string, unknown> = {
      jku: "https://attacker.example/jwks",
      x5u: "https://attacker.example/cert.pem",
      jwk: { kty: "OKP", crv: "Ed25519", x: pub },
      x5c: ["MIIB"],
    };
    for (const [name, value] of Object.entries(headers)) {
      const token = await reporterToken({ [name]: value });
      await expectRefusal(verifier.verify(token), token, `header "${name}" is not allowed`);
    }
  });

  it("refuses a typ other than JWT or JOSE", async () => {
    for (const typ of ["lh-lease+jwt", "at+jwt", ""]) {
      const token = await reporterToken({ typ });
      await expectRefusal(verifier.verify(token), token, "type not allowed");
    }
  });

  it("refuses a crit header", async () => {
    const token = await reporterToken({ crit: ["exp"], exp: 1 });
    await expectRefusal(verifier.verify(token), token, "critical header");
    const b64 = await reporterToken({ crit: ["b64"], b64: true });
    await expectRefusal(verifier.verify(b64), b64, "critical header");
  });

  it("refuses subjects that are not well-formed SPIFFE IDs", async () => {
    const bad = [
      "spiffe://example.org/agent/../reporter",
      "spiffe://example.org/agent/./reporter",
      "spiffe://example.org/agent%2Freporter",
      "spiffe://example.org/agent/reporter?x=1",
      "spiffe://example.org/agent/reporter#f",
      "spiffe://example.org//agent/reporter",
      "spiffe://example.org/agent/reporter/",
      "SPIFFE://example.org/agent/reporter",
      "https://example.org/agent/reporter",
      "spiffe://Example.org/agent/reporter",
      "spiffe://example.org",
      "",
    ];
    for (const sub of bad) {
      const token = await reporterToken({}, claims(REPORTER, { sub }));
      await expectRefusal(verifier.verify(token), token, "not a valid SPIFFE ID");
    }
    const noSub = await reporterToken({}, claims(REPORTER, { sub: undefined }));
    await expectRefusal(verifier.verify(noSub), noSub, "subject missing");
  });

  it("refuses a subject outside every entry's globs, even with its own bundle key", async () => {
    const { kid } = await keyInfo(outsiderKey);
    const token = await signRaw(outsiderKey, { alg: "EdDSA", kid, typ: "JWT" }, claims(OUTSIDER));
    await expectRefusal(verifier.verify(token), token, "subject is not trusted");
    // `*` stays within one path segment.
    const deep = await reporterToken({}, claims(REPORTER, { sub: `${REPORTER}/child` }));
    await expectRefusal(verifier.verify(deep), deep, "subject is not trusted");
  });

  it("refuses an issuer token with the wrong iss or an unknown key", async () => {
    const sub = "spiffe://example.org/workload/a";
    const wrongIss = await new SignJWT(claims(sub, { iss: "https://elsewhere.test" }))
      .setProtectedHeader({ alg: "ES256", kid: "issuer-1" })
      .sign(issuerKey);
    await expectRefusal(verifier.verify(wrongIss), wrongIss, "issuer mismatch");
    const stranger = await new SignJWT(claims(sub, { iss: ISSUER }))
      .setProtectedHeader({ alg: "ES256", kid: "issuer-1" })
      .sign(strangerKey);
    await expectRefusal(verifier.verify(stranger), stranger, "signature invalid");
  });

  it("refuses strings that are not JWTs", async () => {
    for (const token of ["not-a-jwt", "a.b.c", "eyJhbGciOiJFZERTQSJ9.e30"]) {
      await expectRefusal(verifier.verify(token), token, "malformed");
    }
  });
});

describe("Kubernetes service-account subjects", () => {
  const CLUSTER = "https://kubernetes.default.svc.cluster.local";
  const k8s = () =>
    createIdentityVerifier(
      options({
        trust: [
          {
            kind: "issuer",
            jwks: issuerJwks,
            issuer: CLUSTER,
            kubernetes: { trustDomain: "cluster.local" },
            subjects: ["spiffe://cluster.local/ns/agents/sa/*"],
          },
        ],
      }),
    );
  const saToken = (sub: string) =>
    new SignJWT(claims(sub, { iss: CLUSTER }))
      .setProtectedHeader({ alg: "ES256", kid: "issuer-1", typ: "JWT" })
      .sign(issuerKey);

  it("maps system:serviceaccount:NS:SA to spiffe://<trust domain>/ns/NS/sa/SA, matched by the globs", async () => {
    const identity = await k8s().verify(await saToken("system:serviceaccount:agents:reporter"));
    expect(identity).toMatchObject({
      subject: "spiffe://cluster.local/ns/agents/sa/reporter",
      trustKind: "issuer",
      issuer: CLUSTER,
    });
    expect(identity.claims.sub).toBe("system:serviceaccount:agents:reporter");
  });

  it("refuses other namespaces, malformed service-account subjects and SPIFFE subjects from that issuer", async () => {
    const other = await saToken("system:serviceaccount:kube-system:default");
    await expectRefusal(k8s().verify(other), other, "subject is not trusted");
    for (const sub of ["system:serviceaccount:agents", "system:serviceaccount:Agents:x", "system:node:n1"]) {
      const bad = await saToken(sub);
      await expectRefusal(k8s().verify(bad), bad, "not a valid SPIFFE ID");
    }
    const spiffe = await saToken("spiffe://cluster.local/ns/agents/sa/reporter");
    await expectRefusal(k8s().verify(spiffe), spiffe, "not a valid SPIFFE ID");
  });

  it("without the mapping, a service-account subject is not a SPIFFE ID", async () => {
    const token = await saToken("system:serviceaccount:agents:reporter");
    await expectRefusal(verifier.verify(token), token, "not a valid SPIFFE ID");
  });

  it("refuses a trust domain that is not one", () => {
    expect(() =>
      createIdentityVerifier(
        options({
          trust: [
            {
              kind: "issuer",
              jwks: issuerJwks,
              kubernetes: { trustDomain: "Bad Domain" },
              subjects: ["spiffe://x/*"],
            },
          ],
        }),
      ),
    ).toThrow(/trustDomain/);
  });
});

describe("trust bundle reload", () => {
  it("trusts a key added by keygen after the verifier was built", async () => {
    const { dir: own, cleanup: done } = await tempDir("idv-reload");
    try {
      const ownBundle = join(own, "agents.jwks.json");
      const first = await generateAgentKey({ id: "spiffe://example.org/agent/first", outDir: own });
      const v = createIdentityVerifier(
        options({ trust: [{ kind: "agents", jwks: ownBundle, subjects: ["spiffe://example.org/agent/*"] }] }),
      );
      const t1 = await mintIdentityAssertion({ keyFile: first.keyFile, audience: AUDIENCE, now: () => T0 });
      await expect(v.verify(t1)).resolves.toMatchObject({ subject: "spiffe://example.org/agent/first" });

      const second = await generateAgentKey({ id: "spiffe://example.org/agent/second", outDir: own });
      const t2 = await mintIdentityAssertion({ keyFile: second.keyFile, audience: AUDIENCE, now: () => T0 });
      await expect(v.verify(t2)).resolves.toMatchObject({ subject: "spiffe://example.org/agent/second" });
      await expect(v.verify(t1)).resolves.toMatchObject({ subject: "spiffe://example.org/agent/first" });
    } finally {
      await done();
    }
  });

  it("treats a missing bundle as holding no keys", async () => {
    const v = createIdentityVerifier(
      options({
        trust: [
          { kind: "agents", jwks: join(dir, "absent.jwks.json"), subjects: ["spiffe://example.org/agent/*"] },
        ],
      }),
    );
    const token = await reporterToken();
    await expectRefusal(v.verify(token), token, "signing key unknown");
  });
});
