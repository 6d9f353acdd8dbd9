import type { LightMyRequestResponse } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  buildOpenApi,
  errorSchema,
  openApiPath,
  ROUTES,
  type RouteDoc,
  routeErrors,
} from "../../sidecar/openapi/index.js";
import { type InProcessSidecar, startInProcessSidecar } from "../deploy/in-process-sidecar.js";
import { useVault, type VaultHandle } from "../support/vault.js";
import { type AppRoute, parseRouteTree } from "./route-list.js";
import { waitFor } from "../support/wait-for.js";

const A = "spiffe://example.org/agent/a";
const B = "spiffe://example.org/agent/b";
const POLICY = `
@id("a-reads")
permit (principal == Agent::"${A}", action in [Action::"checkout", Action::"reveal", Action::"renew", Action::"tool_call"], resource)
when { context.intent == "read" && context.ttl <= 600 };

@id("b-needs-approval")
permit (principal == Agent::"${B}", action == Action::"checkout", resource)
when { context.approved };
`;

type Json = Record<string, unknown>;
const doc = buildOpenApi() as {
  openapi: string;
  paths: Record<string, Record<string, Json>>;
  components: { schemas: Record<string, Json>; securitySchemes: Json; headers: Json };
};

/** Every `$ref` in the document, with the place it was found. */
function refs(value: unknown, at = "#"): Array<{ ref: string; at: string }> {
  if (Array.isArray(value)) return value.flatMap((v, i) => refs(v, `${at}/${i}`));
  if (value === null || typeof value !== "object") return [];
  return Object.entries(value).flatMap(([k, v]) =>
    k === "$ref" && typeof v === "string" ? [{ ref: v, at }] : refs(v, `${at}/${k}`),
  );
}

function resolves(ref: string): boolean {
  let node: unknown = doc;
  for (const part of ref.replace(/^#\//, "").split("/")) {
    if (node === null || typeof node !== "object") return false;
    node = (node as Json)[part];
  }
  return node !== undefined;
}

/** `/v1/leases/{id}` as a pattern; `/ui/` is `/ui`. */
function documented(route: AppRoute): boolean {
  const path = route.path.length > 1 ? route.path.replace(/\/$/, "") : route.path;
  return Object.entries(doc.paths).some(
    ([p, ops]) =>
      new RegExp(`^${p.replace(/[.]/g, "\\.").replace(/\{[^}]+\}/g, "[^/]+")}$`).test(openApiPath(path)) &&
      ops[route.method.toLowerCase()] !== undefined,
  );
}

describe("the OpenAPI document", () => {
  it("is OpenAPI 3.1: every operation has an id, responses and resolvable $refs", () => {
    expect(doc.openapi).toBe("3.1.0");
    const ids = new Set<string>();
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        expect(typeof op.operationId, `${method} ${path}`).toBe("string");
        expect(ids.has(String(op.operationId)), `duplicate ${String(op.operationId)}`).toBe(false);
        ids.add(String(op.operationId));
        expect(Object.keys(op.responses as Json).length).toBeGreaterThan(0);
        for (const s of op.security as Json[]) {
          for (const scheme of Object.keys(s)) expect(doc.components.securitySchemes).toHaveProperty(scheme);
        }
      }
    }
    const all = refs(doc);
    expect(all.length).toBeGreaterThan(50);
    expect(all.filter((r) => !resolves(r.ref))).toEqual([]);
  });

  it("states the error shape and, per route, every status its errors map to", () => {
    const err = doc.components.schemas.Error as { properties: { error: { required: string[] } } };
    expect(err.properties.error.required).toEqual(["code", "message", "request_id"]);
    const checkout = doc.paths["/v1/checkout"]?.post as { responses: Record<string, Json> };
    expect(Object.keys(checkout.responses).sort()).toEqual(
      ["201", "202", "400", "401", "403", "404", "409", "413", "415", "500", "503"].sort(),
    );
    expect(String(checkout.responses["409"]?.description)).toContain("resource_busy");
    expect(checkout.responses["409"]?.headers).toHaveProperty("retry-after");
  });

  it("documents the request bodies the routes validate, from the same zod schemas", () => {
    const reg = doc.components.schemas.Registration as { properties: Json; required: string[] };
    expect(Object.keys(reg.properties)).toEqual(
      expect.arrayContaining([
        "name",
        "adapter",
        "connection",
        "rotateWith",
        "accounts",
        "lease",
        "rotation",
      ]),
    );
    expect(reg.required).toEqual(["name", "adapter", "connection", "accounts"]);
    const checkout = doc.components.schemas.CheckoutRequest as { additionalProperties: boolean };
    expect(checkout.additionalProperties).toBe(false);
    const lease = doc.paths["/v1/leases/{id}"]?.get as { parameters: Array<{ name: string; schema: Json }> };
    expect(lease.parameters[0]).toMatchObject({
      name: "id",
      schema: { pattern: expect.stringContaining("lse_") },
    });
  });
});

describe("the document against the real app", () => {
  let vault: VaultHandle;
  let lh: InProcessSidecar;
  let admin: string;

  beforeAll(async () => {
    vault = await useVault();
    lh = await startInProcessSidecar({ vault, policy: POLICY });
    admin = lh.sidecar.adminToken;
  });
  afterAll(async () => {
    await lh?.close();
    await vault?.close();
  });

  it("documents every route the app registers (its own, the audit and the ops routes), and no other", async () => {
    const app = lh.sidecar.app;
    await app.ready();
    const registered = parseRouteTree(app.printRoutes({ commonPrefix: false }));

    expect(registered.filter((r) => !documented(r))).toEqual([]);
    const keys = new Set(registered.map((r) => `${r.method} ${openApiPath(r.path)}`));
    const missing = ROUTES.filter((r) => !keys.has(`${r.method} ${openApiPath(r.path)}`)).map(
      (r) => `${r.method} ${r.path}`,
    );
    expect(missing).toEqual([]);
    expect(registered.length).toBeGreaterThanOrEqual(ROUTES.length);
    expect(new Set(ROUTES.map((r) => r.owner))).toEqual(new Set(["app", "ops", "audit"]));
  });

  it("serves the document at /openapi.json through the app's guards", async () => {
    const res = await lh.sidecar.app.inject({ method: "GET", url: "/openapi.json" });
    expect(res.statusCode).toBe(200);
    expect(res.headers["x-request-id"]).toMatch(/^req_/);
    expect(res.json()).toEqual(JSON.parse(JSON.stringify(doc)));
    const foreign = await lh.sidecar.app.inject({
      method: "GET",
      url: "/openapi.json",
      headers: { host: "evil.example" },
    });
    expect(foreign.statusCode).toBe(403);
  });

  it("real answers of every agent, operator and DBA route match their documented status and schema", async () => {
    const app = lh.sidecar.app;
    const seen = new Set<string>();
    const call = async (
      key: string,
      opts: {
        params?: Record<string, string>;
        query?: string;
        body?: unknown;
        token?: string;
        host?: string;
      } = {},
    ): Promise<{ status: number; body: Json; res: LightMyRequestResponse }> => {
      const [method, path] = key.split(" ") as [RouteDoc["method"], string];
      const route = ROUTES.find((r) => r.method === method && r.path === path);
      if (!route) throw new Error(`${key} is not in the route table`);
      const url =
        path.replace(/:([a-z]+)/g, (_m, p: string) => encodeURIComponent(opts.params?.[p] ?? "")) +
        (opts.query ? `?${opts.query}` : "");
      const res = await app.inject({
        method,
        url,
        headers: {
          ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}),
          // What the CLI and the SDK send: the CSRF rule wants it on bodiless POSTs and DELETEs.
          ...(method === "GET" ? {} : { "x-leasehold-request": "true" }),
          ...(opts.body === undefined ? {} : { "content-type": "application/json" }),
          ...(opts.host ? { host: opts.host } : {}),
        },
        ...(opts.body === undefined ? {} : { payload: JSON.stringify(opts.body) }),
      });
      const body = res.json() as Json;
      expect(res.headers["x-request-id"], key).toMatch(/^req_/);
      const ok = route.responses[res.statusCode];
      if (ok?.schema) {
        const parsed = ok.schema.safeParse(body);
        expect(parsed.success, `${key} ${res.statusCode}: ${parsed.error?.message}`).toBe(true);
      } else {
        const parsed = errorSchema.safeParse(body);
        expect(parsed.success, `${key} ${res.statusCode} is not the error shape: ${res.body}`).toBe(true);
        const code = parsed.data?.error.code;
        expect(routeErrors(route), `${key} answered an undocumented ${code}`).toContain(code);
        expect(parsed.data?.error.request_id).toBe(res.headers["x-request-id"]);
      }
      seen.add(key);
      return { status: res.statusCode, body, res };
    };
    const name = lh.resource;
    const waitAvailable = () =>
      waitFor("the account to come back to available", async () => {
        const r = await call("GET /v1/resources/:name", { params: { name }, token: admin });
        return (r.body.accounts as Array<{ state: string }>).every((a) => a.state === "available");
      });
    const checkout = (agent: "a" | "b") => async () =>
      call("POST /v1/checkout", {
        token: await lh.identity(agent),
        body: {
          resource: name,
          task: { id: "T-1", description: "report" },
          intent: { action: "read", tool: "sql" },
          ttl: 120,
        },
      });

    expect((await call("GET /healthz")).status).toBe(200);
    expect((await call("GET /readyz")).status).toBe(200);
    const cluster = await call("GET /v1/cluster", { token: admin });
    expect(cluster.body).toMatchObject({ status: "ok", cluster_id: expect.stringMatching(/^lhc_/) });
    // Adopting a keyspace that already holds the cluster's id changes nothing but is recorded.
    const adopted = await call("POST /v1/cluster/adopt", { token: admin, body: { reason: "doc check" } });
    expect(adopted.body).toMatchObject({ status: "ok", previous_redis_cluster_id: cluster.body.cluster_id });
    expect((await call("GET /.well-known/jwks.json")).status).toBe(200);
    expect((await call("GET /healthz", { host: "evil.example" })).status).toBe(403);

    const dry = await call("PUT /v1/resources/:name", {
      params: { name },
      query: "dry_run=true",
      body: lh.registration,
      token: admin,
    });
    expect(dry.status).toBe(200);
    expect(
      (await call("PUT /v1/resources/:name", { params: { name }, body: lh.registration, token: admin }))
        .status,
    ).toBe(201);
    expect(
      (await call("PUT /v1/resources/:name", { params: { name }, body: { name }, token: admin })).status,
    ).toBe(400);
    // A registration whose account is missing registers nothing: 400 with one detail per account.
    const missingName = `${name}-missing`;
    const refused = await call("PUT /v1/resources/:name", {
      params: { name: missingName },
      body: { ...lh.registration, name: missingName, accounts: ["lhdoc_no_such_account"] },
      token: admin,
    });
    expect(refused.status).toBe(400);
    expect((refused.body.error as Json).details).toEqual([
      { field: "registration.accounts.0", message: expect.stringMatching(/^lhdoc_no_such_account: \S/) },
    ]);
    expect((await call("GET /v1/resources", { token: admin })).status).toBe(200);
    expect((await call("GET /v1/resources", {})).status).toBe(401);
    expect((await call("GET /v1/adapters", { token: admin })).status).toBe(200);
    await waitAvailable();

    const catalog = await call("GET /v1/catalog", { token: await lh.identity("a") });
    expect(catalog.body.resources).toEqual([{ name, adapter: "mysql", groups: [], session: "credential" }]);
    expect((await call("GET /v1/catalog", {})).status).toBe(401);
    expect(
      (
        await call("POST /v1/tool-calls", {
          token: await lh.identity("a"),
          body: { tool: "list_resources", action: "list", client: "openapi-test" },
        })
      ).status,
    ).toBe(202);
    expect(
      (await call("POST /v1/tool-calls", { token: await lh.identity("a"), body: { tool: "x" } })).status,
    ).toBe(400);

    const co = await checkout("a")();
    expect(co.status).toBe(201);
    const lease = co.body.lease as { id: string };
    const token = String(co.body.token);
    const busy = await checkout("a")();
    expect(busy.status).toBe(409);
    expect(busy.res.headers["retry-after"]).toBeDefined();
    expect(
      (await call("POST /v1/checkout", { token: await lh.identity("a"), body: { resource: name } })).status,
    ).toBe(400);
    expect((await call("GET /v1/leases/:id", { params: { id: lease.id }, token })).status).toBe(200);
    expect((await call("GET /v1/leases/:id", { params: { id: lease.id }, token: admin })).status).toBe(200);
    expect((await call("GET /v1/leases/:id", { params: { id: "nope" }, token })).status).toBe(400);
    expect((await call("GET /v1/leases/:id/credential", { params: { id: lease.id }, token })).status).toBe(
      200,
    );
    expect(
      (await call("POST /v1/leases/:id/renew", { params: { id: lease.id }, token, body: { ttl: 60 } }))
        .status,
    ).toBe(200);
    expect(
      (
        await call("POST /v1/leases/:id/tool-calls", {
          params: { id: lease.id },
          token,
          body: { tool: "sql", action: "read" },
        })
      ).status,
    ).toBe(202);
    expect((await call("GET /v1/leases", { token: admin, query: `resource=${name}` })).status).toBe(200);
    expect((await call("DELETE /v1/leases/:id", { params: { id: lease.id }, token })).status).toBe(202);
    expect((await call("GET /v1/leases/:id/credential", { params: { id: lease.id }, token })).status).toBe(
      401,
    );
    await waitAvailable();

    const again = await checkout("a")();
    const second = (again.body.lease as { id: string }).id;
    expect(
      (
        await call("POST /v1/leases/:id/revoke", {
          params: { id: second },
          token: admin,
          body: { reason: "test" },
        })
      ).status,
    ).toBe(202);
    expect(
      (await call("GET /v1/leases/:id", { params: { id: second }, token: String(again.body.token) })).status,
    ).toBe(401);
    await waitAvailable();

    // Task teardown: the agent completes its task; an operator revokes one.
    const third = (await checkout("a")()).body.lease as { id: string };
    const completed = await call("POST /v1/tasks/:id/complete", {
      params: { id: "T-1" },
      token: await lh.identity("a"),
    });
    expect(completed.status).toBe(202);
    expect((completed.body.leases as Array<{ id: string }>).map((l) => l.id)).toEqual([third.id]);
    expect(
      (
        await call("POST /v1/tasks/:id/complete", {
          params: { id: "x".repeat(201) },
          token: await lh.identity("a"),
        })
      ).status,
    ).toBe(400);
    await waitAvailable();
    const fourth = (await checkout("a")()).body.lease as { id: string };
    const revokedTask = await call("POST /v1/tasks/:id/revoke", {
      params: { id: "T-1" },
      token: admin,
      body: { reason: "test" },
    });
    expect(revokedTask.status).toBe(202);
    expect((revokedTask.body.leases as Array<{ id: string }>).map((l) => l.id)).toEqual([fourth.id]);
    await waitAvailable();

    const pending = await checkout("b")();
    expect(pending.status).toBe(202);
    const approvalId = (pending.body.approval as { id: string }).id;
    expect((await call("GET /v1/approvals", { token: admin, query: "status=pending" })).status).toBe(200);
    expect(
      (await call("GET /v1/approvals/:id", { params: { id: approvalId }, token: await lh.identity("b") }))
        .status,
    ).toBe(200);
    expect(
      (
        await call("POST /v1/approvals/:id/approve", {
          params: { id: approvalId },
          token: admin,
          body: { approver: "alice" },
        })
      ).status,
    ).toBe(200);
    const redeemed = await call("GET /v1/approvals/:id", {
      params: { id: approvalId },
      token: await lh.identity("b"),
    });
    expect((redeemed.body.approval as { lease?: { agent: string } }).lease?.agent).toBe(B);
    expect(redeemed.body.approval).toHaveProperty("token");
    const bLease = redeemed.body.approval as { lease: { id: string }; token: string };
    const revokedB = await call("POST /v1/agents/revoke", { token: admin, body: { agent: B } });
    expect(revokedB.status).toBe(202);
    expect((revokedB.body.leases as Array<{ id: string }>).map((l) => l.id)).toEqual([bLease.lease.id]);
    // Revocation is immediate: the agent's token is refused on its next use.
    const afterRevoke = await call("GET /v1/leases/:id", {
      params: { id: bLease.lease.id },
      token: bLease.token,
    });
    expect(afterRevoke.status).toBe(401);
    await waitAvailable();
    const denied = await checkout("b")();
    const deniedId = (denied.body.approval as { id: string }).id;
    expect(
      (await call("POST /v1/approvals/:id/deny", { params: { id: deniedId }, token: admin, body: {} }))
        .status,
    ).toBe(200);
    expect(
      (await call("POST /v1/approvals/:id/deny", { params: { id: deniedId }, token: admin, body: {} }))
        .status,
    ).toBe(409);

    expect(
      (await call("POST /v1/resources/:name/revoke", { params: { name }, token: admin, body: {} })).status,
    ).toBe(202);
    expect((await call("POST /v1/resources/:name/verify", { params: { name }, token: admin })).status).toBe(
      200,
    );
    expect((await call("POST /v1/resources/:name/rotate", { params: { name }, token: admin })).status).toBe(
      200,
    );
    const adminRotated = await call("POST /v1/resources/:name/rotate", {
      params: { name },
      token: admin,
      body: { admin: true },
    });
    expect(adminRotated.status).toBe(200);
    expect(adminRotated.body).toMatchObject({ results: [{ status: "rotated" }] });
    expect(
      (await call("DELETE /v1/resources/:name", { params: { name }, token: admin, query: "force=true" }))
        .status,
    ).toBe(200);
    expect((await call("GET /v1/resources/:name", { params: { name }, token: admin })).status).toBe(404);

    const exchange = {
      grant_type: "urn:ietf:params:oauth:grant-type:token-exchange",
      subject_token: await lh.identity("b"),
      subject_token_type: "urn:ietf:params:oauth:token-type:jwt",
      audience: A,
      scope: name,
    };
    const exchanged = await call("POST /v1/token-exchange", { body: exchange });
    expect(exchanged.status).toBe(200);
    expect(exchanged.body.issued_token_type).toBe("urn:ietf:params:oauth:token-type:jwt");
    // The subject token is spent by its exchange.
    expect((await call("POST /v1/token-exchange", { body: exchange })).status).toBe(401);
    expect(
      (await call("POST /v1/token-exchange", { body: { ...exchange, grant_type: "password" } })).status,
    ).toBe(400);

    const untested = ROUTES.filter((r) => r.owner === "app" && r.path !== "/openapi.json")
      .map((r) => `${r.method} ${r.path}`)
      .filter((k) => !seen.has(k));
    expect(untested).toEqual([]);
  });
});
