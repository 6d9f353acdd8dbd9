import { randomUUID } from "node:crypto";
import type { RedisClient } from "../redis.js";
import type { Adapter, AdapterContext, Credential } from "../../adapters/adapter.js";
import { AdapterError } from "../../adapters/adapter.js";
import type { AuditFields, AuditSink } from "../audit/index.js";
import type { LeaseEventPublisher } from "../events/index.js";
import { LeaseholdError } from "../errors.js";
import type { LeaseRecord, LeaseStore } from "../leases/index.js";
import type { Logger } from "../logger.js";
import type { ResourceCatalog } from "../resources/catalog.js";
import type { AccountRecord, StoredRegistration } from "../resources/types.js";
import { vaultPaths } from "../resources/vault-paths.js";
import type { KvEntry, SecretStore } from "../secrets/index.js";
import { withAdminCredential } from "./admin-credential.js";
import type { AdminCrashPoint } from "./admin-rotation.js";
import { acquireLock } from "./lock.js";
import { generatePassword } from "./password.js";

/** Who held a lease, as the rotation its end causes records it. */
export function leaseSubject(lease: LeaseRecord): NonNullable<RotationRequest["subject"]> {
  return {
    agent: lease.agent,
    agent_chain: lease.agent_chain,
    approver: lease.approver,
    task_id: lease.task.id,
  };
}

/** Named points of a rotation (an account's, or an admin's) at which a fault test may kill the process. */
export type CrashPoint =
  | "after_pending_written"
  | "after_target_changed"
  | "after_test"
  | "before_finish"
  | AdminCrashPoint;

export interface RotationEngineOptions {
  secrets: SecretStore;
  leases: LeaseStore;
  catalog: ResourceCatalog;
  adapters: ReadonlyMap<string, Adapter<unknown>>;
  audit: AuditSink;
  /** Where rotated, rotation_failed and quarantined events are published. */
  events: LeaseEventPublisher;
  redis: RedisClient;
  prefix: string;
  log: Logger;
  /** Failures before an account is quarantined. */
  maxFailures: number;
  /** First retry delay and its cap, seconds. */
  backoff: number;
  maxBackoff: number;
  /** Rotation lock TTL (renewed while the rotation runs), ms. @default 10000 */
  lockTtlMs?: number;
  /** Timeout for one adapter call, ms. @default 10000 */
  adapterTimeoutMs?: number;
  /** Fault tests only: called at each crash point. */
  crashHook?: (point: CrashPoint) => void;
  /**
   * The cluster identity. An account Vault records as leased to a lease this Redis does not
   * know is rotated before that lease's recorded maximum expiry only while this Redis is
   * confirmed to be the cluster's: otherwise the lease may be alive in the real cluster's Redis.
   * Absent: always confirmed (in-process tests).
   */
  cluster?: { confirmed(): Promise<boolean> } | undefined;
  /** Slack past a lease's recorded maximum expiry before it counts as over, ms. @default 2000 */
  maxExpiryGraceMs?: number;
  /** Clock. @default Date.now */
  now?: () => number;
}

export type RotationOutcome =
  | { readonly status: "rotated"; readonly changedTarget: boolean }
  | { readonly status: "busy" }
  | {
      readonly status: "failed";
      readonly error: string;
      readonly quarantined: boolean;
      /** False for a definite refusal by the target (AdapterError with retryable false). */
      readonly retryable?: boolean | undefined;
    }
  | { readonly status: "gone" };

export interface RotationRequest {
  readonly resource: string;
  readonly account: string;
  readonly reason: string;
  readonly leaseId?: string | undefined;
  /** Who held the lease whose end caused this rotation; copied onto its audit records. */
  readonly subject?: Pick<AuditFields, "agent" | "agent_chain" | "approver" | "task_id"> | undefined;
  /** Rotate even a quarantined account (an operator's explicit retry). */
  readonly force?: boolean | undefined;
}

/**
 * Changes an account's password after use, crash-safe: the pending password is in Vault before
 * the target changes, and every step can be repeated (DESIGN.md I2, I3).
 */
export class RotationEngine {
  private readonly timers = new Set<NodeJS.Timeout>();
  private stopped = false;

  constructor(private readonly o: RotationEngineOptions) {}

  private ctx(admin: Credential | undefined): AdapterContext {
    return {
      admin,
      log: this.o.log.child({ module: "adapter" }),
      timeoutMs: this.o.adapterTimeoutMs ?? 10_000,
    };
  }

  /**
   * A rotation that names no holder (the reconciler's, after a lease whose own rotation it
   * overtook) records the lease's holder when the lease record is intact (under its MAC).
   */
  private async withLeaseSubject(
    req: RotationRequest,
    recorded: string | undefined,
  ): Promise<RotationRequest> {
    const leaseId = req.leaseId ?? recorded;
    if (req.subject !== undefined || leaseId === undefined) return req;
    const { lease, intact } = await this.o.leases
      .getVerified(req.resource, leaseId)
      .catch(() => ({ lease: null, intact: false }));
    return intact && lease ? { ...req, subject: leaseSubject(lease) } : req;
  }

  private lockKey(resource: string, account: string): string {
    return `${this.o.prefix}{r:${resource}}:lock:${account}`;
  }

  /** Rotates one account now. Never throws for target or Vault faults: they are outcomes. */
  async rotate(req: RotationRequest): Promise<RotationOutcome> {
    const ttl = this.o.lockTtlMs ?? 10_000;
    const lock = await acquireLock(this.o.redis, this.lockKey(req.resource, req.account), ttl);
    if (!lock) return { status: "busy" };
    // The lock only keeps two sidecars from doing the same work; Vault's CAS is the fence.
    // A short TTL with a heartbeat lets a crashed holder's work be taken over quickly.
    const beat = setInterval(() => void lock.extend(ttl).catch(() => undefined), Math.max(200, ttl / 3));
    beat.unref();
    try {
      return await this.rotateLocked(req);
    } finally {
      clearInterval(beat);
      await lock.release().catch(() => undefined);
    }
  }

  /**
   * Rotates one account, waiting (up to `waitMs`) while another rotation of it holds the lock:
   * for callers that must see this rotation done (an import at registration, a removal), where a
   * background sweep may be rotating the same account at that moment.
   */
  async rotateWhenFree(req: RotationRequest, waitMs = 5_000): Promise<RotationOutcome> {
    const until = Date.now() + waitMs;
    let out = await this.rotate(req);
    while (out.status === "busy" && !this.stopped && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 100));
      out = await this.rotate(req);
    }
    return out;
  }

  private async rotateLocked(asked: RotationRequest): Promise<RotationOutcome> {
    let req = asked;
    const { resource, account } = req;
    const reg = await this.o.catalog.get(resource);
    if (!reg?.accounts.includes(account)) return { status: "gone" };
    const adapter = this.o.adapters.get(reg.adapter);
    if (!adapter)
      return { status: "failed", error: `adapter ${reg.adapter} is not loaded`, quarantined: false };
    const path = vaultPaths.account(resource, account);
    let entry = await this.o.secrets.read<AccountRecord>(path);
    if (!entry) return { status: "gone" };
    if (entry.data.state === "leased" && entry.data.lease_id) {
      // Only a lease whose record holds its MAC can keep the account: a record revived in Redis
      // by someone who can write there cannot hold a rotation off.
      const { lease, intact } = await this.o.leases.getVerified(resource, entry.data.lease_id);
      if (intact && lease?.state === "active") return { status: "busy" };
      // A lease this Redis does not know may be alive in another Redis (a misconfigured
      // sidecar, or Redis data lost): wait for its recorded end unless this Redis is the cluster's.
      if (!(intact && lease) && this.mayBeLive(entry.data) && !(await this.clusterConfirmed())) {
        return { status: "busy" };
      }
    }
    if (entry.data.state === "quarantined" && !req.force) {
      return { status: "failed", error: "account is quarantined", quarantined: true };
    }
    req = await this.withLeaseSubject(req, entry.data.lease_id);
    const rotationId = entry.data.rotation_id ?? randomUUID();
    const base = { ...req.subject, resource, account, lease_id: req.leaseId ?? entry.data.lease_id };
    try {
      // create: the pending password is durable in Vault before the target changes.
      if (!entry.data.pending_password) {
        const pending = generatePassword(reg.rotation, adapter.constraints);
        const next: AccountRecord = {
          ...entry.data,
          state: "rotating",
          pending_password: pending,
          rotation_id: rotationId,
        };
        entry = { data: next, version: await this.o.secrets.write(path, next, entry.version) };
        await this.o.audit.append({ ...base, event: "rotation_started", reason: req.reason });
      } else if (entry.data.state !== "rotating") {
        const next: AccountRecord = { ...entry.data, state: "rotating", rotation_id: rotationId };
        entry = { data: next, version: await this.o.secrets.write(path, next, entry.version) };
      }
      this.o.crashHook?.("after_pending_written");
      const changed = await this.setAndTest(reg, adapter, entry.data);
      this.o.crashHook?.("after_test");
      const terminate = adapter.terminateSessions?.bind(adapter);
      if (reg.rotation.terminateSessions && terminate && reg.rotateWith === "admin") {
        // During an admin rotation the pending admin password may be the one that logs in.
        await withAdminCredential(this.o.catalog, resource, (admin) =>
          terminate(reg.connection, account, this.ctx(admin)),
        );
      }
      this.o.crashHook?.("before_finish");
      await this.finish(path, entry);
      await this.o.leases.setAccountState(resource, account, "available", true);
      await this.o.events.publish({ type: "rotated", resource, account, lease_id: base.lease_id });
      await this.o.audit.append({ ...base, event: "rotation_succeeded", reason: req.reason });
      this.o.log.info({ resource, account, changedTarget: changed }, "rotation succeeded");
      return { status: "rotated", changedTarget: changed };
    } catch (err) {
      return this.fail(req, path, err);
    }
  }

  /** True until the lease the account is recorded leased to is past its recorded maximum expiry. */
  private mayBeLive(rec: AccountRecord): boolean {
    const max = rec.max_expires_at;
    if (typeof max !== "number") return true;
    return (this.o.now ?? Date.now)() <= max + (this.o.maxExpiryGraceMs ?? 2_000);
  }

  private async clusterConfirmed(): Promise<boolean> {
    if (!this.o.cluster) return true;
    return this.o.cluster.confirmed().catch(() => false);
  }

  /** set + test: the pending password logs in afterwards, and the old one does not. */
  private async setAndTest(
    reg: StoredRegistration,
    adapter: Adapter<unknown>,
    rec: AccountRecord,
  ): Promise<boolean> {
    const pending = rec.pending_password ?? "";
    const admin = reg.rotateWith === "admin" ? await this.o.catalog.admin(reg.name) : undefined;
    if (reg.rotateWith === "admin" && !admin) {
      throw new AdapterError("auth_failed", "the admin credential is missing from Vault", false);
    }
    const ctx = this.ctx(admin);
    const cred = (password: string) => ({ username: rec.username, password });
    let changed = false;
    const already = await adapter.verify(reg.connection, cred(pending), ctx);
    if (!already.valid) {
      const change = {
        account: rec.username,
        current: rec.password || undefined,
        previous: rec.previous_password,
        next: pending,
      };
      if (reg.rotateWith === "admin") {
        // During an admin rotation the pending admin password may be the one that logs in.
        await withAdminCredential(this.o.catalog, reg.name, (a) =>
          adapter.rotate(reg.connection, change, this.ctx(a)),
        );
      } else await adapter.rotate(reg.connection, change, ctx);
      changed = true;
      this.o.crashHook?.("after_target_changed");
    }
    const works = await adapter.verify(reg.connection, cred(pending), ctx);
    if (!works.valid)
      throw new AdapterError("failed", "the new password does not log in after the change", true);
    if (rec.password && rec.password !== pending) {
      const old = await adapter.verify(reg.connection, cred(rec.password), ctx);
      if (old.valid)
        throw new AdapterError("failed", "the old password still logs in after the change", true);
    }
    return changed;
  }

  private async finish(path: string[], entry: KvEntry<AccountRecord>): Promise<void> {
    const r = entry.data;
    const done: AccountRecord = {
      username: r.username,
      password: r.pending_password ?? r.password,
      previous_password: r.password || undefined,
      state: "available",
      last_rotated_at: new Date().toISOString(),
      failures: 0,
    };
    await this.o.secrets.write(path, done, entry.version);
  }

  private async fail(req: RotationRequest, path: string[], err: unknown): Promise<RotationOutcome> {
    const message =
      err instanceof AdapterError || err instanceof LeaseholdError
        ? err.message
        : "unexpected rotation error";
    this.o.log.warn(
      {
        resource: req.resource,
        account: req.account,
        err: { message, code: (err as { code?: string }).code },
      },
      "rotation failed",
    );
    let quarantined = false;
    try {
      const cur = await this.o.secrets.read<AccountRecord>(path);
      if (cur) {
        const failures = (cur.data.failures ?? 0) + 1;
        quarantined = failures >= this.o.maxFailures;
        const delay =
          Math.min(this.o.backoff * 2 ** (failures - 1), this.o.maxBackoff) * (0.8 + Math.random() * 0.4);
        // A definite refusal of this password by the target's policy: draw a new one next time.
        // Any other failure keeps the pending password, which may already be set on the target.
        const rejected = err instanceof AdapterError && err.code === "password_rejected";
        const next: AccountRecord = {
          ...cur.data,
          ...(rejected ? { pending_password: undefined } : {}),
          state: quarantined ? "quarantined" : cur.data.state === "available" ? "rotating" : cur.data.state,
          failures,
          last_error: message,
          next_attempt_at: new Date(Date.now() + delay * 1000).toISOString(),
        };
        await this.o.secrets.write(path, next, cur.version);
        if (quarantined) {
          await this.o.leases.setAccountState(req.resource, req.account, "quarantined", true);
          await this.o.events.publish({
            type: "quarantined",
            resource: req.resource,
            account: req.account,
            reason: message,
          });
          await this.o.audit.append({
            ...req.subject,
            event: "quarantine",
            lease_id: req.leaseId,
            resource: req.resource,
            account: req.account,
            reason: message,
          });
        } else {
          this.retryLater({ ...req, force: false }, delay * 1000);
        }
      }
    } catch (e) {
      // Vault itself is failing: nothing can be recorded, so just try again later.
      this.retryLater({ ...req, force: false }, this.o.backoff * 1000);
      this.o.log.warn(
        { resource: req.resource, account: req.account, err: { message: (e as Error).message } },
        "could not record rotation failure",
      );
    }
    await this.o.events
      .publish({ type: "rotation_failed", resource: req.resource, account: req.account, reason: message })
      .catch(() => undefined);
    await this.o.audit
      .append({
        ...req.subject,
        event: "rotation_failed",
        lease_id: req.leaseId,
        resource: req.resource,
        account: req.account,
        reason: message,
      })
      .catch(() => undefined);
    const retryable = !(err instanceof AdapterError && !err.retryable);
    return { status: "failed", error: message, quarantined, retryable };
  }

  /** Runs a rotation in the background (after check-in, expiry, revocation). */
  schedule(req: RotationRequest, delayMs = 0): void {
    this.retryLater(req, delayMs);
  }

  private retryLater(req: RotationRequest, delayMs: number): void {
    if (this.stopped) return;
    const t = setTimeout(() => {
      this.timers.delete(t);
      void this.rotate(req).catch((err: unknown) =>
        this.o.log.error(
          { resource: req.resource, account: req.account, err: { message: (err as Error).message } },
          "rotation crashed",
        ),
      );
    }, delayMs);
    t.unref();
    this.timers.add(t);
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }
}
