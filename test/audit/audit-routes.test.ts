import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Fastify, { type FastifyRequest } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { toLeaseholdError } from "../../sidecar/app.js";
import { AuditLog, type AuditRecord, registerAuditRoutes } from "../../sidecar/audit/index.js";
import { LeaseholdError } from "../../sidecar/errors.js";
import { expectValidAuditRecords, readRecords } from "./record-check.js";

let dir: string;
let file: string;
let log: AuditLog;
const operatorToken = randomBytes(16).toString("hex");

function buildTestApp() {
  const app = Fastify();
  app.setErrorHandler((err, req, reply) => {
    const e = toLeaseholdError(err);
    return reply.status(e.status).send({ error: { code: e.code, message: e.message, request_id: req.id } });
  });
  registerAuditRoutes(app, {
    files: () => [file],
    requireOperator: (req: FastifyRequest) => {
      if (req.headers.authorization !== `Bearer ${operatorToken}`)
        throw new LeaseholdError("unauthenticated", "operator credentials required");
      return "admin";
    },
    audit: log,
  });
  return app;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "lh-audit-routes-"));
  file = join(dir, "audit.jsonl");
  log = await AuditLog.open(file, "sc-r", undefined, { watchIntervalMs: 0 });
  for (let i = 0; i < 7; i++) {
    await log.append({
      event: i % 2 ? "reveal" : "checkout",
      agent: `spiffe://t/agent/${i % 3}`,
      resource: "orders-db",
      lease_id: `lse_${i}`,
    });
  }
});
afterAll(async () => {
  await log.close();
  await rm(dir, { recursive: true, force: true });
});

describe("GET /v1/audit", () => {
  it("is for operators only", async () => {
    const app = buildTestApp();
    const r = await app.inject({ method: "GET", url: "/v1/audit" });
    expect(r.statusCode).toBe(401);
    expect(r.json().error.code).toBe("unauthenticated");
    const wrong = await app.inject({
      method: "GET",
      url: "/v1/audit",
      headers: { authorization: "Bearer nope" },
    });
    expect(wrong.statusCode).toBe(401);
  });

  it("filters, pages newest first, and audits the query itself", async () => {
    const app = buildTestApp();
    const auth = { authorization: `Bearer ${operatorToken}` };
    const first = await app.inject({
      method: "GET",
      url: "/v1/audit?event=checkout&limit=2&since=1h",
      headers: auth,
    });
    expect(first.statusCode).toBe(200);
    const body = first.json() as { records: AuditRecord[]; next_cursor?: string };
    expect(body.records.map((r) => r.lease_id)).toEqual(["lse_6", "lse_4"]);
    expect(body.next_cursor).toEqual(expect.any(String));
    const second = await app.inject({
      method: "GET",
      url: `/v1/audit?event=checkout&limit=2&since=1h&cursor=${encodeURIComponent(body.next_cursor ?? "")}`,
      headers: auth,
    });
    const body2 = second.json() as { records: AuditRecord[]; next_cursor?: string };
    expect(body2.records.map((r) => r.lease_id)).toEqual(["lse_2", "lse_0"]);
    expect(body2.next_cursor).toBeUndefined();
    const agent = await app.inject({
      method: "GET",
      url: `/v1/audit?agent=${encodeURIComponent("spiffe://t/agent/1")}&event=reveal,checkout`,
      headers: auth,
    });
    expect((agent.json() as { records: AuditRecord[] }).records.map((r) => r.lease_id)).toEqual([
      "lse_4",
      "lse_1",
    ]);
    expectValidAuditRecords(body.records, "response");

    const recs = await readRecords(file);
    const queries = recs.filter((r) => r.event === "admin" && r.scope === "audit_query");
    expect(queries).toHaveLength(3);
    expect(queries[0]).toMatchObject({ agent: "admin", reason: "event=checkout since=1h limit=2" });
    expectValidAuditRecords(recs);
  });

  it("refuses unknown parameters and bad values naming the field", async () => {
    const app = buildTestApp();
    const auth = { authorization: `Bearer ${operatorToken}` };
    for (const [url, field] of [
      ["/v1/audit?color=red", "color"],
      ["/v1/audit?limit=0", "limit"],
      ["/v1/audit?limit=abc", "limit"],
      ["/v1/audit?since=yesterday", "since"],
      ["/v1/audit?cursor=xyz", "cursor"],
    ] as const) {
      const r = await app.inject({ method: "GET", url, headers: auth });
      expect(r.statusCode, url).toBe(400);
      expect(r.json().error.code).toBe("invalid_request");
      expect(r.json().error.message).toContain(field);
    }
  });
});
