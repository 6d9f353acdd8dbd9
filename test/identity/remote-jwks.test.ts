import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { createServer, request, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { promisify } from "node:util";
import { type CryptoKey, exportJWK, generateKeyPair, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createIdentityVerifier, type JwksFetch } from "../../sidecar/identity/index.js";
import { expectRefusal, tempDir } from "./support.js";

const AUDIENCE = "leasehold-test-remote";
const ISSUER = "https://spire.remote.test";
const T0 = 1_900_000_000_000;

let cleanup: () => Promise<void>;
let server: Server;
let url: string;
let ca: string;
let key: CryptoKey;
let requests = 0;
let available = true;

/** Fetch over node:https trusting the test CA: global fetch cannot take a private CA per call. */
const fetchWithCa: JwksFetch = (target, options) =>
  new Promise((resolve, reject) => {
    const req = request(target, { method: "GET", ca, signal: options.signal }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve(new Response(Buffer.concat(chunks), { status: res.statusCode ?? 500 })));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  });

beforeAll(async () => {
  const tmp = await tempDir("remote");
  cleanup = tmp.cleanup;
  const keyPem = join(tmp.dir, "tls.key");
  const certPem = join(tmp.dir, "tls.crt");
  await promisify(execFile)("openssl", [
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-keyout",
    keyPem,
    "-out",
    certPem,
    "-days",
    "1",
    "-subj",
    "/CN=localhost",
    "-addext",
    "subjectAltName=DNS:localhost",
  ]);
  ca = await readFile(certPem, "utf8");
  const pair = await generateKeyPair("ES256");
  key = pair.privateKey;
  const jwks = JSON.stringify({
    keys: [{ ...(await exportJWK(pair.publicKey)), kid: "spire-1", alg: "ES256" }],
  });
  server = createServer({ key: await readFile(keyPem), cert: ca }, (_req, res) => {
    requests += 1;
    if (!available) {
      res.writeHead(500).end();
      return;
    }
    res.writeHead(200, { "content-type": "application/json" }).end(jwks);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  url = `https://localhost:${(server.address() as AddressInfo).port}/keys`;
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
  await cleanup();
});

function token(sub: string, kid = "spire-1"): Promise<string> {
  const iat = T0 / 1000;
  return new SignJWT({ sub, aud: AUDIENCE, iat, exp: iat + 300, iss: ISSUER })
    .setProtectedHeader({ alg: "ES256", kid, typ: "JWT" })
    .sign(key);
}

describe("issuer trust with an https JWKS", () => {
  it("verifies tokens with keys fetched once and cached", async () => {
    const verifier = createIdentityVerifier({
      audience: AUDIENCE,
      maxTokenLifetime: 3600,
      clockSkew: 30,
      now: () => T0,
      remote: { fetch: fetchWithCa, cooldownMs: 60_000 },
      trust: [{ kind: "issuer", jwks: url, issuer: ISSUER, subjects: ["spiffe://example.org/**"] }],
    });
    const before = requests;
    const a = await verifier.verify(await token("spiffe://example.org/ns/a"));
    const b = await verifier.verify(await token("spiffe://example.org/ns/b"));
    expect(a).toMatchObject({ subject: "spiffe://example.org/ns/a", trustKind: "issuer", issuer: ISSUER });
    expect(b.subject).toBe("spiffe://example.org/ns/b");
    expect(requests - before).toBe(1);

    // An unknown kid within the cooldown does not trigger another fetch.
    const unknown = await token("spiffe://example.org/ns/a", "spire-unknown");
    await expectRefusal(verifier.verify(unknown), unknown, "signing key unknown");
    expect(requests - before).toBe(1);
  });

  it("answers upstream_unavailable when the key set cannot be fetched", async () => {
    const verifier = createIdentityVerifier({
      audience: AUDIENCE,
      maxTokenLifetime: 3600,
      clockSkew: 30,
      now: () => T0,
      remote: { fetch: fetchWithCa },
      trust: [{ kind: "issuer", jwks: url, subjects: ["spiffe://example.org/**"] }],
    });
    available = false;
    try {
      const t = await token("spiffe://example.org/ns/a");
      await expectRefusal(verifier.verify(t), t, "identity key set unavailable", "upstream_unavailable");
    } finally {
      available = true;
    }
  });
});
