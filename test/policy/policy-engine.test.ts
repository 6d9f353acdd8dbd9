import { mkdtemp, rm, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  loadPolicy,
  type PolicyContext,
  PolicyLoadError,
  type PolicyPartialRequest,
  type PolicyRequest,
} from "../../sidecar/policy/index.js";

const REPORTER = "spiffe://example.org/agent/reporter";
let dir: string;

const BASE: PolicyContext = {
  task_id: "",
  intent: "",
  tool: "",
  ttl: 0,
  hour_utc: 0,
  active_leases: 0,
  approved: false,
  dpop: false,
  caller: { attested: false, uid: -1, exe_sha256: "", cgroup: "" },
};

function request(
  overrides: Partial<PolicyRequest> = {},
  context: Partial<PolicyContext> = {},
): PolicyRequest {
  return {
    principal: REPORTER,
    action: "checkout",
    resource: "orders-db",
    context: { ...BASE, ...context },
    ...overrides,
  };
}

async function policyFile(name: string, text: string): Promise<string> {
  const file = join(dir, `${name}.cedar`);
  await writeFile(file, text);
  return file;
}

const MAIN_POLICY = `
@id("reporter-reads-orders")
permit(principal == Agent::"${REPORTER}", action == Action::"checkout", resource == Resource::"orders-db")
when { context.intent == "read" && context.ttl <= 600 };

@id("long-reads-need-approval")
permit(principal == Agent::"${REPORTER}", action == Action::"checkout", resource == Resource::"orders-db")
when { context.intent == "read" && context.ttl > 600 && context.approved };

@id("no-writes-at-night")
forbid(principal, action == Action::"checkout", resource)
when { context.intent == "write" && (context.hour_utc < 6 || context.hour_utc >= 22) };

permit(principal, action == Action::"checkout", resource == Resource::"orders-db")
when { context.intent == "write" };

permit(principal in AgentGroup::"dbas", action == Action::"register", resource in ResourceGroup::"databases");

permit(principal, action == Action::"reveal", resource)
when { principal has team && principal.team == "finance" && principal has roles && principal.roles.contains("analyst") };
`;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "lh-policy-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("decisions", () => {
  it("allows and cites the @id of the deciding policy", async () => {
    const engine = await loadPolicy({ file: await policyFile("main-allow", MAIN_POLICY) });
    const decision = engine.decide(request({}, { intent: "read", ttl: 300 }));
    expect(decision).toEqual({
      decision: "allow",
      policies: ["reporter-reads-orders"],
      reasons: ["permitted by reporter-reads-orders"],
      errors: [],
    });
  });

  it("denies when no policy permits, and cites a forbid that fired", async () => {
    const engine = await loadPolicy({ file: await policyFile("main-deny", MAIN_POLICY) });
    const other = engine.decide(
      request({ principal: "spiffe://example.org/agent/other" }, { intent: "read" }),
    );
    expect(other).toMatchObject({
      decision: "deny",
      policies: [],
      reasons: ["no policy permits this request"],
    });

    const night = engine.decide(request({}, { intent: "write", hour_utc: 23 }));
    expect(night).toMatchObject({
      decision: "deny",
      policies: ["no-writes-at-night"],
      reasons: ["forbidden by no-writes-at-night"],
    });
    // The unannotated fourth policy allows by day and is cited by Cedar's default id.
    expect(engine.decide(request({}, { intent: "write", hour_utc: 12 }))).toMatchObject({
      decision: "allow",
      policies: ["policy3"],
    });
  });

  it("turns a deny that approval would lift into approval_required", async () => {
    const engine = await loadPolicy({ file: await policyFile("main-approval", MAIN_POLICY) });
    const decision = engine.decide(request({}, { intent: "read", ttl: 3600 }));
    expect(decision).toMatchObject({
      decision: "approval_required",
      policies: ["long-reads-need-approval"],
    });
    // With the approval given, the same request is allowed by the same policy.
    expect(engine.decide(request({}, { intent: "read", ttl: 3600, approved: true }))).toMatchObject({
      decision: "allow",
      policies: ["long-reads-need-approval"],
    });
    // A forbid is not lifted by approval.
    expect(engine.decide(request({}, { intent: "write", hour_utc: 2 })).decision).toBe("deny");
  });

  it("uses agent groups, resource groups and declared agent attributes", async () => {
    const engine = await loadPolicy({ file: await policyFile("main-groups", MAIN_POLICY) });
    const dba = request({
      action: "register",
      resource: "payroll-db",
      principalGroups: ["dbas"],
      resourceGroups: ["databases"],
    });
    expect(engine.decide(dba).decision).toBe("allow");
    expect(engine.decide({ ...dba, principalGroups: ["devs"] }).decision).toBe("deny");

    const analyst = request({
      action: "reveal",
      principalAttrs: { team: "finance", roles: ["analyst"], undeclared_claim: { x: 1 }, iat: 1 },
    });
    expect(engine.decide(analyst).decision).toBe("allow");
    expect(
      engine.decide({ ...analyst, principalAttrs: { team: "sales", roles: ["analyst"] } }).decision,
    ).toBe("deny");
    // A mistyped claim is dropped, not an error.
    expect(engine.decide({ ...analyst, principalAttrs: { team: 7, roles: ["analyst"] } })).toMatchObject({
      decision: "deny",
      errors: [],
    });
  });

  it("cites Cedar's default ids by position even past ten policies", async () => {
    const many = Array.from(
      { length: 12 },
      (_, i) =>
        `permit(principal, action == Action::"tool_call", resource) when { context.tool == "t${i}" };`,
    ).join("\n");
    const engine = await loadPolicy({ file: await policyFile("many", many) });
    for (const i of [0, 1, 2, 9, 10, 11]) {
      expect(engine.decide(request({ action: "tool_call" }, { tool: `t${i}` })).policies).toEqual([
        `policy${i}`,
      ]);
    }
    expect(engine.policyIds).toHaveLength(12);
  });

  it("can condition on every context field", async () => {
    const text = `
@id("f-task") permit(principal, action, resource) when { context.task_id == "TICKET-9" };
@id("f-intent") permit(principal, action, resource) when { context.intent == "vacuum" };
@id("f-tool") permit(principal, action, resource) when { context.tool == "pg_dump" };
@id("f-ttl") permit(principal, action, resource) when { context.ttl == 777 };
@id("f-hour") permit(principal, action, resource) when { context.hour_utc == 23 };
@id("f-active") permit(principal, action, resource) when { context.active_leases == 42 };
@id("f-approved") permit(principal, action, resource) when { context.approved };
@id("f-dpop") permit(principal, action, resource) when { context.dpop };
@id("f-delegated") permit(principal, action, resource)
  when { context has delegated_by && context.delegated_by == "spiffe://example.org/agent/boss" };
`;
    const engine = await loadPolicy({ file: await policyFile("fields", text) });
    const cases: [Partial<PolicyContext>, string][] = [
      [{ task_id: "TICKET-9" }, "f-task"],
      [{ intent: "vacuum" }, "f-intent"],
      [{ tool: "pg_dump" }, "f-tool"],
      [{ ttl: 777 }, "f-ttl"],
      [{ hour_utc: 23 }, "f-hour"],
      [{ active_leases: 42 }, "f-active"],
      [{ approved: true }, "f-approved"],
      [{ dpop: true }, "f-dpop"],
      [{ delegated_by: "spiffe://example.org/agent/boss" }, "f-delegated"],
    ];
    for (const [context, id] of cases) {
      expect(engine.decide(request({ action: "renew" }, context)), id).toMatchObject({
        decision: "allow",
        policies: [id],
      });
    }
    // Nothing set: only the approval policy could allow.
    expect(engine.decide(request({ action: "renew" }))).toMatchObject({
      decision: "approval_required",
      policies: ["f-approved"],
    });
  });

  it("denies with an error for a request Cedar cannot evaluate", async () => {
    const engine = await loadPolicy({ file: await policyFile("bad-request", MAIN_POLICY) });
    const unknownAction = engine.decide(request({ action: "drop_table" as PolicyRequest["action"] }));
    expect(unknownAction).toMatchObject({ decision: "deny", errors: ['unknown action "drop_table"'] });
    const fractional = engine.decide(request({}, { intent: "read", ttl: 1.5 }));
    expect(fractional).toMatchObject({ decision: "deny", errors: ["context.ttl must be an integer"] });
  });

  it("reports policies that error during evaluation", async () => {
    const text = `@id("overflows") permit(principal, action, resource) when { context.ttl * 4611686018427387904 > 0 };`;
    const engine = await loadPolicy({ file: await policyFile("overflow", text) });
    const decision = engine.decide(request({}, { ttl: 4 }));
    expect(decision.decision).toBe("deny");
    expect(decision.errors).toHaveLength(1);
    expect(decision.errors[0]).toMatch(/overflows: .*overflow/);
  });
});

describe("loading and reloading", () => {
  it("denies everything without a policy file", async () => {
    for (const engine of [await loadPolicy({}), await loadPolicy({ file: join(dir, "absent.cedar") })]) {
      expect(engine.decide(request({}, { intent: "read" }))).toEqual({
        decision: "deny",
        policies: [],
        reasons: ["no policy file"],
        errors: [],
      });
    }
  });

  it("refuses a policy that fails validation, with Cedar's message and position", async () => {
    const file = await policyFile(
      "invalid",
      `permit(principal, action, resource)\n  when { context.nope == 1 };`,
    );
    const err = await loadPolicy({ file }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PolicyLoadError);
    const messages = (err as PolicyLoadError).errors;
    expect(messages.length).toBeGreaterThan(0);
    expect(messages[0]).toMatch(/^policy0: line 2, column \d+: .*attribute `nope` in context/);

    const syntax = await policyFile("syntax", `permit(principal, action, resource) when { context.ttl < };`);
    await expect(loadPolicy({ file: syntax })).rejects.toThrow(PolicyLoadError);

    const dup = await policyFile(
      "dup",
      `@id("x") permit(principal, action, resource);\n@id("x") forbid(principal, action, resource);`,
    );
    await expect(loadPolicy({ file: dup })).rejects.toThrow(/duplicate policy id "x"/);

    const template = await policyFile("template", `permit(principal == ?principal, action, resource);`);
    await expect(loadPolicy({ file: template })).rejects.toThrow(/templates/);
  });

  it("keeps the old set when a reload fails validation, and takes a valid new one", async () => {
    const file = await policyFile(
      "reload",
      `@id("v1") permit(principal, action == Action::"checkout", resource);`,
    );
    const engine = await loadPolicy({ file });
    expect(engine.decide(request()).policies).toEqual(["v1"]);

    await writeFile(file, `@id("v2") permit(principal, action, resource) when { principal.missing == 1 };`);
    const failed = await engine.reload();
    expect(failed.ok).toBe(false);
    expect(failed.ok === false && failed.error).toMatch(/missing/);
    expect(engine.decide(request())).toMatchObject({ decision: "allow", policies: ["v1"] });

    await writeFile(file, `@id("v3") permit(principal, action == Action::"revoke", resource);`);
    await expect(engine.reload()).resolves.toEqual({ ok: true });
    expect(engine.decide(request()).decision).toBe("deny");
    expect(engine.decide(request({ action: "revoke" })).policies).toEqual(["v3"]);

    // Twice more, so both preparsed slots are reused.
    await writeFile(file, `@id("v4") permit(principal, action == Action::"renew", resource);`);
    await expect(engine.reload()).resolves.toEqual({ ok: true });
    await writeFile(file, `@id("v5") permit(principal, action == Action::"approve", resource);`);
    await expect(engine.reload()).resolves.toEqual({ ok: true });
    expect(engine.decide(request({ action: "approve" })).policies).toEqual(["v5"]);
    expect(engine.decide(request({ action: "renew" })).decision).toBe("deny");

    await unlink(file);
    await expect(engine.reload()).resolves.toEqual({ ok: true });
    expect(engine.decide(request({ action: "approve" })).reasons).toEqual(["no policy file"]);
  });

  it("keeps engines with their own policy sets apart", async () => {
    const a = await loadPolicy({
      file: await policyFile("iso-a", `@id("a") permit(principal, action, resource);`),
    });
    const b = await loadPolicy({
      file: await policyFile("iso-b", `@id("b") permit(principal, action, resource);`),
    });
    expect(a.decide(request()).policies).toEqual(["a"]);
    expect(b.decide(request()).policies).toEqual(["b"]);
  });
});

describe("couldAllow: a request whose context is unknown (the agent's catalog)", () => {
  const A = "spiffe://example.org/agent/a";
  const PARTIAL_POLICY = `
@id("a-reads-x")
permit(principal == Agent::"${A}", action == Action::"checkout", resource == Resource::"x")
when { context.intent == "read" && context.ttl <= 600 };

@id("anyone-with-approval")
permit(principal, action == Action::"checkout", resource == Resource::"y")
when { context.approved };

@id("finance-team")
permit(principal, action == Action::"checkout", resource in ResourceGroup::"finance")
when { principal has team && principal.team == "finance" };

@id("delegated-only")
permit(principal, action == Action::"checkout", resource == Resource::"d")
when { context has on_behalf_of && context.on_behalf_of == "user:ann@example.org" };

@id("direct-only")
permit(principal, action == Action::"checkout", resource == Resource::"n")
when { !(context has on_behalf_of) };

@id("never-secrets")
forbid(principal, action, resource in ResourceGroup::"secret");

@id("no-unattested")
forbid(principal, action, resource == Resource::"x")
when { !context.caller.attested };
`;
  const ask = (resource: string, more: Partial<PolicyPartialRequest> = {}) => ({
    principal: A,
    action: "checkout" as const,
    resource,
    ...more,
  });

  it("keeps what some context allows, hides what no context does, and names the forbid", async () => {
    const engine = await loadPolicy({ file: await policyFile("partial", PARTIAL_POLICY) });
    // Allowed for some intent, ttl and attested caller: the forbid on unattested callers is a residual.
    expect(engine.couldAllow(ask("x"))).toEqual({ possible: true, policies: [], errors: [] });
    expect(engine.couldAllow(ask("x", { principal: "spiffe://example.org/agent/b" })).possible).toBe(false);
    // Only with a human's approval: still shown.
    expect(engine.couldAllow(ask("y")).possible).toBe(true);
    expect(engine.couldAllow(ask("z"))).toEqual({ possible: false, policies: [], errors: [] });
    // Principal attributes and resource groups are known: they decide.
    expect(engine.couldAllow(ask("f", { resourceGroups: ["finance"] })).possible).toBe(false);
    expect(
      engine.couldAllow(ask("f", { resourceGroups: ["finance"], principalAttrs: { team: "finance" } }))
        .possible,
    ).toBe(true);
    expect(
      engine.couldAllow(
        ask("f", { resourceGroups: ["finance", "secret"], principalAttrs: { team: "finance" } }),
      ),
    ).toEqual({ possible: false, policies: ["never-secrets"], errors: [] });
    // The caller's delegation is known before any request: it fills on_behalf_of / delegated_by.
    const ann = { delegation: { chain: ["user:ann@example.org"] } };
    expect(engine.couldAllow(ask("d")).possible).toBe(false);
    expect(engine.couldAllow(ask("d", ann)).possible).toBe(true);
    expect(engine.couldAllow(ask("d", { delegation: { onBehalfOf: "user:bob@example.org" } })).possible).toBe(
      false,
    );
    expect(engine.couldAllow(ask("n")).possible).toBe(true);
    expect(engine.couldAllow(ask("n", ann)).possible).toBe(false);
    // Another action is another question.
    expect(engine.couldAllow(ask("x", { action: "register" })).possible).toBe(false);
  });

  it("matches scopes as Cedar does: agent groups, resource groups, action lists, `is`", async () => {
    const engine = await loadPolicy({
      file: await policyFile(
        "partial-scope",
        `
@id("ops-group") permit(principal in AgentGroup::"ops", action in [Action::"reveal", Action::"checkout"], resource is Resource in ResourceGroup::"g");
@id("exact") permit(principal == Agent::"${A}", action == Action::"checkout", resource == Resource::"e");
@id("own-in") permit(principal in Agent::"${A}", action, resource in Resource::"s");
`,
      ),
    });
    expect(engine.couldAllow(ask("r", { resourceGroups: ["g"] })).possible).toBe(false);
    expect(engine.couldAllow(ask("r", { resourceGroups: ["g"], principalGroups: ["ops"] })).possible).toBe(
      true,
    );
    expect(engine.couldAllow(ask("r", { resourceGroups: ["h"], principalGroups: ["ops"] })).possible).toBe(
      false,
    );
    expect(
      engine.couldAllow(ask("r", { resourceGroups: ["g"], principalGroups: ["ops"], action: "renew" }))
        .possible,
    ).toBe(false);
    expect(engine.couldAllow(ask("e")).possible).toBe(true);
    expect(engine.couldAllow(ask("e", { principal: "spiffe://example.org/agent/b" })).possible).toBe(false);
    expect(engine.couldAllow(ask("s", { action: "renew" })).possible).toBe(true);
  });

  it("answers from its cache until the policy file is reloaded", async () => {
    const file = await policyFile("partial-cache", `@id("open") permit(principal, action, resource);`);
    const engine = await loadPolicy({ file });
    expect(engine.couldAllow(ask("x")).possible).toBe(true);
    await writeFile(file, `@id("shut") forbid(principal, action, resource);`);
    expect(await engine.reload()).toEqual({ ok: true });
    expect(engine.couldAllow(ask("x"))).toEqual({ possible: false, policies: ["shut"], errors: [] });
    // Two reloads bring back the first cache slot's set id: the cache must not come back with it.
    await writeFile(file, `@id("open") permit(principal, action, resource);`);
    expect(await engine.reload()).toEqual({ ok: true });
    await writeFile(file, `@id("shut") forbid(principal, action, resource) when { principal has team };`);
    expect(await engine.reload()).toEqual({ ok: true });
    expect(engine.couldAllow(ask("x")).possible).toBe(false);
    expect(engine.couldAllow(ask("x", { principalAttrs: { team: "t" } }))).toMatchObject({
      possible: false,
      policies: ["shut"],
    });
  });

  it("61 policies, 200 resources, three agents: scope pre-filter and cache keep every answer right", async () => {
    const lines = Array.from(
      { length: 60 },
      (_, i) =>
        `@id("p${i}") permit(principal == Agent::"spiffe://example.org/agent/a${i}", action in [Action::"checkout", Action::"reveal"], resource in ResourceGroup::"g${i % 20}") when { context.intent == "read" && context.ttl <= 600 && (if context has on_behalf_of then context.on_behalf_of like "user:*" else true) };`,
    );
    lines.push(`@id("never") forbid(principal, action, resource in ResourceGroup::"secret");`);
    const engine = await loadPolicy({ file: await policyFile("partial-many", lines.join("\n")) });
    const each = (principal: string) => {
      let possible = 0;
      for (let r = 0; r < 200; r++) {
        const groups = r % 10 === 0 ? [`g${r % 20}`, "secret"] : [`g${r % 20}`];
        if (engine.couldAllow(ask(`r${r}`, { principal, resourceGroups: groups })).possible) possible += 1;
      }
      return possible;
    };
    // a0 may read the g0 resources but for the secret ones; zz none.
    expect(each("spiffe://example.org/agent/a0")).toBe(0);
    expect(each("spiffe://example.org/agent/a1")).toBe(10);
    expect(each("spiffe://example.org/agent/zz")).toBe(0);
    // The same again from the cache, after another agent's answers went in.
    expect(each("spiffe://example.org/agent/a1")).toBe(10);
  });

  it("allows nothing without a policy file, and nothing for a malformed request", async () => {
    const none = await loadPolicy({});
    expect(none.couldAllow(ask("x")).possible).toBe(false);
    const engine = await loadPolicy({ file: await policyFile("partial-bad", PARTIAL_POLICY) });
    expect(engine.couldAllow(ask(""))).toMatchObject({
      possible: false,
      errors: [expect.stringContaining("resource")],
    });
  });
});
