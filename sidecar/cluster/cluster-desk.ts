import type { AuditSink } from "../audit/index.js";
import type { Logger } from "../logger.js";
import type { ClusterIdentity, ClusterState } from "./cluster-identity.js";

/** The cluster's state as operators see it (`GET /v1/cluster`, `leasehold cluster status`). */
export interface ClusterView {
  readonly status: ClusterState["status"];
  readonly cluster_id?: string | undefined;
  readonly vault_cluster_id?: string | null | undefined;
  readonly redis_cluster_id?: string | null | undefined;
  readonly vault: string;
  readonly redis: string;
  readonly reason?: string | undefined;
}

export interface ClusterDeskOptions {
  readonly identity: ClusterIdentity;
  readonly names: { readonly vault: string; readonly redis: string };
  readonly audit: AuditSink;
  /** One reconcile pass: after an adoption it rotates every dirty account at once. */
  readonly reconcile: () => Promise<void>;
  readonly log: Logger;
}

/** Operators' side of the cluster identity: its state, and adopting a Redis keyspace. */
export class ClusterDesk {
  constructor(private readonly o: ClusterDeskOptions) {}

  private view(s: ClusterState): ClusterView {
    const where = { vault: this.o.names.vault, redis: this.o.names.redis };
    if (s.status === "ok") return { status: s.status, cluster_id: s.id, ...where };
    if (s.status === "unknown") return { status: s.status, reason: s.reason, ...where };
    return {
      status: s.status,
      vault_cluster_id: s.vaultId,
      redis_cluster_id: s.redisId,
      reason: s.reason,
      ...where,
    };
  }

  async status(): Promise<ClusterView> {
    return this.view(await this.o.identity.check());
  }

  /**
   * After a real loss of Redis data: writes Vault's cluster id into this Redis keyspace (audited
   * before anything else happens), then reconciles at once, which rotates every account Vault
   * records as leased or rotating with no live lease here (invariant I2).
   */
  async adopt(input: {
    force: boolean;
    reason?: string | undefined;
    actor: string;
    requestId: string;
  }): Promise<ClusterView & { readonly previous_redis_cluster_id: string | null }> {
    const { id, previous } = await this.o.identity.adopt(input.force);
    await this.o.audit.append({
      event: "cluster",
      scope: "cluster_adopt",
      agent: input.actor,
      request_id: input.requestId,
      reason: `${this.o.names.redis} adopted into cluster ${id} (it held ${previous ?? "no cluster id"})${input.reason ? `: ${input.reason}` : ""}`,
    });
    this.o.log.warn(
      { cluster_id: id, previous, actor: input.actor },
      "redis keyspace adopted into the cluster",
    );
    await this.o.reconcile();
    return { ...(await this.status()), previous_redis_cluster_id: previous };
  }
}
