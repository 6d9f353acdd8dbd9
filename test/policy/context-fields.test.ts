import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { renderPolicyBlocks } from "../../scripts/policy-docs.js";
import {
  buildPolicyContext,
  cedarTypeOf,
  type ContextField,
  loadPolicy,
  parsePolicyContext,
  POLICY_CONTEXT_FIELDS,
  POLICY_SCHEMA,
  type PolicyFacts,
  validatePolicyFile,
} from "../../sidecar/policy/index.js";

const FIELDS = Object.entries<ContextField>(POLICY_CONTEXT_FIELDS);

const FACTS: PolicyFacts = {
  taskId: "TICKET-7",
  intent: "read",
  tool: "psql",
  ttl: 300,
  now: Date.UTC(2030, 0, 1, 23, 59, 59),
  activeLeases: 2,
  approved: true,
  dpop: true,
  chain: ["spiffe://example.org/agent/planner", "spiffe://example.org/agent/origin"],
  caller: { attested: true, uid: 1000, exe_sha256: "ab".repeat(32), cgroup: "/user.slice/agent.scope" },
  statement: {
    kind: "select",
    tables: ["sales.orders", "customers"],
    multiple: false,
    command: "get",
    keys: ["cache:a"],
  },
};

/** Fields every action's context has (not only the statement's). */
const GENERAL = FIELDS.filter(([, f]) => !("actions" in f));

const UNATTESTED = { attested: false, uid: -1, exe_sha256: "", cgroup: "" };

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "lh-context-fields-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("the policy context table", () => {
  it("declares every field in the schema's RequestContext (or the statement's) with its Cedar type", () => {
    const declaredIn = (type: string) =>
      (new RegExp(`type ${type} = \\{\\n([\\s\\S]*?)\\n\\};`).exec(POLICY_SCHEMA)?.[1] ?? "")
        .split("\n")
        .map((l) => l.trim());
    const line = ([name, f]: (typeof FIELDS)[number]) =>
      `${name}${f.optional ? "?" : ""}: ${cedarTypeOf(f)},`;
    expect(declaredIn("RequestContext")).toEqual(GENERAL.map(line));
    expect(declaredIn("StatementContext")).toEqual(FIELDS.map(line));
    expect(POLICY_SCHEMA).toContain("action statement appliesTo {");
    expect(FIELDS.map(([name]) => name)).toEqual(expect.arrayContaining(["task_id", "ttl", "delegated_by"]));
  });

  it("builds the context from the request's facts", () => {
    expect(buildPolicyContext(FACTS)).toEqual({
      task_id: "TICKET-7",
      intent: "read",
      tool: "psql",
      ttl: 300,
      hour_utc: 23,
      active_leases: 2,
      approved: true,
      dpop: true,
      delegated_by: "spiffe://example.org/agent/planner",
      on_behalf_of: "spiffe://example.org/agent/origin",
      caller: FACTS.caller,
    });
    expect(buildPolicyContext({ ...FACTS, onBehalfOf: "user:alice@example.org" }).on_behalf_of).toBe(
      "user:alice@example.org",
    );
    const plain = buildPolicyContext({
      ...FACTS,
      tool: undefined,
      chain: undefined,
      now: Date.UTC(2030, 0, 1, 0, 0),
      approved: false,
      dpop: false,
      caller: undefined,
    });
    expect(plain).toEqual({
      task_id: "TICKET-7",
      intent: "read",
      tool: "",
      ttl: 300,
      hour_utc: 0,
      active_leases: 2,
      approved: false,
      dpop: false,
      caller: UNATTESTED,
    });
    // An unattested caller reads as the neutral values, whatever else was passed.
    expect(buildPolicyContext({ ...FACTS, caller: { attested: false, uid: 0 } }).caller).toEqual(UNATTESTED);
    // Absent, not undefined: `context has delegated_by` must be false.
    expect("delegated_by" in plain).toBe(false);
    expect("delegated_by" in buildPolicyContext({ ...FACTS, chain: [] })).toBe(false);
    expect("on_behalf_of" in plain).toBe(false);
    expect("on_behalf_of" in buildPolicyContext({ ...FACTS, chain: [] })).toBe(false);
  });

  it("refuses an unknown field and a mistyped field by name", () => {
    expect(parsePolicyContext({ intent: "read", colour: "red" })).toEqual({
      ok: false,
      error: 'unknown context field "colour"',
    });
    const wrong = { String: 1, Long: "1", Bool: "true", "Set<String>": [1], Record: "x" } as const;
    for (const [name, f] of FIELDS) {
      if (f.type === "Record") {
        expect(parsePolicyContext({ [name]: "x" }), name).toEqual({
          ok: false,
          error: `context.${name} must be an object`,
        });
        continue;
      }
      expect(parsePolicyContext({ [name]: wrong[f.type] }), name).toEqual({
        ok: false,
        error: `context.${name} must be ${{ String: "a string", Long: "an integer", Bool: "a boolean", "Set<String>": "an array of strings" }[f.type]}`,
      });
    }
    expect(parsePolicyContext({ ttl: 1.5 })).toEqual({ ok: false, error: "context.ttl must be an integer" });
    expect(parsePolicyContext({ caller: { uid: "0" } })).toEqual({
      ok: false,
      error: "context.caller.uid must be an integer",
    });
    expect(parsePolicyContext({ caller: { colour: "red" } })).toEqual({
      ok: false,
      error: 'unknown context field "caller.colour"',
    });
    // A record given in part keeps its other members' offline defaults.
    const partial = parsePolicyContext({ caller: { attested: true, uid: 1000 } });
    expect(partial.ok && partial.context.caller).toEqual({ ...UNATTESTED, attested: true, uid: 1000 });
  });

  it("Cedar validates, strictly, a policy reading every field, and each reads the built value", async () => {
    const context = buildPolicyContext(FACTS, "statement") as Record<string, unknown>;
    const text = FIELDS.map(([name, f]) => {
      const value = context[name];
      const read =
        f.type === "Record"
          ? Object.entries(value as Record<string, unknown>)
              .map(([m, v]) => `context.${name}.${m} == ${JSON.stringify(v)}`)
              .join(" && ")
          : `context.${name} == ${JSON.stringify(value)}`;
      const when = f.optional ? `context has ${name} && ${read}` : read;
      return `@id("reads-${name}") permit(principal, action == Action::"statement", resource) when { ${when} };`;
    }).join("\n");
    const file = join(dir, "every-field.cedar");
    await writeFile(file, text);
    await expect(validatePolicyFile(file)).resolves.toEqual({
      ok: true,
      errors: [],
      warnings: [],
      policies: expect.arrayContaining(FIELDS.map(([name]) => `reads-${name}`)),
    });
    const engine = await loadPolicy({ file });
    const decision = engine.decide({
      principal: "spiffe://example.org/agent/a",
      action: "statement",
      resource: "orders-db",
      context: buildPolicyContext(FACTS, "statement"),
    });
    expect(decision.decision).toBe("allow");
    expect([...decision.policies].sort()).toEqual(FIELDS.map(([name]) => `reads-${name}`).sort());
    expect(decision.errors).toEqual([]);
  });

  it('keeps the statement\'s fields to Action::"statement": strict validation refuses them elsewhere', async () => {
    expect("statement_kind" in buildPolicyContext(FACTS)).toBe(false);
    expect(buildPolicyContext(FACTS, "statement")).toMatchObject({
      statement_kind: "select",
      tables: ["sales.orders", "customers"],
      multiple: false,
    });
    const file = join(dir, "kind-on-checkout.cedar");
    await writeFile(
      file,
      'permit(principal, action == Action::"checkout", resource) when { context.statement_kind == "select" };',
    );
    const v = await validatePolicyFile(file);
    expect(v.ok).toBe(false);
    expect(v.errors.join(" ")).toContain("statement_kind");
  });
});

describe("docs/policy.md", () => {
  it("holds the blocks generated from the table (run npx tsx scripts/gen-docs.ts after a change)", async () => {
    const doc = await readFile(new URL("../../docs/policy.md", import.meta.url), "utf8");
    for (const [name, content] of Object.entries(renderPolicyBlocks())) {
      const begin = `<!-- generated:${name} (scripts/gen-docs.ts; do not edit by hand) -->\n`;
      const start = doc.indexOf(begin);
      const end = doc.indexOf(`\n<!-- /generated:${name} -->`);
      expect(start, `markers of ${name}`).toBeGreaterThanOrEqual(0);
      expect(doc.slice(start + begin.length, end), `docs/policy.md block ${name} is out of date`).toBe(
        content.trim(),
      );
    }
    for (const [name, f] of FIELDS) {
      expect(doc).toContain(`| \`${name}\` | \`${cedarTypeOf(f)}\` |`);
      expect(doc).toContain(f.doc);
    }
  });
});
