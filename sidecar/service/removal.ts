import { AdapterError } from "../../adapters/adapter.js";
import { LeaseholdError } from "../errors.js";
import type { AccountRecord, StoredRegistration } from "../resources/types.js";
import { vaultPaths } from "../resources/vault-paths.js";
import type { RotationOutcome } from "../rotation/index.js";
import { adapterContext, type ResourceDeps, storedIdentity } from "./resource-deps.js";

/**
 * What state an account's password was left in by a removal: `rotated` (the new one is in
 * Vault), `unchanged` (no lease saw it since its last rotation), `quarantined` (left as is, with
 * the last error), `gone` (the target no longer has the account, or no longer lets the admin
 * change it), `busy` (another rotation holds it: still the password it had), `failed` (the last
 * rotation failed: still the password it had).
 */
export type LeftAs = "rotated" | "unchanged" | "quarantined" | "gone" | "busy" | "failed";

/** One account's line in a removal's answer. */
export interface RemovedAccount {
  readonly account: string;
  readonly password: LeftAs;
  /** The last error, or why nothing was done; never a password. */
  readonly detail: string;
  /** The lease that saw the password still set on the target, when it is not rotated. */
  readonly lease_id?: string | undefined;
}

/** A removal's answer. */
export interface RemoveResult {
  readonly name: string;
  readonly removed: true;
  readonly accounts: readonly RemovedAccount[];
  /** Where the account records stay, and why. */
  readonly kept: string;
}

export interface RemoveOptions {
  /** Revoke active leases, and release the resource whatever state its accounts are in. */
  readonly force: boolean;
  readonly actor: string;
  readonly revoke: (leaseId: string) => Promise<unknown>;
}

const ROTATED: readonly LeftAs[] = ["rotated", "unchanged"];

/**
 * Removes a registration. Each account whose password a lease may have seen gets one last
 * rotation first. Without force, a lease still active, or an account that could not be rotated,
 * is a 409 that says what would help; with force the leases are revoked and the registration,
 * its pool and its ownership entries are released whatever happened, and the answer says what
 * each password was left as. Account records stay in Vault (I3: the last working password).
 */
export async function removeResource(
  d: ResourceDeps,
  name: string,
  opts: RemoveOptions,
): Promise<RemoveResult> {
  const reg = await d.catalog.get(name);
  if (!reg) throw new LeaseholdError("not_found", `resource "${name}" is not registered`);
  const active = await d.leases.activeLeases(name);
  if (active.length > 0 && !opts.force) {
    throw new LeaseholdError(
      "conflict",
      `resource "${name}" has ${active.length} active lease(s); use force to revoke them`,
    );
  }
  for (const l of active) await opts.revoke(l.id);
  const accounts: RemovedAccount[] = [];
  for (const account of reg.accounts) accounts.push(await lastRotation(d, reg, account, opts));
  const stuck = accounts.filter((a) => !ROTATED.includes(a.password));
  if (stuck.length > 0 && !opts.force) {
    throw new LeaseholdError(
      "conflict",
      `resource "${name}" not removed: ${stuck.map((a) => advice(name, a)).join("; ")}`,
    );
  }
  await d.catalog.remove(name);
  await d.leases.removePool(name);
  for (const account of reg.accounts) await d.owners.release(storedIdentity(d, reg, account), name);
  await auditRemoval(d, name, opts, stuck);
  await d.onRegistrationsChanged?.().catch(() => undefined);
  return {
    name,
    removed: true,
    accounts,
    kept: `the account records stay in Vault under resources/${name}/accounts/: the last working password of each account is kept`,
  };
}

/** One last rotation of an account a lease may have seen; what its password was left as. */
async function lastRotation(
  d: ResourceDeps,
  reg: StoredRegistration,
  account: string,
  opts: RemoveOptions,
): Promise<RemovedAccount> {
  const rec = (await d.secrets.read<AccountRecord>(vaultPaths.account(reg.name, account)))?.data;
  if (!rec) return { account, password: "unchanged", detail: "no record in Vault: never imported" };
  if (rec.state === "available") {
    return { account, password: "unchanged", detail: "not revealed since its last rotation" };
  }
  const seen = rec.lease_id ? { lease_id: rec.lease_id } : {};
  if (rec.state === "quarantined" && !opts.force) {
    return { account, password: "quarantined", detail: rec.last_error ?? "quarantined", ...seen };
  }
  const req = {
    resource: reg.name,
    account,
    reason: `removal by ${opts.actor}`,
    force: rec.state === "quarantined",
  };
  // The revocations above scheduled the same rotations: wait for a running one to finish.
  const out: RotationOutcome = await d.rotation.rotateWhenFree(req);
  if (out.status === "rotated")
    return { account, password: "rotated", detail: "the new password is in Vault" };
  if (out.status === "busy") {
    return { account, password: "busy", detail: "another rotation of it is still running", ...seen };
  }
  if (out.status === "gone") return { account, password: "unchanged", detail: "no record in Vault" };
  const missing = await accountMissing(d, reg, account);
  if (missing) return { account, password: "gone", detail: missing, ...seen };
  const now = (await d.secrets.read<AccountRecord>(vaultPaths.account(reg.name, account)))?.data;
  if (out.quarantined || now?.state === "quarantined") {
    return { account, password: "quarantined", detail: out.error, ...seen };
  }
  return {
    account,
    password: "failed",
    detail: `${out.error}${out.retryable === false ? "" : " (may succeed on a later try)"}`,
    ...seen,
  };
}

/** The target's own words when the account is not there (or not the admin's to change) any more. */
async function accountMissing(d: ResourceDeps, reg: StoredRegistration, account: string): Promise<string> {
  const adapter = d.adapters.get(reg.adapter);
  if (!adapter?.checkAccount) return "";
  const admin = reg.rotateWith === "admin" ? await d.catalog.admin(reg.name) : undefined;
  try {
    const v = await adapter.checkAccount(reg.connection, account, adapterContext(d, admin));
    return v.valid ? "" : v.reason;
  } catch (err) {
    if (err instanceof AdapterError) return "";
    throw err;
  }
}

/** What would let a removal without force succeed for this account. */
function advice(name: string, a: RemovedAccount): string {
  switch (a.password) {
    case "busy":
      return `account ${a.account}: a rotation of it is still running; try again`;
    case "quarantined":
      return `account ${a.account} is quarantined (last error: ${a.detail}); fix the target and run \`leasehold resources rotate ${name}\`, or remove with --force`;
    case "gone":
      return `account ${a.account} cannot be rotated (${a.detail}); remove with --force`;
    default:
      return a.detail.endsWith("(may succeed on a later try)")
        ? `account ${a.account} could not be rotated: ${a.detail}; try again, or remove with --force`
        : `account ${a.account} could not be rotated: ${a.detail}; fix the target, or remove with --force`;
  }
}

/** One record for the removal, and one per account left unrotated (never a password). */
async function auditRemoval(
  d: ResourceDeps,
  name: string,
  opts: RemoveOptions,
  stuck: readonly RemovedAccount[],
): Promise<void> {
  const left = stuck.map((a) => `${a.account} (${a.password})`).join(", ");
  await d.audit.append({
    event: "registration",
    agent: opts.actor,
    resource: name,
    reason: stuck.length ? `removed (forced); left unrotated: ${left}` : "removed",
  });
  for (const a of stuck) {
    await d.audit.append({
      event: "registration",
      agent: opts.actor,
      resource: name,
      account: a.account,
      lease_id: a.lease_id,
      reason: `removed with its password left unrotated: ${a.password}: ${a.detail}`,
    });
  }
}
