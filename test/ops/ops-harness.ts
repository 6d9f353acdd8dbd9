import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { configSchema, type OpsConfig, opsConfigSchema, parseConfig } from "../../sidecar/config.js";
import { LeaseEventChannel } from "../../sidecar/events/index.js";
import { type AttachedOps, attachOps, createMetrics } from "../../sidecar/ops/index.js";
import { LeaseStore, loadLeaseMacKey } from "../../sidecar/leases/index.js";
import { VaultStore } from "../../sidecar/secrets/index.js";
import { createLogger } from "../../sidecar/logger.js";
import { createSidecar, type Sidecar } from "../../sidecar/wire.js";
import { dropPrefix, REDIS_URL, testPrefix } from "../support/redis.js";
import { useVault, type VaultHandle } from "../support/vault.js";

export interface OpsHarness {
  readonly url: string;
  readonly port: number;
  readonly adminToken: string;
  readonly prefix: string;
  readonly sidecar: Sidecar;
  readonly store: LeaseStore;
  /** Publishes lease events on the cluster stream, as a sidecar does. */
  readonly events: LeaseEventChannel;
  readonly redis: Redis;
  /** The ops layer this harness attached; undefined when wire.ts attaches it already. */
  readonly ops: AttachedOps | undefined;
  close(): Promise<void>;
}

/**
 * A real sidecar in this process (createSidecar: Redis under a test prefix, the Vault dev
 * server, no background loops) with the ops layer attached (by wire.ts, or here the way wire.ts
 * does it when it does not yet), listening on a free port. Leases are made directly in the
 * lease store, so no target database is needed.
 */
export async function startOpsHarness(name: string, ops: Partial<OpsConfig> = {}): Promise<OpsHarness> {
  const dir = await mkdtemp(join(tmpdir(), `leasehold-ops-${name}-`));
  const prefix = testPrefix(`ops-${name}`);
  const vault: VaultHandle = await useVault();
  const opsConfig = opsConfigSchema.parse({ heartbeatMs: 200, ...ops });
  const wired = "ops" in configSchema.shape;
  const config = parseConfig(
    {
      ...(wired ? { ops: opsConfig } : {}),
      redis: { url: REDIS_URL, prefix },
      vault: {
        address: vault.address,
        auth: { method: "token", token: vault.token },
        mount: vault.mount,
        prefix: `leasehold-ops-${prefix.split(":")[2]}`,
      },
      identity: { trust: [] },
      policy: { file: null },
      log: { level: "silent" },
    },
    dir,
  );
  const log = createLogger("silent");
  const sidecar = await createSidecar({ config, log, background: false, checkResponses: true });
  const redis = new Redis(REDIS_URL);
  // The sidecar's own key (from the same Vault prefix), so it accepts the leases made here.
  const vaultStore = new VaultStore({ ...config.vault, log });
  const store = new LeaseStore({ redis, prefix, macKey: await loadLeaseMacKey(vaultStore) });
  vaultStore.close();
  const events = new LeaseEventChannel({ redis, prefix, log });
  const attached = sidecar.app.hasRoute({ method: "GET", url: "/metrics" })
    ? undefined
    : await attachOps(sidecar.app, {
        config: opsConfig,
        adminToken: sidecar.adminToken,
        leaseService: sidecar.leaseService,
        resourceService: sidecar.resourceService,
        leases: store,
        events,
        redis,
        prefix,
        metrics: createMetrics({ processMetrics: false }),
        log,
        sidecarId: `test-${name}`,
        background: false,
      });
  await sidecar.app.listen({ host: "127.0.0.1", port: 0 });
  const address = sidecar.app.server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    adminToken: sidecar.adminToken,
    prefix,
    sidecar,
    store,
    events,
    redis,
    ops: attached,
    close: async () => {
      await attached?.stop();
      await sidecar.close();
      await dropPrefix(prefix);
      redis.disconnect();
      await vault.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Puts accounts under management and leases one, directly in the lease store. */
export async function makeLease(
  { store, events }: Pick<OpsHarness, "store" | "events">,
  resource: string,
  account: string,
  agent: string,
  ttlMs: number,
): Promise<{ id: string; expiresAt: number }> {
  await store.syncPool(resource, [account], "available");
  const id = `lse_${Math.random().toString(36).slice(2, 14)}AAAA`;
  const got = await store.checkout(
    { id, resource, agent, task: { id: "TASK-7", description: "ops test" }, intent: { action: "read" } },
    ttlMs,
    ttlMs * 2,
  );
  if (!got.ok) throw new Error(`no free account in ${resource}`);
  await events.publish({ type: "issued", lease: got.lease });
  return { id, expiresAt: got.lease.expires_at };
}
