import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startVaultDev, type VaultDevServer } from "../vault-dev/server.js";
import { StackClient } from "../support/e2e-client.js";
import { freePort } from "../support/free-port.js";
import { type Stack, startStack } from "../support/stack.js";
import type { VaultHandle } from "../support/vault.js";

/** The sidecar survives a sealed Vault and a Vault restart, with no lease leaked and no restart of its own. */

let dir: string;
let port: number;
let dev: VaultDevServer;
let stack: Stack;
let c: StackClient;
let admin: string;
const ROOT = "vault-faults-root";
const body = {
  resource: "orders-db",
  task: { id: "VAULT-1" },
  intent: { action: "read", tool: "psql" },
  ttl: 120,
};

async function bootVault(): Promise<void> {
  dev = await startVaultDev({ port, rootToken: ROOT, persistFile: join(dir, "vault.json") });
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "lh-vault-faults-"));
  port = await freePort();
  await bootVault();
  const handle: VaultHandle = {
    address: `http://127.0.0.1:${port}`,
    token: ROOT,
    mount: "secret",
    get dev() {
      return dev;
    },
    close: async () => undefined,
  };
  stack = await startStack({
    vault: handle,
    config: { rotation: { lockTtl: 1, reconcileInterval: 1, backoff: 0.3, maxBackoff: 1 } },
  });
  c = new StackClient(stack);
  admin = await c.adminToken();
  await stack.createRole("app_orders_1", "initial-pass-1234567");
  await c.registerPostgres("orders-db");
}, 120_000);

afterAll(async () => {
  await stack?.close();
  await dev?.close();
  await rm(dir, { recursive: true, force: true });
});

describe("Vault faults", () => {
  it("checkout while Vault is sealed: 503, no lease left behind, account still available afterwards", async () => {
    dev.seal();
    try {
      const r = await c.http("POST", "/v1/checkout", { token: await c.assertion("a"), body });
      expect(r.status).toBe(503);
      expect((r.json as { error: { code: string } }).error.code).toBe("upstream_unavailable");
      const leases = await c.http("GET", "/v1/leases", { token: admin });
      expect((leases.json as { leases: unknown[] }).leases).toHaveLength(0);
      expect((await c.http("GET", "/readyz")).status).toBe(503);
    } finally {
      dev.unseal();
    }
    await c.waitForAccounts("orders-db", "available");
    const ok = await c.checkoutAndReveal("a", body);
    await c.http("DELETE", `/v1/leases/${ok.id}`, { token: ok.token });
    await c.waitForAccounts("orders-db", "available");
  });

  it("Vault restarts (state persisted): the sidecar carries on without a restart", async () => {
    const before = await c.checkoutAndReveal("a", body);
    await dev.close();
    const during = await c.http("GET", `/v1/leases/${before.id}/credential`, { token: before.token });
    expect(during.status).toBe(503);
    await bootVault();
    const after = await c.http("GET", `/v1/leases/${before.id}/credential`, { token: before.token });
    expect(after.status).toBe(200);
    expect(after.json.password).toBe(before.password);
    expect((await c.http("DELETE", `/v1/leases/${before.id}`, { token: before.token })).status).toBe(202);
    await c.waitForAccounts("orders-db", "available");
    expect(await stack.canLogin("app_orders_1", before.password)).toBe(false);
  });

  it("no secret reached the logs", () => {
    const logs = stack.sidecar.output();
    for (const s of c.secrets) expect(logs.includes(s)).toBe(false);
  });
});
