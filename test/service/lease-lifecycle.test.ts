import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CheckoutOk, LeaseService, RequestMeta } from "../../sidecar/service/index.js";
import { type InProcessSidecar, startInProcessSidecar } from "../deploy/in-process-sidecar.js";
import { useVault, type VaultHandle } from "../support/vault.js";
import { waitFor } from "../support/wait-for.js";
import { refusal } from "../support/refusal.js";

/*
 * The lease use cases run in-process against real Redis, the Vault dev server and MariaDB:
 * no HTTP, no spawned process, so a lifecycle bug fails here in about a second.
 */

const A = "spiffe://example.org/agent/a";
const B = "spiffe://example.org/agent/b";
const POLICY = `
@id("a-reads")
permit (principal == Agent::"${A}", action in [Action::"checkout", Action::"reveal", Action::"renew", Action::"tool_call"], resource)
when { context.intent == "read" && context.ttl <= 600 };

@id("a-no-writes")
forbid (principal, action == Action::"tool_call", resource) when { context.intent == "write" };

@id("b-needs-approval")
permit (principal == Agent::"${B}", action in [Action::"checkout", Action::"reveal"], resource)
when { context.approved || context.intent == "read" };
forbid (principal == Agent::"${B}", action == Action::"checkout", resource) when { !context.approved };
`;

type Rec = Record<string, unknown>;

let vault: VaultHandle;
let lh: InProcessSidecar;
let svc: LeaseService;
let n = 0;
const meta = (): RequestMeta => ({ requestId: `req_svc_${++n}` });

async function auditRecords(): Promise<Rec[]> {
  const text = await readFile(join(lh.dir, "state", "audit.jsonl"), "utf8");
  return text
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => JSON.parse(l) as Rec);
}

async function accountState(): Promise<string> {
  const view = await lh.sidecar.resourceService.show(lh.resource);
  return view.accounts[0]?.state ?? "missing";
}

const waitAvailable = () =>
  waitFor("the account to be available", async () => (await accountState()) === "available");

async function checkoutAs(agent: "a" | "b", intent = "read"): Promise<ReturnType<LeaseService["checkout"]>> {
  return svc.checkout(
    await lh.identity(agent),
    { resource: lh.resource, task: { id: "T-svc" }, intent: { action: intent, tool: "sql" }, ttl: 120 },
    meta(),
  );
}

beforeAll(async () => {
  vault = await useVault();
  lh = await startInProcessSidecar({ vault, policy: POLICY });
  svc = lh.sidecar.leaseService;
  await lh.sidecar.resourceService.register(lh.registration, {
    dryRun: false,
    pathName: lh.resource,
    actor: "admin",
    requestId: "req_register",
  });
  await waitAvailable();
});

afterAll(async () => {
  await lh?.close();
  await vault?.close();
});

describe("the lease use cases, in process", () => {
  it("checkout, reveal, renew, tool call and check-in: each decision is on disk before its action's record", async () => {
    const out = (await checkoutAs("a")) as CheckoutOk;
    expect(out.token_type).toBe("Bearer");
    expect(out.lease).toMatchObject({ agent: A, resource: lh.resource, state: "active" });
    const id = out.lease.id;
    expect(await accountState()).toBe("leased");

    const cred = await svc.credential(out.token, id, meta());
    expect(cred.username).toBeTruthy();
    expect(cred.password.length).toBeGreaterThanOrEqual(16);
    const renewed = await svc.renew(out.token, id, { ttl: 60 }, meta());
    expect(renewed.lease.id).toBe(id);
    await svc.toolCall(out.token, id, { tool: "sql", action: "read", target: "orders" }, meta());
    const ended = await svc.checkin(out.token, id, meta());
    expect(ended.lease).toMatchObject({ state: "ended", end_reason: "checkin" });

    const mine = (await auditRecords()).filter(
      (r) => r.lease_id === id || (r.scope === "checkout" && r.agent === A),
    );
    const events = mine.map((r) => `${r.event}:${r.scope ?? ""}:${r.decision ?? ""}`);
    expect(events.slice(0, 9)).toEqual([
      "decision:checkout:allow",
      "checkout:checkout:",
      "decision:reveal:allow",
      "reveal:reveal:",
      "decision:renew:allow",
      "renew:renew:",
      "decision:tool_call:allow",
      "tool_call:tool_call:",
      "checkin::",
    ]);
    const reveal = mine.find((r) => r.event === "reveal");
    expect(reveal).toMatchObject({
      agent: A,
      task_id: "T-svc",
      intent: "read",
      tool: "sql",
      resource: lh.resource,
    });
    // Nothing the agent saw is in the audit trail.
    expect(JSON.stringify(await auditRecords())).not.toContain(cred.password);
    expect(JSON.stringify(await auditRecords())).not.toContain(out.token);

    // Lease auth (I4): the token of an ended lease is refused on its next use.
    expect((await refusal(svc.getOwn(out.token, id))).code).toBe("unauthenticated");
    await waitAvailable();
    // I2: the password the agent saw was rotated away.
    const again = (await checkoutAs("a")) as CheckoutOk;
    const next = await svc.credential(again.token, again.lease.id, meta());
    expect(next.password).not.toBe(cred.password);
    await svc.checkin(again.token, again.lease.id, meta());
    await waitAvailable();
  });

  it("a refusal is recorded before it is answered, and nothing is issued", async () => {
    const out = (await checkoutAs("a")) as CheckoutOk;
    const err = await refusal(
      svc.toolCall(out.token, out.lease.id, { tool: "sql", action: "write" }, meta()),
    );
    expect(err.code).toBe("policy_denied");
    const denied = (await auditRecords()).filter((r) => r.lease_id === out.lease.id && r.decision === "deny");
    expect(denied).toHaveLength(1);
    expect(denied[0]).toMatchObject({ scope: "tool_call", policies: ["a-no-writes"], intent: "write" });
    expect((await auditRecords()).some((r) => r.lease_id === out.lease.id && r.event === "tool_call")).toBe(
      false,
    );
    await svc.checkin(out.token, out.lease.id, meta());
    await waitAvailable();
  });

  it("lease auth refuses a token on another lease, and names revocation and expiry", async () => {
    const out = (await checkoutAs("a")) as CheckoutOk;
    const other = `lse_${"x".repeat(22)}`;
    expect((await refusal(svc.getOwn(out.token, other))).message).toContain("another lease");
    await svc.revoke(out.lease.id, "test", "operator", meta());
    expect((await refusal(svc.credential(out.token, out.lease.id, meta()))).code).toBe("lease_revoked");
    const revocation = (await auditRecords()).find(
      (r) => r.lease_id === out.lease.id && r.event === "revocation",
    );
    expect(revocation).toMatchObject({ reason: "test", agent: A });
    await waitAvailable();
  });

  it("an approval: requested, approved by an operator, redeemed once into a lease, never a second token", async () => {
    const pending = await checkoutAs("b", "write");
    if (!("approval" in pending)) throw new Error("expected a pending approval");
    const id = pending.approval.id;
    expect(pending.approval.status).toBe("pending");
    const requested = (await auditRecords()).find(
      (r) => r.scope === "approval_requested" && r.approval_id === id,
    );
    expect(requested).toMatchObject({ agent: B, decision: "approval_required" });
    expect(await svc.approvalResource(id)).toBe(lh.resource);

    const before = await svc.pollApproval(await lh.identity("b"), id, meta());
    expect(before.approval.status).toBe("pending");
    await svc.decideApproval(id, true, "alice", undefined, meta());
    const first = await svc.pollApproval(await lh.identity("b"), id, meta());
    const lease = (first.approval as { lease?: { id: string; approver?: string } }).lease;
    expect(lease?.approver).toBe("alice");
    const token = (first.approval as { token?: string }).token ?? "";
    expect(token).not.toBe("");
    const second = await svc.pollApproval(await lh.identity("b"), id, meta());
    expect((second.approval as { lease?: { id: string } }).lease?.id).toBe(lease?.id);
    // Issue 16: a redeemed approval mints no second token (it was handed out on the first poll).
    expect((second.approval as { token?: string }).token).toBeUndefined();
    const approved = (await auditRecords()).find((r) => r.scope === "approved" && r.approval_id === id);
    expect(approved).toMatchObject({ approver: "alice", decision: "allow" });
    const redeemed = (await auditRecords()).filter(
      (r) => r.event === "decision" && r.scope === "checkout" && r.agent === B && r.approver === "alice",
    );
    expect(redeemed).toHaveLength(1);
    await svc.checkin(token, lease?.id ?? "", meta());
    await waitAvailable();
    expect((await refusal(svc.decideApproval(id, false, "bob", undefined, meta()))).code).toBe("conflict");
  });

  it("four eyes: the requester cannot approve its own request, whatever the case of its name", async () => {
    const pending = await checkoutAs("b", "write");
    if (!("approval" in pending)) throw new Error("expected a pending approval");
    const id = pending.approval.id;
    const err = await refusal(svc.decideApproval(id, true, B.toUpperCase(), undefined, meta()));
    expect(err.code).toBe("policy_denied");
    expect(err.status).toBe(403);
    const rec = (await auditRecords()).find(
      (r) => r.approval_id === id && r.scope === "approve" && r.decision === "deny",
    );
    expect(rec).toMatchObject({ approver: B.toUpperCase(), agent: B });
    expect(String(rec?.reason)).toContain("four eyes");
    expect((await svc.pollApproval(await lh.identity("b"), id, meta())).approval.status).toBe("pending");
    await svc.decideApproval(id, false, "alice", "cleanup", meta());
  });

  it("operators decide through the same gate: a refused operator action is one deny record", async () => {
    const operators = lh.sidecar.operators;
    const op = await operators.identify(await lh.identity("b"));
    const err = await refusal(operators.require(op, "revoke", lh.resource, "req_op_deny"));
    expect(err.code).toBe("policy_denied");
    expect(err.message).toContain("for this operator");
    const rec = (await auditRecords()).find((r) => r.request_id === "req_op_deny");
    expect(rec).toMatchObject({ event: "decision", agent: B, scope: "revoke", decision: "deny" });
  });
});
