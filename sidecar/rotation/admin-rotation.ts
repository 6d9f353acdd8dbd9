import { randomUUID } from "node:crypto";
import type { Adapter, AdapterContext, Credential } from "../../adapters/adapter.js";
import { AdapterError } from "../../adapters/adapter.js";
import { adminSessionKey, adminSessions } from "../../adapters/admin-sessions.js";
import type { AuditSink } from "../audit/index.js";
import { LeaseholdError } from "../errors.js";
import type { LeaseEventPublisher } from "../events/index.js";
import type { Logger } from "../logger.js";
import type { RedisClient } from "../redis.js";
import type { ResourceCatalog } from "../resources/catalog.js";
import type { AdminRecord, StoredRegistration } from "../resources/types.js";
import { vaultPaths } from "../resources/vault-paths.js";
import type { KvEntry, SecretStore } from "../secrets/index.js";
import { parseDurationMs } from "../util/duration.js";
import { adminAsAccount, explainAdminChangeError, verifyAdminLogin } from "./admin-target.js";
import { acquireLock } from "./lock.js";
import { generatePassword } from "./password.js";

/** Named points of an admin rotation at which a fault test may kill the process. */
export type AdminCrashPoint =
  | "admin_after_pending_written"
  | "admin_after_target_changed"
  | "admin_after_test"
  | "admin_before_finish";

export interface AdminRotationOptions {
  secrets: SecretStore;
  catalog: ResourceCatalog;
  adapters: ReadonlyMap<string, Adapter<unknown>>;
  audit: AuditSink;
  /** Where `rotation_failed` is published (the same event as an account's failure). */
  events: LeaseEventPublisher;
  redis: RedisClient;
  prefix: string;
  log: Logger;
  /** First retry delay after a failure and its cap, seconds. */
  backoff: number;
  maxBackoff: number;
  /** Lock TTL (renewed while the rotation runs), ms. @default 10000 */
  lockTtlMs?: number;
  /** Timeout for one adapter call, ms. @default 10000 */
  adapterTimeoutMs?: number;
  /** Clock, for tests. @default Date.now */
  now?: () => number;
  /**
   * The cluster identity: while this Redis is not confirmed to be the cluster's, its lock would
   * not keep another sidecar out, so no admin rotation runs. Absent: always whole.
   */
  cluster?: { state(): { readonly status: string; readonly reason?: string } } | undefined;
  /** Fault tests only: called at each crash point. */
  crashHook?: (point: AdminCrashPoint) => void;
}

/** What one admin rotation came to. */
export type AdminRotationOutcome =
  | { readonly status: "rotated"; readonly username: string }
  | { readonly status: "busy" }
  | { readonly status: "not_due" }
  | { readonly status: "gone" }
  | { readonly status: "unsupported"; readonly error: string }
  | { readonly status: "failed"; readonly username?: string | undefined; readonly error: string };

/** Adapter refusals that mean the target did not take the new password. */
const REFUSALS = new Set<AdapterError["code"]>(["auth_failed", "privilege", "password_rejected", "invalid"]);

/** Adapter errors and leasehold's own are safe to show; anything else is summarized. */
function safeMessage(err: unknown): string {
  if (err instanceof AdapterError || err instanceof LeaseholdError) return err.message;
  return "unexpected admin rotation error";
}

/**
 * Rotates each resource's admin password on its target with the accounts' crash-safe protocol:
 * the pending password is in Vault (CAS) before the admin changes its own password on the
 * target; the change is tested (new logs in, old refused) and then promoted (CAS). An admin
 * record left with a pending password is resolved first by trying it. One sidecar at a time
 * per resource (a Redis lock); the due time comes from Vault's `last_rotated_at`.
 */
export class AdminRotation {
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private stopped = false;

  constructor(private readonly o: AdminRotationOptions) {}

  private now(): number {
    return (this.o.now ?? Date.now)();
  }

  private ctx(admin: Credential | undefined): AdapterContext {
    return {
      admin,
      log: this.o.log.child({ module: "adapter" }),
      timeoutMs: this.o.adapterTimeoutMs ?? 10_000,
    };
  }

  private lockKey(resource: string): string {
    return `${this.o.prefix}{r:${resource}}:admin-lock`;
  }

  /**
   * Rotates the admin password of `resource` now (`onlyIfDue`: only when it is due, or a
   * rotation was left unfinished). Never throws for target or Vault faults: they are outcomes.
   */
  async rotate(
    resource: string,
    reason: string,
    opts: { onlyIfDue?: boolean } = {},
  ): Promise<AdminRotationOutcome> {
    const cluster = this.o.cluster?.state();
    if (cluster && cluster.status !== "ok") {
      return {
        status: "failed",
        error: `not rotated: this sidecar's Redis is not confirmed to be the cluster's (${cluster.status}), so its lock would not keep other sidecars out`,
      };
    }
    const ttl = this.o.lockTtlMs ?? 10_000;
    const lock = await acquireLock(this.o.redis, this.lockKey(resource), ttl);
    if (!lock) return { status: "busy" };
    const beat = setInterval(() => void lock.extend(ttl).catch(() => undefined), Math.max(200, ttl / 3));
    beat.unref();
    try {
      return await this.rotateLocked(resource, reason, opts.onlyIfDue ?? false);
    } finally {
      clearInterval(beat);
      await lock.release().catch(() => undefined);
    }
  }

  /** When the admin of `reg` is next due (ms since the epoch), or null when it is not rotated on a schedule. */
  dueAt(reg: StoredRegistration, rec: AdminRecord): number | null {
    const retryAt = rec.next_attempt_at ? Date.parse(rec.next_attempt_at) : Number.NaN;
    // An unfinished rotation (a crash, a lost lock) is resolved whatever the schedule says.
    if (rec.pending_password) return Number.isNaN(retryAt) ? 0 : retryAt;
    const every = reg.rotation.admin ? parseDurationMs(reg.rotation.admin.every) : null;
    if (every === null) return null;
    if (!Number.isNaN(retryAt) && (rec.failures ?? 0) > 0) return retryAt;
    const last = Date.parse(rec.last_rotated_at ?? reg.registered_at);
    return (Number.isNaN(last) ? 0 : last) + every;
  }

  private async rotateLocked(
    resource: string,
    reason: string,
    onlyIfDue: boolean,
  ): Promise<AdminRotationOutcome> {
    const reg = await this.o.catalog.get(resource);
    if (!reg) return { status: "gone" };
    if (reg.rotateWith !== "admin" || !reg.admin) {
      return { status: "unsupported", error: "the resource has no admin credential (rotateWith: self)" };
    }
    const adapter = this.o.adapters.get(reg.adapter);
    if (!adapter) return { status: "failed", error: `adapter ${reg.adapter} is not loaded` };
    const path = vaultPaths.admin(resource);
    let entry = await this.o.secrets.read<AdminRecord>(path);
    if (!entry) return { status: "failed", error: "the admin credential is missing from Vault" };
    if (onlyIfDue) {
      const due = this.dueAt(reg, entry.data);
      if (due === null || due > this.now()) return { status: "not_due" };
    }
    const base = { resource, account: entry.data.username, scope: "admin" as const };
    let changing = false;
    try {
      const settled = await this.settle(reg, adapter, entry);
      if (settled.promoted) return await this.succeeded(reg, adapter, settled.old, reason);
      entry = settled.entry;
      const old = { username: entry.data.username, password: entry.data.password };
      const pending = generatePassword(reg.rotation, adapter.constraints);
      const next: AdminRecord = { ...entry.data, pending_password: pending, rotation_id: randomUUID() };
      entry = { data: next, version: await this.o.secrets.write(path, next, entry.version) };
      await this.o.audit.append({ ...base, event: "rotation_started", reason });
      this.o.crashHook?.("admin_after_pending_written");
      changing = true;
      await this.change(reg, adapter, entry.data);
      changing = false;
      this.o.crashHook?.("admin_after_target_changed");
      await this.test(reg, adapter, old, pending);
      this.o.crashHook?.("admin_after_test");
      this.o.crashHook?.("admin_before_finish");
      await this.promote(path, entry);
      return await this.succeeded(reg, adapter, old, reason);
    } catch (err) {
      // A definite refusal of the change itself: the target kept its password, so the pending one is dropped.
      const refused = changing && err instanceof AdapterError && REFUSALS.has(err.code);
      return this.fail(resource, entry.data.username, err, refused);
    }
  }

  /**
   * Resolves a rotation left unfinished: the pending password logs in → promote it; else the
   * current one logs in → drop the pending one; else the previous one → it is current again.
   * Returns the entry to rotate from, or `promoted` with the password it replaced.
   */
  private async settle(
    reg: StoredRegistration,
    adapter: Adapter<unknown>,
    entry: KvEntry<AdminRecord>,
  ): Promise<{ promoted: true; old: Credential } | { promoted: false; entry: KvEntry<AdminRecord> }> {
    const rec = entry.data;
    const path = vaultPaths.admin(reg.name);
    if (!rec.pending_password) return { promoted: false, entry };
    const works = async (password: string) =>
      (
        await verifyAdminLogin(
          adapter,
          reg.connection,
          { username: rec.username, password },
          this.ctx(undefined),
        )
      ).valid;
    const old = { username: rec.username, password: rec.password };
    if (await works(rec.pending_password)) {
      await this.promote(path, entry);
      return { promoted: true, old };
    }
    const cleared = { ...rec, pending_password: undefined, rotation_id: undefined };
    if (await works(rec.password)) {
      return {
        promoted: false,
        entry: { data: cleared, version: await this.o.secrets.write(path, cleared, entry.version) },
      };
    }
    if (rec.previous_password && (await works(rec.previous_password))) {
      const back: AdminRecord = {
        ...cleared,
        password: rec.previous_password,
        previous_password: rec.password,
      };
      return {
        promoted: false,
        entry: { data: back, version: await this.o.secrets.write(path, back, entry.version) },
      };
    }
    throw new AdapterError(
      "auth_failed",
      "none of the admin passwords in Vault (current, pending, previous) logs in; set the admin password again with a registration",
      false,
    );
  }

  /** The admin changes its own password on the target, logged in with the one in force. */
  private async change(reg: StoredRegistration, adapter: Adapter<unknown>, rec: AdminRecord): Promise<void> {
    const { target, account } = adminAsAccount(adapter.id, reg.connection, rec.username);
    const admin = { username: rec.username, password: rec.password };
    try {
      await adapter.rotate(
        target,
        { account, current: rec.password, previous: rec.previous_password, next: rec.pending_password ?? "" },
        this.ctx(admin),
      );
    } catch (err) {
      throw err instanceof AdapterError ? explainAdminChangeError(adapter.id, err) : err;
    }
  }

  /** The new password logs in as the admin and the old one no longer does. */
  private async test(
    reg: StoredRegistration,
    adapter: Adapter<unknown>,
    old: Credential,
    pending: string,
  ): Promise<void> {
    const ctx = this.ctx(undefined);
    const now = await verifyAdminLogin(adapter, reg.connection, { ...old, password: pending }, ctx);
    if (!now.valid)
      throw new AdapterError("failed", "the new admin password does not log in after the change", true);
    const before = await verifyAdminLogin(adapter, reg.connection, old, ctx);
    if (before.valid)
      throw new AdapterError("failed", "the old admin password still logs in after the change", true);
  }

  private async promote(path: string[], entry: KvEntry<AdminRecord>): Promise<void> {
    const r = entry.data;
    const done: AdminRecord = {
      username: r.username,
      password: r.pending_password ?? r.password,
      previous_password: r.password,
      last_rotated_at: new Date(this.now()).toISOString(),
      failures: 0,
    };
    await this.o.secrets.write(path, done, entry.version);
  }

  /** After promotion: pooled admin connections opened with the old password are closed, and it is recorded. */
  private async succeeded(
    reg: StoredRegistration,
    adapter: Adapter<unknown>,
    old: Credential,
    reason: string,
  ): Promise<AdminRotationOutcome> {
    const targets = [reg.connection, adminAsAccount(adapter.id, reg.connection, old.username).target];
    for (const target of targets) await adminSessions.retire(adminSessionKey(adapter.id, target, old));
    await this.o.audit.append({
      event: "rotation_succeeded",
      scope: "admin",
      resource: reg.name,
      account: old.username,
      reason,
    });
    this.o.log.info({ resource: reg.name, admin: old.username }, "admin password rotated");
    return { status: "rotated", username: old.username };
  }

  private async fail(
    resource: string,
    username: string,
    err: unknown,
    refused: boolean,
  ): Promise<AdminRotationOutcome> {
    const message = safeMessage(err);
    this.o.log.warn(
      { resource, admin: username, err: { message, code: (err as { code?: string }).code } },
      "admin password rotation failed",
    );
    const path = vaultPaths.admin(resource);
    try {
      const cur = await this.o.secrets.read<AdminRecord>(path);
      if (cur) {
        const failures = (cur.data.failures ?? 0) + 1;
        const delay = Math.min(this.o.backoff * 2 ** (failures - 1), this.o.maxBackoff) * 1000;
        // Refused (by the target's password policy, or before it changed anything): draw a new one next time.
        const drop = refused || (err instanceof AdapterError && err.code === "password_rejected");
        const next: AdminRecord = {
          ...cur.data,
          ...(drop ? { pending_password: undefined, rotation_id: undefined } : {}),
          failures,
          last_error: message,
          next_attempt_at: new Date(this.now() + delay).toISOString(),
        };
        await this.o.secrets.write(path, next, cur.version);
      }
    } catch (e) {
      this.o.log.warn(
        { resource, err: { message: safeMessage(e) } },
        "could not record the admin rotation failure",
      );
    }
    const reason = `admin password: ${message}`;
    await this.o.events
      .publish({ type: "rotation_failed", resource, account: username, reason })
      .catch(() => undefined);
    await this.o.audit
      .append({ event: "rotation_failed", scope: "admin", resource, account: username, reason: message })
      .catch(() => undefined);
    return { status: "failed", username, error: message };
  }

  /**
   * One pass of the schedule: every resource whose admin is due (or was left mid-rotation) is
   * rotated, each under its lock, so one sidecar of the cluster does it.
   */
  async runDue(): Promise<void> {
    if (this.running || (this.o.cluster && this.o.cluster.state().status !== "ok")) return;
    this.running = true;
    try {
      for (const reg of await this.o.catalog.load()) {
        if (this.stopped) return;
        if (reg.rotateWith !== "admin" || !reg.admin) continue;
        const entry = await this.o.secrets.read<AdminRecord>(vaultPaths.admin(reg.name));
        const due = entry ? this.dueAt(reg, entry.data) : null;
        if (due === null || due > this.now()) continue;
        await this.rotate(reg.name, "scheduled", { onlyIfDue: true });
      }
    } finally {
      this.running = false;
    }
  }

  /** Runs {@link runDue} now and every `intervalMs` until {@link stop}. */
  start(intervalMs: number): void {
    const pass = () =>
      void this.runDue().catch((err: unknown) =>
        this.o.log.warn({ err: { message: safeMessage(err) } }, "admin rotation pass failed"),
      );
    pass();
    this.timer = setInterval(pass, intervalMs);
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
  }
}
