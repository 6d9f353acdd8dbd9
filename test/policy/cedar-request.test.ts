import { isAuthorized } from "@cedar-policy/cedar-wasm/nodejs";
import { describe, expect, it } from "vitest";
import { toCedarRequest } from "../../sidecar/policy/cedar-request.js";
import {
  defaultPolicyContext,
  POLICY_ACTIONS,
  POLICY_SCHEMA,
  type PolicyRequest,
} from "../../sidecar/policy/index.js";

// The engine skips Cedar's per-request validation (it doubled a decision's cost), so the
// requests it builds must pass that validation by construction: checked here for every action.
describe("Cedar requests built by leasehold", () => {
  const claims = {
    iss: "https://issuer.example",
    trust_kind: "issuer",
    team: "billing",
    roles: ["reader", "operator"],
    operator: true,
    // Undeclared or mistyped claims must be dropped, not passed on.
    name: 42,
    groups: ["ok", 7],
    extra: "x",
  };
  const contexts = [
    defaultPolicyContext(0),
    {
      task_id: "TICKET-1",
      intent: "read",
      tool: "psql",
      ttl: 300,
      hour_utc: 23,
      active_leases: 2,
      approved: true,
      dpop: true,
      caller: { attested: true, uid: 1000, exe_sha256: "ab".repeat(32), cgroup: "/user.slice" },
      delegated_by: "spiffe://example.org/agent/planner",
    },
  ];

  for (const action of POLICY_ACTIONS) {
    it(`${action}: passes Cedar's schema validation of the request and entities`, () => {
      for (const context of contexts) {
        const req: PolicyRequest = {
          principal: "spiffe://example.org/agent/a",
          action,
          resource: "orders-db",
          context:
            action === "statement"
              ? {
                  ...context,
                  statement_kind: "select",
                  tables: ["orders"],
                  multiple: false,
                  command: "",
                  keys: ["k"],
                }
              : context,
          principalAttrs: claims,
          principalGroups: ["billing"],
          resourceAttrs: { adapter: "postgres", reveal: false, owner: "dba" },
          resourceGroups: ["prod"],
        };
        const built = toCedarRequest(req);
        if (!built.ok) throw new Error(built.error);
        const answer = isAuthorized({
          principal: { type: "Agent", id: req.principal },
          action: { type: "Action", id: action },
          resource: { type: "Resource", id: req.resource },
          context: built.value.context,
          entities: built.value.entities,
          schema: POLICY_SCHEMA,
          validateRequest: true,
          policies: { staticPolicies: "permit(principal, action, resource);" },
        });
        expect(answer.type === "failure" ? answer.errors : [], JSON.stringify(context)).toEqual([]);
        if (answer.type === "success") expect(answer.response.decision).toBe("allow");
      }
    });
  }

  it("a context that is not schema-shaped is refused before Cedar sees it", () => {
    const bad = toCedarRequest({
      principal: "spiffe://example.org/agent/a",
      action: "checkout",
      resource: "orders-db",
      context: { ...contexts[0], ttl: 1.5 } as never,
    });
    expect(bad).toEqual({ ok: false, error: "context.ttl must be an integer" });
  });
});
