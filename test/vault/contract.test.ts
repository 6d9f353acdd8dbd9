/**
 * The Vault behaviour leasehold relies on, exercised through node-vault 0.12 against
 * `useVault()`: the dev server here, or a real Vault when VAULT_ADDR + VAULT_TOKEN are
 * set. Every test uses its own paths, policies and tokens. Tests that need the dev
 * server's fault switches or start-up configuration are skipped against a real Vault.
 */
import { randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SignJWT, exportJWK, generateKeyPair } from "jose";
import NodeVault from "node-vault";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type VaultHandle, realVaultConfigured, useVault } from "../support/vault.js";
import { waitFor } from "../support/wait-for.js";
import { startVaultDev } from "../vault-dev/server.js";

const CAS_MISMATCH = "check-and-set parameter did not match the current version";
const CAS_REQUIRED = "check-and-set parameter required for this call";

interface KvWrite {
  data: { version: number; created_time: string; deletion_time: string; destroyed: boolean };
}
interface KvRead {
  data: {
    data: Record<string, unknown>;
    metadata: { version: number; deletion_time: string; destroyed: boolean };
  };
}
interface AuthResponse {
  auth: {
    client_token: string;
    policies: string[];
    lease_duration: number;
    renewable: boolean;
    orphan: boolean;
    metadata: Record<string, string> | null;
  };
  warnings: string[] | null;
}

let vault: VaultHandle;
const run = randomUUID().slice(0, 8);
const createdKeys: string[] = [];
const createdPolicies: string[] = [];
const createdTokens: string[] = [];

/** A fresh node-vault client; never config-level headers (node-vault's sticky-header pitfall). */
function client(token: string = vault.token, options: NodeVault.VaultOptions = {}): NodeVault.client {
  return NodeVault({ endpoint: vault.address, token, ...options });
}

/** A unique key under this run's prefix, deleted (metadata and all versions) after the file. */
function newKey(name: string): string {
  const key = `leasehold-contract-${run}/${name}-${randomUUID().slice(0, 8)}`;
  createdKeys.push(key);
  return key;
}

const dataPath = (key: string): string => `${vault.mount}/data/${key}`;
const metadataPath = (key: string): string => `${vault.mount}/metadata/${key}`;

/** A child of the test token, with a short TTL so nothing outlives the run on a real Vault. */
async function createToken(args: Record<string, unknown>): Promise<AuthResponse> {
  const parent = client();
  const res: AuthResponse = await parent.tokenCreate({ ttl: "10m", ...args });
  createdTokens.push(res.auth.client_token);
  return res;
}

async function createPolicy(rules: string): Promise<string> {
  const name = `leasehold-contract-${run}-${randomUUID().slice(0, 8)}`;
  await client().addPolicy({ name, rules });
  createdPolicies.push(name);
  return name;
}

beforeAll(async () => {
  vault = await useVault();
});

afterAll(async () => {
  const root = client();
  await Promise.allSettled([
    ...createdKeys.map((key) => root.delete(metadataPath(key))),
    ...createdPolicies.map((name) => root.removePolicy({ name })),
    ...createdTokens.map((token) => root.tokenRevoke({ token })),
  ]);
  await vault.close();
});

describe("KV v2 through node-vault", () => {
  it("creates with cas:0, updates with the version read, refuses stale versions", async () => {
    const vc = client();
    const key = newKey("cas");
    const first: KvWrite = await vc.write(dataPath(key), { data: { password: "one" }, options: { cas: 0 } });
    expect(first.data.version).toBe(1);
    await expect(
      vc.write(dataPath(key), { data: { password: "x" }, options: { cas: 0 } }),
    ).rejects.toMatchObject({
      message: CAS_MISMATCH,
      response: { statusCode: 400, body: { errors: [CAS_MISMATCH] } },
    });
    const second: KvWrite = await vc.write(dataPath(key), { data: { password: "two" }, options: { cas: 1 } });
    expect(second.data.version).toBe(2);
    await expect(
      vc.write(dataPath(key), { data: { password: "x" }, options: { cas: 1 } }),
    ).rejects.toMatchObject({
      response: { statusCode: 400 },
    });

    const latest: KvRead = await vc.read(dataPath(key));
    expect(latest.data.data).toEqual({ password: "two" });
    expect(latest.data.metadata).toMatchObject({ version: 2, deletion_time: "", destroyed: false });
    const old: KvRead = await vc.read(`${dataPath(key)}?version=1`);
    expect(old.data.data).toEqual({ password: "one" });
  });

  it("rejects a read of a missing secret with status 404 and an empty error list", async () => {
    await expect(client().read(dataPath(newKey("missing")))).rejects.toMatchObject({
      message: "Status 404",
      response: { statusCode: 404, body: { errors: [] } },
    });
  });

  it("enforces cas_required set in the key's metadata", async () => {
    const vc = client();
    const key = newKey("casreq");
    await vc.write(metadataPath(key), { cas_required: true });
    await expect(vc.write(dataPath(key), { data: { a: 1 } })).rejects.toMatchObject({
      message: CAS_REQUIRED,
      response: { statusCode: 400 },
    });
    const res: KvWrite = await vc.write(dataPath(key), { data: { a: 1 }, options: { cas: 0 } });
    expect(res.data.version).toBe(1);
  });

  it("lists direct children with the LIST verb and with GET ?list=1 (noCustomHTTPVerbs)", async () => {
    const vc = client();
    const folder = newKey("list");
    for (const name of ["b", "a", "a/nested"]) {
      createdKeys.push(`${folder}/${name}`);
      await vc.write(dataPath(`${folder}/${name}`), { data: { v: name } });
    }
    const viaList = await vc.list(metadataPath(folder));
    expect(viaList.data.keys).toEqual(["a", "a/", "b"]);
    const viaGet = await client(vault.token, { noCustomHTTPVerbs: true }).list(metadataPath(folder));
    expect(viaGet.data.keys).toEqual(["a", "a/", "b"]);
    await expect(vc.list(metadataPath(`${folder}/nothing-here`))).rejects.toMatchObject({
      response: { statusCode: 404 },
    });
  });

  it("patches with update() as a JSON merge patch into a new version", async () => {
    const vc = client();
    const key = newKey("patch");
    await vc.write(dataPath(key), { data: { username: "app", password: "old", note: "x" } });
    const patched: KvWrite = await vc.update(dataPath(key), { data: { password: "new", note: null } });
    expect(patched.data.version).toBe(2);
    const read: KvRead = await vc.read(dataPath(key));
    expect(read.data.data).toEqual({ username: "app", password: "new" });
    await expect(vc.update(dataPath(newKey("patch-missing")), { data: { a: 1 } })).rejects.toMatchObject({
      response: { statusCode: 404 },
    });
  });

  it("soft-deletes, undeletes and destroys versions", async () => {
    const vc = client();
    const key = newKey("delete");
    await vc.write(dataPath(key), { data: { v: 1 } });
    expect(await vc.delete(dataPath(key))).toBe("");
    const deleted = await vc.read(dataPath(key)).then(
      () => undefined,
      (err: { response?: { statusCode: number; body: KvRead } }) => err.response,
    );
    expect(deleted?.statusCode).toBe(404);
    expect(deleted?.body.data.data).toBeNull();
    expect(deleted?.body.data.metadata.deletion_time).not.toBe("");

    await vc.write(`${vault.mount}/undelete/${key}`, { versions: [1] });
    const back: KvRead = await vc.read(dataPath(key));
    expect(back.data.data).toEqual({ v: 1 });

    await vc.destroySecretVersions({ mount_point: vault.mount, path: key, versions: [1] });
    await expect(vc.read(dataPath(key))).rejects.toMatchObject({
      response: { statusCode: 404, body: { data: { data: null, metadata: { destroyed: true } } } },
    });
  });

  it("keeps custom metadata and prunes versions beyond max_versions", async () => {
    const vc = client();
    const key = newKey("meta");
    await vc.write(metadataPath(key), { max_versions: 2, custom_metadata: { owner: "leasehold" } });
    for (let i = 1; i <= 3; i++) await vc.write(dataPath(key), { data: { i } });
    const meta = await vc.read(metadataPath(key));
    expect(meta.data).toMatchObject({
      current_version: 3,
      oldest_version: 2,
      max_versions: 2,
      custom_metadata: { owner: "leasehold" },
    });
    expect(Object.keys(meta.data.versions).sort()).toEqual(["2", "3"]);
    await expect(vc.read(`${dataPath(key)}?version=1`)).rejects.toMatchObject({
      response: { statusCode: 404 },
    });
    const read: KvRead = await vc.read(dataPath(key));
    expect(read.data.data).toEqual({ i: 3 });
  });

  it("deletes metadata together with every version", async () => {
    const vc = client();
    const key = newKey("metadel");
    await vc.write(dataPath(key), { data: { v: 1 } });
    await vc.delete(metadataPath(key));
    await expect(vc.read(metadataPath(key))).rejects.toMatchObject({ response: { statusCode: 404 } });
    await expect(vc.read(dataPath(key))).rejects.toMatchObject({ response: { statusCode: 404 } });
  });

  it("answers a KV v1-style path with 404 and the invalid-path warning", async () => {
    await expect(client().read(`${vault.mount}/${newKey("v1style")}`)).rejects.toMatchObject({
      message: "Status 404",
      response: {
        statusCode: 404,
        body: { warnings: [expect.stringContaining("Invalid path for a versioned K/V secrets engine")] },
      },
    });
  });
});

describe("token auth through node-vault", () => {
  it("looks up its own token", async () => {
    const res = await client().tokenLookupSelf();
    expect(res.data.id).toBe(vault.token);
    expect(Array.isArray(res.data.policies)).toBe(true);
  });

  it("switches client.token to the child after tokenCreate (node-vault pitfall 2)", async () => {
    const vc = client();
    const res: AuthResponse = await vc.tokenCreate({ policies: ["default"], ttl: "10m" });
    createdTokens.push(res.auth.client_token);
    expect(vc.token).toBe(res.auth.client_token);
    expect(res.auth).toMatchObject({
      policies: ["default"],
      lease_duration: 600,
      renewable: true,
      orphan: false,
    });
    const lookup = await vc.tokenLookupSelf();
    expect(lookup.data.id).toBe(res.auth.client_token);
  });

  it("warns about unknown policies when creating a token", async () => {
    const unknown = `leasehold-contract-${run}-does-not-exist`;
    const res = await createToken({ policies: [unknown] });
    expect(res.warnings).toContain(`Policy "${unknown}" does not exist`);
    expect(res.auth.policies).toEqual(["default", unknown].sort());
  });

  it("lets a token read what its policy grants and denies the rest with 403", async () => {
    const allowedKey = newKey("acl-allowed");
    const hiddenKey = newKey("acl-hidden");
    const root = client();
    await root.write(dataPath(allowedKey), { data: { ok: true } });
    await root.write(dataPath(hiddenKey), { data: { ok: false } });
    const policy = await createPolicy(`path "${dataPath(allowedKey)}" {\n  capabilities = ["read"]\n}\n`);
    const { auth } = await createToken({ policies: [policy] });
    const limited = client(auth.client_token);
    const read: KvRead = await limited.read(dataPath(allowedKey));
    expect(read.data.data).toEqual({ ok: true });
    const denied = limited.read(dataPath(hiddenKey));
    await expect(denied).rejects.toMatchObject({ response: { statusCode: 403 } });
    await expect(denied).rejects.toThrow(/permission denied/);
    await expect(limited.write(dataPath(allowedKey), { data: { ok: 1 } })).rejects.toMatchObject({
      response: { statusCode: 403 },
    });
  });

  it("renews a renewable token with renew-self; a token without a lease cannot be renewed", async () => {
    const { auth } = await createToken({ policies: ["default"], ttl: "10m" });
    const vc = client(auth.client_token);
    const renewed: AuthResponse = await vc.tokenRenewSelf({ increment: "20m" });
    expect(renewed.auth.client_token).toBe(auth.client_token);
    expect(renewed.auth.renewable).toBe(true);
    expect(renewed.auth.lease_duration).toBe(1200);
    const lookup = await vc.tokenLookupSelf();
    expect(lookup.data.ttl).toBeGreaterThan(600);

    // The test token is a root token (a dev server's, or a real Vault's VAULT_TOKEN): no lease.
    await expect(client().tokenRenewSelf()).rejects.toMatchObject({
      message: "invalid lease ID",
      response: { statusCode: 400 },
    });
  });

  it("refuses a token after revoke-self", async () => {
    const { auth } = await createToken({ policies: ["default"] });
    const vc = client(auth.client_token);
    expect(await vc.tokenRevokeSelf()).toBe("");
    await expect(vc.tokenLookupSelf()).rejects.toMatchObject({ response: { statusCode: 403 } });
  });

  it("refuses a token once its num_uses are used up", async () => {
    const { auth } = await createToken({ policies: ["default"], num_uses: 2 });
    const vc = client(auth.client_token);
    await vc.tokenLookupSelf();
    await vc.tokenLookupSelf();
    const third = vc.tokenLookupSelf();
    await expect(third).rejects.toMatchObject({ response: { statusCode: 403 } });
    await expect(third).rejects.toThrow(/permission denied/);
  });

  it("refuses a token after its TTL has passed", async () => {
    const { auth } = await createToken({ policies: ["default"], ttl: "1s" });
    // The server's own clock runs the TTL out: wait for the refusal that follows, not for a guess.
    await waitFor("the token to be refused", () =>
      client(auth.client_token)
        .tokenLookupSelf()
        .then(
          () => false,
          () => true,
        ),
    );
    await expect(client(auth.client_token).tokenLookupSelf()).rejects.toMatchObject({
      response: { statusCode: 403 },
    });
  });

  it("denies a request without a token with 403 permission denied", async () => {
    await expect(client("").read(dataPath(newKey("anon")))).rejects.toMatchObject({
      message: "permission denied",
      response: { statusCode: 403 },
    });
  });

  it("accepts Authorization: Bearer instead of X-Vault-Token", async () => {
    const res = await fetch(`${vault.address}/v1/auth/token/lookup-self`, {
      headers: { Authorization: `Bearer ${vault.token}` },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("cache-control")).toBe("no-store");
    const body = (await res.json()) as { data: { id: string } };
    expect(body.data.id).toBe(vault.token);
  });
});

describe("sys endpoints through node-vault", () => {
  it("reports health and seal status of an unsealed, initialized server", async () => {
    const vc = client();
    expect(await vc.health()).toMatchObject({ initialized: true, sealed: false, standby: false });
    expect(await vc.status()).toMatchObject({ initialized: true, sealed: false });
  });
});

describe.skipIf(realVaultConfigured())(
  "dev server only (skipped against a real Vault: fault switches and start-up config)",
  () => {
    it("seals and unseals: logical paths answer 503, health resolves with sealed:true", async () => {
      const dev = await startVaultDev();
      try {
        const vc = NodeVault({ endpoint: dev.address, token: dev.rootToken });
        await vc.write("secret/data/sealed-test", { data: { v: 1 } });
        dev.seal();
        expect(await vc.health()).toMatchObject({ sealed: true, standby: true });
        expect(await vc.status()).toMatchObject({ sealed: true });
        await expect(vc.read("secret/data/sealed-test")).rejects.toMatchObject({
          message: "Vault is sealed",
          response: { statusCode: 503 },
        });
        dev.unseal();
        const read: KvRead = await vc.read("secret/data/sealed-test");
        expect(read.data.data).toEqual({ v: 1 });
      } finally {
        await dev.close();
      }
    });

    it("adds latency: a client timeout shorter than the latency fails, no latency succeeds", async () => {
      const dev = await startVaultDev();
      try {
        const impatient = NodeVault({
          endpoint: dev.address,
          token: dev.rootToken,
          requestOptions: { timeout: 100 },
        });
        dev.setLatency(1500);
        await expect(impatient.tokenLookupSelf()).rejects.toMatchObject({ code: "ECONNABORTED" });
        dev.setLatency(0);
        const res = await impatient.tokenLookupSelf();
        expect(res.data.id).toBe(dev.rootToken);
      } finally {
        await dev.close();
      }
    });

    it("drops connections: requests (LIST included) fail without a response until switched off", async () => {
      const dev = await startVaultDev();
      try {
        const vc = NodeVault({ endpoint: dev.address, token: dev.rootToken });
        await vc.write("secret/data/drop/a", { data: { v: 1 } });
        dev.setDropConnections(true);
        const read = await vc.read("secret/data/drop/a").then(
          () => "resolved",
          (err: { code?: string; response?: unknown }) => err,
        );
        expect(read).toMatchObject({ code: "ECONNRESET" });
        expect(read).not.toHaveProperty("response");
        await expect(vc.list("secret/metadata/drop")).rejects.toMatchObject({ code: "ECONNRESET" });
        dev.setDropConnections(false);
        expect((await vc.list("secret/metadata/drop")).data.keys).toEqual(["a"]);
      } finally {
        await dev.close();
      }
    });

    it("keeps secrets, tokens and policies across a restart with persistFile", async () => {
      const dir = await mkdtemp(join(tmpdir(), "vault-dev-persist-"));
      const persistFile = join(dir, "state.json");
      try {
        const first = await startVaultDev({ persistFile, rootToken: "persist-root" });
        const vc = NodeVault({ endpoint: first.address, token: first.rootToken });
        await vc.write("secret/data/kept", { data: { password: "p1" } });
        await vc.write("secret/data/kept", { data: { password: "p2" }, options: { cas: 1 } });
        await vc.addPolicy({
          name: "kept-reader",
          rules: 'path "secret/data/kept" { capabilities = ["read"] }',
        });
        const child: AuthResponse = await vc.tokenCreate({ policies: ["kept-reader"], ttl: "1h" });
        await first.close();

        const second = await startVaultDev({ persistFile, rootToken: "persist-root" });
        try {
          const reader = NodeVault({ endpoint: second.address, token: child.auth.client_token });
          const read: KvRead = await reader.read("secret/data/kept");
          expect(read.data.data).toEqual({ password: "p2" });
          expect(read.data.metadata.version).toBe(2);
          await expect(reader.read("secret/data/other")).rejects.toMatchObject({
            response: { statusCode: 403 },
          });
        } finally {
          await second.close();
        }
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });

    it("logs in with AppRole: node-vault switches to the login token; a stale token is ignored", async () => {
      const dev = await startVaultDev({
        policies: { "app-kv": 'path "secret/data/app/*" { capabilities = ["read", "create", "update"] }' },
        approleRoles: {
          app: { roleId: "app-role-id", secretId: "app-secret-id", policies: ["app-kv"], tokenTtl: 900 },
        },
      });
      try {
        const vc = NodeVault({ endpoint: dev.address, token: "hvs.stale-token" });
        const login: AuthResponse = await vc.approleLogin({
          role_id: "app-role-id",
          secret_id: "app-secret-id",
        });
        expect(vc.token).toBe(login.auth.client_token);
        expect(login.auth).toMatchObject({
          policies: ["app-kv", "default"],
          lease_duration: 900,
          orphan: true,
          metadata: { role_name: "app" },
        });
        await vc.write("secret/data/app/db", { data: { v: 1 } });
        await expect(vc.read("secret/data/other")).rejects.toMatchObject({ response: { statusCode: 403 } });
        await expect(
          NodeVault({ endpoint: dev.address }).approleLogin({ role_id: "app-role-id", secret_id: "wrong" }),
        ).rejects.toMatchObject({ message: "invalid secret id", response: { statusCode: 400 } });
      } finally {
        await dev.close();
      }
    });

    it("logs in with a JWT signed by a key of the role's JWKS, checking audience and subject", async () => {
      const { publicKey, privateKey } = await generateKeyPair("ES256");
      const jwk = { ...(await exportJWK(publicKey)), kid: "k1", alg: "ES256", use: "sig" };
      const dev = await startVaultDev({
        policies: { "agent-kv": 'path "secret/data/agents/*" { capabilities = ["read"] }' },
        jwtRoles: {
          agent: {
            jwks: { keys: [jwk] },
            boundAudiences: ["leasehold"],
            boundSubject: "spiffe://example.org/agent/a1",
            policies: ["agent-kv"],
            tokenTtl: 300,
          },
        },
      });
      const sign = (claims: { aud: string; sub: string }): Promise<string> =>
        new SignJWT({})
          .setProtectedHeader({ alg: "ES256", kid: "k1" })
          .setAudience(claims.aud)
          .setSubject(claims.sub)
          .setIssuedAt()
          .setExpirationTime("5m")
          .sign(privateKey);
      try {
        const vc = NodeVault({ endpoint: dev.address, token: "hvs.stale-token" });
        const jwt = await sign({ aud: "leasehold", sub: "spiffe://example.org/agent/a1" });
        const login: AuthResponse = await vc.jwtLogin({ role: "agent", jwt });
        expect(vc.token).toBe(login.auth.client_token);
        expect(login.auth).toMatchObject({
          policies: ["agent-kv", "default"],
          lease_duration: 300,
          orphan: true,
          metadata: { role: "agent" },
        });
        const lookup = await vc.tokenLookupSelf();
        expect(lookup.data.display_name).toBe("jwt-spiffe://example.org/agent/a1");

        const anon = NodeVault({ endpoint: dev.address });
        const wrongAudience = await sign({ aud: "someone-else", sub: "spiffe://example.org/agent/a1" });
        await expect(anon.jwtLogin({ role: "agent", jwt: wrongAudience })).rejects.toMatchObject({
          message: expect.stringMatching(/^error validating token: /),
          response: { statusCode: 400 },
        });
        const wrongSubject = await sign({ aud: "leasehold", sub: "spiffe://example.org/agent/other" });
        await expect(anon.jwtLogin({ role: "agent", jwt: wrongSubject })).rejects.toMatchObject({
          response: { statusCode: 400 },
        });
        const { privateKey: otherKey } = await generateKeyPair("ES256");
        const forged = await new SignJWT({})
          .setProtectedHeader({ alg: "ES256", kid: "k1" })
          .setAudience("leasehold")
          .setSubject("spiffe://example.org/agent/a1")
          .setExpirationTime("5m")
          .sign(otherKey);
        await expect(anon.jwtLogin({ role: "agent", jwt: forged })).rejects.toMatchObject({
          response: { statusCode: 400 },
        });
        await expect(anon.jwtLogin({ role: "nobody", jwt })).rejects.toMatchObject({
          message: 'role "nobody" could not be found',
        });
      } finally {
        await dev.close();
      }
    });
  },
);
