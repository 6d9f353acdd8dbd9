import type { Command } from "commander";
import { CliError } from "../cli-error.js";
import type { CliContext } from "../context.js";
import { escapeText } from "../../util/escape.js";
import { withExamples, withOutputOption } from "../help.js";
import { revokeLease } from "../revoke-lease.js";
import { table } from "../table.js";

function addList(leases: Command, cli: CliContext): void {
  const list = leases
    .command("list")
    .description("the active leases: who holds which account, for which task, for how long")
    .option("--resource <name>", "only the leases of this resource")
    .option("--agent <id>", "only the leases of this agent (SPIFFE ID)")
    .option("--limit <n>", "leases per page (1-1000)", "500")
    .option("--cursor <cursor>", "the next page, as printed by the previous one");
  withOutputOption(list);
  withExamples(
    list,
    "leasehold leases list",
    "leasehold leases list --resource orders-db --output json | jq '.leases[].id'",
    "leasehold leases list --limit 100 --cursor <next_cursor of the previous page>",
  ).action(async (opts: { resource?: string; agent?: string; limit: string; cursor?: string }) => {
    const limit = Number(opts.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000)
      throw new CliError("--limit: a whole number of leases per page, 1 to 1000");
    const q = new URLSearchParams();
    if (opts.resource) q.set("resource", opts.resource);
    if (opts.agent) q.set("agent", opts.agent);
    q.set("limit", String(limit));
    if (opts.cursor) q.set("cursor", opts.cursor);
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
      next_cursor?: string;
    }>("GET", `/v1/leases?${q}`);
    cli.out(res, () => {
      if (res.leases.length === 0) return "no active leases";
      const lines = [
        table([
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
      ];
      if (res.next_cursor) lines.push(`more: --cursor ${res.next_cursor}`);
      return lines.join("\n");
    });
  });
}

function addWatch(leases: Command, cli: CliContext): void {
  const watch = leases
    .command("watch")
    .description("live view of active leases, refreshed from the event stream")
    .option("--threshold <seconds>", "highlight leases expiring within this many seconds", "60")
    .option("--lines", "one line per lease, then per event, even on a terminal");
  withExamples(
    watch,
    "leasehold leases watch                  # full screen: j/k select, r revokes, q quits",
    "leasehold leases watch --threshold 120  # mark leases ending within two minutes",
    "leasehold --json leases watch --lines   # one JSON object per lease, then per event",
  ).action(async (opts: { threshold: string; lines?: boolean }) => {
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
    const { watchCommand } = await import("../watch/index.js");
    const { watchTarget } = await import("../client-settings.js");
    await watchCommand({
      ...(await watchTarget(await cli.clientSettings())),
      out: process.stdout,
      thresholdSeconds: threshold,
      json: cli.json(),
      lines: opts.lines === true,
      input: process.stdin,
      revoke: async (id) => revokeLease(await cli.client(), id),
      signal: ac.signal,
    });
  });
}

interface EndedLease {
  id: string;
  resource: string;
  account: string;
  agent: string;
}

/** One line per lease ended, then how many. */
function endedLines(leases: readonly EndedLease[], what: string): string {
  const count = `revoked ${leases.length} lease(s) of ${escapeText(what)}`;
  if (leases.length === 0) return count;
  const rows = leases.map((l) => [l.id, l.resource, l.account, l.agent]);
  return `${table([["LEASE", "RESOURCE", "ACCOUNT", "AGENT"], ...rows])}\n${count}`;
}

/** What `leases revoke` needs: one lease, or one group of leases. */
export const REVOKE_TARGETS =
  "give a lease ID (leasehold leases revoke lse_…) or one of --resource NAME (every lease of a resource), --agent ID (of an agent) or --task ID (of a task)";

/** The route that revokes a group of leases, and the body it takes; undefined for one lease by id. */
function groupRevoke(
  opts: { agent?: string; resource?: string; task?: string },
  reason: { reason?: string },
): { path: string; body: object; what: string } | undefined {
  const given = [opts.agent, opts.resource, opts.task].filter((v) => v !== undefined);
  if (given.length > 1) throw new CliError(`only one target at a time: ${REVOKE_TARGETS}`);
  if (opts.resource !== undefined) {
    const path = `/v1/resources/${encodeURIComponent(opts.resource)}/revoke`;
    return { path, body: reason, what: opts.resource };
  }
  if (opts.agent !== undefined) {
    return { path: "/v1/agents/revoke", body: { agent: opts.agent, ...reason }, what: opts.agent };
  }
  if (opts.task !== undefined) {
    const path = `/v1/tasks/${encodeURIComponent(opts.task)}/revoke`;
    return { path, body: reason, what: `task ${opts.task}` };
  }
  return undefined;
}

function addRevoke(leases: Command, cli: CliContext): void {
  const revoke = leases
    .command("revoke [id]")
    .description("end a lease now (or every lease of a resource, agent or task); its account is rotated")
    .option("--agent <id>", "revoke every lease of this agent")
    .option("--resource <name>", "revoke every lease of this resource")
    .option("--task <id>", "revoke every lease of this task, whichever agent holds it")
    .option("--reason <text>", "why, for the audit record");
  withExamples(
    revoke,
    "leasehold leases revoke lse_01J... --reason 'agent misbehaving'",
    "leasehold leases revoke --agent spiffe://example.org/agent/reporter",
    "leasehold leases revoke --task TICKET-123",
  ).action(
    async (
      id: string | undefined,
      opts: { agent?: string; resource?: string; task?: string; reason?: string },
    ) => {
      const reason = opts.reason ? { reason: opts.reason } : {};
      const group = groupRevoke(opts, reason);
      if (group && id) throw new CliError(`only one target at a time: ${REVOKE_TARGETS}`);
      // Checked before the client is made: the hint must not wait on a config or a sidecar.
      if (!group && !id) throw new CliError(REVOKE_TARGETS);
      const c = await cli.client();
      if (group) {
        const res = await c.request<{ leases: EndedLease[] }>("POST", group.path, group.body);
        cli.out(res, () => endedLines(res.leases, group.what));
        return;
      }
      if (!id) throw new CliError(REVOKE_TARGETS);
      const res = await revokeLease(c, id, reason);
      cli.out(res, () => `${id} revoked`);
    },
  );
}

/** `leasehold leases list|watch|revoke`. */
export function registerLeaseCommands(program: Command, cli: CliContext): void {
  const leases = program.command("leases").description("list, watch and revoke leases");
  withExamples(leases, "leasehold leases list", "leasehold leases revoke --task TICKET-123");
  addList(leases, cli);
  addWatch(leases, cli);
  addRevoke(leases, cli);
}
