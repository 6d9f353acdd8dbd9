import { type ChildProcess, spawn } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectError, StackClient } from "../support/e2e-client.js";
import { freePort } from "../support/free-port.js";
import { type Stack, startStack } from "../support/stack.js";
import { abortWhenExited, waitFor } from "../support/wait-for.js";

/** Redis down and Redis restarted empty: fail closed, reconnect, and never hand out a seen password. */

let redisPort: number;
let redisProc: ChildProcess | undefined;
let stack: Stack;
let c: StackClient;
const body = {
  resource: "orders-db",
  task: { id: "REDIS-1" },
  intent: { action: "read", tool: "psql" },
  ttl: 120,
};

async function startRedis(): Promise<void> {
  redisProc = spawn(
    "redis-server",
    ["--port", String(redisPort), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
    {
      stdio: "ignore",
    },
  );
  const proc = redisProc;
  const exited = new Promise((resolve) => proc.once("exit", resolve));
  const { Redis } = await import("ioredis");
  await waitFor(
    `the private redis-server on ${redisPort} to answer PING`,
    async () => {
      const r = new Redis({
        port: redisPort,
        lazyConnect: true,
        maxRetriesPerRequest: 0,
        retryStrategy: () => null,
      });
      r.on("error", () => undefined);
      try {
        await r.connect();
        return (await r.ping()) === "PONG";
      } finally {
        r.disconnect();
      }
    },
    { signal: abortWhenExited(exited, "the private redis-server") },
  );
}

async function stopRedis(): Promise<void> {
  const p = redisProc;
  if (!p || p.exitCode !== null) return;
  await new Promise((r) => {
    p.once("exit", r);
    p.kill("SIGKILL");
  });
}

async function waitReady(status: number): Promise<void> {
  await waitFor(
    `/readyz to answer ${status}`,
    async () => (await c.http("GET", "/readyz")).status === status,
  );
}

beforeAll(async () => {
  redisPort = await freePort();
  await startRedis();
  stack = await startStack({
    config: {
      redis: { url: `redis://127.0.0.1:${redisPort}/0`, prefix: "lh:" },
      rotation: { lockTtl: 1, reconcileInterval: 1, backoff: 0.3, maxBackoff: 1 },
    },
  });
  c = new StackClient(stack);
  await stack.createRole("app_orders_1", "initial-pass-1234567");
  await c.registerPostgres("orders-db");
}, 120_000);

afterAll(async () => {
  await stack?.close();
  await stopRedis();
});

describe("Redis faults", () => {
  let seen = "";
  let token = "";
  let leaseId = "";

  it("Redis down: checkout and token use fail closed with 503, /readyz says so", async () => {
    const lease = await c.checkoutAndReveal("a", body);
    seen = lease.password;
    token = lease.token;
    leaseId = lease.id;
    await stopRedis();
    const co = await c.http("POST", "/v1/checkout", { token: await c.assertion("b"), body });
    expect(co.status).toBe(503);
    expect((co.json as { error: { code: string } }).error.code).toBe("upstream_unavailable");
    const use = await c.http("GET", `/v1/leases/${leaseId}/credential`, { token });
    expect(use.status).toBe(503);
    expect(JSON.stringify(use.json)).not.toContain(seen);
    await waitReady(503);
    const ready = await c.http("GET", "/readyz");
    expect((ready.json as { checks: { redis: boolean } }).checks.redis).toBe(false);
  });

  it("Redis back but empty: cluster_mismatch, nothing handed out, the lease's password kept until an operator adopts; adopt rotates it at once", async () => {
    await startRedis();
    // Reconnected (redis answers), but the keyspace lost the cluster id: a loss of Redis data
    // looks exactly like a sidecar pointed at the wrong Redis, so the sidecar waits for a human.
    const mismatch = await waitFor("/readyz to name the cluster mismatch", async () => {
      const r = await c.http("GET", "/readyz");
      const j = r.json as { checks: { redis: boolean }; reasons?: { cluster?: string } };
      return r.status === 503 && j.checks.redis && j.reasons?.cluster?.startsWith("cluster_mismatch")
        ? j.reasons.cluster
        : undefined;
    });
    expect(mismatch).toContain('prefix "lh:"');
    expect(mismatch).toContain("leasehold cluster adopt");
    const co = await c.http("POST", "/v1/checkout", { token: await c.assertion("b"), body });
    expect(expectError(co, 503, "upstream_unavailable")).toContain("cluster_mismatch");
    // The revealed account is dirty, but its lease may be alive elsewhere: kept until adopt.
    expect(await stack.canLogin("app_orders_1", seen)).toBe(true);
    const adopt = await stack.cli("cluster", "adopt", "--reason", "redis restarted without persistence");
    expect(adopt.code, adopt.stderr).toBe(0);
    expect(adopt.stdout).toContain("adopted");
    await waitReady(200);
    const use = await c.http("GET", `/v1/leases/${leaseId}/credential`, { token });
    expect(use.status).toBe(401);
    await c.waitForAccounts("orders-db", "available");
    expect(await stack.canLogin("app_orders_1", seen)).toBe(false);
    const next = await c.checkoutAndReveal("b", body);
    expect(next.password).not.toBe(seen);
    expect(await stack.canLogin("app_orders_1", next.password)).toBe(true);
  });

  it("no secret reached the logs", () => {
    const logs = stack.sidecar.output();
    for (const s of c.secrets) expect(logs.includes(s)).toBe(false);
  });
});
