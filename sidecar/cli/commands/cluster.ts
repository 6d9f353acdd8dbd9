import type { Command } from "commander";
import type { ClusterView } from "../../cluster/index.js";
import { CliError } from "../cli-error.js";
import type { CliContext } from "../context.js";
import { examples } from "../help.js";

function describe(v: ClusterView): string {
  const lines =
    v.status === "ok"
      ? [`cluster ${v.cluster_id}: ok`]
      : [`cluster: ${v.status}`, ...(v.reason ? [`  ${v.reason}`] : [])];
  lines.push(`  ${v.vault}`, `  ${v.redis}`);
  return lines.join("\n");
}

/** `leasehold cluster status | adopt`: the cluster identity (docs/operations.md). */
export function registerClusterCommands(program: Command, cli: CliContext): void {
  const cluster = program
    .command("cluster")
    .description("the cluster identity: one Vault prefix with one Redis keyspace")
    .addHelpText(
      "after",
      examples("leasehold cluster status", "leasehold cluster adopt --reason 'Redis lost'"),
    );
  cluster
    .command("status")
    .description("whether the running sidecar's Vault prefix and Redis keyspace form one cluster")
    .addHelpText("after", examples("leasehold cluster status", "leasehold --json cluster status"))
    .action(async () => {
      const v = await (await cli.client()).request<ClusterView>("GET", "/v1/cluster");
      cli.out(v, () => describe(v));
      if (v.status !== "ok") process.exitCode = 1;
    });
  cluster
    .command("adopt")
    .description(
      "after a real loss of Redis data: take this Redis keyspace into the cluster (audited) and rotate every dirty account now",
    )
    .option("--force", "adopt even a keyspace that names another cluster (takes its leases over)")
    .option("--reason <text>", "why, for the audit record")
    .addHelpText(
      "after",
      examples(
        "leasehold cluster adopt --reason 'redis volume lost, restored empty'",
        "leasehold cluster adopt --force --reason 'moved to a new Redis'",
      ),
    )
    .action(async (opts: { force?: boolean; reason?: string }) => {
      const v = await (await cli.client()).request<
        ClusterView & { previous_redis_cluster_id: string | null }
      >("POST", "/v1/cluster/adopt", {
        force: opts.force === true,
        ...(opts.reason ? { reason: opts.reason } : {}),
      });
      cli.out(v, () =>
        [
          `adopted: ${v.redis} now belongs to cluster ${v.cluster_id ?? "?"} (it held ${v.previous_redis_cluster_id ?? "no cluster id"})`,
          "dirty accounts are being rotated now; `leasehold resources show NAME` shows their state",
        ].join("\n"),
      );
      if (v.status !== "ok") throw new CliError(`the cluster is still not whole: ${v.reason ?? v.status}`);
    });
}
