import { readFile } from "node:fs/promises";
import { request } from "node:http";
import { join } from "node:path";
import { writeFile } from "node:fs/promises";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ErrorBody, StackClient } from "../support/e2e-client.js";
import { type Stack, startStack } from "../support/stack.js";
import { waitFor } from "../support/wait-for.js";

let stack: Stack;
let c: StackClient;
let adminToken: string;
let secrets: string[];

const http = (...args: Parameters<StackClient["http"]>) => c.http(...args);
const assertion = (agent: string) => c.assertion(agent);
const checkoutBody = {
  resource: "orders-db",
  task: { id: "TICKET-123", description: "monthly revenue report" },
  intent: { action: "read", tool: "psql" },
  ttl: 120,
};
const waitForAccountState = (state: string) => c.waitForAccounts("orders-db", state);
const vaultAccount = (account: string) => c.vaultAccount("orders-db", account);

beforeAll(async () => {
  stack = await startStack();
  c = new StackClient(stack);
  secrets = c.secrets;
  adminToken = await c.adminToken();
  secrets.push(stack.adminPassword);
  await stack.createRole("app_orders_1", "initial-pass-1234567");
  secrets.push("initial-pass-1234567");
  const reg = {
    name: "orders-db",
    adapter: "postgres",
    connection: { host: "127.0.0.1", port: stack.pg.port, database: "postgres" },
    rotateWith: "admin",
    admin: { username: "leasehold_admin", password: stack.adminPassword },
    accounts: ["app_orders_1"],
    lease: { defaultTtl: 60, maxTtl: 600 },
  };
  await writeFile(join(stack.dir, "orders-db.yaml"), JSON.stringify(reg));
  const r = await stack.cli("resources", "register", "-f", join(stack.dir, "orders-db.yaml"));
  expect(r.code, r.stderr).toBe(0);
  expect(r.stdout).toContain("orders-db registered");
}, 120_000);

afterAll(async () => {
  await stack?.close();
});

describe("the whole loop on real PostgreSQL", () => {
  let tokenA = "";
  let leaseA = "";
  let passwordA = "";

  it("imported the account: the password the DBA set no longer logs in", async () => {
    await waitForAccountState("available");
    expect(await stack.canLogin("app_orders_1", "initial-pass-1234567")).toBe(false);
    const rec = await vaultAccount("app_orders_1");
    secrets.push(rec.password);
    expect(await stack.canLogin("app_orders_1", rec.password)).toBe(true);
  });

  it("agent A checks out, logs in with the revealed password, checks in", async () => {
    const res = await http("POST", "/v1/checkout", { token: await assertion("a"), body: checkoutBody });
    expect(res.status, JSON.stringify(res.json)).toBe(201);
    expect(res.headers.get("x-request-id")).toMatch(/^req_/);
    const lease = res.json.lease as {
      id: string;
      state: string;
      agent: string;
      account: string;
      expires_at: string;
    };
    expect(lease.state).toBe("active");
    expect(lease.agent).toBe("spiffe://example.org/agent/a");
    expect(lease.account).toBe("app_orders_1");
    tokenA = res.json.token as string;
    leaseA = lease.id;
    secrets.push(tokenA);

    const own = await http("GET", `/v1/leases/${leaseA}`, { token: tokenA });
    expect(own.status).toBe(200);
    expect(own.json.id).toBe(leaseA);

    const cred = await http("GET", `/v1/leases/${leaseA}/credential`, { token: tokenA });
    expect(cred.status).toBe(200);
    expect(cred.headers.get("cache-control")).toBe("no-store");
    passwordA = cred.json.password as string;
    secrets.push(passwordA);
    expect(cred.json.username).toBe("app_orders_1");

    const c = new pg.Client({
      host: "127.0.0.1",
      port: stack.pg.port,
      user: "app_orders_1",
      password: passwordA,
      database: "postgres",
    });
    await c.connect();
    const q = await c.query("select current_user as u");
    await c.end();
    expect(q.rows[0].u).toBe("app_orders_1");

    const renew = await http("POST", `/v1/leases/${leaseA}/renew`, { token: tokenA, body: { ttl: 300 } });
    expect(renew.status).toBe(200);

    const tool = await http("POST", `/v1/leases/${leaseA}/tool-calls`, {
      token: tokenA,
      body: { tool: "psql", action: "read", target: "orders" },
    });
    expect(tool.status).toBe(202);

    const checkin = await http("DELETE", `/v1/leases/${leaseA}`, { token: tokenA });
    expect(checkin.status).toBe(202);
    expect((checkin.json.lease as { state: string; end_reason: string }).end_reason).toBe("checkin");
  });

  it("after check-in, PostgreSQL refuses A's password and Vault's new one works", async () => {
    await waitForAccountState("available");
    expect(await stack.canLogin("app_orders_1", passwordA)).toBe(false);
    const rec = await vaultAccount("app_orders_1");
    secrets.push(rec.password);
    expect(rec.state).toBe("available");
    expect(rec.password).not.toBe(passwordA);
    expect(await stack.canLogin("app_orders_1", rec.password)).toBe(true);
  });

  it("the token of the ended lease gets 401", async () => {
    for (const path of [`/v1/leases/${leaseA}`, `/v1/leases/${leaseA}/credential`]) {
      const r = await http("GET", path, { token: tokenA });
      expect(r.status).toBe(401);
      expect((r.json as unknown as ErrorBody).error.request_id).toMatch(/^req_/);
    }
  });

  it("agent B gets the same account with a different password; a second checkout is busy", async () => {
    const res = await http("POST", "/v1/checkout", { token: await assertion("b"), body: checkoutBody });
    expect(res.status, JSON.stringify(res.json)).toBe(201);
    const tokenB = res.json.token as string;
    secrets.push(tokenB);
    const leaseB = (res.json.lease as { id: string }).id;
    const cred = await http("GET", `/v1/leases/${leaseB}/credential`, { token: tokenB });
    const passwordB = cred.json.password as string;
    secrets.push(passwordB);
    expect(passwordB).not.toBe(passwordA);
    expect(await stack.canLogin("app_orders_1", passwordB)).toBe(true);

    const busy = await http("POST", "/v1/checkout", { token: await assertion("a"), body: checkoutBody });
    expect(busy.status).toBe(409);
    expect((busy.json as unknown as ErrorBody).error.code).toBe("resource_busy");
    expect(busy.headers.get("retry-after")).toBe("1");

    const revoke = await stack.cli("leases", "revoke", leaseB, "--reason", "test");
    expect(revoke.code, revoke.stderr).toBe(0);
    const after = await http("GET", `/v1/leases/${leaseB}/credential`, { token: tokenB });
    expect(after.status).toBe(401);
    expect((after.json as unknown as ErrorBody).error.code).toBe("lease_revoked");
    await waitForAccountState("available");
    expect(await stack.canLogin("app_orders_1", passwordB)).toBe(false);
  });

  it("an expired lease is ended by the reaper and its account rotated", async () => {
    const res = await http("POST", "/v1/checkout", {
      token: await assertion("a"),
      body: { ...checkoutBody, ttl: 1 },
    });
    expect(res.status).toBe(201);
    const token = res.json.token as string;
    secrets.push(token);
    const id = (res.json.lease as { id: string }).id;
    const cred = await http("GET", `/v1/leases/${id}/credential`, { token });
    const pw = cred.json.password as string;
    secrets.push(pw);
    // The TTL runs out on Redis' clock; what follows is the reaper ending the lease.
    await waitFor(
      "the reaper to end the lease",
      async () => (await http("GET", `/v1/leases/${id}`, { token: adminToken })).json.state === "ended",
    );
    const after = await http("GET", `/v1/leases/${id}`, { token });
    expect(after.status).toBe(401);
    expect((after.json as unknown as ErrorBody).error.code).toBe("lease_expired");
    await waitForAccountState("available");
    expect(await stack.canLogin("app_orders_1", pw)).toBe(false);
    const lease = await http("GET", `/v1/leases/${id}`, { token: adminToken });
    expect(lease.json.end_reason).toBe("expired");
  });

  it("the audit file has one record per checkout, reveal, check-in and rotation, chained", async () => {
    const lines = (await readFile(join(stack.dir, "state", "audit.jsonl"), "utf8"))
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const events = lines.map((l) => l.event);
    expect(events).toContain("checkout");
    expect(events).toContain("reveal");
    expect(events).toContain("checkin");
    expect(events).toContain("expiry");
    expect(events).toContain("revocation");
    expect(events).toContain("rotation_succeeded");
    const checkout = lines.find((l) => l.event === "checkout" && l.lease_id === leaseA);
    expect(checkout).toMatchObject({
      agent: "spiffe://example.org/agent/a",
      task_id: "TICKET-123",
      intent: "read",
      tool: "psql",
      resource: "orders-db",
      account: "app_orders_1",
    });
    const v = await stack.cli("audit", "verify");
    expect(v.code, v.stdout + v.stderr).toBe(0);
  });
});

describe("bad input gets the documented error shape and changes nothing", () => {
  const expectError = (
    r: { status: number; json: Record<string, unknown> },
    status: number,
    code: string,
  ) => {
    expect(r.status, JSON.stringify(r.json)).toBe(status);
    const e = (r.json as unknown as ErrorBody).error;
    expect(e.code).toBe(code);
    expect(typeof e.message).toBe("string");
    expect(e.request_id).toMatch(/^req_/);
    return e.message;
  };

  it("refuses malformed, incomplete and mistyped checkouts, naming the field", async () => {
    const jwt = await assertion("a");
    expectError(await http("POST", "/v1/checkout", { token: jwt, raw: "{not json" }), 400, "invalid_request");
    expect(
      expectError(
        await http("POST", "/v1/checkout", { token: jwt, body: { ...checkoutBody, task: undefined } }),
        400,
        "invalid_request",
      ),
    ).toContain("body.task");
    expect(
      expectError(
        await http("POST", "/v1/checkout", { token: jwt, body: { ...checkoutBody, ttl: "soon" } }),
        400,
        "invalid_request",
      ),
    ).toContain("body.ttl");
    expect(
      expectError(
        await http("POST", "/v1/checkout", { token: jwt, body: { ...checkoutBody, extra: 1 } }),
        400,
        "invalid_request",
      ),
    ).toContain("extra");
    expectError(
      await http("POST", "/v1/checkout", { token: jwt, body: { ...checkoutBody, resource: "nope-db" } }),
      404,
      "not_found",
    );
    expectError(
      await http("POST", "/v1/checkout", {
        token: jwt,
        raw: "x=1",
        headers: { "content-type": "text/plain" },
      }),
      415,
      "unsupported_media_type",
    );
    expectError(
      await http("POST", "/v1/checkout", { token: jwt, raw: JSON.stringify({ pad: "x".repeat(70_000) }) }),
      413,
      "payload_too_large",
    );
  });

  it("refuses missing, forged and foreign tokens", async () => {
    expectError(await http("POST", "/v1/checkout", { body: checkoutBody }), 401, "unauthenticated");
    const jwt = await assertion("a");
    const [h, p] = jwt.split(".");
    expectError(
      await http("POST", "/v1/checkout", { token: `${h}.${p}.AAAA`, body: checkoutBody }),
      401,
      "unauthenticated",
    );
    const foreign = await c.assertion("a", "--aud", "someone-else");
    expectError(
      await http("POST", "/v1/checkout", { token: foreign, body: checkoutBody }),
      401,
      "unauthenticated",
    );
    // An agent's identity is a valid identity but no operator: lists are refused (403, issue 16:
    // no longer an empty list), and acting on a resource is a policy decision that denies it; a
    // forged one is unauthenticated.
    expectError(await http("GET", "/v1/resources", { token: jwt }), 403, "policy_denied");
    expectError(await http("GET", "/v1/resources/orders-db", { token: jwt }), 403, "policy_denied");
    expectError(await http("GET", "/v1/resources", { token: `${h}.${p}.AAAA` }), 401, "unauthenticated");
    expectError(
      await http("GET", "/v1/leases/lse_AAAAAAAAAAAAAAAAAAAAAA", { token: "not-a-token" }),
      401,
      "unauthenticated",
    );
  });

  it("refuses foreign Host and Origin headers", async () => {
    // fetch cannot set Host, so this one request goes through node:http.
    const rebinding = await new Promise<{ status: number; json: Record<string, unknown> }>(
      (resolve, reject) => {
        const req = request(
          { host: "127.0.0.1", port: stack.port, path: "/healthz", headers: { host: "evil.example:7733" } },
          (res) => {
            let data = "";
            res.on("data", (d: Buffer) => {
              data += d.toString();
            });
            res.on("end", () =>
              resolve({ status: res.statusCode ?? 0, json: JSON.parse(data) as Record<string, unknown> }),
            );
          },
        );
        req.on("error", reject);
        req.end();
      },
    );
    expectError(rebinding, 403, "forbidden_host");
    expectError(
      await http("GET", "/healthz", { headers: { origin: "http://evil.example" } }),
      403,
      "forbidden_origin",
    );
  });

  it("a denied intent is policy_denied and leaves the account available", async () => {
    const r = await http("POST", "/v1/checkout", {
      token: await assertion("a"),
      body: { ...checkoutBody, intent: { action: "write" } },
    });
    expectError(r, 403, "policy_denied");
    await waitForAccountState("available");
  });

  it("a bad registration is refused naming the field, and nothing is written", async () => {
    const bad = {
      name: "bad-db",
      adapter: "postgres",
      connection: { host: "127.0.0.1", port: "five" },
      admin: { username: "x", password: "y" },
      accounts: ["a"],
    };
    const r = await http("PUT", "/v1/resources/bad-db", { token: adminToken, body: bad });
    expect(expectError(r, 400, "invalid_request")).toContain("connection.port");
    expectError(await http("GET", "/v1/resources/bad-db", { token: adminToken }), 404, "not_found");
    const cli = await stack.cli("resources", "show", "bad-db");
    expect(cli.code).toBe(1);
    expect(cli.stderr).toMatch(/^leasehold: not_found/);
  });

  it("no password or token appears in the sidecar's logs or the audit file", async () => {
    const logs = stack.sidecar.output();
    const audit = await readFile(join(stack.dir, "state", "audit.jsonl"), "utf8");
    expect(logs.length).toBeGreaterThan(1000);
    expect(secrets.length).toBeGreaterThan(8);
    for (const s of secrets) {
      expect(logs.includes(s), "a secret is in the logs").toBe(false);
      expect(audit.includes(s), "a secret is in the audit file").toBe(false);
    }
  });
});
