import type { LightMyRequestResponse } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type InProcessSidecar, startInProcessSidecar } from "../deploy/in-process-sidecar.js";
import { useVault, type VaultHandle } from "../support/vault.js";

const A = "spiffe://example.org/agent/a";
const B = "spiffe://example.org/agent/b";
// Agent a reads, and writes with a human's approval; b operates the resources of group "sec".
const POLICY = `
@id("a-reads")
permit (principal == Agent::"${A}", action == Action::"checkout", resource)
when { context.intent == "read" && context.ttl <= 600 };

@id("a-writes-approved")
permit (principal == Agent::"${A}", action == Action::"checkout", resource)
when { context.intent == "write" && context.approved };

@id("b-operates-sec")
permit (principal == Agent::"${B}", action in [Action::"approve", Action::"revoke", Action::"register"], resource in ResourceGroup::"sec");
`;

describe("an operator identity through the route table's auth step", () => {
  let vault: VaultHandle;
  let lh: InProcessSidecar;

  const call = async (
    method: "GET" | "POST" | "PUT",
    url: string,
    token: string,
    body?: unknown,
  ): Promise<LightMyRequestResponse> =>
    lh.sidecar.app.inject({
      method,
      url,
      headers: {
        authorization: `Bearer ${token}`,
        ...(method === "GET" ? {} : { "x-leasehold-request": "true" }),
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      ...(body === undefined ? {} : { payload: JSON.stringify(body) }),
    });
  const checkout = async (intent: string, wait: number) =>
    call("POST", "/v1/checkout", await lh.identity("a"), {
      resource: lh.resource,
      task: { id: "T-op", description: "operator identity" },
      intent: { action: intent },
      ttl: 120,
      wait,
    });

  beforeAll(async () => {
    vault = await useVault();
    lh = await startInProcessSidecar({ vault, policy: POLICY });
    const put = await call("PUT", `/v1/resources/${lh.resource}`, lh.sidecar.adminToken, {
      ...lh.registration,
      groups: ["sec"],
    });
    expect(put.statusCode, put.body).toBe(201);
  });
  afterAll(async () => {
    await lh?.close();
    await vault?.close();
  });

  it("lists and acts where policy allows, as itself, and each decision is audited", async () => {
    const operator = await lh.identity("b");
    const resources = await call("GET", "/v1/resources", operator);
    expect(resources.statusCode).toBe(200);
    expect(resources.json().resources.map((r: { name: string }) => r.name)).toEqual([lh.resource]);
    expect((await call("GET", `/v1/resources/${lh.resource}`, await lh.identity("b"))).statusCode).toBe(200);

    // Moving the resource into a group the operator may not register in is refused.
    const moved = await call("PUT", `/v1/resources/${lh.resource}?dry_run=true`, await lh.identity("b"), {
      ...lh.registration,
      groups: ["prod"],
    });
    expect(moved.statusCode, moved.body).toBe(403);
    expect(moved.json().error.code).toBe("policy_denied");

    const leased = await checkout("read", 60);
    expect(leased.statusCode, leased.body).toBe(201);
    const leaseId = leased.json().lease.id as string;
    const leases = await call("GET", `/v1/leases?resource=${lh.resource}`, await lh.identity("b"));
    expect(leases.json().leases.map((l: { id: string }) => l.id)).toEqual([leaseId]);
    const revoked = await call("POST", `/v1/leases/${leaseId}/revoke`, await lh.identity("b"), {
      reason: "operator test",
    });
    expect(revoked.statusCode, revoked.body).toBe(202);
    expect(revoked.json().lease.id).toBe(leaseId);

    const pending = await checkout("write", 0);
    expect(pending.statusCode, pending.body).toBe(202);
    const approvalId = pending.json().approval.id as string;
    const approvals = await call("GET", "/v1/approvals?status=pending", await lh.identity("b"));
    expect(approvals.json().approvals.map((a: { id: string }) => a.id)).toEqual([approvalId]);
    // An identity names its own approver; only the admin token may name another.
    const spoof = await call("POST", `/v1/approvals/${approvalId}/approve`, await lh.identity("b"), {
      approver: "someone-else",
    });
    expect(spoof.statusCode).toBe(400);
    expect(spoof.json().error.message).toContain("approver");
    const approved = await call("POST", `/v1/approvals/${approvalId}/approve`, await lh.identity("b"), {});
    expect(approved.statusCode, approved.body).toBe(200);
    expect(approved.json().approval).toMatchObject({ status: "approved", approver: B });

    const audit = await call(
      "GET",
      `/v1/audit?agent=${encodeURIComponent(B)}&event=decision`,
      lh.sidecar.adminToken,
    );
    const decisions = (audit.json().records as Array<{ scope: string; decision: string }>).map(
      (r) => `${r.scope} ${r.decision}`,
    );
    expect(decisions).toEqual(expect.arrayContaining(["register deny", "revoke allow", "approve allow"]));
  });
});
