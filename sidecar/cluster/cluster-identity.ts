import { randomUUID } from "node:crypto";
import type { AuditSink } from "../audit/index.js";
import { LeaseholdError } from "../errors.js";
import type { Logger } from "../logger.js";
import type { RedisClient } from "../redis.js";
import type { SecretStore } from "../secrets/index.js";

/** Where the cluster id lives in Vault, under the configured prefix. */
export const CLUSTER_VAULT_PATH = ["cluster", "id"] as const;

/** The cluster id record in Vault: written once, by the cluster's first sidecar. */
interface ClusterRecord {
  readonly id: string;
  readonly created_at: string;
}

/** What this sidecar knows about its cluster: a Vault prefix and a Redis keyspace that agree. */
export type ClusterState =
  | { readonly status: "ok"; readonly id: string }
  | {
      readonly status: "cluster_mismatch";
      readonly vaultId: string | null;
      readonly redisId: string | null;
      /** Why, in words an operator can act on; names both prefixes, never a credential. */
      readonly reason: string;
    }
  | { readonly status: "unknown"; readonly reason: string };

export interface ClusterIdentityOptions {
  readonly secrets: SecretStore;
  readonly redis: RedisClient;
  /** The Redis key prefix (the keyspace). */
  readonly redisPrefix: string;
  /** How the two places are named in messages: e.g. `vault secret/leasehold`, `redis 127.0.0.1:6379/0 "leasehold:"`. */
  readonly names: { readonly vault: string; readonly redis: string };
  readonly log: Logger;
  /** Where a newly found mismatch is recorded (`cluster` / `cluster_mismatch`). */
  readonly audit?: AuditSink | undefined;
}

/**
 * A sidecar cluster is one Vault prefix with one Redis keyspace. The first sidecar writes a
 * cluster id to both; a sidecar whose Redis lacks Vault's id (a wrong Redis database or prefix,
 * or Redis data really lost) or holds another one is in `cluster_mismatch`: it refuses
 * checkouts, reports not ready, and rotates no account whose recorded lease may still be in use
 * by the real cluster. `adopt` (an operator's decision, after a real loss of Redis data) writes
 * Vault's id into this Redis.
 */
export class ClusterIdentity {
  private current: ClusterState = { status: "unknown", reason: "the cluster identity is not checked yet" };
  /** Vault's id never changes once written: read once. */
  private vaultId: string | undefined;

  constructor(private readonly o: ClusterIdentityOptions) {}

  private get redisKey(): string {
    return `${this.o.redisPrefix}cluster:id`;
  }

  /** The state found by the last check (no I/O). */
  state(): ClusterState {
    return this.current;
  }

  /** Throws 503 upstream_unavailable unless the last check found the cluster whole. */
  assertServing(): void {
    const s = this.current;
    if (s.status === "ok") return;
    throw new LeaseholdError("upstream_unavailable", `checkouts are refused (${s.status}): ${s.reason}`, {
      retryAfter: 5,
      detail: s.status,
    });
  }

  /**
   * Reads both ids (creating them on the cluster's first start) and records the state. Never
   * throws: an unreachable Redis or Vault gives `unknown`, which is not `ok`.
   */
  async check(): Promise<ClusterState> {
    const before = this.current.status;
    try {
      this.current = await this.read();
    } catch (err) {
      this.current = { status: "unknown", reason: `cluster identity unreadable: ${(err as Error).message}` };
    }
    if (this.current.status !== before) this.report(this.current);
    return this.current;
  }

  /**
   * True only when this Redis keyspace is, at this moment, the one Vault's cluster id names: a
   * fresh read, for the rare decision to rotate an account whose lease Vault records as
   * unexpired but this Redis does not know.
   */
  async confirmed(): Promise<boolean> {
    return (await this.check()).status === "ok";
  }

  /**
   * Takes this Redis keyspace into the cluster: writes Vault's id into it. Refused when the
   * keyspace names another cluster, unless `force`. Returns the id and what Redis held before.
   */
  async adopt(force: boolean): Promise<{ id: string; previous: string | null }> {
    const vaultId = await this.readVaultId();
    if (!vaultId) {
      throw new LeaseholdError(
        "conflict",
        `${this.o.names.vault} holds no cluster id yet: there is nothing to adopt (a sidecar writes it at its first start)`,
      );
    }
    const previous = await this.o.redis.get(this.redisKey);
    if (previous !== null && previous !== vaultId && !force) {
      throw new LeaseholdError(
        "conflict",
        `${this.o.names.redis} belongs to another cluster (${previous}); adopting it would take over that cluster's leases: check the config, or use force`,
      );
    }
    await this.o.redis.set(this.redisKey, vaultId);
    await this.check();
    return { id: vaultId, previous };
  }

  private async readVaultId(): Promise<string | null> {
    if (this.vaultId) return this.vaultId;
    const entry = await this.o.secrets.read<ClusterRecord>(CLUSTER_VAULT_PATH);
    if (entry?.data.id) this.vaultId = entry.data.id;
    return entry?.data.id ?? null;
  }

  private async read(): Promise<ClusterState> {
    let vaultId = await this.readVaultId();
    const redisId = await this.o.redis.get(this.redisKey);
    if (vaultId === null && redisId === null) {
      vaultId = await this.create();
      // Another sidecar may have set this Redis first, with the same id (it read Vault first).
      await this.o.redis.set(this.redisKey, vaultId, "NX");
      return this.compare(vaultId, await this.o.redis.get(this.redisKey));
    }
    return this.compare(vaultId, redisId);
  }

  /** Writes a new id to Vault (create only); a sidecar that lost the race takes the winner's. */
  private async create(): Promise<string> {
    const rec: ClusterRecord = { id: `lhc_${randomUUID()}`, created_at: new Date().toISOString() };
    try {
      await this.o.secrets.write(CLUSTER_VAULT_PATH, rec, 0);
      this.vaultId = rec.id;
      this.o.log.info({ cluster_id: rec.id }, "new cluster: id written to vault and redis");
      return rec.id;
    } catch (err) {
      if (!(err instanceof LeaseholdError && err.code === "conflict")) throw err;
      const winner = await this.readVaultId();
      if (!winner) throw err;
      return winner;
    }
  }

  private compare(vaultId: string | null, redisId: string | null): ClusterState {
    const { vault, redis } = this.o.names;
    if (vaultId !== null && vaultId === redisId) return { status: "ok", id: vaultId };
    const reason =
      vaultId === null
        ? `${redis} belongs to cluster ${redisId}, which ${vault} does not know: another cluster's Redis, or the wrong Vault prefix`
        : redisId === null
          ? `${redis} has no cluster id, but ${vault} belongs to cluster ${vaultId}: the wrong Redis database or prefix, or Redis data was lost (then run \`leasehold cluster adopt\`)`
          : `${redis} belongs to cluster ${redisId}, but ${vault} to cluster ${vaultId}: the two do not form one cluster`;
    return { status: "cluster_mismatch", vaultId, redisId, reason };
  }

  private report(s: ClusterState): void {
    if (s.status === "ok") this.o.log.info({ cluster_id: s.id }, "cluster identity confirmed");
    else if (s.status === "cluster_mismatch") {
      void this.o.audit
        ?.append({ event: "cluster", scope: "cluster_mismatch", reason: s.reason })
        .catch(() => undefined);
      this.o.log.error(
        { vault_cluster_id: s.vaultId, redis_cluster_id: s.redisId },
        `cluster mismatch: ${s.reason}; checkouts are refused and no account leased by the cluster is rotated before its recorded lease ends`,
      );
    } else this.o.log.warn({}, s.reason);
  }
}
