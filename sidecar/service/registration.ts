import type { Credential } from "../../adapters/adapter.js";
import { LeaseholdError } from "../errors.js";
import type { AccountRecord, StoredRegistration } from "../resources/types.js";
import { vaultPaths } from "../resources/vault-paths.js";
import { checkAdminRotation, type RotationOutcome } from "../rotation/index.js";
import {
  type AccountCheck,
  accountNames,
  checkedAdmin,
  checkNewAccount,
  ownedError,
  refuseOwnedAccounts,
  type ValidRegistration,
  validateRegistration,
} from "./registration-checks.js";
import { discardNewAccount } from "./registration-undo.js";
import { registrationWarnings } from "./registration-warnings.js";
import { adapterContext, type ResourceDeps, storedIdentity } from "./resource-deps.js";
import { type ResourceView, restorePool, showResource, viewOf } from "./resource-view.js";

/** How a registration is asked for. */
export interface RegisterOptions {
  /** Check everything, change nothing. */
  readonly dryRun: boolean;
  /** Register the accounts that pass even when others fail (which are named and left out). */
  readonly allowPartial?: boolean | undefined;
  /** The name in the URL, which the body must repeat. */
  readonly pathName?: string | undefined;
  readonly actor: string;
  readonly requestId?: string | undefined;
  /**
   * Whether the caller may see a resource (the register action on it): a 409 names another
   * resource that owns an account only to a caller who may. Absent: every resource (admin).
   */
  readonly canSee?: ((resource: string) => Promise<boolean>) | undefined;
}

/** A registration's answer: what was checked and done, one line per account. */
export interface RegisterResult {
  /** The resource is new (was, or would be, created). */
  readonly created: boolean;
  readonly dryRun: boolean;
  /** True when the registration was stored; false only for a dry run (a refused one is an error). */
  readonly registered: boolean;
  readonly resource: ResourceView;
  /** Checks of the registration as a whole (the admin credential), in order. */
  readonly checks: readonly string[];
  /** One line per account of the registration, in its order. */
  readonly accounts: readonly AccountCheck[];
  /** The accounts that failed (left out, or the reason nothing was registered). */
  readonly failed: readonly string[];
  /** What the registration should know but was not refused for, one line each, naming the field. */
  readonly warnings: readonly string[];
}

interface NewAccount {
  readonly name: string;
  readonly password?: string | undefined;
}

/**
 * Registers (or updates) a resource, all or nothing: every new account is checked on its target
 * first; any failure (or a failed import rotation) leaves nothing behind, unless allowPartial,
 * which registers the rest. Another resource's account is a 409 before anything is checked.
 */
export async function registerResource(
  d: ResourceDeps,
  body: unknown,
  opts: RegisterOptions,
): Promise<RegisterResult> {
  const v = validateRegistration(d, body, opts.pathName);
  await refuseOwnedAccounts(d, v, opts.canSee);
  const run = new RegistrationRun(d, v, opts, await d.catalog.get(v.reg.name));
  return run.run();
}

class RegistrationRun {
  private readonly names: string[];
  private readonly results = new Map<string, AccountCheck>();
  private readonly known = new Map<string, AccountRecord>();
  private readonly fresh: NewAccount[] = [];
  private readonly checks: string[] = [];
  /** Identities this run created entries for: released again if the run is undone. */
  private readonly claimed: string[] = [];
  private readonly outcomes = new Map<string, RotationOutcome>();
  /** Accounts whose FAIL was a fault of the target that may pass later (not a refusal). */
  private readonly transient = new Set<string>();
  private admin: Credential | undefined;
  /** The admin credential in Vault before this run wrote the given one (null: none was there). */
  private oldAdmin: Credential | null | undefined;

  constructor(
    private readonly d: ResourceDeps,
    private readonly v: ValidRegistration,
    private readonly opts: RegisterOptions,
    private readonly existing: StoredRegistration | null,
  ) {
    this.names = accountNames(v.reg);
  }

  async run(): Promise<RegisterResult> {
    this.admin = await checkedAdmin(this.d, this.v);
    if (this.admin) this.checks.push(`admin ${this.admin.username} logs in`);
    const { reg, adapter, connection } = this.v;
    const adminRotation = await checkAdminRotation(
      reg,
      adapter,
      connection,
      this.admin,
      adapterContext(this.d, undefined),
    );
    if (adminRotation) this.checks.push(adminRotation);
    const dropped = await this.plan();
    for (const name of this.known.keys())
      this.results.set(name, { account: name, ok: true, detail: "already managed" });
    for (const f of this.fresh) {
      const checked = await checkNewAccount(this.d, this.v, f, this.admin);
      this.results.set(f.name, checked.line);
      if (checked.transient) this.transient.add(f.name);
    }
    const keep = this.names.filter((n) => this.results.get(n)?.ok);
    if (this.opts.dryRun) return this.answer(false, viewOf(this.stored(this.names), []));
    const failedChecks = keep.length < this.names.length;
    if (failedChecks && (!this.opts.allowPartial || keep.length === 0)) throw this.refusal();
    await this.apply(this.stored(keep));
    await this.importAll(new Set(keep));
    const imported = keep.filter((n) => this.results.get(n)?.ok);
    if (imported.length < keep.length && (!this.opts.allowPartial || imported.length === 0)) {
      await this.undo();
      throw this.refusal();
    }
    if (imported.length < keep.length) await this.leaveOut(imported);
    await this.releaseFormer(dropped);
    const failed = this.names.filter((n) => !this.results.get(n)?.ok);
    await this.d.audit.append({
      event: "registration",
      agent: this.opts.actor,
      resource: this.v.reg.name,
      reason: `${this.existing ? "updated" : "registered"}${failed.length ? `; left out (failed): ${failed.join(", ")}` : ""}`,
      request_id: this.opts.requestId,
    });
    await this.d.onRegistrationsChanged?.().catch(() => undefined);
    return this.answer(true, await showResource(this.d, this.v.reg.name));
  }

  private answer(registered: boolean, resource: ResourceView): RegisterResult {
    const accounts = this.names.map(
      (n) => this.results.get(n) ?? { account: n, ok: false, detail: "not checked" },
    );
    return {
      created: !this.existing,
      dryRun: this.opts.dryRun,
      registered,
      resource,
      checks: this.checks,
      accounts,
      failed: accounts.filter((a) => !a.ok).map((a) => a.account),
      warnings: registrationWarnings(this.v.reg, this.v.connection),
    };
  }

  /**
   * A registration that registered nothing because accounts failed: 503 `upstream_unavailable`
   * when every failure was a target fault that may pass later, else 400 `invalid_request`; one
   * detail per failed account, with the target's reason (and whether its Vault record stayed).
   */
  private refusal(): LeaseholdError {
    const details = this.names.flatMap((n, i) => {
      const line = this.results.get(n);
      if (line?.ok) return [];
      return [{ field: `registration.accounts.${i}`, message: `${n}: ${line?.detail ?? "not checked"}` }];
    });
    const kept = this.names.filter((n) => this.results.get(n)?.record === "kept");
    const nothing = this.existing ? "nothing was changed" : "nothing was registered";
    const stays = kept.length ? ` (the Vault record of ${kept.join(", ")} stays, see details)` : "";
    const message = `registration.accounts: ${details.length} of ${this.names.length} accounts failed, ${nothing}${stays}: ${details.map((x) => x.message).join("; ")}`;
    const failed = this.names.filter((n) => !this.results.get(n)?.ok);
    const transient = failed.every((n) => this.transient.has(n));
    return new LeaseholdError(transient ? "upstream_unavailable" : "invalid_request", message, {
      details,
      retryable: transient,
    });
  }

  /** Sorts the accounts into known (a Vault record exists) and new; returns those an update drops. */
  private async plan(): Promise<string[]> {
    const { reg } = this.v;
    for (const name of this.names) {
      const rec = await this.d.secrets.read<AccountRecord>(vaultPaths.account(reg.name, name));
      if (rec) this.known.set(name, rec.data);
    }
    for (const [i, a] of reg.accounts.entries()) {
      const name = typeof a === "string" ? a : a.name;
      const password = typeof a === "string" ? undefined : a.password;
      if (this.known.has(name)) continue;
      if (!password && reg.rotateWith === "self") {
        throw new LeaseholdError(
          "invalid_request",
          `registration.accounts.${i}.password: self rotation needs the current password`,
        );
      }
      if (!password && !reg.importRotation) {
        throw new LeaseholdError(
          "invalid_request",
          `registration.accounts.${i}.password: importRotation: false needs the current password`,
        );
      }
      this.fresh.push({ name, password });
    }
    const dropped = this.existing ? this.existing.accounts.filter((n) => !this.names.includes(n)) : [];
    const stateOf = new Map((await this.d.leases.accounts(reg.name)).map((a) => [a.name, a.state]));
    for (const n of dropped) {
      if (stateOf.get(n) === "leased")
        throw new LeaseholdError("conflict", `account ${n} is leased; it cannot be removed now`);
    }
    return dropped;
  }

  private stored(accounts: readonly string[]): StoredRegistration {
    const { reg } = this.v;
    return {
      name: reg.name,
      adapter: reg.adapter,
      ...(reg.description === undefined ? {} : { description: reg.description }),
      connection: this.v.connection as Record<string, unknown>,
      rotateWith: reg.rotateWith,
      admin: reg.admin ? { username: reg.admin.username } : undefined,
      accounts,
      reveal: reg.reveal,
      proxy: reg.proxy,
      lease: reg.lease,
      rotation: reg.rotation,
      groups: reg.groups,
      registered_at: this.existing?.registered_at ?? new Date().toISOString(),
    };
  }

  /** Claims the accounts (CAS 0: a race loses with 409), then writes the registration and the new records. */
  private async apply(stored: StoredRegistration): Promise<void> {
    const { reg } = this.v;
    for (const name of stored.accounts) {
      const identity = this.v.identities.get(name) ?? "";
      const r = await this.d.owners.claim({ resource: reg.name, account: name, identity });
      if (!r.ok) {
        await this.releaseClaims(this.claimed);
        throw await ownedError(this.d, "registration.accounts", name, r.owner, this.opts.canSee);
      }
      if (r.created) this.claimed.push(identity);
    }
    if (this.admin && reg.admin?.password) {
      this.oldAdmin = (await this.d.catalog.admin(reg.name)) ?? null;
      await this.d.secrets.write(vaultPaths.admin(reg.name), this.admin);
    }
    for (const f of this.fresh) {
      if (!stored.accounts.includes(f.name)) continue;
      const rec: AccountRecord = f.password
        ? { username: f.name, password: f.password, state: reg.importRotation ? "rotating" : "available" }
        : { username: f.name, password: "", state: "rotating" };
      await this.d.secrets.write(vaultPaths.account(reg.name, f.name), rec, 0).catch((err: unknown) => {
        if (!(err instanceof LeaseholdError && err.code === "conflict")) throw err;
      });
    }
    await this.d.catalog.put(stored);
    await this.d.leases.syncPool(reg.name, stored.accounts, "rotating");
    for (const [name, rec] of this.known) {
      if (rec.state === "available") await this.d.leases.setAccountState(reg.name, name, "available");
    }
  }

  /** The import rotation of each new account kept; a failure turns its line into FAIL. */
  private async importAll(keep: ReadonlySet<string>): Promise<void> {
    const { reg } = this.v;
    for (const f of this.fresh) {
      if (!keep.has(f.name)) continue;
      const checked = this.results.get(f.name)?.detail ?? "";
      if (!reg.importRotation && f.password) {
        await this.d.leases.setAccountState(reg.name, f.name, "available");
        this.results.set(f.name, { account: f.name, ok: true, detail: `${checked}; kept its password` });
        continue;
      }
      // The reconciler's sweep may be rotating the new account (its pool starts "rotating").
      const out = await this.d.rotation.rotateWhenFree({
        resource: reg.name,
        account: f.name,
        reason: "import",
      });
      this.outcomes.set(f.name, out);
      if (out.status === "busy" || (out.status === "failed" && out.retryable !== false))
        this.transient.add(f.name);
      this.results.set(
        f.name,
        out.status === "rotated"
          ? { account: f.name, ok: true, detail: `${checked}; imported (password rotated)` }
          : {
              account: f.name,
              ok: false,
              detail: `import: ${out.status === "failed" ? out.error : out.status}`,
            },
      );
    }
  }

  /** All or nothing: puts back what was there before, and removes each new record I3 lets go. */
  private async undo(): Promise<void> {
    const { reg } = this.v;
    if (this.existing) {
      await this.d.catalog.put(this.existing);
      if (this.oldAdmin) await this.d.secrets.write(vaultPaths.admin(reg.name), this.oldAdmin);
      if (this.oldAdmin === null) await this.d.secrets.remove(vaultPaths.admin(reg.name));
      await restorePool(this.d, reg.name, this.existing.accounts);
    } else {
      await this.d.catalog.remove(reg.name);
      await this.d.leases.removePool(reg.name);
    }
    await this.discard(this.fresh);
    // Entries this run created go, except for accounts whose record had to stay in Vault.
    const kept = this.fresh.filter((f) => this.results.get(f.name)?.record === "kept");
    const stillOwned = new Set(kept.map((f) => this.v.identities.get(f.name) ?? ""));
    await this.releaseClaims(this.claimed.filter((i) => !stillOwned.has(i)));
  }

  /** allowPartial: the registration without the accounts whose import failed. */
  private async leaveOut(imported: readonly string[]): Promise<void> {
    const { reg } = this.v;
    const names = this.names.filter((n) => this.known.has(n) || imported.includes(n));
    await this.d.catalog.put(this.stored(names));
    await this.d.leases.syncPool(reg.name, names, "rotating");
    const out = this.fresh.filter((f) => this.results.has(f.name) && !this.results.get(f.name)?.ok);
    await this.discard(out.filter((f) => this.outcomes.has(f.name)));
    for (const f of out) {
      if (this.results.get(f.name)?.record === "kept") continue;
      await this.d.owners.release(this.v.identities.get(f.name) ?? "", reg.name);
    }
  }

  /** Removes (or keeps, saying why) the Vault record of each new account given. */
  private async discard(accounts: readonly NewAccount[]): Promise<void> {
    for (const f of accounts) {
      const r = await discardNewAccount(this.d, this.v, f, this.outcomes.get(f.name));
      const line = this.results.get(f.name) ?? { account: f.name, ok: false, detail: "" };
      const note = r.record === "kept" ? `; its record stays in Vault: ${r.why}` : "";
      this.results.set(f.name, { ...line, detail: `${line.detail}${note}`, record: r.record });
      if (r.record === "kept") {
        this.d.log.warn(
          { resource: this.v.reg.name, account: f.name, why: r.why },
          "registration undone: the account's record stays in vault",
        );
      }
    }
  }

  /** After success: the ownership entries of accounts dropped by an update, or whose identity changed. */
  private async releaseFormer(dropped: readonly string[]): Promise<void> {
    if (!this.existing) return;
    const now = new Set(this.v.identities.values());
    for (const name of this.existing.accounts) {
      const identity = storedIdentity(this.d, this.existing, name);
      if (dropped.includes(name) || !now.has(identity))
        await this.d.owners.release(identity, this.v.reg.name);
    }
  }

  private async releaseClaims(identities: readonly string[]): Promise<void> {
    for (const identity of identities) await this.d.owners.release(identity, this.v.reg.name);
  }
}
