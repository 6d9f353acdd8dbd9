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

    // The catalog (GET /v1/catalog, MCP's list_resources): could this agent check each resource
    // out, under any context? Cedar's partial evaluation per resource, against the floor of one
    // full decision per resource (what listing by trying a checkout each would cost).
    const many = Array.from(
      { length: 60 },
      (_, i) =>
        `@id("p${i}") permit(principal == Agent::"spiffe://example.org/agent/a${i}", action in [Action::"checkout", Action::"reveal"], resource in ResourceGroup::"g${i % 20}") when { context.intent == "read" && context.ttl <= 600 };`,
    );
    many.push(`@id("never") forbid(principal, action, resource in ResourceGroup::"secret");`);
    await writeFile(join(dir, "catalog.cedar"), many.join("\n"));
    const catalogEngine = await loadPolicy({ file: join(dir, "catalog.cedar") });
    const RESOURCES = 200;
    const groupsOf = (r: number) => (r % 10 === 0 ? [`g${r % 20}`, "secret"] : [`g${r % 20}`]);
    const listing = (principal: string) => {
      const t = process.hrtime.bigint();
      for (let r = 0; r < RESOURCES; r++)
        catalogEngine.couldAllow({
          principal,
          action: "checkout",
          resource: `r${r}`,
          resourceGroups: groupsOf(r),
        });
      return Number(process.hrtime.bigint() - t) / 1e3 / RESOURCES;
    };
    const decideAll = (principal: string) => {
      const t = process.hrtime.bigint();
      for (let r = 0; r < RESOURCES; r++)
        catalogEngine.decide({
          principal,
          action: "checkout",
          resource: `r${r}`,
          resourceGroups: groupsOf(r),
          context: ctx("read"),
        });
      return Number(process.hrtime.bigint() - t) / 1e3 / RESOURCES;
    };
    decideAll("spiffe://example.org/agent/warm");
    const catalogFloor = decideAll("spiffe://example.org/agent/a1");
    const cold = listing("spiffe://example.org/agent/a1");
    const cached = listing("spiffe://example.org/agent/a1");
    const catalogRows: Row[] = [
      {
        figure: "catalog, per resource, first listing",
        product: cold,
        floor: catalogFloor,
        unit: "µs",
        better: "lower",
      },
      {
        figure: "catalog, per resource, cached",
        product: cached,
        floor: catalogFloor,
        unit: "µs",
        better: "lower",
      },
    ];
    printTable(
      `Catalog filter (61 policies, ${RESOURCES} resources; floor = one full decision per resource)`,
      catalogRows,
    );
    process.stdout.write(
      `results: ${writeResults("policy", {
        quick,
        floorUs: floor,
        allowUs: allow,
        denyUs: deny,
        approvalUs: approval,
        catalog: { floorUs: catalogFloor, coldUs: cold, cachedUs: cached },
      })}\n`,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

void main();
