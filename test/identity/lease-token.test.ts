import { chmod, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { decodeJwt, decodeProtectedHeader } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createLeaseTokenService,
  generateAgentKey,
  type LeaseTokenInput,
  loadLeaseTokenKeys,
  mintIdentityAssertion,
} from "../../sidecar/identity/index.js";
import { expectRefusal, leaseTokenInput, tempDir } from "./support.js";

const T0 = 1_900_000_000_000;
let dir: string;
let cleanup: () => Promise<void>;

const lease = (overrides: Partial<LeaseTokenInput> = {}): LeaseTokenInput => leaseTokenInput(T0, overrides);

beforeAll(async () => {
  ({ dir, cleanup } = await tempDir("lease-token"));
});
afterAll(async () => {
  await cleanup();
});

describe("lease token keys", () => {
  it("creates the key file 0600 in a 0700 folder and reloads the same key", async () => {
    const file = join(dir, "create", "state", "signing.jwk");
    const keys = await loadLeaseTokenKeys({ file });
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect((await stat(join(dir, "create", "state"))).mode & 0o777).toBe(0o700);
    const again = await loadLeaseTokenKeys({ file });
    expect(again.currentKid).toBe(keys.currentKid);
    const pub = keys.publicJwks();
    expect(pub.keys).toHaveLength(1);
    expect(pub.keys[0]).toMatchObject({
      kty: "OKP",
      crv: "Ed25519",
      kid: keys.currentKid,
      alg: "EdDSA",
      use: "sig",
    });
    expect(pub.keys[0]).not.toHaveProperty("d");
  });

  it("refuses a key file readable by group or others", async () => {
    const file = join(dir, "perm", "signing.jwk");
    await loadLeaseTokenKeys({ file });
    for (const mode of [0o640, 0o604, 0o660]) {
      await chmod(file, mode);
      await expect(loadLeaseTokenKeys({ file })).rejects.toThrow(/readable by its owner only \(chmod 600/);
    }
  });

  it("refuses a key file that is not a key file", async () => {
    const file = join(dir, "garbage.jwk");
    await writeFile(file, JSON.stringify({ current: "k", keys: [] }), { mode: 0o600 });
    await expect(loadLeaseTokenKeys({ file })).rejects.toThrow(/invalid: "keys" must be a non-empty array/);
  });

  it("prunes keys retired longer than the retention period", async () => {
    const file = join(dir, "prune", "signing.jwk");
    let now = T0;
    const keys = await loadLeaseTokenKeys({ file, retentionSeconds: 3600, now: () => now });
    const first = keys.currentKid;
    const second = await keys.rotate();
    now += 1800_000;
    const third = await keys.rotate();
    expect(keys.kids()).toEqual([third, second, first]);
    now += 3601_000;
    const fourth = await keys.rotate();
    // first retired at T0 and second at T0+30min: both older than one hour now; third just retired.
    expect(keys.kids()).toEqual([fourth, third]);
    const onDisk = JSON.parse(await readFile(file, "utf8")) as { current: string; keys: { kid: string }[] };
    expect(onDisk.current).toBe(fourth);
    expect(onDisk.keys.map((k) => k.kid).sort()).toEqual([fourth, third].sort());
  });
});

describe("lease token service", () => {
  it("mints a token with the documented header and claims, and verifies it", async () => {
    const keys = await loadLeaseTokenKeys({ file: join(dir, "mint", "signing.jwk") });
    const service = createLeaseTokenService({ keys, now: () => T0 });
    const token = await service.mint(lease());
    expect(decodeProtectedHeader(token)).toEqual({ alg: "EdDSA", kid: keys.currentKid, typ: "lh-lease+jwt" });
    const claims = decodeJwt(token);
    expect(claims).toMatchObject({
      iss: "leasehold",
      sub: "spiffe://example.org/agent/reporter",
      aud: "leasehold:lease",
      lid: "lse_test_1",
      res: "orders-db",
      iat: T0 / 1000,
      exp: T0 / 1000 + 300,
    });
    expect(typeof claims.jti).toBe("string");
    await expect(service.verify(token)).resolves.toEqual({
      leaseId: "lse_test_1",
      agent: "spiffe://example.org/agent/reporter",
      resource: "orders-db",
      account: "app_orders_1",
      expiresAt: T0 + 300_000,
      kid: keys.currentKid,
    });
  });

  it("answers lease_expired for an expired token", async () => {
    const keys = await loadLeaseTokenKeys({ file: join(dir, "expired", "signing.jwk") });
    let now = T0;
    const service = createLeaseTokenService({ keys, now: () => now });
    const token = await service.mint(lease({ expiresAt: T0 + 10_000 }));
    now = T0 + 10_000;
    await expectRefusal(service.verify(token), token, "lease token expired", "lease_expired");
  });

  it("keeps verifying tokens of a rotated key and signs new ones with the new key", async () => {
    const keys = await loadLeaseTokenKeys({ file: join(dir, "rotate", "signing.jwk") });
    const service = createLeaseTokenService({ keys, now: () => T0 });
    const old = await service.mint(lease());
    const oldKid = keys.currentKid;
    const newKid = await keys.rotate();
    expect(newKid).not.toBe(oldKid);
    await expect(service.verify(old)).resolves.toMatchObject({ kid: oldKid });
    const fresh = await service.mint(lease());
    expect(decodeProtectedHeader(fresh).kid).toBe(newKid);
    await expect(service.verify(fresh)).resolves.toMatchObject({ kid: newKid });
    expect(keys.publicJwks().keys.map((k) => k.kid)).toEqual([newKid, oldKid]);
  });

  it("picks up a rotation done by another process through the key file", async () => {
    const file = join(dir, "shared-file", "signing.jwk");
    const serving = await loadLeaseTokenKeys({ file });
    const service = createLeaseTokenService({ keys: serving, now: () => T0 });
    const cli = await loadLeaseTokenKeys({ file });
    const rotated = await cli.rotate();
    const cliToken = await createLeaseTokenService({ keys: cli, now: () => T0 }).mint(lease());
    await expect(service.verify(cliToken)).resolves.toMatchObject({ kid: rotated });
    expect(decodeProtectedHeader(await service.mint(lease())).kid).toBe(rotated);
  });

  it("mints with a key rotated by another process once keyCheckIntervalMs has passed", async () => {
    const file = join(dir, "shared-interval", "signing.jwk");
    const serving = await loadLeaseTokenKeys({ file });
    const oldKid = serving.currentKid;
    const everyMint = createLeaseTokenService({ keys: serving, now: () => T0, keyCheckIntervalMs: 0 });
    const seldom = createLeaseTokenService({ keys: serving, now: () => T0, keyCheckIntervalMs: 3_600_000 });
    expect(decodeProtectedHeader(await seldom.mint(lease())).kid).toBe(oldKid);
    const rotated = await (await loadLeaseTokenKeys({ file })).rotate();
    expect(decodeProtectedHeader(await seldom.mint(lease())).kid).toBe(oldKid);
    expect(decodeProtectedHeader(await everyMint.mint(lease())).kid).toBe(rotated);
  });

  it("refuses an unknown kid unless the cluster resolver knows it", async () => {
    const mine = await loadLeaseTokenKeys({ file: join(dir, "unknown-a", "signing.jwk") });
    const theirs = await loadLeaseTokenKeys({ file: join(dir, "unknown-b", "signing.jwk") });
    const token = await createLeaseTokenService({ keys: theirs, now: () => T0 }).mint(lease());
    await expectRefusal(
      createLeaseTokenService({ keys: mine, now: () => T0 }).verify(token),
      token,
      "signing key unknown",
    );
    const resolved: string[] = [];
    const clustered = createLeaseTokenService({
      keys: mine,
      now: () => T0,
      extraKeyResolver: async (kid) => {
        resolved.push(kid);
        return theirs.publicJwks().keys.find((k) => k.kid === kid);
      },
    });
    await expect(clustered.verify(token)).resolves.toMatchObject({ kid: theirs.currentKid });
    expect(resolved).toEqual([theirs.currentKid]);
  });

  it("refuses tampered tokens, identity tokens and a foreign issuer", async () => {
    const keys = await loadLeaseTokenKeys({ file: join(dir, "tamper", "signing.jwk") });
    const service = createLeaseTokenService({ keys, now: () => T0 });
    const token = await service.mint(lease());
    const [h, , s] = token.split(".");
    const body = Buffer.from(JSON.stringify({ ...decodeJwt(token), res: "payroll-db" })).toString(
      "base64url",
    );
    const tampered = `${h}.${body}.${s}`;
    await expectRefusal(service.verify(tampered), tampered, "signature invalid");

    const { keyFile } = await generateAgentKey({
      id: "spiffe://example.org/agent/x",
      outDir: join(dir, "tamper-id"),
    });
    const identity = await mintIdentityAssertion({ keyFile, audience: "leasehold:lease", now: () => T0 });
    await expectRefusal(service.verify(identity), identity, "type not allowed");

    const other = createLeaseTokenService({ keys, issuer: "another-cluster", now: () => T0 });
    await expectRefusal(other.verify(token), token, "issuer mismatch");
    await expectRefusal(service.verify("nope"), "nope", "malformed");
  });
});
