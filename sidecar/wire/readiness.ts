import type { ClusterIdentity } from "../cluster/index.js";
import type { ReadyReport } from "../http/index.js";
import { redisProblem } from "../redis.js";
import type { DependencyHealth } from "../secrets/index.js";
import type { Infrastructure } from "./infrastructure.js";

/**
 * One named readiness check of `/readyz`: usable, or the reason it is not, in words an operator
 * can act on (the address and the cause; never a credential). A check never throws.
 */
export interface ReadyCheck {
  readonly name: string;
  run(): Promise<DependencyHealth>;
}

/**
 * The sidecar's readiness checks, in the order `/readyz` lists them. Another check joins by
 * being added here.
 */
export function readinessChecks(infra: Infrastructure, cluster: ClusterIdentity): ReadyCheck[] {
  return [
    {
      name: "redis",
      run: async () => {
        const problem = await redisProblem(infra.redis);
        return problem === undefined ? { ok: true } : { ok: false, reason: problem };
      },
    },
    { name: "vault", run: () => infra.secrets.health() },
    {
      name: "audit",
      run: async () =>
        infra.audit.healthy() ? { ok: true } : { ok: false, reason: "the audit file cannot be written" },
    },
    {
      // Vault's prefix and this Redis keyspace form one cluster (`cluster_mismatch: …` otherwise).
      name: "cluster",
      run: async () => {
        const c = await cluster.check();
        return c.status === "ok" ? { ok: true } : { ok: false, reason: `${c.status}: ${c.reason}` };
      },
    },
  ];
}

/** Runs every check at once; ready when all pass. A check that throws counts as failed, with its message. */
export async function runReadiness(checks: readonly ReadyCheck[]): Promise<ReadyReport> {
  const outcomes = await Promise.all(
    checks.map((c) =>
      c
        .run()
        .catch(
          (err: unknown): DependencyHealth => ({ ok: false, reason: String((err as Error)?.message ?? err) }),
        ),
    ),
  );
  const report: { ok: boolean; checks: Record<string, boolean>; reasons: Record<string, string> } = {
    ok: true,
    checks: {},
    reasons: {},
  };
  checks.forEach((c, i) => {
    const o = outcomes[i] ?? { ok: false, reason: "no answer" };
    report.checks[c.name] = o.ok;
    if (!o.ok) {
      report.ok = false;
      report.reasons[c.name] = o.reason;
    }
  });
  return report;
}
