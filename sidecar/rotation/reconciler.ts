import type { LeaseStore } from "../leases/index.js";
import type { Logger } from "../logger.js";
import type { ResourceCatalog } from "../resources/catalog.js";
import type { AccountRecord, StoredRegistration } from "../resources/types.js";
import { vaultPaths } from "../resources/vault-paths.js";
import type { SecretStore } from "../secrets/index.js";
import type { RotationEngine } from "./rotation-engine.js";

export interface ReconcilerOptions {
  secrets: SecretStore;
  leases: LeaseStore;
  catalog: ResourceCatalog;
  rotation: RotationEngine;
  log: Logger;
}

/**
 * Makes Redis agree with Vault, which is the truth about dirty accounts: an account that Vault
 * says was leased, with no live lease in Redis, or left rotating, is rotated before anyone gets it
 * (even after Redis lost everything).
 */
export class Reconciler {
  constructor(private readonly o: ReconcilerOptions) {}

  async reconcileAll(): Promise<void> {
    for (const reg of await this.o.catalog.load()) {
      await this.reconcileResource(reg).catch((err: unknown) =>
        this.o.log.warn({ resource: reg.name, err: { message: (err as Error).message } }, "reconcile failed"),
      );
    }
  }

  async reconcileResource(reg: StoredRegistration): Promise<void> {
    const redisStates = new Map((await this.o.leases.accounts(reg.name)).map((a) => [a.name, a]));
    if (redisStates.size === 0) await this.o.leases.syncPool(reg.name, [], "rotating");
    for (const account of reg.accounts) {
      const entry = await this.o.secrets.read<AccountRecord>(vaultPaths.account(reg.name, account));
      if (!entry) continue;
      const rec = entry.data;
      const inRedis = redisStates.get(account);
      if (rec.state === "available") {
        if (!inRedis || inRedis.state === "rotating") {
          await this.o.leases.setAccountState(reg.name, account, "available");
        }
        continue;
      }
      if (rec.state === "quarantined") {
        if (inRedis?.state !== "quarantined")
          await this.o.leases.setAccountState(reg.name, account, "quarantined", true);
        continue;
      }
      if (rec.state === "leased" && rec.lease_id) {
        const lease = await this.o.leases.get(reg.name, rec.lease_id);
        if (lease?.state === "active") continue;
      }
      if (rec.next_attempt_at && Date.parse(rec.next_attempt_at) > Date.now()) {
        if (!inRedis) await this.o.leases.setAccountState(reg.name, account, "rotating");
        continue;
      }
      if (inRedis?.state !== "leased") await this.o.leases.setAccountState(reg.name, account, "rotating");
      await this.o.rotation.rotate({
        resource: reg.name,
        account,
        reason: "reconcile",
        leaseId: rec.lease_id,
      });
    }
  }
}
