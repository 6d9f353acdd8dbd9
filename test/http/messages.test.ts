import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import type { LightMyRequestResponse } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AUDIT_EVENTS } from "../../sidecar/audit/index.js";
import { errorSchema } from "../../sidecar/openapi/index.js";
import { type InProcessSidecar, startInProcessSidecar } from "../deploy/in-process-sidecar.js";
import { useVault, type VaultHandle } from "../support/vault.js";

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, "..", "..");

const A = "spiffe://example.org/agent/a";
// Agent a may read; nothing permits a write, so a write checkout is policy_denied.
const POLICY = `
@id("a-reads")
permit (principal == Agent::"${A}", action in [Action::"checkout", Action::"reveal", Action::"renew", Action::"tool_call"], resource)
when { context.intent == "read" && context.ttl <= 600 };
`;

/** A task id a shell would mangle unquoted: quotes, a command substitution, a glob, a dollar. */
const NASTY_TASK = `O'Brien's "report" $(touch /tmp/lh-pwned) * $HOME '\\''`;

/** The error of an answer, checked against the documented shape. */
function errorOf(res: LightMyRequestResponse) {
  const parsed = errorSchema.safeParse(res.json());
  expect(parsed.success, res.body).toBe(true);
  return (parsed.data ?? expect.fail("no error")).error;
}

describe("messages that say what to do (issue 18)", () => {
  let vault: VaultHandle;
  let lh: InProcessSidecar;
  const inject = (
    method: "GET" | "POST" | "PUT" | "DELETE",
    url: string,
    headers: Record<string, string>,
    body?: unknown,
  ) =>
    lh.sidecar.app.inject({
      method,
      url,
      headers: body === undefined ? headers : { ...headers, "content-type": "application/json" },
      ...(body === undefined ? {} : { payload: JSON.stringify(body) }),
    });
  const admin = () => ({ authorization: `Bearer ${lh.sidecar.adminToken}` });

  beforeAll(async () => {
    vault = await useVault();
    lh = await startInProcessSidecar({ vault, policy: POLICY });
    const put = await inject("PUT", `/v1/resources/${lh.resource}`, admin(), lh.registration);
    expect(put.statusCode, put.body).toBe(201);
  });
  afterAll(async () => {
    await lh?.close();
    await vault?.close();
  });

  it("a wrong admin token is refused as not the admin token, naming admin.tokenFile and never echoing it", async () => {
    const presented = "not-the-admin-token-0123456789abcdef";
    for (const url of ["/v1/audit", "/v1/leases", "/v1/resources"]) {
      const res = await inject("GET", url, { authorization: `Bearer ${presented}` });
      expect(res.statusCode, url).toBe(401);
      const e = errorOf(res);
      expect(e.code).toBe("unauthenticated");
      expect(e.message, url).toMatch(/(not|neither) the admin token/);
      expect(e.message, url).toContain("admin.tokenFile");
      expect(e.message, url).not.toContain("malformed");
      expect(res.body, url).not.toContain(presented);
      expect(res.body, url).not.toContain(lh.sidecar.adminToken);
    }
  });

  it("policy_denied carries the policy check command that reproduces the decision, quoted for a shell", async () => {
    const res = await inject(
      "POST",
      "/v1/checkout",
      { authorization: `Bearer ${await lh.identity("a")}` },
      {
        resource: lh.resource,
        task: { id: NASTY_TASK },
        intent: { action: "write", tool: "psql" },
        ttl: 120,
      },
    );
    expect(res.statusCode, res.body).toBe(403);
    const e = errorOf(res);
    expect(e.code).toBe("policy_denied");
    const hint = e.hint ?? expect.fail("no hint");
    expect(hint).toMatch(/^leasehold policy check /);
    // No policy text reaches the agent: not its id, not its conditions.
    expect(hint).not.toContain("a-reads");
    expect(res.body).not.toContain("a-reads");

    // What a POSIX shell makes of the hint: the words exactly as policy saw them.
    const words = await run("bash", ["-c", `leasehold() { printf '%s\\0' "$@"; }; ${hint}`]);
    const argv = words.stdout.split("\0").slice(0, -1);
    const arg = (name: string) => argv[argv.indexOf(name) + 1];
    expect(arg("--principal")).toBe(A);
    expect(arg("--action")).toBe("checkout");
    expect(arg("--resource")).toBe(lh.resource);
    const context = JSON.parse(arg("--context") ?? "") as Record<string, unknown>;
    expect(context).toMatchObject({
      task_id: NASTY_TASK,
      intent: "write",
      tool: "psql",
      ttl: 120,
      active_leases: 0,
      approved: false,
      dpop: false,
    });
    expect(typeof context.hour_utc).toBe("number");

    // Run against the policy file, the command decides as the sidecar did.
    const cli = `leasehold() { node --import tsx ${ROOT}/sidecar/cli/main.ts --json "$@"; }`;
    const file = join(lh.dir, "policy.cedar");
    const check: { code?: number; stdout?: string; stderr?: string } = await run(
      "bash",
      ["-c", `${cli}; ${hint} --file ${file}`],
      { cwd: ROOT },
    ).catch((err: { code?: number; stdout?: string; stderr?: string }) => err);
    // `policy check` exits 2 on a deny.
    expect(check.stderr ?? "").toBe("");
    expect(JSON.parse(check.stdout ?? "")).toMatchObject({ decision: "deny" });
    expect(check.code).toBe(2);
  });

  it("an unknown audit event is a 400 naming the field, a close match and every valid event", async () => {
    const res = await inject("GET", "/v1/audit?event=checkout,chekout", admin());
    expect(res.statusCode, res.body).toBe(400);
    const e = errorOf(res);
    expect(e.code).toBe("invalid_request");
    expect(e.message).toMatch(/^query\.event: unknown value \(did you mean "checkout"\?\); valid values: /);
    for (const event of Object.keys(AUDIT_EVENTS)) expect(e.message).toContain(event);
    const far = errorOf(await inject("GET", "/v1/audit?event=zzzzzzzz", admin()));
    expect(far.message).not.toContain("did you mean");
    expect(far.message).not.toContain("zzzzzzzz");
    // Known events still filter.
    expect((await inject("GET", "/v1/audit?event=decision,checkout", admin())).statusCode).toBe(200);
  });

  it("lease state and approval status filters list their valid values", async () => {
    const state = await inject("GET", "/v1/leases?state=actve", admin());
    expect(state.statusCode).toBe(400);
    expect(errorOf(state).message).toBe(
      'query.state: unknown value (did you mean "active"?); valid values: active, ended',
    );
    const status = await inject("GET", "/v1/approvals?status=nope", admin());
    expect(status.statusCode).toBe(400);
    expect(errorOf(status).message).toBe(
      "query.status: unknown value; valid values: pending, approved, denied, expired",
    );
  });

  it("over TCP a bare DELETE (README's curl check-in) needs no marker; a bodiless POST does", async () => {
    const co = await inject(
      "POST",
      "/v1/checkout",
      { authorization: `Bearer ${await lh.identity("a")}` },
      {
        resource: lh.resource,
        task: { id: "T-msgs" },
        intent: { action: "read" },
        ttl: 120,
        wait: 60,
      },
    );
    expect(co.statusCode, co.body).toBe(201);
    const { token, lease } = co.json() as { token: string; lease: { id: string } };
    const bearer = { authorization: `Bearer ${token}` };
    const renew = await inject("POST", `/v1/leases/${lease.id}/renew`, bearer);
    expect(renew.statusCode).toBe(403);
    expect(errorOf(renew).code).toBe("forbidden_origin");
    const checkin = await inject("DELETE", `/v1/leases/${lease.id}`, bearer);
    expect(checkin.statusCode, checkin.body).toBe(202);
  });
});
