import { randomBytes } from "node:crypto";
import Fastify, { type LightMyRequestResponse } from "fastify";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { toLeaseholdError } from "../../sidecar/app.js";
import { type RouteAuth, type RouteDoc, ROUTES } from "../../sidecar/http/index.js";
import { createLogger } from "../../sidecar/logger.js";
import { createMetrics } from "../../sidecar/ops/index.js";
import { registerOpsRoutes } from "../../sidecar/ops/ops-routes.js";
import { errorSchema, routeErrors } from "../../sidecar/openapi/index.js";
import { type InProcessSidecar, startInProcessSidecar } from "../deploy/in-process-sidecar.js";
import { REDIS_URL } from "../support/redis.js";
import { useVault, type VaultHandle } from "../support/vault.js";

const A = "spiffe://example.org/agent/a";
const B = "spiffe://example.org/agent/b";
// No policy names an operator action: an agent's identity is a valid identity policy denies there.
const POLICY = `
@id("a-reads")
permit (principal == Agent::"${A}", action in [Action::"checkout", Action::"reveal", Action::"renew", Action::"tool_call"], resource)
when { context.intent == "read" && context.ttl <= 600 };

@id("b-needs-approval")
permit (principal == Agent::"${B}", action == Action::"checkout", resource)
when { context.approved };
`;

/** What the routes act on: a registered resource, a lease of agent a, a pending approval of agent b. */
interface Fixture {
  readonly resource: string;
  readonly registration: Record<string, unknown>;
  readonly lease: string;
  readonly approval: string;
  /** A fresh identity JWT of agent b (identity JWTs are one-time). */
  readonly identityB: () => Promise<string>;
}

/** A request that passes validation, so that only the credential decides the answer. */
interface RouteCase {
  readonly params?: Record<string, string>;
  readonly query?: string;
  /** The body, or a function making one per request (a body that carries a one-time token). */
  readonly body?: unknown;
  /**
   * Operator routes: what a valid agent identity gets, one that policy lets take the route's
   * action on no resource: 403 `policy_denied`, lists included (issue 16; before, a list answered
   * 200 filtered to nothing).
   */
  readonly agent?: { readonly status: number };
}

const checkoutBody = (resource: string) => ({
  resource,
  task: { id: "T-sec", description: "route security" },
  intent: { action: "read", tool: "sql" },
  ttl: 120,
});

/** One case per route of the table; a route without one fails the suite. */
const CASES: Record<string, (f: Fixture) => RouteCase> = {
  "GET /v1/catalog": () => ({}),
  "POST /v1/tool-calls": () => ({
    body: { tool: "list_resources", action: "list", client: "route-security" },
  }),
  "POST /v1/checkout": (f) => ({ body: checkoutBody(f.resource) }),
  "GET /v1/leases/:id": (f) => ({ params: { id: f.lease } }),
  "GET /v1/leases/:id/credential": (f) => ({ params: { id: f.lease } }),
  "POST /v1/leases/:id/renew": (f) => ({ params: { id: f.lease }, body: { ttl: 60 } }),
  "POST /v1/leases/:id/tool-calls": (f) => ({
    params: { id: f.lease },
    body: { tool: "sql", action: "read" },
  }),
  "DELETE /v1/leases/:id": (f) => ({ params: { id: f.lease } }),
  "GET /v1/approvals/:id": (f) => ({ params: { id: f.approval } }),
  "POST /v1/tasks/:id/complete": () => ({ params: { id: "T-none" } }),
  "POST /v1/tasks/:id/revoke": () => ({ params: { id: "T-sec" }, body: {}, agent: { status: 403 } }),
  "GET /v1/leases": (f) => ({ query: `resource=${f.resource}`, agent: { status: 403 } }),
  "GET /v1/leases/stream": () => ({}),
  "POST /v1/leases/:id/revoke": (f) => ({ params: { id: f.lease }, body: {}, agent: { status: 403 } }),
  "POST /v1/agents/revoke": () => ({ body: { agent: A }, agent: { status: 403 } }),
  "GET /v1/approvals": () => ({ query: "status=pending", agent: { status: 403 } }),
  "POST /v1/approvals/:id/approve": (f) => ({ params: { id: f.approval }, body: {}, agent: { status: 403 } }),
  "POST /v1/approvals/:id/deny": (f) => ({ params: { id: f.approval }, body: {}, agent: { status: 403 } }),
  "GET /v1/resources": () => ({ agent: { status: 403 } }),
  "PUT /v1/resources/:name": (f) => ({
    params: { name: f.resource },
    query: "dry_run=true",
    body: f.registration,
    agent: { status: 403 },
  }),
  "GET /v1/resources/:name": (f) => ({ params: { name: f.resource }, agent: { status: 403 } }),
  "DELETE /v1/resources/:name": (f) => ({ params: { name: f.resource }, agent: { status: 403 } }),
  "POST /v1/resources/:name/rotate": (f) => ({ params: { name: f.resource }, agent: { status: 403 } }),
  "POST /v1/resources/:name/revoke": (f) => ({
    params: { name: f.resource },
    body: {},
    agent: { status: 403 },
  }),
  "POST /v1/resources/:name/verify": (f) => ({ params: { name: f.resource }, agent: { status: 403 } }),
  "GET /v1/adapters": () => ({ agent: { status: 403 } }),
  "GET /v1/audit": () => ({ query: "limit=5" }),
  "GET /v1/cluster": () => ({}),
  "POST /v1/cluster/adopt": () => ({ body: {} }),
  "GET /healthz": () => ({}),
  "GET /readyz": () => ({}),
  "GET /metrics": () => ({}),
  "GET /ui": () => ({}),
  "GET /ui/:asset": () => ({ params: { asset: "app.js" } }),
  "GET /.well-known/jwks.json": () => ({}),
  "GET /openapi.json": () => ({}),
  // The credential is the body's subject_token: a fresh one per request.
  "POST /v1/token-exchange": (f) => ({
    body: async () => ({
      grant_type: "urn:ietf:params:oauth:grant-type:token-exchange",
      subject_token: await f.identityB(),
      subject_token_type: "urn:ietf:params:oauth:token-type:jwt",
      audience: A,
      scope: f.resource,
    }),
  }),
};

const key = (r: RouteDoc) => `${r.method} ${r.path}`;
const OPERATOR_ROUTES: readonly RouteAuth[] = ["operator-revoke", "operator-approve", "operator-register"];
/** Routes anyone past the Host/Origin guard may call (`/metrics` needs no token by default). */
const OPEN: readonly RouteAuth[] = ["none", "admin-if-configured"];

describe("every route of the table refuses what it must", () => {
  let vault: VaultHandle;
  let lh: InProcessSidecar;
  let fixture: Fixture;

  const send = async (
    route: RouteDoc,
    c: RouteCase,
    headers: Record<string, string> = {},
  ): Promise<LightMyRequestResponse> => {
    const body = typeof c.body === "function" ? await (c.body as () => Promise<unknown>)() : c.body;
    const url =
      route.path.replace(/:([a-z]+)/g, (_m, p: string) => encodeURIComponent(c.params?.[p] ?? "")) +
      (c.query ? `?${c.query}` : "");
    return lh.sidecar.app.inject({
      method: route.method,
      url,
      headers: {
        // What the CLI and the SDK send: the CSRF rule wants it on bodiless POSTs and DELETEs.
        ...(route.method === "GET" ? {} : { "x-leasehold-request": "true" }),
        ...(body === undefined ? {} : { "content-type": "application/json" }),
        ...headers,
      },
      ...(body === undefined ? {} : { payload: JSON.stringify(body) }),
    });
  };

  /** The status, and for an error the documented shape: one of the route's codes, the request's id. */
  const expectAnswer = (route: RouteDoc, res: LightMyRequestResponse, status: number, code?: string) => {
    expect(res.statusCode, `${key(route)}: ${res.body.slice(0, 300)}`).toBe(status);
    expect(res.headers["x-request-id"], key(route)).toMatch(/^req_/);
    if (code === undefined) return;
    const parsed = errorSchema.safeParse(res.json());
    expect(parsed.success, `${key(route)} ${status} is not the error shape: ${res.body}`).toBe(true);
    expect(parsed.data?.error.code, key(route)).toBe(code);
    expect(routeErrors(route), key(route)).toContain(code);
    expect(parsed.data?.error.request_id).toBe(res.headers["x-request-id"]);
  };

  const successOf = (route: RouteDoc) =>
    Object.keys(route.responses)
      .map(Number)
      .filter((s) => s >= 200 && s < 300);

  beforeAll(async () => {
    vault = await useVault();
    lh = await startInProcessSidecar({ vault, policy: POLICY });
    const admin = { authorization: `Bearer ${lh.sidecar.adminToken}`, "content-type": "application/json" };
    const app = lh.sidecar.app;
    const put = await app.inject({
      method: "PUT",
      url: `/v1/resources/${lh.resource}`,
      headers: admin,
      payload: JSON.stringify(lh.registration),
    });
    expect(put.statusCode, put.body).toBe(201);
    const checkout = async (agent: "a" | "b", wait: number) =>
      app.inject({
        method: "POST",
        url: "/v1/checkout",
        headers: { authorization: `Bearer ${await lh.identity(agent)}`, "content-type": "application/json" },
        // `wait` lets the checkout take the account once its import rotation has put it back.
        payload: JSON.stringify({ ...checkoutBody(lh.resource), wait }),
      });
    const leased = await checkout("a", 60);
    expect(leased.statusCode, leased.body).toBe(201);
    const pending = await checkout("b", 0);
    expect(pending.statusCode, pending.body).toBe(202);
    fixture = {
      resource: lh.resource,
      registration: lh.registration,
      lease: (leased.json() as { lease: { id: string } }).lease.id,
      approval: (pending.json() as { approval: { id: string } }).approval.id,
      identityB: () => lh.identity("b"),
    };
  });
  afterAll(async () => {
    await lh?.close();
    await vault?.close();
  });

  it("has a case for every route, and none for a route that is gone", () => {
    expect(ROUTES.map(key).filter((k) => !(k in CASES))).toEqual([]);
    expect(Object.keys(CASES).filter((k) => !ROUTES.some((r) => key(r) === k))).toEqual([]);
    for (const r of ROUTES.filter((x) => OPERATOR_ROUTES.includes(x.auth)))
      expect(CASES[key(r)]?.(fixture).agent, `${key(r)} needs the agent identity's answer`).toBeDefined();
  });

  it.each(ROUTES.map((r) => [key(r), r] as const))("%s", async (_k, route) => {
    const c = (CASES[key(route)] ?? (() => expect.fail(`no case for ${key(route)}`)))(fixture);
    const wrong = { authorization: `Bearer wrong-${randomBytes(12).toString("base64url")}` };
    const admin = { authorization: `Bearer ${lh.sidecar.adminToken}` };

    // Past the guard, a route for anyone answers without a credential, and ignores a wrong one.
    for (const headers of [{}, wrong]) {
      const res = await send(route, c, headers);
      if (OPEN.includes(route.auth)) expect(successOf(route), key(route)).toContain(res.statusCode);
      else expectAnswer(route, res, 401, "unauthenticated");
    }

    // A real credential of the wrong kind: an agent's identity JWT is no lease token.
    if (route.auth === "lease" || route.auth === "lease-or-admin") {
      const res = await send(route, c, { authorization: `Bearer ${await lh.identity("a")}` });
      expectAnswer(route, res, 401, "unauthenticated");
    }
    if (route.auth === "admin") {
      const res = await send(route, c, { authorization: `Bearer ${await lh.identity("a")}` });
      expectAnswer(route, res, 401, "unauthenticated");
    }
    if (route.auth === "operator" || OPERATOR_ROUTES.includes(route.auth)) {
      const expected = c.agent ?? expect.fail(`${key(route)}: no agent identity case`);
      const res = await send(route, c, { authorization: `Bearer ${await lh.identity("a")}` });
      expectAnswer(route, res, expected.status, expected.status === 403 ? "policy_denied" : undefined);
    }

    // A token over 8 KiB is refused before anything reads it, whatever the route wants.
    if (!OPEN.includes(route.auth)) {
      const huge = `eyJ${"A".repeat(9 * 1024)}.eyJ.AA`;
      const res = await send(route, c, { authorization: `Bearer ${huge}` });
      expectAnswer(route, res, 401, "unauthenticated");
      expect((res.json() as { error: { message: string } }).error.message).toContain(
        "8192-byte (8 KiB) limit",
      );
    }

    // The Host/Origin guard comes before everything, the admin token included. A bracketed IPv6
    // literal is a host only as `[addr]` or `[addr]:port`.
    for (const host of ["evil.example", "[::1].evil.example", "[::1]x:7733", "localhost:7733@evil.example"])
      expectAnswer(route, await send(route, c, { ...admin, host }), 403, "forbidden_host");
    expectAnswer(
      route,
      await send(route, c, { ...admin, origin: "http://evil.example" }),
      403,
      "forbidden_origin",
    );
  });

  it("admin-if-configured routes want the admin token once configured (ops.metricsRequireToken)", async () => {
    // The ops routes on an app of their own, registered the way wire.ts does, with the option on.
    const app = Fastify({ loggerInstance: createLogger("silent") });
    app.setErrorHandler((err, req, reply) => {
      const e = toLeaseholdError(err);
      return reply.status(e.status).send({ error: { code: e.code, message: e.message, request_id: req.id } });
    });
    const redis = new Redis(REDIS_URL, { lazyConnect: true });
    const ops = await registerOpsRoutes(app, {
      adminToken: lh.sidecar.adminToken,
      services: { leases: lh.sidecar.leaseService, resources: lh.sidecar.resourceService },
      redis,
      connect: () => new Redis(REDIS_URL, { lazyConnect: true }),
      prefix: "lhtest:route-security:unused:",
      metrics: createMetrics({ processMetrics: false }),
      log: createLogger("silent"),
      metricsRequireToken: true,
    });
    try {
      const routes = ROUTES.filter((r) => r.auth === "admin-if-configured");
      expect(routes.map(key)).toEqual(["GET /metrics"]);
      for (const r of routes) {
        for (const headers of [{}, { authorization: "Bearer wrong" }]) {
          const res = await app.inject({ method: r.method, url: r.path, headers });
          expect(res.statusCode, key(r)).toBe(401);
          expect(res.json().error.code).toBe("unauthenticated");
          expect(routeErrors(r)).toContain("unauthenticated");
        }
        const ok = await app.inject({
          method: r.method,
          url: r.path,
          headers: { authorization: `Bearer ${lh.sidecar.adminToken}` },
        });
        expect(ok.statusCode, key(r)).toBe(200);
      }
    } finally {
      await app.close();
      await ops.hub.stop();
      redis.disconnect();
    }
  });
});
