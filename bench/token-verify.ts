/**
 * Token verification throughput: leasehold's verifiers against raw `jose.jwtVerify` on the same
 * key and the same token, in the same run (one core, sequential, alternating rounds).
 *
 *   lease token     createLeaseTokenService().verify   vs jwtVerify(token, the signing key)
 *                   (every use in full; and again with the default verified-token cache, a token used before)
 *   identity JWT    createIdentityVerifier().verify     vs jwtVerify(jwt, the agent's key)
 *   DPoP proof      createDpopVerifier().verify         vs jwtVerify(proof, the proof's key)
 *                   (includes the Redis SET NX of the jti replay cache, 127.0.0.1:6379)
 *
 * `npx tsx bench/token-verify.ts [--quick]`
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import {
  type CryptoKey,
  calculateJwkThumbprint,
  decodeProtectedHeader,
  importJWK,
  type JWK,
  jwtVerify,
} from "jose";
import { createDpopKey, type DpopKey } from "../sidecar/client/dpop-key.js";
import {
  createDpopVerifier,
  createIdentityVerifier,
  createLeaseTokenService,
  generateAgentKey,
  LEASE_TOKEN_AUDIENCE,
  LEASE_TOKEN_ISSUER,
  LEASE_TOKEN_TYP,
  loadLeaseTokenKeys,
  mintIdentityAssertion,
} from "../sidecar/identity/index.js";
import { dropPrefix, testPrefix } from "../test/support/redis.js";
import { printTable, quick, type Row, throughput, writeResults } from "./stats.js";

const ROUND_MS = quick ? 400 : 2500;
const ROUNDS = quick ? 2 : 3;
const HTU = "http://127.0.0.1:7733/v1/leases/lse_bench/credential";

/** Best throughput of each side over alternating rounds, so neither profits from warm-up order. */
async function compare(product: () => Promise<unknown>, floor: () => Promise<unknown>) {
  let p = 0;
  let f = 0;
  for (let i = 0; i < ROUNDS; i++) {
    f = Math.max(f, await throughput(1, ROUND_MS, floor));
    p = Math.max(p, await throughput(1, ROUND_MS, product));
  }
  return { product: p, floor: f };
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "lh-bench-verify-"));
  const redis = new Redis("redis://127.0.0.1:6379/0");
  const prefix = testPrefix("bench-verify");
  try {
    // Lease tokens: the sidecar's own key file and service.
    const keys = await loadLeaseTokenKeys({ file: join(dir, "state", "signing.jwk") });
    // Every use verified in full (as the floor does); `remembering` is the sidecar's default, which
    // checks a token's signature on its first use only (VerifiedTokenCache).
    const leaseTokens = createLeaseTokenService({ keys, verifiedCacheSize: 0 });
    const remembering = createLeaseTokenService({ keys });
    const token = await leaseTokens.mint({
      leaseId: "lse_bench",
      agent: "spiffe://example.org/agent/bench",
      resource: "orders-db",
      account: "app_1",
      expiresAt: Date.now() + 3600_000,
    });
    const kid = decodeProtectedHeader(token).kid;
    const signing = keys.publicJwks().keys.find((k) => k.kid === kid) as JWK;
    const leaseKey = (await importJWK(signing, "EdDSA")) as CryptoKey;
    const rawLease = () =>
      jwtVerify(token, leaseKey, {
        algorithms: ["EdDSA"],
        issuer: LEASE_TOKEN_ISSUER,
        audience: LEASE_TOKEN_AUDIENCE,
        typ: LEASE_TOKEN_TYP,
      });

    // Identity JWTs: an agents trust bundle, as `leasehold agent keygen` writes it.
    const agent = await generateAgentKey({
      id: "spiffe://example.org/agent/bench",
      outDir: join(dir, "trust"),
    });
    const identity = createIdentityVerifier({
      audience: "leasehold",
      trust: [{ kind: "agents", jwks: agent.bundleFile, subjects: ["spiffe://example.org/agent/*"] }],
      maxTokenLifetime: 3600,
      clockSkew: 30,
    });
    const jwt = await mintIdentityAssertion({
      keyFile: agent.keyFile,
      audience: "leasehold",
      ttlSeconds: 3600,
    });
    const bundle = JSON.parse(await readFile(agent.bundleFile, "utf8")) as { keys: JWK[] };
    const agentKey = (await importJWK(bundle.keys[0] as JWK, "EdDSA")) as CryptoKey;
    const rawIdentity = () => jwtVerify(jwt, agentKey, { algorithms: ["EdDSA"], audience: "leasehold" });

    const lease = await compare(() => leaseTokens.verify(token), rawLease);
    const leaseAgain = await compare(() => remembering.verify(token), rawLease);
    const ident = await compare(() => identity.verify(jwt), rawIdentity);

    // DPoP proofs: each verified once, so they are made ahead of the timed loop; the window is
    // widened so that proofs made before the loop are still fresh at its end.
    const dpop = createDpopVerifier({ replay: redis, prefix, windowSeconds: 600 });
    const dpopKey: DpopKey = await createDpopKey();
    const proofs: string[] = [];
    // More than the verifier can consume in all its rounds: a replayed proof would be refused.
    const need = Math.ceil((ROUND_MS / 1000) * ROUNDS * 8000);
    for (let i = 0; i < need; i++) proofs.push(await dpopKey.proof("GET", HTU, token));
    const proofJwk = decodeProtectedHeader(proofs[0] ?? "").jwk as JWK;
    const proofKey = (await importJWK(proofJwk, "EdDSA")) as CryptoKey;
    if ((await calculateJwkThumbprint(proofJwk)) !== dpopKey.jkt) throw new Error("thumbprint mismatch");
    let nextProduct = 0;
    let nextFloor = 0;
    const productProof = () =>
      dpop.verify({
        proof: proofs[nextProduct++ % proofs.length] ?? "",
        htm: "GET",
        htu: HTU,
        accessToken: token,
      });
    const floorProof = () =>
      jwtVerify(proofs[nextFloor++ % proofs.length] ?? "", proofKey, {
        algorithms: ["EdDSA"],
        typ: "dpop+jwt",
      });

    const proof = await compare(productProof, floorProof);
    if (nextProduct > proofs.length) throw new Error("not enough proofs were made: a replay was measured");

    const rows: Row[] = [
      { figure: "lease token verify", ...lease, unit: "verifications/s", better: "higher" },
      {
        figure: "lease token verify, a token used before (the sidecar's default)",
        ...leaseAgain,
        unit: "verifications/s",
        better: "higher",
      },
      { figure: "identity JWT verify (agents bundle)", ...ident, unit: "verifications/s", better: "higher" },
      {
        figure: "DPoP proof verify (+ Redis jti SET NX)",
        ...proof,
        unit: "verifications/s",
        better: "higher",
      },
    ];
    printTable("token verification: leasehold (product) vs raw jose jwtVerify (floor), one core", rows);
    const file = writeResults(quick ? "token-verify-quick" : "token-verify", { rows });
    process.stdout.write(`\nresults: ${file}\n`);
  } finally {
    await dropPrefix(prefix);
    redis.disconnect();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
