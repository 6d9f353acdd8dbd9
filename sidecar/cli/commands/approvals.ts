import { userInfo } from "node:os";
import type { Command } from "commander";
import { unknownValueMessage } from "../../util/close-match.js";
import { CliError } from "../cli-error.js";
import type { CliContext } from "../context.js";
import { withExamples, withOutputOption } from "../help.js";
import { table } from "../table.js";

/** What `approvals list --status` takes: each status of an approval, or all of them. */
const LIST_STATUSES = ["pending", "approved", "denied", "expired", "all"];

interface ListedApproval {
  id: string;
  status: string;
  agent: string;
  resource: string;
  task: { id: string };
  intent: { action: string };
  ttl: number;
  expires_at: string;
  approver?: string;
}

function addList(approvals: Command, cli: CliContext): void {
  const list = approvals
    .command("list")
    .description("approval requests, pending ones by default, newest first")
    .option("--status <status>", "pending (default), approved, denied, expired or all", "pending")
    .option("--limit <n>", "approvals per page (1-200)", "50")
    .option("--cursor <cursor>", "the next page, as printed by the previous one");
  withOutputOption(list);
  withExamples(
    list,
    "leasehold approvals list",
    "leasehold approvals list --status all --limit 20 --output json",
  ).action(async (opts: { status: string; limit: string; cursor?: string }) => {
    if (!LIST_STATUSES.includes(opts.status))
      throw new CliError(unknownValueMessage("--status", opts.status, LIST_STATUSES));
    const q = new URLSearchParams();
    if (opts.status !== "all") q.set("status", opts.status);
    q.set("limit", opts.limit);
    if (opts.cursor) q.set("cursor", opts.cursor);
    const res = await (await cli.client()).request<{
      approvals: ListedApproval[];
      total?: number;
      next?: string;
    }>("GET", `/v1/approvals?${q}`);
    cli.out(res, () => {
      if (res.approvals.length === 0) return `no ${opts.status === "all" ? "" : `${opts.status} `}approvals`;
      const lines = [
        table([
          ["APPROVAL", "STATUS", "AGENT", "RESOURCE", "TASK", "INTENT", "TTL", "EXPIRES"],
          ...res.approvals.map((a) => [
            a.id,
            a.status,
            a.agent,
            a.resource,
            a.task.id,
            a.intent.action,
            `${a.ttl}s`,
            a.expires_at,
          ]),
        ]),
      ];
      if (res.total !== undefined && res.total > res.approvals.length)
        lines.push(`${res.approvals.length} of ${res.total}`);
      if (res.next) lines.push(`more: --cursor ${res.next}`);
      return lines.join("\n");
    });
  });
}

function addDecision(approvals: Command, cli: CliContext, verb: "approve" | "deny"): void {
  const cmd = approvals
    .command(`${verb} <id>`)
    .description(
      verb === "approve"
        ? "let a pending checkout go ahead (the agent waiting on it gets its lease)"
        : "refuse a pending checkout (the agent waiting on it gets approval_denied)",
    )
    .option("--reason <text>", "why, for the audit record")
    .option(
      "--as <name>",
      "with the admin token: the approver's name recorded in the audit trail (default: your login); an --identity-key names itself",
    );
  withExamples(
    cmd,
    `leasehold approvals ${verb} apr_01J... --reason '${verb === "approve" ? "on call, ticket checked" : "not in the change window"}'`,
    `leasehold --identity-key ./trust/alice.key.jwk approvals ${verb} apr_01J...`,
  ).action(async (id: string, opts: { reason?: string; as?: string }) => {
    const byIdentity = cli.globals().identityKey !== undefined;
    if (byIdentity && opts.as !== undefined)
      throw new CliError("--as: an --identity-key names its own approver (the key's subject)");
    const res = await (await cli.client()).request<{ approval: { status: string; approver?: string } }>(
      "POST",
      `/v1/approvals/${encodeURIComponent(id)}/${verb}`,
      {
        ...(byIdentity ? {} : { approver: opts.as ?? userInfo().username }),
        ...(opts.reason ? { reason: opts.reason } : {}),
      },
    );
    cli.out(res, () => `${id} ${res.approval.status} by ${res.approval.approver ?? "?"}`);
  });
}

/** `leasehold approvals list|approve|deny`: a human's answer to a pending checkout. */
export function registerApprovalCommands(program: Command, cli: CliContext): void {
  const approvals = program
    .command("approvals")
    .description("human approval of checkouts: list them, approve or deny one");
  withExamples(approvals, "leasehold approvals list", "leasehold approvals approve apr_01J...");
  addList(approvals, cli);
  addDecision(approvals, cli, "approve");
  addDecision(approvals, cli, "deny");
}
