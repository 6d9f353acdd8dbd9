import { createHash } from "node:crypto";
import { LeaseholdError } from "../errors.js";
import type { SecretStore } from "../secrets/index.js";
import { vaultPaths } from "./vault-paths.js";

/** Who manages one account on one target: an entry of the ownership index in Vault. */
export interface OwnerEntry {
  /** The resource that manages the account. */
  readonly resource: string;
  /** The account's name in that resource's registration. */
  readonly account: string;
  /** The account as the target knows it (no secret): what the entry's key is the hash of. */
  readonly identity: string;
}

/** The outcome of a claim: taken (or already this resource's), or owned by someone else. */
export type ClaimResult =
  | { readonly ok: true /** False when the entry was there already. */; readonly created: boolean }
  | { readonly ok: false; readonly owner: OwnerEntry };

/** The Vault key of an account's identity: SHA-256 in hex, so no target detail shapes a path. */
export function ownerKey(identity: string): string {
  return createHash("sha256").update(identity, "utf8").digest("hex");
}

/**
 * The one-owner-per-account index, kept in Vault (the truth; Redis knows nothing of it). An
 * entry is created with CAS 0, so of two registrations racing for one account exactly one wins.
 */
export class OwnershipIndex {
  constructor(private readonly secrets: SecretStore) {}

  /** The entry for an account identity, or null when no resource manages it. */
  async owner(identity: string): Promise<OwnerEntry | null> {
    const entry = await this.secrets.read<OwnerEntry>(vaultPaths.owner(ownerKey(identity)));
    return entry?.data ?? null;
  }

  /**
   * Takes the account for `resource`. Already this resource's (the same account name): ok,
   * nothing written. Owned by another resource, or by another account name of this one: the
   * owner, nothing written.
   */
  async claim(entry: OwnerEntry): Promise<ClaimResult> {
    const path = vaultPaths.owner(ownerKey(entry.identity));
    for (let attempt = 0; attempt < 3; attempt++) {
      const cur = await this.secrets.read<OwnerEntry>(path);
      if (cur) {
        const same = cur.data.resource === entry.resource && cur.data.account === entry.account;
        return same ? { ok: true, created: false } : { ok: false, owner: cur.data };
      }
      try {
        await this.secrets.write(path, { ...entry }, 0);
        return { ok: true, created: true };
      } catch (err) {
        // Someone created it between the read and the write: read who won.
        if (!(err instanceof LeaseholdError && err.code === "conflict")) throw err;
      }
    }
    throw new LeaseholdError("conflict", `the ownership entry of account ${entry.account} keeps changing`);
  }

  /** Gives the account up, only if `resource` holds it; true when an entry was removed. */
  async release(identity: string, resource: string): Promise<boolean> {
    const path = vaultPaths.owner(ownerKey(identity));
    const cur = await this.secrets.read<OwnerEntry>(path);
    if (cur?.data.resource !== resource) return false;
    await this.secrets.remove(path);
    return true;
  }
}
