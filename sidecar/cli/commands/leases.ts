import type { Command } from "commander";
import { CliError } from "../cli-error.js";
import type { CliContext } from "../context.js";
import { table } from "../table.js";
import { watchCommand, watchTargetFromConfig } from "../watch/index.js";

function addList(leases: Command, cli: CliContext): void {
  leases
    .command("list")
    .option("--resource <name>")
    .option("--agent <id>")
    .action(async (opts: { resource?: string; agent?: string }) => {
      const q = new URLSearchParams();
      if (opts.resource) q.set("resource", opts.resource);
      if (opts.agent) q.set("agent", opts.agent);
      const res = await (await cli.client()).request<{
        leases: Array<{
          id: string;
          resource: string;
          account: string;
          agent: string;
          task: { id: string };
          intent: { action: string };
          ttl_seconds: number;
        }>;
      }>("GET", `/v1/leases${q.size ? `?${q}` : ""}`);
      cli.out(res, () =>
        res.leases.length === 0
          ? "no active leases"
          : table([
              ["LEASE", "RESOURCE", "ACCOUNT", "AGENT", "TASK", "INTENT", "TTL"],
              ...res.leases.map((l) => [
                l.id,
                l.resource,
                l.account,
                l.agent,
                l.task.id,
                l.intent.action,
                `${l.ttl_seconds}s`,
              ]),
            ]),
      );
    });
}

function addWatch(leases: Command, cli: CliContext): void {
  leases
    .command("watch")
    .description("live view of active leases, refreshed from the event stream")
    .option("--threshold <seconds>", "highlight leases expiring within this many seconds", "60")
    .action(async (opts: { threshold: string }) => {
      const threshold = Number(opts.threshold);
      if (!Number.isFinite(threshold) || threshold < 0)
        throw new CliError("--threshold: a number of seconds, 0 or more");
      if (cli.globals().identityKey !== undefined)
        throw new CliError(
          "--identity-key: the live view reads the whole event stream, which needs the admin token",
        );
      const ac = new AbortController();
      process.once("SIGINT", () => ac.abort());
      process.once("SIGTERM", () => ac.abort());
      await watchCommand({
        ...(await watchTargetFromConfig(cli.config())),
        out: process.stdout,
        thresholdSeconds: threshold,
        json: cli.globals().json === true,
        signal: ac.signal,
      });
    });
}

function addRevoke(leases: Command, cli: CliContext): void {
  leases
    .command("revoke [id]")
    .option("--agent <id>", "revoke every lease of this agent")
    .option("--resource <name>", "revoke every lease of this resource")
    .option("--reason <text>")
    .action(async (id: string | undefined, opts: { agent?: string; resource?: string; reason?: string }) => {
      const c = await cli.client();
      const reason = opts.reason ? { reason: opts.reason } : {};
      if (opts.resource) {
        const res = await c.request<{ leases: Array<{ id: string }> }>(
          "POST",
          `/v1/resources/${encodeURIComponent(opts.resource)}/revoke`,
          reason,
        );
        cli.out(res, () => `revoked ${res.leases.length} lease(s) of ${opts.resource}`);
        return;
      }
      if (opts.agent) {
        const res = await c.request<{ leases: Array<{ id: string }> }>("POST", "/v1/agents/revoke", {
          agent: opts.agent,
          ...reason,
        });
        cli.out(res, () => `revoked ${res.leases.length} lease(s) of ${opts.agent}`);
        return;
      }
      if (!id) throw new CliError("give a lease id, or --agent");
      const res = await c.request<unknown>("POST", `/v1/leases/${encodeURIComponent(id)}/revoke`, reason);
      cli.out(res, () => `${id} revoked`);
    });
}

/** `leasehold leases list|watch|revoke`. */
export function registerLeaseCommands(program: Command, cli: CliContext): void {
  const leases = program.command("leases").description("watch and revoke leases");
  addList(leases, cli);
  addWatch(leases, cli);
  addRevoke(leases, cli);
}
