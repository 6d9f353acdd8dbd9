import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  checkPolicyOffline,
  defaultPolicyContext,
  parsePolicyContext,
  validatePolicyFile,
} from "../../sidecar/policy/index.js";

let dir: string;
let policy: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "lh-policy-offline-"));
  policy = join(dir, "policy.cedar");
  await writeFile(
    policy,
    `@id("day-reads")
permit(principal == Agent::"spiffe://example.org/agent/reporter", action == Action::"checkout", resource == Resource::"orders-db")
when { context.intent == "read" && context.hour_utc >= 8 && context.hour_utc < 18 };

@id("dpop-reveal")
permit(principal, action == Action::"reveal", resource) when { context.dpop };
`,
  );
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("validatePolicyFile", () => {
  it("lists the policy ids of a valid file", async () => {
    await expect(validatePolicyFile(policy)).resolves.toEqual({
      ok: true,
      errors: [],
      warnings: [],
      policies: ["day-reads", "dpop-reveal"],
    });
  });

  it("reports each validation error once, and unreadable files", async () => {
    const bad = join(dir, "bad.cedar");
    await writeFile(bad, `@id("typo") permit(principal, action, resource) when { context.tll > 5 };`);
    const result = await validatePolicyFile(bad);
    expect(result.ok).toBe(false);
    expect(result.errors).toHaveLength(1);
    expect(result.errors[0]).toMatch(/^typo: line 1, column \d+: .*`tll`/);
    const missing = await validatePolicyFile(join(dir, "nope.cedar"));
    expect(missing.ok).toBe(false);
    expect(missing.errors[0]).toMatch(/cannot read/);
  });
});

describe("checkPolicyOffline", () => {
  it("fills the context with defaults and decides", async () => {
    const noon = Date.UTC(2030, 0, 1, 12);
    const base = {
      principal: "spiffe://example.org/agent/reporter",
      action: "checkout",
      resource: "orders-db",
    };
    await expect(
      checkPolicyOffline(policy, { ...base, context: { intent: "read" }, now: noon }),
    ).resolves.toMatchObject({ decision: "allow", policies: ["day-reads"] });
    await expect(
      checkPolicyOffline(policy, { ...base, context: { intent: "read", hour_utc: 3 }, now: noon }),
    ).resolves.toMatchObject({ decision: "deny" });
    await expect(
      checkPolicyOffline(policy, { ...base, action: "reveal", context: { dpop: true } }),
    ).resolves.toMatchObject({ decision: "allow", policies: ["dpop-reveal"] });
    await expect(checkPolicyOffline(join(dir, "absent.cedar"), base)).resolves.toMatchObject({
      decision: "deny",
      reasons: ["no policy file"],
    });
  });

  it('decides Action::"statement" with the statement\'s fields', async () => {
    const file = join(dir, "statements.cedar");
    await writeFile(
      file,
      `@id("read-selects") permit(principal, action == Action::"statement", resource)
when { context.intent == "read" && context.statement_kind == "select" && ["orders"].containsAll(context.tables) };`,
    );
    const base = { principal: "spiffe://example.org/agent/a", action: "statement", resource: "orders-db" };
    await expect(
      checkPolicyOffline(file, {
        ...base,
        context: { intent: "read", statement_kind: "select", tables: ["orders"] },
      }),
    ).resolves.toMatchObject({ decision: "allow", policies: ["read-selects"] });
    await expect(
      checkPolicyOffline(file, {
        ...base,
        context: { intent: "read", statement_kind: "ddl", tables: ["orders"] },
      }),
    ).resolves.toMatchObject({ decision: "deny" });
    await expect(checkPolicyOffline(file, { ...base, context: { tables: "orders" } })).rejects.toThrow(
      /context.tables must be an array of strings/,
    );
  });

  it("refuses unknown actions and bad context fields by name", async () => {
    const base = { principal: "spiffe://example.org/agent/reporter", resource: "orders-db" };
    await expect(checkPolicyOffline(policy, { ...base, action: "drop" })).rejects.toThrow(
      /unknown action "drop"/,
    );
    await expect(
      checkPolicyOffline(policy, { ...base, action: "checkout", context: { ttl: "300" } }),
    ).rejects.toThrow(/context.ttl must be an integer/);
    await expect(
      checkPolicyOffline(policy, { ...base, action: "checkout", context: { colour: "red" } }),
    ).rejects.toThrow(/unknown context field "colour"/);
  });
});

describe("policy context helpers", () => {
  it("defaults to the current UTC hour and nothing approved", () => {
    const at = Date.UTC(2030, 5, 1, 21, 30);
    expect(defaultPolicyContext(at)).toEqual({
      task_id: "",
      intent: "",
      tool: "",
      ttl: 0,
      hour_utc: 21,
      active_leases: 0,
      approved: false,
      dpop: false,
      caller: { attested: false, uid: -1, exe_sha256: "", cgroup: "" },
      statement_kind: "",
      tables: [],
      multiple: false,
      command: "",
      keys: [],
    });
    expect(parsePolicyContext([1])).toEqual({ ok: false, error: "context must be a JSON object" });
    expect(parsePolicyContext({ delegated_by: "spiffe://example.org/agent/boss" }, at)).toMatchObject({
      ok: true,
      context: { delegated_by: "spiffe://example.org/agent/boss", hour_utc: 21 },
    });
  });
});
