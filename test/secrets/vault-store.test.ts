import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LeaseholdError } from "../../sidecar/errors.js";
import { createLogger } from "../../sidecar/logger.js";
import { type VaultAuth, VaultStore } from "../../sidecar/secrets/index.js";
import { waitFor, waitForClock } from "../support/wait-for.js";
import { startVaultDev, type VaultDevServer } from "../vault-dev/server.js";

const log = createLogger("silent");
const POLICY = `path "secret/data/lh/*" { capabilities = ["create", "read", "update", "delete"] }
path "secret/metadata/lh/*" { capabilities = ["read", "list", "delete"] }`;

let vault: VaultDevServer;
let dir: string;
let jwtFile: string;
const stores: VaultStore[] = [];

function store(
  auth: VaultAuth,
  extra: Partial<ConstructorParameters<typeof VaultStore>[0]> = {},
): VaultStore {
  const s = new VaultStore({
    address: vault.address,
    auth,
    mount: "secret",
    prefix: "lh",
    // Bounds a hang on a busy machine; the timeout test sets its own.
    timeoutMs: 5_000,
    log,
    ...extra,
  });
  stores.push(s);
  return s;
}

const path = () => ["t", randomBytes(4).toString("hex")];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "lh-secrets-"));
  const { publicKey, privateKey } = await generateKeyPair("EdDSA", { crv: "Ed25519" });
  const jwk = { ...(await exportJWK(publicKey)), kid: "k8s", alg: "EdDSA" };
  vault = await startVaultDev({
    rootToken: "root-for-secrets-test",
    policies: { leasehold: POLICY },
    approleRoles: {
      sidecar: { roleId: "role-1", secretId: "secret-1", policies: ["leasehold"], tokenTtl: 2 },
    },
    jwtRoles: {
      sidecar: { jwks: { keys: [jwk] }, boundAudiences: ["vault"], policies: ["leasehold"], tokenTtl: 60 },
    },
  });
  const jwt = await new SignJWT({})
    .setProtectedHeader({ alg: "EdDSA", kid: "k8s" })
    .setSubject("system:serviceaccount:agents:leasehold")
    .setAudience("vault")
    .setIssuedAt()
    .setExpirationTime("10m")
    .sign(privateKey);
  jwtFile = join(dir, "token");
  await writeFile(jwtFile, jwt);
});

afterAll(async () => {
  for (const s of stores) s.close();
  await vault.close();
  await rm(dir, { recursive: true, force: true });
});

describe("VaultStore (token auth)", () => {
  it("reads, writes with check-and-set, lists and removes", async () => {
    const s = store({ method: "token", token: vault.rootToken });
    const p = path();
    expect(await s.read(p)).toBeNull();
    expect(await s.write(p, { a: 1 }, 0)).toBe(1);
    expect(await s.read(p)).toEqual({ data: { a: 1 }, version: 1 });
    await expect(s.write(p, { a: 2 }, 0)).rejects.toMatchObject({ code: "conflict" });
    expect(await s.write(p, { a: 2 }, 1)).toBe(2);
    expect(await s.list(["t"])).toContain(p[1]);
    await s.remove(p);
    expect(await s.read(p)).toBeNull();
  });

  it("keeps odd key names intact (percent-encoded on the wire)", async () => {
    const s = store({ method: "token", token: vault.rootToken });
    const p = ["t", `app"; DROP x;-- ${randomBytes(2).toString("hex")}`];
    await s.write(p, { ok: true });
    expect((await s.read(p))?.data).toEqual({ ok: true });
    expect(await s.list(["t"])).toContain(p[1]);
  });

  it("fails closed when Vault is sealed, and recovers without a restart", async () => {
    const s = store({ method: "token", token: vault.rootToken });
    vault.seal();
    try {
      const err = await s.read(path()).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(LeaseholdError);
      expect((err as LeaseholdError).code).toBe("upstream_unavailable");
      expect(await s.ready()).toBe(false);
    } finally {
      vault.unseal();
    }
    expect(await s.ready()).toBe(true);
    expect(await s.read(path())).toBeNull();
  });

  it("gives up on a slow Vault within its timeout and retries (upstream_unavailable)", async () => {
    const s = store({ method: "token", token: vault.rootToken }, { timeoutMs: 100, retries: 1 });
    vault.setLatency(400);
    try {
      await expect(s.read(path())).rejects.toMatchObject({ code: "upstream_unavailable" });
    } finally {
      vault.setLatency(0);
    }
  });

  it("retries dropped connections, then reports upstream_unavailable", async () => {
    const s = store({ method: "token", token: vault.rootToken });
    vault.setDropConnections(true);
    try {
      await expect(s.write(path(), { x: 1 })).rejects.toMatchObject({ code: "upstream_unavailable" });
    } finally {
      vault.setDropConnections(false);
    }
    expect(await s.write(path(), { x: 1 })).toBe(1);
  });

  it("a refused token is upstream_unavailable, and a 4xx is never retried into success", async () => {
    const s = store({ method: "token", token: "not-a-token" });
    await expect(s.read(path())).rejects.toMatchObject({ code: "upstream_unavailable" });
    expect(await s.ready()).toBe(false);
  });
});

describe("VaultStore (AppRole and JWT auth)", () => {
  it("logs in with AppRole, renews its short token before it expires, and only sees its policy's paths", async () => {
    const s = store({ method: "approle", roleId: "role-1", secretId: "secret-1", mount: "approle" });
    const p = path();
    const loggedInBy = Date.now();
    await s.write(p, { v: 1 });
    await waitFor("the first token renewal", () => s.stats.renewals >= 1);
    // The dev server runs in this process, on this clock: past the first token's 2 s TTL.
    await waitForClock("the first token's TTL to run out", async () => Date.now(), loggedInBy + 2_000 + 1);
    expect((await s.read(p))?.data).toEqual({ v: 1 });
    expect(s.stats.logins).toBe(1);
    expect(s.stats.renewals).toBeGreaterThanOrEqual(1);
    const outside = new VaultStore({
      address: vault.address,
      auth: { method: "approle", roleId: "role-1", secretId: "secret-1", mount: "approle" },
      mount: "secret",
      prefix: "other",
      timeoutMs: 500,
      log,
    });
    stores.push(outside);
    await expect(outside.read(["x"])).rejects.toMatchObject({ code: "upstream_unavailable" });
  });

  it("a bad AppRole secret is refused", async () => {
    const s = store({ method: "approle", roleId: "role-1", secretId: "wrong", mount: "approle" });
    await expect(s.read(path())).rejects.toBeInstanceOf(LeaseholdError);
    expect(await s.ready()).toBe(false);
  });

  it("logs in with a JWT from a file (a Kubernetes service-account token)", async () => {
    const s = store({ method: "jwt", role: "sidecar", jwtFile, mount: "jwt" });
    const p = path();
    await s.write(p, { k: "v" });
    expect((await s.read(p))?.data).toEqual({ k: "v" });
    expect(await s.ready()).toBe(true);
  });
});
