import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ClusterKeys, loadLeaseTokenKeys } from "../../sidecar/identity/index.js";
import { createLogger } from "../../sidecar/logger.js";
import { VaultStore } from "../../sidecar/secrets/index.js";
import { repoRoot } from "../support/sidecar-process.js";
import { useVault, type VaultHandle, vaultCall } from "../support/vault.js";
import { waitFor } from "../support/wait-for.js";
import { type InProcessSidecar, startInProcessSidecar } from "./in-process-sidecar.js";

/**
 * deploy/vault-policy.hcl (the policy docs/operations.md tells operators to write) is enough for
 * the whole lifecycle, and grants nothing outside the sidecar's mount and prefix.
 */
describe("the Vault policy of deploy/vault-policy.hcl", () => {
  let vault: VaultHandle;
  let lh: InProcessSidecar;
  let token: string;
  const prefix = `leasehold-policy-${randomBytes(4).toString("hex")}`;
  const policyName = `leasehold-test-${randomBytes(4).toString("hex")}`;

  beforeAll(async () => {
    vault = await useVault();
    const hcl = (await readFile(join(repoRoot(), "deploy/vault-policy.hcl"), "utf8"))
      .replaceAll('"secret/', `"${vault.mount}/`)
      .replaceAll("/leasehold/", `/${prefix}/`);
    expect(hcl).toContain(`"${vault.mount}/data/${prefix}/*"`);
    const put = await vaultCall(vault, vault.token, "PUT", `sys/policy/${policyName}`, { policy: hcl });
    expect(put.status).toBeLessThan(300);
    const created = await vaultCall(vault, vault.token, "POST", "auth/token/create", {
      policies: [policyName],
      ttl: "1h",
    });
    token = String((created.json.auth as { client_token?: string } | undefined)?.client_token);
    lh = await startInProcessSidecar({ vault: { ...vault, token }, vaultPrefix: prefix });
  });
  afterAll(async () => {
    await lh?.close();
    if (vault)
      await vaultCall(vault, vault.token, "DELETE", `sys/policy/${policyName}`).catch(() => undefined);
    await vault?.close();
  });

  it("is enough to register, check out, reveal, check in, rotate, verify and remove", async () => {
    const app = lh.sidecar.app;
    const admin = { authorization: `Bearer ${lh.sidecar.adminToken}`, "x-leasehold-request": "true" };
    const name = lh.resource;
    const put = await app.inject({
      method: "PUT",
      url: `/v1/resources/${name}`,
      headers: { ...admin, "content-type": "application/json" },
      payload: JSON.stringify(lh.registration),
    });
    expect(put.statusCode, put.body).toBe(201);
    expect((await app.inject({ method: "GET", url: "/readyz" })).json()).toMatchObject({
      checks: { vault: true },
    });
    const listed = await app.inject({ method: "GET", url: "/v1/resources", headers: admin });
    expect(listed.json().resources.map((r: { name: string }) => r.name)).toContain(name);

    const co = await app.inject({
      method: "POST",
      url: "/v1/checkout",
      headers: { authorization: `Bearer ${await lh.identity("a")}`, "content-type": "application/json" },
      payload: JSON.stringify({ resource: name, task: { id: "T-1" }, intent: { action: "read" }, ttl: 60 }),
    });
    expect(co.statusCode, co.body).toBe(201);
    const { lease, token: leaseToken } = co.json() as { lease: { id: string }; token: string };
    const auth = { authorization: `Bearer ${leaseToken}`, "x-leasehold-request": "true" };
    const cred = await app.inject({ method: "GET", url: `/v1/leases/${lease.id}/credential`, headers: auth });
    expect(cred.statusCode).toBe(200);
    const seen = (cred.json() as { password: string }).password;
    expect(
      (await app.inject({ method: "DELETE", url: `/v1/leases/${lease.id}`, headers: auth })).statusCode,
    ).toBe(202);

    let state = "";
    await waitFor(
      () => `the account to be rotated and available (last: ${state})`,
      async () => {
        const show = await app.inject({ method: "GET", url: `/v1/resources/${name}`, headers: admin });
        state = (show.json() as { accounts: Array<{ state: string }> }).accounts[0]?.state ?? "";
        return state === "available";
      },
    );
    expect(state).toBe("available");
    const record = await vaultCall(
      vault,
      vault.token,
      "GET",
      `${vault.mount}/data/${prefix}/resources/${name}/accounts/${String((lh.registration.accounts as string[])[0])}`,
    );
    const stored = (record.json.data as { data: { password: string; state: string } }).data;
    expect(stored.state).toBe("available");
    expect(stored.password).not.toBe(seen);

    const verify = await app.inject({ method: "POST", url: `/v1/resources/${name}/verify`, headers: admin });
    expect((verify.json() as { results: Array<{ ok: boolean }> }).results.every((r) => r.ok)).toBe(true);
    const rotate = await app.inject({ method: "POST", url: `/v1/resources/${name}/rotate`, headers: admin });
    expect((rotate.json() as { results: Array<{ status: string }> }).results.map((r) => r.status)).toEqual([
      "rotated",
    ]);
    const removed = await app.inject({ method: "DELETE", url: `/v1/resources/${name}`, headers: admin });
    expect(removed.statusCode, removed.body).toBe(200);
  });

  it("is enough to publish the cluster's lease-token keys in Vault and read the others'", async () => {
    const store = new VaultStore({
      address: vault.address,
      auth: { method: "token", token },
      mount: vault.mount,
      prefix,
      timeoutMs: 5_000,
      log: createLogger("silent"),
    });
    try {
      const keys = await loadLeaseTokenKeys({ file: join(lh.dir, "policy-cluster.jwk") });
      const kid = keys.publicJwks().keys[0]?.kid as string;
      await new ClusterKeys({ secrets: store }).publish(keys.publicJwks().keys);
      const reader = new ClusterKeys({ secrets: store });
      expect((await reader.resolve(kid))?.kid).toBe(kid);
      expect((await reader.all()).map((k) => k.kid)).toContain(kid);
    } finally {
      store.close();
    }
  });

  it("grants nothing outside the sidecar's mount and prefix", async () => {
    const other = `${vault.mount}/data/not-${prefix}/x`;
    expect((await vaultCall(vault, token, "POST", other, { data: { a: 1 } })).status).toBe(403);
    expect((await vaultCall(vault, token, "GET", other)).status).toBe(403);
    expect((await vaultCall(vault, token, "PUT", "sys/policy/escalate", { policy: "" })).status).toBe(403);
    expect((await vaultCall(vault, token, "GET", "auth/token/lookup-self")).status).toBe(200);
    const own = `${vault.mount}/data/${prefix}/probe`;
    expect((await vaultCall(vault, token, "POST", own, { data: { a: 1 } })).status).toBe(200);
  });
});
