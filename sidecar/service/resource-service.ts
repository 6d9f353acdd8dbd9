import type { Credential } from "../../adapters/adapter.js";
import { AdapterError } from "../../adapters/adapter.js";
import { LeaseholdError } from "../errors.js";
import { OwnershipIndex } from "../resources/ownership.js";
import type { AccountRecord } from "../resources/types.js";
import { vaultPaths } from "../resources/vault-paths.js";
import { backfillOwners, type OwnerConflict } from "./account-owners.js";
import { type RegisterOptions, type RegisterResult, registerResource } from "./registration.js";
import { type RemoveOptions, type RemoveResult, removeResource } from "./removal.js";
import {
  adapterContext,
  adapterOf,
  checkLogin,
  type ResourceDeps,
  type ResourceServiceOptions,
} from "./resource-deps.js";
import { type ResourceView, showResource } from "./resource-view.js";

export type { AccountCheck } from "./registration-checks.js";
export type { RegisterOptions, RegisterResult } from "./registration.js";
export type { LeftAs, RemovedAccount, RemoveOptions, RemoveResult } from "./removal.js";
export type { ResourceServiceOptions } from "./resource-deps.js";
export type { ResourceView } from "./resource-view.js";

/** DBAs' side: register, verify, rotate and remove legacy systems. */
export class ResourceService {
  private readonly d: ResourceDeps;

  constructor(o: ResourceServiceOptions) {
    this.d = { ...o, owners: o.owners ?? new OwnershipIndex(o.secrets) };
  }

  /**
   * Registers (or updates) a resource, all or nothing unless `allowPartial` (registration.ts).
   * With dryRun, does every check and changes nothing.
   */
  register(body: unknown, opts: RegisterOptions): Promise<RegisterResult> {
    return registerResource(this.d, body, opts);
  }

  /** Removes a registration (removal.ts); force finishes whatever state the accounts are in. */
  remove(name: string, opts: RemoveOptions): Promise<RemoveResult> {
    return removeResource(this.d, name, opts);
  }

  /** Ownership entries for registrations made before the index existed; conflicts are logged. */
  backfillOwners(): Promise<{ claimed: number; conflicts: OwnerConflict[] }> {
    return backfillOwners(this.d);
  }

  async list(): Promise<{ resources: Array<{ name: string; adapter: string; accounts: number }> }> {
    const all = await this.d.catalog.load();
    return { resources: all.map((r) => ({ name: r.name, adapter: r.adapter, accounts: r.accounts.length })) };
  }

  /** The resource and each account's state; never a password. */
  show(name: string): Promise<ResourceView> {
    return showResource(this.d, name);
  }

  /** Checks that the admin credential and every available account's stored password log in. */
  async verify(
    name: string,
  ): Promise<{ name: string; results: Array<{ account: string; ok: boolean; reason?: string }> }> {
    const reg = await this.d.catalog.get(name);
    if (!reg) throw new LeaseholdError("not_found", `resource "${name}" is not registered`);
    const adapter = adapterOf(this.d, reg.adapter);
    const results: Array<{ account: string; ok: boolean; reason?: string }> = [];
    const check = async (account: string, cred: Credential, asAdmin = false) => {
      try {
        const ctx = adapterContext(this.d, undefined);
        const v = await checkLogin(adapter, reg.connection, cred, ctx, asAdmin);
        results.push(v.valid ? { account, ok: true } : { account, ok: false, reason: v.reason });
      } catch (err) {
        results.push({ account, ok: false, reason: err instanceof AdapterError ? err.message : "error" });
      }
    };
    const admin = await this.d.catalog.admin(name);
    if (admin) await check(`${admin.username} (admin)`, admin, true);
    for (const account of reg.accounts) {
      const rec = (await this.d.secrets.read<AccountRecord>(vaultPaths.account(name, account)))?.data;
      if (!rec?.password) {
        results.push({ account, ok: false, reason: "no password in Vault yet" });
        continue;
      }
      await check(account, { username: rec.username, password: rec.password });
    }
    return { name, results };
  }

  /** Rotates the resource's admin password now (an operator's explicit rotation). */
  async rotateAdmin(name: string, actor: string) {
    const reg = await this.d.catalog.get(name);
    if (!reg) throw new LeaseholdError("not_found", `resource "${name}" is not registered`);
    if (!this.d.adminRotation || reg.rotateWith !== "admin" || !reg.admin) {
      throw new LeaseholdError(
        "invalid_request",
        "admin: the resource has no admin credential (rotateWith: self)",
      );
    }
    const out = await this.d.adminRotation.rotate(name, `manual by ${actor}`);
    const status = out.status === "unsupported" ? "failed" : out.status;
    const error = "error" in out ? out.error : undefined;
    return { name, results: [{ account: reg.admin.username, status, ...(error ? { error } : {}) }] };
  }

  /** Rotates every account that is not leased now (quarantined ones included: an explicit retry). */
  async rotateAll(name: string, actor: string) {
    const reg = await this.d.catalog.get(name);
    if (!reg) throw new LeaseholdError("not_found", `resource "${name}" is not registered`);
    const results: Array<{ account: string; status: string; error?: string }> = [];
    for (const a of await this.d.leases.accounts(name)) {
      if (a.state === "leased") {
        results.push({ account: a.name, status: "skipped (leased)" });
        continue;
      }
      await this.d.leases.setAccountState(name, a.name, "rotating");
      const out = await this.d.rotation.rotate({
        resource: name,
        account: a.name,
        reason: `manual by ${actor}`,
        force: true,
      });
      results.push({
        account: a.name,
        status: out.status,
        ...(out.status === "failed" ? { error: out.error } : {}),
      });
    }
    return { name, results };
  }
}
