import type { Adapter, AdapterContext, Credential, Verdict } from "../../adapters/adapter.js";
import { AdapterError } from "../../adapters/adapter.js";
import type { AuditSink } from "../audit/index.js";
import { LeaseholdError } from "../errors.js";
import type { LeaseStore } from "../leases/index.js";
import type { Logger } from "../logger.js";
import type { ResourceCatalog } from "../resources/catalog.js";
import {
  type AccountRecord,
  type Registration,
  registrationSchema,
  type StoredRegistration,
} from "../resources/types.js";
import { vaultPaths } from "../resources/vault-paths.js";
import { type AdminRotation, checkAdminRotation, type RotationEngine } from "../rotation/index.js";
import type { SecretStore } from "../secrets/index.js";
import { describeIssues } from "../util/zod-errors.js";
import { parseBody } from "./validate.js";

export interface ResourceServiceOptions {
  /** Called after a registration changes (e.g. to start or stop its local listener). */
  onRegistrationsChanged?: () => Promise<void>;
  secrets: SecretStore;
  leases: LeaseStore;
  catalog: ResourceCatalog;
  rotation: RotationEngine;
  /** Rotates admin passwords (`resources rotate NAME --admin`); absent: refused. */
  adminRotation?: Pick<AdminRotation, "rotate">;
  adapters: ReadonlyMap<string, Adapter<unknown>>;
  audit: AuditSink;
  log: Logger;
}

export interface RegisterResult {
  readonly created: boolean;
  readonly dryRun: boolean;
  readonly resource: ResourceView;
  readonly checks: readonly string[];
}

export interface ResourceView {
  readonly name: string;
  readonly adapter: string;
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

/** An account's login, or the admin credential's own check where the adapter has one (LDAP bind DN, exec). */
function checkLogin(
  adapter: Adapter<unknown>,
  connection: unknown,
  cred: Credential,
  ctx: AdapterContext,
  asAdmin: boolean,
): Promise<Verdict> {
  return asAdmin && adapter.verifyAdmin
    ? adapter.verifyAdmin(connection, cred, ctx)
    : adapter.verify(connection, cred, ctx);
}

/** DBAs' side: register, verify, rotate and remove legacy systems. */
export class ResourceService {
  constructor(private readonly o: ResourceServiceOptions) {}

  private ctx(admin: Credential | undefined): AdapterContext {
    return { admin, log: this.o.log.child({ module: "adapter" }), timeoutMs: 10_000 };
  }

  private adapterOf(id: string): Adapter<unknown> {
    const a = this.o.adapters.get(id);
    if (!a) {
      throw new LeaseholdError(
        "invalid_request",
        `adapter: unknown adapter "${id}" (known: ${[...this.o.adapters.keys()].join(", ")})`,
      );
    }
    return a;
  }

  /** Validates everything a registration says, before anything is written. */
  private validate(
    body: unknown,
    pathName?: string,
  ): { reg: Registration; adapter: Adapter<unknown>; connection: unknown } {
    const reg = parseBody(registrationSchema, body, "registration");
    if (pathName !== undefined && reg.name !== pathName) {
      throw new LeaseholdError(
        "invalid_request",
        `registration.name: "${reg.name}" differs from the URL's "${pathName}"`,
      );
    }
    const adapter = this.adapterOf(reg.adapter);
    const conn = adapter.config.safeParse(reg.connection);
    if (!conn.success)
      throw new LeaseholdError(
        "invalid_request",
        describeIssues(conn.error.issues, "registration.connection"),
      );
    if (reg.rotateWith === "admin" && !reg.admin) {
      throw new LeaseholdError("invalid_request", "registration.admin: required when rotateWith is admin");
    }
    const names = new Set<string>();
    for (const [i, a] of reg.accounts.entries()) {
      const name = typeof a === "string" ? a : a.name;
      const problem = adapter.checkAccountName(name);
      if (problem) throw new LeaseholdError("invalid_request", `registration.accounts.${i}: ${problem}`);
      if (names.has(name))
        throw new LeaseholdError("invalid_request", `registration.accounts.${i}: duplicate account`);
      if (reg.admin && name === reg.admin.username) {
        throw new LeaseholdError(
          "invalid_request",
          `registration.accounts.${i}: the admin account cannot be a managed account`,
        );
      }
      names.add(name);
    }
    return { reg, adapter, connection: conn.data };
  }

  private async verifyOrThrow(
    adapter: Adapter<unknown>,
    connection: unknown,
    cred: Credential,
    what: string,
    asAdmin = false,
  ): Promise<void> {
    try {
      const v = await checkLogin(adapter, connection, cred, this.ctx(undefined), asAdmin);
      if (!v.valid)
        throw new LeaseholdError("invalid_request", `${what}: the password does not log in (${v.reason})`);
    } catch (err) {
      if (err instanceof AdapterError) {
        throw new LeaseholdError(
          err.retryable ? "upstream_unavailable" : "invalid_request",
          `${what}: ${err.message}`,
        );
      }
      throw err;
    }
  }

  /**
   * Registers (or updates) a resource: checks the admin credential and the accounts, stores the
   * registration in Vault and puts each new account under management (an import rotation unless
   * importRotation is false). With dryRun, does every check and changes nothing.
   */
  async register(
    body: unknown,
    opts: { dryRun: boolean; pathName?: string; actor: string; requestId?: string },
  ): Promise<RegisterResult> {
    const { reg, adapter, connection } = this.validate(body, opts.pathName);
    const checks: string[] = [];
    const existing = await this.o.catalog.get(reg.name);
    let admin: Credential | undefined;
    if (reg.rotateWith === "admin" && reg.admin) {
      const stored = await this.o.catalog.admin(reg.name);
      const password =
        reg.admin.password ?? (stored?.username === reg.admin.username ? stored.password : undefined);
      if (!password) {
        throw new LeaseholdError(
          "invalid_request",
          `registration.admin.password: required (no admin password for "${reg.name}" is in Vault yet)`,
        );
      }
      admin = { username: reg.admin.username, password };
      await this.verifyOrThrow(adapter, connection, admin, "registration.admin", true);
      checks.push(`admin ${admin.username} logs in`);
    }
    const adminRotation = await checkAdminRotation(reg, adapter, connection, admin, this.ctx(undefined));
    if (adminRotation) checks.push(adminRotation);
    const accountNames = reg.accounts.map((a) => (typeof a === "string" ? a : a.name));
    const known = new Map<string, AccountRecord>();
    for (const name of accountNames) {
      const rec = await this.o.secrets.read<AccountRecord>(vaultPaths.account(reg.name, name));
      if (rec) known.set(name, rec.data);
    }
    const fresh: Array<{ name: string; password?: string | undefined }> = [];
    for (const [i, a] of reg.accounts.entries()) {
      const name = typeof a === "string" ? a : a.name;
      const given = typeof a === "string" ? undefined : a.password;
      if (known.has(name)) continue;
      if (given) {
        await this.verifyOrThrow(
          adapter,
          connection,
          { username: name, password: given },
          `registration.accounts.${i}`,
        );
        checks.push(`account ${name} logs in with the given password`);
      } else if (reg.rotateWith === "self") {
        throw new LeaseholdError(
          "invalid_request",
          `registration.accounts.${i}.password: self rotation needs the current password`,
        );
      } else if (!reg.importRotation) {
        throw new LeaseholdError(
          "invalid_request",
          `registration.accounts.${i}.password: importRotation: false needs the current password`,
        );
      }
      fresh.push({ name, password: given });
    }
    const removed = existing ? existing.accounts.filter((n) => !accountNames.includes(n)) : [];
    const stateOf = new Map((await this.o.leases.accounts(reg.name)).map((a) => [a.name, a.state]));
    for (const n of removed) {
      if (stateOf.get(n) === "leased")
        throw new LeaseholdError("conflict", `account ${n} is leased; it cannot be removed now`);
    }
    const stored: StoredRegistration = {
      name: reg.name,
      adapter: reg.adapter,
      connection: connection as Record<string, unknown>,
      rotateWith: reg.rotateWith,
      admin: reg.admin ? { username: reg.admin.username } : undefined,
      accounts: accountNames,
      reveal: reg.reveal,
      proxy: reg.proxy,
      lease: reg.lease,
      rotation: reg.rotation,
      groups: reg.groups,
      registered_at: existing?.registered_at ?? new Date().toISOString(),
    };
    if (opts.dryRun) {
      return { created: !existing, dryRun: true, resource: this.view(stored, []), checks };
    }
    if (admin && reg.admin?.password) await this.o.secrets.write(vaultPaths.admin(reg.name), admin);
    for (const f of fresh) {
      const rec: AccountRecord = f.password
        ? { username: f.name, password: f.password, state: reg.importRotation ? "rotating" : "available" }
        : { username: f.name, password: "", state: "rotating" };
      await this.o.secrets.write(vaultPaths.account(reg.name, f.name), rec, 0).catch((err: unknown) => {
        if (!(err instanceof LeaseholdError && err.code === "conflict")) throw err;
      });
    }
    await this.o.catalog.put(stored);
    for (const n of removed) await this.o.secrets.remove(vaultPaths.account(reg.name, n));
    await this.o.leases.syncPool(reg.name, accountNames, "rotating");
    for (const [name, rec] of known) {
      if (rec.state === "available") await this.o.leases.setAccountState(reg.name, name, "available");
    }
    for (const f of fresh) {
      if (!reg.importRotation && f.password) {
        await this.o.leases.setAccountState(reg.name, f.name, "available");
        continue;
      }
      const out = await this.o.rotation.rotate({ resource: reg.name, account: f.name, reason: "import" });
      checks.push(
        out.status === "rotated"
          ? `account ${f.name} imported (password rotated)`
          : `account ${f.name} import: ${out.status}`,
      );
    }
    await this.o.audit.append({
      event: "registration",
      agent: opts.actor,
      resource: reg.name,
      reason: existing ? "updated" : "registered",
      request_id: opts.requestId,
    });
    await this.o.onRegistrationsChanged?.().catch(() => undefined);
    return { created: !existing, dryRun: false, resource: await this.show(reg.name), checks };
  }

  private view(reg: StoredRegistration, accounts: ResourceView["accounts"]): ResourceView {
    return {
      name: reg.name,
      adapter: reg.adapter,
      connection: reg.connection,
      rotateWith: reg.rotateWith,
      reveal: reg.reveal,
      lease: reg.lease,
      accounts,
    };
  }

  async list(): Promise<{ resources: Array<{ name: string; adapter: string; accounts: number }> }> {
    const all = await this.o.catalog.load();
    return { resources: all.map((r) => ({ name: r.name, adapter: r.adapter, accounts: r.accounts.length })) };
  }

  /** The resource and each account's state; never a password. */
  async show(name: string): Promise<ResourceView> {
    const reg = await this.o.catalog.get(name);
    if (!reg) throw new LeaseholdError("not_found", `resource "${name}" is not registered`);
    const redis = new Map((await this.o.leases.accounts(name)).map((a) => [a.name, a]));
    const accounts: ResourceView["accounts"] = [];
    for (const account of reg.accounts) {
      const rec = (await this.o.secrets.read<AccountRecord>(vaultPaths.account(name, account)))?.data;
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
    return this.view(reg, accounts);
  }

  /** Checks that the admin credential and every available account's stored password log in. */
  async verify(
    name: string,
  ): Promise<{ name: string; results: Array<{ account: string; ok: boolean; reason?: string }> }> {
    const reg = await this.o.catalog.get(name);
    if (!reg) throw new LeaseholdError("not_found", `resource "${name}" is not registered`);
    const adapter = this.adapterOf(reg.adapter);
    const results: Array<{ account: string; ok: boolean; reason?: string }> = [];
    const check = async (account: string, cred: Credential, asAdmin = false) => {
      try {
        const v = await checkLogin(adapter, reg.connection, cred, this.ctx(undefined), asAdmin);
        results.push(v.valid ? { account, ok: true } : { account, ok: false, reason: v.reason });
      } catch (err) {
        results.push({ account, ok: false, reason: err instanceof AdapterError ? err.message : "error" });
      }
    };
    const admin = await this.o.catalog.admin(name);
    if (admin) await check(`${admin.username} (admin)`, admin, true);
    for (const account of reg.accounts) {
      const rec = (await this.o.secrets.read<AccountRecord>(vaultPaths.account(name, account)))?.data;
      if (!rec?.password) {
        results.push({ account, ok: false, reason: "no password in Vault yet" });
        continue;
      }
      await check(account, { username: rec.username, password: rec.password });
    }
    return { name, results };
  }

  /** Rotates every account that is not leased now (quarantined ones included: an explicit retry). */
  async rotateAll(name: string, actor: string) {
    const reg = await this.o.catalog.get(name);
    if (!reg) throw new LeaseholdError("not_found", `resource "${name}" is not registered`);
    const results: Array<{ account: string; status: string; error?: string }> = [];
    for (const a of await this.o.leases.accounts(name)) {
      if (a.state === "leased") {
        results.push({ account: a.name, status: "skipped (leased)" });
        continue;
      }
      await this.o.leases.setAccountState(name, a.name, "rotating");
      const out = await this.o.rotation.rotate({
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

  /** Rotates the resource's admin password now (an operator's explicit rotation). */
  async rotateAdmin(name: string, actor: string) {
    const reg = await this.o.catalog.get(name);
    if (!reg) throw new LeaseholdError("not_found", `resource "${name}" is not registered`);
    if (!this.o.adminRotation || reg.rotateWith !== "admin" || !reg.admin) {
      throw new LeaseholdError(
        "invalid_request",
        "admin: the resource has no admin credential (rotateWith: self)",
      );
    }
    const out = await this.o.adminRotation.rotate(name, `manual by ${actor}`);
    const status = out.status === "unsupported" ? "failed" : out.status;
    const error = "error" in out ? out.error : undefined;
    return { name, results: [{ account: reg.admin.username, status, ...(error ? { error } : {}) }] };
  }

  /** Removes a registration; refused while a lease is active unless force (which revokes first). */
  async remove(
    name: string,
    opts: { force: boolean; actor: string; revoke: (leaseId: string) => Promise<unknown> },
  ) {
    const reg = await this.o.catalog.get(name);
    if (!reg) throw new LeaseholdError("not_found", `resource "${name}" is not registered`);
    const active = await this.o.leases.activeLeases(name);
    if (active.length > 0 && !opts.force) {
      throw new LeaseholdError(
        "conflict",
        `resource "${name}" has ${active.length} active lease(s); use force to revoke them`,
      );
    }
    for (const l of active) await opts.revoke(l.id);
    // Every account that was revealed is rotated before the registration goes, so no password a
    // lease saw outlives it; the revocations above scheduled the same rotations, hence the retries.
    for (const account of reg.accounts) {
      const rec = (await this.o.secrets.read<AccountRecord>(vaultPaths.account(name, account)))?.data;
      if (!rec || rec.state === "available") continue;
      let out = await this.o.rotation.rotate({ resource: name, account, reason: `removal by ${opts.actor}` });
      for (let i = 0; i < 50 && out.status === "busy"; i++) {
        await new Promise((r) => setTimeout(r, 100));
        out = await this.o.rotation.rotate({ resource: name, account, reason: `removal by ${opts.actor}` });
      }
      const now = (await this.o.secrets.read<AccountRecord>(vaultPaths.account(name, account)))?.data;
      if (now?.state !== "available") {
        throw new LeaseholdError(
          "conflict",
          `account ${account} could not be rotated before removal; try again`,
          {
            detail: out.status === "failed" ? out.error : out.status,
          },
        );
      }
    }
    // Account records stay in Vault: the last working password of each account must not be lost.
    await this.o.catalog.remove(name);
    await this.o.leases.removePool(name);
    await this.o.audit.append({
      event: "registration",
      agent: opts.actor,
      resource: name,
      reason: "removed",
    });
    await this.o.onRegistrationsChanged?.().catch(() => undefined);
    return { name, removed: true };
  }
}
