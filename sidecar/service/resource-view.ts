import { LeaseholdError } from "../errors.js";
import type { AccountRecord, StoredRegistration } from "../resources/types.js";
import { vaultPaths } from "../resources/vault-paths.js";
import type { ResourceDeps } from "./resource-deps.js";

/** A registered resource as DBAs see it: its settings and each account's state, never a password. */
export interface ResourceView {
  readonly name: string;
  readonly adapter: string;
  readonly description?: string;
  readonly connection: Record<string, unknown>;
  readonly rotateWith: "admin" | "self";
  readonly reveal: boolean;
  readonly lease: { readonly defaultTtl: number; readonly maxTtl: number };
  readonly accounts: Array<{
    name: string;
    state: string;
    lease_id?: string;
    last_rotated_at?: string;
    failures?: number;
  }>;
}

/** The view of a registration with the given account lines. */
export function viewOf(reg: StoredRegistration, accounts: ResourceView["accounts"]): ResourceView {
  return {
    name: reg.name,
    adapter: reg.adapter,
    ...(reg.description === undefined ? {} : { description: reg.description }),
    connection: reg.connection,
    rotateWith: reg.rotateWith,
    reveal: reg.reveal,
    lease: reg.lease,
    accounts,
  };
}

/** The resource and each account's state (Vault's quarantine wins over Redis); 404 when unknown. */
export async function showResource(d: ResourceDeps, name: string): Promise<ResourceView> {
  const reg = await d.catalog.get(name);
  if (!reg) throw new LeaseholdError("not_found", `resource "${name}" is not registered`);
  const redis = new Map((await d.leases.accounts(name)).map((a) => [a.name, a]));
  const accounts: ResourceView["accounts"] = [];
  for (const account of reg.accounts) {
    const rec = (await d.secrets.read<AccountRecord>(vaultPaths.account(name, account)))?.data;
    const r = redis.get(account);
    const state = rec?.state === "quarantined" ? "quarantined" : (r?.state ?? rec?.state ?? "rotating");
    accounts.push({
      name: account,
      state,
      ...(r?.lease_id ? { lease_id: r.lease_id } : {}),
      ...(rec?.last_rotated_at ? { last_rotated_at: rec.last_rotated_at } : {}),
      ...(rec?.failures ? { failures: rec.failures } : {}),
    });
  }
  return viewOf(reg, accounts);
}

/**
 * Puts Redis' pool of a resource back in line with Vault after a registration was undone: every
 * listed account is in the pool, in the state its Vault record says (rotating when unsure).
 */
export async function restorePool(d: ResourceDeps, name: string, accounts: readonly string[]): Promise<void> {
  await d.leases.syncPool(name, accounts, "rotating");
  for (const account of accounts) {
    const rec = (await d.secrets.read<AccountRecord>(vaultPaths.account(name, account)))?.data;
    if (rec?.state === "available") await d.leases.setAccountState(name, account, "available");
    if (rec?.state === "quarantined") await d.leases.setAccountState(name, account, "quarantined", true);
  }
}
