import { join } from "node:path";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createDpopVerifier,
  createIdentityVerifier,
  createLeaseTokenService,
  generateAgentKey,
  loadLeaseTokenKeys,
  MAX_TOKEN_BYTES,
  mintIdentityAssertion,
} from "../../sidecar/identity/index.js";
import { dropPrefix, REDIS_URL, testPrefix } from "../support/redis.js";
import { expectRefusal, tempDir } from "./support.js";

const AUDIENCE = "leasehold-test-size";
const ID = "spiffe://example.org/agent/big";
const LIMIT = "8192-byte (8 KiB) limit";

let dir: string;
let cleanup: () => Promise<void>;
let keyFile: string;
let bundle: string;
let redis: Redis;
let prefix: string;

beforeAll(async () => {
  ({ dir, cleanup } = await tempDir("size"));
  ({ keyFile, bundleFile: bundle } = await generateAgentKey({ id: ID, outDir: dir }));
  redis = new Redis(REDIS_URL);
  prefix = testPrefix("size");
});
afterAll(async () => {
  redis.disconnect();
  await dropPrefix(prefix);
  await cleanup();
});

/** A correctly signed identity JWT of about `bytes` bytes (a padding claim makes up the rest). */
async function identityOfSize(bytes: number): Promise<string> {
  const base = await mintIdentityAssertion({ keyFile, audience: AUDIENCE, extraClaims: { pad: "" } });
  const pad = "x".repeat(Math.floor(((bytes - base.length) * 3) / 4));
  return mintIdentityAssertion({ keyFile, audience: AUDIENCE, extraClaims: { pad } });
}

/** Three base64url parts that would take work to decode, `bytes` long in all. */
function junkJwt(bytes: number): string {
  return `eyJ${"A".repeat(bytes - 8)}.eyJ.AA`;
}

describe("tokens over 8 KiB are refused before parsing", () => {
  it("identity JWTs: a signed 9 KiB token is refused naming the limit; one under the limit verifies", async () => {
    const verifier = createIdentityVerifier({
      audience: AUDIENCE,
      maxTokenLifetime: 300,
      clockSkew: 30,
      trust: [{ kind: "agents", jwks: bundle, subjects: ["spiffe://example.org/agent/*"] }],
    });
    const big = await identityOfSize(9 * 1024);
    expect(big.length).toBeGreaterThan(MAX_TOKEN_BYTES);
    await expectRefusal(verifier.verify(big), big, `identity token is larger than the ${LIMIT}`);
    // Junk of that size gets the same answer: the length is checked before any decoding.
    const junk = junkJwt(9 * 1024);
    await expectRefusal(verifier.verify(junk), junk, `identity token is larger than the ${LIMIT}`);
    const fits = await identityOfSize(MAX_TOKEN_BYTES - 100);
    expect(fits.length).toBeLessThanOrEqual(MAX_TOKEN_BYTES);
    expect((await verifier.verify(fits)).subject).toBe(ID);
  });

  it("lease tokens and DPoP proofs over the limit are refused naming it", async () => {
    const tokens = createLeaseTokenService({
      keys: await loadLeaseTokenKeys({ file: join(dir, "signing.jwk") }),
    });
    const junk = junkJwt(MAX_TOKEN_BYTES + 1);
    await expectRefusal(tokens.verify(junk), junk, `lease token is larger than the ${LIMIT}`);
    const dpop = createDpopVerifier({ replay: redis, prefix });
    await expectRefusal(
      dpop.verify({ proof: junk, htm: "GET", htu: "http://127.0.0.1:7733/v1/leases" }),
      junk,
      `DPoP proof is larger than the ${LIMIT}`,
    );
  });
});
