import { LeaseholdError } from "../errors.js";
import type { LeaseRecord, LeaseStore } from "../leases/index.js";
import type { AccountRecord } from "../resources/types.js";
import { vaultPaths } from "../resources/vault-paths.js";
import type { RotationEngine } from "../rotation/index.js";
import type { SecretStore } from "../secrets/index.js";

export interface MarkLeasedDeps {
  readonly leases: LeaseStore;
  readonly secrets: SecretStore;
  readonly rotation: RotationEngine;
}

/**
 * Invariant I2 at checkout: marks the account leased in Vault (CAS on the version read) before
 * anything about its password leaves the sidecar, so even a total loss of Redis cannot make a
 * revealed account look clean. If Vault says the account is not clean, or the write's outcome is
 * unknown, the lease is ended and the account rotated; a Vault read failure gives it back clean.
 * @throws 409 resource_busy when the account is being rotated or changed meanwhile
 */
export async function markLeased(d: MarkLeasedDeps, lease: LeaseRecord): Promise<void> {
  const path = vaultPaths.account(lease.resource, lease.account);
  const giveBack = async (clean: boolean) => {
    await d.leases.end(lease.resource, lease.id, "revoked");
    if (clean) await d.leases.setAccountState(lease.resource, lease.account, "available");
    else
      d.rotation.schedule({ resource: lease.resource, account: lease.account, reason: "dirty at checkout" });
  };
  let entry: Awaited<ReturnType<SecretStore["read"]>> | null;
  try {
    entry = await d.secrets.read<AccountRecord>(path);
  } catch (err) {
    await giveBack(true);
    throw err;
  }
  const rec = entry?.data as AccountRecord | undefined;
  if (!entry || !rec || rec.state !== "available") {
    await giveBack(false);
    throw new LeaseholdError("resource_busy", `the account picked for "${lease.resource}" is being rotated`, {
      retryAfter: 1,
      detail: `vault state ${rec?.state ?? "missing"}`,
    });
  }
  try {
    // max_expires_at lets the reconciler rotate the account once the lease cannot be alive any
    // more, even if someone with Redis access took the lease out of the expiry schedule.
    const leased: AccountRecord = Object.assign({}, rec, {
      state: "leased" as const,
      lease_id: lease.id,
      max_expires_at: lease.max_expires_at,
    });
    await d.secrets.write(path, leased, entry.version);
  } catch (err) {
    // The write may have landed even if the answer was lost: treat the account as dirty.
    await giveBack(false);
    throw err instanceof LeaseholdError && err.code === "conflict"
      ? new LeaseholdError("resource_busy", `the account picked for "${lease.resource}" changed`, {
          retryAfter: 1,
        })
      : err;
  }
}
