import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse, stringify } from "yaml";
import { expectError, StackClient } from "../support/e2e-client.js";
import { freePort } from "../support/free-port.js";
import { dropPrefix } from "../support/redis.js";
import { type SidecarProcess, startSidecarProcess } from "../support/sidecar-process.js";
import { type Stack, startStack } from "../support/stack.js";
import { waitFor } from "../support/wait-for.js";

/*
 * Issue 17, scenario 1, with real processes: a second sidecar that shares the Vault prefix but
 * not the Redis prefix (a staging sidecar pointed at the wrong Redis database, a typo) must not
 * rotate an account the first sidecar has leased. It says cluster_mismatch, naming both
 * prefixes, refuses checkouts, and the agent's password works for the whole lease.
 */

let stack: Stack;
let c: StackClient;
let second: SidecarProcess | undefined;
let secondPrefix = "";
const body = (ttl: number) => ({
  resource: "orders-db",
  task: { id: "CLUSTER-1" },
  intent: { action: "read", tool: "psql" },
  ttl,
});

beforeAll(async () => {
  stack = await startStack({ config: { rotation: { reconcileInterval: 1 } } });
  c = new StackClient(stack);
  await stack.createRole("app_orders_1", "initial-pass-1234567");
  await c.registerPostgres("orders-db");
}, 120_000);

afterAll(async () => {
  await second?.stop();
  if (secondPrefix) await dropPrefix(secondPrefix);
  await stack?.close();
});

describe("a second sidecar on the same Vault prefix with another Redis prefix", () => {
  it("says cluster_mismatch, refuses checkouts, and the first sidecar's lease keeps its password while it lasts", async () => {
    const lease = await c.checkoutAndReveal("a", body(300));
    const cfg = parse(await readFile(stack.configFile, "utf8")) as Record<string, Record<string, unknown>>;
    secondPrefix = `${stack.prefix}staging:`;
    const port = await freePort();
    const config2 = {
      ...cfg,
      listen: { host: "127.0.0.1", port },
      redis: { ...cfg.redis, prefix: secondPrefix },
      tokens: { signingKey: "./state2/signing.jwk" },
      audit: { file: "./state2/audit.jsonl" },
      admin: { tokenFile: "./state2/admin.token" },
    };
    const file2 = join(stack.dir, "leasehold-2.yaml");
    await writeFile(file2, stringify(config2));
    second = await startSidecarProcess({
      configFile: file2,
      port,
      env: { LH_TEST_VAULT_TOKEN: stack.vault.token },
    });
    const url2 = second.url;

    const ready = await fetch(`${url2}/readyz`);
    expect(ready.status).toBe(503);
    const problem = ((await ready.json()) as { reasons: { cluster: string } }).reasons.cluster;
    expect(problem).toMatch(/^cluster_mismatch: /);
    expect(problem).toContain(`prefix "${secondPrefix}"`);
    expect(problem).toMatch(/vault http:\/\/127\.0\.0\.1:\d+ \S+\/leasehold-test-/);

    const co = await fetch(`${url2}/v1/checkout`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${await c.assertion("b")}`,
        "content-type": "application/json",
        "x-leasehold-request": "true",
      },
      body: JSON.stringify(body(60)),
    });
    const coJson = (await co.json()) as Record<string, unknown>;
    expectError({ status: co.status, headers: co.headers, json: coJson }, 503, "upstream_unavailable");

    // The second sidecar's reconciler (every second) has looked at the account and held it, twice.
    await waitFor("the second sidecar to hold the leased account in two passes", () =>
      (second?.output().match(/account held/g)?.length ?? 0) >= 2 ? true : undefined,
    );
    const admin = await c.adminToken();
    const l = await c.http("GET", `/v1/leases/${lease.id}`, { token: admin });
    expect((l.json as { state?: string }).state).toBe("active");
    expect(await stack.canLogin("app_orders_1", lease.password)).toBe(true);
    expect((await c.vaultAccount("orders-db", "app_orders_1")).state).toBe("leased");
    // The lease ends on the first sidecar (check-in): rotated, and the seen password is dead.
    const end = await c.http("DELETE", `/v1/leases/${lease.id}`, { token: lease.token });
    expect(end.status).toBe(202);
    await c.waitForAccounts("orders-db", "available");
    await waitFor("the seen password to be refused", async () =>
      (await stack.canLogin("app_orders_1", lease.password)) ? undefined : true,
    );

    const status = await stack.cli("cluster", "status");
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(/^cluster lhc_\S+: ok/);
    const logs = stack.sidecar.output() + (second?.output() ?? "");
    for (const s of c.secrets) expect(logs.includes(s)).toBe(false);
  });
});
