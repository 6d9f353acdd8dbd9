import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient, LeaseholdClientError } from "../../sidecar/client/index.js";
import { answerError, createTransport } from "../../sidecar/client/transport.js";
import { type InProcessSidecar, startInProcessSidecar } from "../deploy/in-process-sidecar.js";
import { useVault, type VaultHandle } from "../support/vault.js";

const A = "spiffe://example.org/agent/a";
// Agent a may read; nothing permits a write, so a write checkout is policy_denied.
const POLICY = `
@id("a-reads")
permit (principal == Agent::"${A}", action in [Action::"checkout", Action::"reveal", Action::"renew", Action::"tool_call"], resource)
when { context.intent == "read" && context.ttl <= 600 };
`;

/** The SDK's error for a real sidecar's error answer carries its `hint` and `details`. */
describe("LeaseholdClientError carries the sidecar's error.hint and error.details", () => {
  let vault: VaultHandle;
  let lh: InProcessSidecar;
  let url: string;

  beforeAll(async () => {
    vault = await useVault();
    lh = await startInProcessSidecar({ vault, policy: POLICY });
    url = await lh.listen();
    const put = await lh.sidecar.app.inject({
      method: "PUT",
      url: `/v1/resources/${lh.resource}`,
      headers: { authorization: `Bearer ${lh.sidecar.adminToken}`, "content-type": "application/json" },
      payload: JSON.stringify(lh.registration),
    });
    expect(put.statusCode, put.body).toBe(201);
  }, 60_000);
  afterAll(async () => {
    await lh?.close();
    await vault?.close();
  });

  it("a policy_denied checkout: the error's hint is the policy check command, typed and optional", async () => {
    const client = createClient({ url, keyFile: lh.keyFile("a") });
    const err = await client
      .checkout(lh.resource, { task: { id: "T-hint" }, intent: { action: "write", tool: "psql" }, ttl: 120 })
      .then(
        () => expect.fail("the write checkout was allowed"),
        (e: unknown) => e,
      );
    expect(err).toBeInstanceOf(LeaseholdClientError);
    const e = err as LeaseholdClientError;
    expect(e).toMatchObject({ code: "policy_denied", status: 403 });
    expect(e.requestId).toMatch(/\S/);
    const hint: string | undefined = e.hint;
    expect(hint).toMatch(/^leasehold policy check /);
    expect(hint).toContain(A);
    expect(hint).toContain(lh.resource);
    // No policy text reaches the agent through the hint.
    expect(hint).not.toContain("a-reads");
    expect(e.details).toBeUndefined();
  });

  it("an answer without a hint leaves hint undefined (an unknown resource: not_found)", async () => {
    const client = createClient({ url, keyFile: lh.keyFile("a") });
    const err = await client
      .checkout("no-such-resource", { task: { id: "T-none" }, intent: { action: "read" }, ttl: 60 })
      .then(
        () => expect.fail("a checkout of an unknown resource succeeded"),
        (e: unknown) => e as LeaseholdClientError,
      );
    expect(err).toBeInstanceOf(LeaseholdClientError);
    expect(err.status).toBeGreaterThanOrEqual(400);
    expect(err.hint).toBeUndefined();
  });

  it("a refused registration: the error's details name each failed account with its reason", async () => {
    const missing = `lh_missing_${Date.now().toString(36)}`;
    const name = `${lh.resource}-bad`;
    const t = createTransport({ url });
    const res = await t.send({
      method: "PUT",
      path: `/v1/resources/${name}`,
      headers: { authorization: `Bearer ${lh.sidecar.adminToken}` },
      body: { ...lh.registration, name, accounts: [missing] },
      timeoutMs: 30_000,
    });
    expect(res.status).toBe(400);
    const err = answerError(res);
    expect(err).toMatchObject({ code: "invalid_request", status: 400 });
    expect(err.details).toEqual([
      { field: "registration.accounts.0", message: expect.stringContaining(missing) },
    ]);
    const adminPassword = (lh.registration.admin as { password: string }).password;
    expect(JSON.stringify(res.json)).not.toContain(adminPassword);
  });
});
