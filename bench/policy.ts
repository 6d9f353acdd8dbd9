/**
 * Cost of one Cedar decision through the engine, against the floor: a bare
 * `statefulIsAuthorized` call on the same preparsed policy set with the same,
 * prebuilt request (what any caller of cedar-wasm pays).
 */
import { preparsePolicySet, statefulIsAuthorized } from "@cedar-policy/cedar-wasm/nodejs";
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
      caller: { attested: false, uid: -1, exe_sha256: "", cgroup: "" },
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
    preparsePolicySet("bench-floor", { staticPolicies: POLICY });
    const bare = (intent: string) => {
      const request = {
        principal: { type: "Agent", id: "spiffe://example.org/agent/a" },
        action: { type: "Action", id: "checkout" },
        resource: { type: "Resource", id: "orders-db" },
        context: ctx(intent),
        entities: [
          { uid: { type: "Agent", id: "spiffe://example.org/agent/a" }, attrs: {}, parents: [] },
          { uid: { type: "Resource", id: "orders-db" }, attrs: {}, parents: [] },
        ],
        preparsedPolicySetId: "bench-floor",
      };
      for (let i = 0; i < 200; i++) statefulIsAuthorized(request);
      const t = process.hrtime.bigint();
      for (let i = 0; i < n; i++) statefulIsAuthorized(request);
      return Number(process.hrtime.bigint() - t) / 1e3 / n;
    };
    const floor = bare("read");
    const allow = time("read");
    const deny = time("drop");
    const approval = time("write");
    const rows: Row[] = [
      { figure: "decision, allow", product: allow, floor, unit: "µs", better: "lower" },
      {
        figure: "decision, deny (two evaluations: approval check)",
        product: deny,
        floor,
        unit: "µs",
        better: "lower",
      },
      { figure: "decision, approval_required", product: approval, floor, unit: "µs", better: "lower" },
    ];
    printTable(`Cedar decision cost (${n} decisions each; floor = one bare statefulIsAuthorized)`, rows);
    process.stdout.write(
      `results: ${writeResults("policy", { quick, floorUs: floor, allowUs: allow, denyUs: deny, approvalUs: approval })}\n`,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

void main();
