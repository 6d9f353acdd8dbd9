import type { LightMyRequestResponse } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "../../sidecar/logger.js";
import { type InProcessSidecar, startInProcessSidecar } from "../deploy/in-process-sidecar.js";
import { useVault, type VaultHandle } from "../support/vault.js";

/** What the sidecar logged at `info`, one parsed JSON record per line. */
const lines: Array<Record<string, unknown>> = [];
const raw: string[] = [];
const dest = {
  write: (s: string) => {
    raw.push(s);
    for (const l of s.split("\n")) if (l.trim()) lines.push(JSON.parse(l) as Record<string, unknown>);
  },
};

/** The lines a request wrote: those bound to its request id. */
const linesOf = (res: LightMyRequestResponse) => lines.filter((l) => l.reqId === res.headers["x-request-id"]);

describe("the access log at info (issue 19)", () => {
  let vault: VaultHandle;
  let lh: InProcessSidecar;
  const admin = () => ({ authorization: `Bearer ${lh.sidecar.adminToken}` });

  beforeAll(async () => {
    vault = await useVault();
    lh = await startInProcessSidecar({ vault, log: createLogger("info", dest) });
  });
  afterAll(async () => {
    await lh?.close();
    await vault?.close();
  });

  it("writes one line per request, when it is answered: id, method, URL, status, duration; a refusal's code; no secret", async () => {
    const app = lh.sidecar.app;
    const put = await app.inject({
      method: "PUT",
      url: `/v1/resources/${lh.resource}`,
      headers: { ...admin(), "content-type": "application/json" },
      payload: JSON.stringify(lh.registration),
    });
    expect(put.statusCode, put.body).toBe(201);
    const identity = await lh.identity("a");
    const checkout = await app.inject({
      method: "POST",
      url: "/v1/checkout",
      headers: { authorization: `Bearer ${identity}`, "content-type": "application/json" },
      payload: JSON.stringify({
        resource: lh.resource,
        task: { id: "T-LOG" },
        intent: { action: "read", tool: "psql" },
        ttl: 120,
      }),
    });
    expect(checkout.statusCode, checkout.body).toBe(201);
    const { lease, token } = checkout.json() as { lease: { id: string }; token: string };
    const use = await app.inject({
      method: "GET",
      url: `/v1/leases/${lease.id}`,
      headers: { authorization: `Bearer ${token}` },
    });
    expect(use.statusCode).toBe(200);
    const reveal = await app.inject({
      method: "GET",
      url: `/v1/leases/${lease.id}/credential`,
      headers: { authorization: `Bearer ${token}` },
    });
    expect(reveal.statusCode).toBe(200);
    const password = (reveal.json() as { password: string }).password;
    const forged = `${token.slice(0, -4)}AAAA`;
    const refused = await app.inject({
      method: "GET",
      url: `/v1/leases/${lease.id}`,
      headers: { authorization: `Bearer ${forged}` },
    });
    expect(refused.statusCode).toBe(401);
    const missing = await app.inject({ method: "GET", url: "/v1/nowhere" });
    expect(missing.statusCode).toBe(404);

    for (const [res, method, url] of [
      [put, "PUT", `/v1/resources/${lh.resource}`],
      [checkout, "POST", "/v1/checkout"],
      [use, "GET", `/v1/leases/${lease.id}`],
      [reveal, "GET", `/v1/leases/${lease.id}/credential`],
      [refused, "GET", `/v1/leases/${lease.id}`],
      [missing, "GET", "/v1/nowhere"],
    ] as const) {
      const own = linesOf(res);
      expect(own, `${method} ${url}`).toHaveLength(1);
      const [line] = own;
      expect(line).toMatchObject({
        msg: "request completed",
        level: 30,
        method,
        url,
        statusCode: res.statusCode,
      });
      expect(typeof line?.responseTime).toBe("number");
    }
    expect(linesOf(refused)[0]?.code).toBe("unauthenticated");
    expect(linesOf(missing)[0]?.code).toBe("not_found");
    expect(linesOf(use)[0]?.code).toBeUndefined();
    expect(lines.some((l) => l.msg === "incoming request")).toBe(false);
    const all = raw.join("");
    for (const secret of [identity, token, forged, password, lh.sidecar.adminToken]) {
      expect(secret.length).toBeGreaterThan(8);
      expect(all.includes(secret)).toBe(false);
    }
  });
});
