import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { decodeJwt, decodeProtectedHeader } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateAgentKey, looksLikeJwt, mintIdentityAssertion } from "../../sidecar/identity/index.js";
import { tempDir } from "./support.js";

let dir: string;
let cleanup: () => Promise<void>;

beforeAll(async () => {
  ({ dir, cleanup } = await tempDir("agentkey"));
});
afterAll(async () => {
  await cleanup();
});

describe("generateAgentKey", () => {
  it("writes a 0600 private key and adds the public key to the bundle", async () => {
    const outDir = join(dir, "a");
    const id = "spiffe://example.org/agent/reporter";
    const result = await generateAgentKey({ id, outDir });
    expect(result.keyFile).toBe(join(outDir, "example.org_agent_reporter.key.jwk"));
    expect(result.bundleFile).toBe(join(outDir, "agents.jwks.json"));
    expect((await stat(result.keyFile)).mode & 0o777).toBe(0o600);

    // The private part is split off first so a failing assertion cannot print it.
    const { d, ...priv } = JSON.parse(await readFile(result.keyFile, "utf8")) as Record<string, string>;
    expect(priv).toMatchObject({ kty: "OKP", crv: "Ed25519", sub: id, kid: result.kid, alg: "EdDSA" });
    expect(typeof d === "string" && d.length > 0).toBe(true);

    const bundle = JSON.parse(await readFile(result.bundleFile, "utf8")) as {
      keys: Record<string, string>[];
    };
    expect(bundle.keys).toHaveLength(1);
    expect(bundle.keys[0]).toMatchObject({ sub: id, kid: result.kid, alg: "EdDSA", use: "sig", x: priv.x });
    expect(bundle.keys[0]).not.toHaveProperty("d");
  });

  it("appends further agents to the bundle and refuses to overwrite a key file", async () => {
    const outDir = join(dir, "b");
    const bundle = join(dir, "b-trust", "bundle.json");
    const one = await generateAgentKey({ id: "spiffe://example.org/agent/one", outDir, bundle });
    const two = await generateAgentKey({ id: "spiffe://example.org/agent/two", outDir, bundle });
    const doc = JSON.parse(await readFile(bundle, "utf8")) as { keys: { kid: string; sub: string }[] };
    expect(doc.keys.map((k) => [k.kid, k.sub])).toEqual([
      [one.kid, "spiffe://example.org/agent/one"],
      [two.kid, "spiffe://example.org/agent/two"],
    ]);
    const before = await readFile(one.keyFile, "utf8");
    await expect(generateAgentKey({ id: "spiffe://example.org/agent/one", outDir, bundle })).rejects.toThrow(
      /already exists/,
    );
    expect(await readFile(one.keyFile, "utf8")).toBe(before);
    const after = JSON.parse(await readFile(bundle, "utf8")) as { keys: unknown[] };
    expect(after.keys).toHaveLength(2);
  });

  it("refuses an id that is not a SPIFFE ID", async () => {
    await expect(
      generateAgentKey({ id: "spiffe://example.org/../x", outDir: join(dir, "c") }),
    ).rejects.toThrow(/SPIFFE/);
  });
});

describe("mintIdentityAssertion", () => {
  it("signs an EdDSA JWT with kid, typ, sub, aud, iat, exp and a random jti", async () => {
    const { keyFile, kid } = await generateAgentKey({
      id: "spiffe://example.org/agent/minter",
      outDir: join(dir, "d"),
    });
    const now = () => 1_900_000_000_000;
    const t1 = await mintIdentityAssertion({
      keyFile,
      audience: "aud-x",
      now,
      extraClaims: { team: "finance" },
    });
    const t2 = await mintIdentityAssertion({ keyFile, audience: "aud-x", now, ttlSeconds: 120 });
    expect(looksLikeJwt(t1)).toBe(true);
    expect(decodeProtectedHeader(t1)).toEqual({ alg: "EdDSA", kid, typ: "JWT" });
    const c1 = decodeJwt(t1);
    expect(c1).toMatchObject({ sub: "spiffe://example.org/agent/minter", aud: "aud-x", iat: 1_900_000_000 });
    expect(c1.exp).toBe(1_900_000_060);
    expect(c1.team).toBe("finance");
    const c2 = decodeJwt(t2);
    expect(c2.exp).toBe(1_900_000_120);
    expect(c1.jti).not.toBe(c2.jti);
  });

  it("refuses extra claims that would override registered ones", async () => {
    const { keyFile } = await generateAgentKey({
      id: "spiffe://example.org/agent/sneaky",
      outDir: join(dir, "e"),
    });
    await expect(
      mintIdentityAssertion({
        keyFile,
        audience: "a",
        extraClaims: { sub: "spiffe://example.org/agent/admin" },
      }),
    ).rejects.toThrow(/may not set "sub"/);
  });
});

describe("looksLikeJwt", () => {
  it("tells compact JWS strings from other bearer strings", () => {
    expect(looksLikeJwt("eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2ln")).toBe(true);
    expect(looksLikeJwt("lh_admin_0123456789")).toBe(false);
    expect(looksLikeJwt("eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0")).toBe(false);
    expect(looksLikeJwt("eyJ a.b.c")).toBe(false);
  });
});
