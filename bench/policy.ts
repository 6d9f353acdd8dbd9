/** Cost of one Cedar decision with the preparsed policy set, against a bare isAuthorized call. */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadPolicy } from "../sidecar/policy/index.js";
import { printTable, quick, type Row, writeResults } from "./stats.js";

const POLICY = `@id("read")
permit (principal, action in [Action::"checkout", Action::"reveal"], resource == Resource::"orders-db")
when { context.intent == "read" && context.task_id like "TICKET-*" && context.ttl <= 300 };
@id("approval")
permit (principal, action == Action::"checkout", resource == Resource::"orders-db")
when { context.intent == "write" && context.approved };
@id("limit")
forbid (principal, action == Action::"checkout", resource) when { context.active_leases >= 2 };
`;

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "lh-bench-policy-"));
  try {
    await writeFile(join(dir, "policy.cedar"), POLICY);
    const engine = await loadPolicy({ file: join(dir, "policy.cedar") });
    const ctx = (intent: string) => ({
      task_id: "TICKET-1",
      intent,
      tool: "psql",
      ttl: 120,
      hour_utc: 12,
      active_leases: 0,
      approved: false,
      dpop: false,
    });
    const n = quick ? 2000 : 20000;
    const time = (intent: string) => {
      for (let i = 0; i < 200; i++)
        engine.decide({
          principal: "spiffe://example.org/agent/a",
          action: "checkout",
          resource: "orders-db",
          context: ctx(intent),
        });
      const t = process.hrtime.bigint();
      for (let i = 0; i < n; i++)
        engine.decide({
          principal: "spiffe://example.org/agent/a",
          action: "checkout",
          resource: "orders-db",
          context: ctx(intent),
        });
      return Number(process.hrtime.bigint() - t) / 1e3 / n;
    };
    const allow = time("read");
    const deny = time("drop");
    const approval = time("write");
    const rows: Row[] = [
      { figure: "decision, allow (µs)", product: allow, floor: allow, unit: "µs", better: "lower" },
      {
        figure: "decision, deny (two evaluations: approval check)",
        product: deny,
        floor: allow,
        unit: "µs",
        better: "lower",
      },
      { figure: "decision, approval_required", product: approval, floor: allow, unit: "µs", better: "lower" },
    ];
    printTable(`Cedar decision cost (${n} decisions each; floor = one allow)`, rows);
    process.stdout.write(
      `results: ${writeResults("policy", { quick, allowUs: allow, denyUs: deny, approvalUs: approval })}\n`,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

void main();
