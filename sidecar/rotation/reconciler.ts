import type { LeaseStore } from "../leases/index.js";
import type { Logger } from "../logger.js";
import type { ResourceCatalog } from "../resources/catalog.js";
import type { AccountRecord, StoredRegistration } from "../resources/types.js";
import { vaultPaths } from "../resources/vault-paths.js";
import type { SecretStore } from "../secrets/index.js";
import type { RotationEngine } from "./rotation-engine.js";
import { logText } from "../util/dependency-error.js";

export interface ReconcilerOptions {
  secrets: SecretStore;
  leases: LeaseStore;
  catalog: ResourceCatalog;
  rotation: RotationEngine;
  log: Logger;
  /**
   * How long past a lease's maximum expiry recorded in Vault the account waits before it is
   * rotated whatever Redis says, ms (covers clock skew between Redis and this host). @default 2000
   */
  maxExpiryGraceMs?: number;
  /**
   * The cluster identity, checked before each pass. While this Redis is not confirmed to be the
   * cluster's, a pass writes nothing to Redis and rotates only accounts whose recorded lease is
   * over (past its maximum expiry) or that were left rotating. Absent: always whole.
   */
  cluster?: { check(): Promise<{ status: string }> } | undefined;
}

/**
 * Makes Redis agree with Vault, which is the truth about dirty accounts: an account that Vault
 * says was leased, with no live lease in Redis, or left rotating, is rotated before anyone gets it
 * (even after Redis lost everything). An account Vault records as leased is rotated once the
 * lease's maximum expiry recorded there has passed, whatever Redis says: taking a lease out of
 * Redis' expiry schedule cannot keep a password alive past it.
 */
export class Reconciler {
  constructor(private readonly o: ReconcilerOptions) {}

  async reconcileAll(): Promise<void> {
    const whole = this.o.cluster ? (await this.o.cluster.check()).status === "ok" : true;
    for (const reg of await this.o.catalog.load()) {
      const pass = whole ? this.reconcileResource(reg) : this.reconcileHeld(reg);
      await pass.catch((err: unknown) =>
        this.o.log.warn({ resource: reg.name, err: { message: logText(err) } }, "reconcile failed"),
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
      if (rec.state === "leased" && (await this.leaseStillHolds(reg.name, rec))) continue;
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

  /**
   * The pass of a sidecar whose Redis is not confirmed to be the cluster's (cluster_mismatch):
   * Redis is left alone, and an account Vault records as leased is rotated only once its
   * recorded lease is over, so a lease alive in the real cluster's Redis keeps its password.
   */
  private async reconcileHeld(reg: StoredRegistration): Promise<void> {
    const grace = this.o.maxExpiryGraceMs ?? 2_000;
    for (const account of reg.accounts) {
      const rec = (await this.o.secrets.read<AccountRecord>(vaultPaths.account(reg.name, account)))?.data;
      if (!rec || rec.state === "available" || rec.state === "quarantined") continue;
      if (rec.next_attempt_at && Date.parse(rec.next_attempt_at) > Date.now()) continue;
      const max = rec.max_expires_at;
      const over = typeof max === "number" && Date.now() > max + grace;
      if (rec.state === "leased" && !over) {
        this.o.log.info(
          { resource: reg.name, account, lease_id: rec.lease_id, max_expires_at: max },
          "account held: vault records it leased and this redis is not confirmed to be the cluster's; it is rotated once the recorded lease is over",
        );
        continue;
      }
      await this.o.rotation.rotate({
        resource: reg.name,
        account,
        reason: "reconcile",
        leaseId: rec.lease_id,
      });
    }
  }

  /**
   * True while the lease an account is recorded leased to may still be in use. Past the maximum
   * expiry recorded in Vault it is not, even if Redis shows it active: it is ended in Redis too,
   * so its token is refused from now on. Records without max_expires_at (written before it
   * existed) trust Redis as before.
   */
  private async leaseStillHolds(resource: string, rec: AccountRecord): Promise<boolean> {
    if (!rec.lease_id) return false;
    const { lease, intact } = await this.o.leases.getVerified(resource, rec.lease_id);
    const max = rec.max_expires_at;
    const overdue = typeof max === "number" && Date.now() > max + (this.o.maxExpiryGraceMs ?? 2_000);
    // A record that fails its MAC holds nothing (I4: its token is refused anyway).
    if (lease?.state !== "active" || !intact) return false;
    if (!overdue) return true;
    this.o.log.warn(
      { resource, account: rec.username, lease_id: rec.lease_id },
      "lease past its maximum expiry recorded in vault is still active in redis: ending it and rotating",
    );
    await this.o.leases.end(resource, rec.lease_id, "expired");
    return false;
  }
}
