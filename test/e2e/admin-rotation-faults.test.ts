import { readFile } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { StackClient } from "../support/e2e-client.js";
import { type Stack, startStack } from "../support/stack.js";
import { waitFor } from "../support/wait-for.js";

/*
 * Crash-safe admin rotation, with real processes: the sidecar kills itself (SIGKILL) at each step
 * of an admin password rotation started by `leasehold resources rotate NAME --admin`. Vault must
 * still hold an admin password that logs in, and after a restart the rotation completes: Vault's
 * admin password logs in, the one before is refused, and accounts still rotate.
 */

const CRASH_POINTS = [
  "admin_after_pending_written",
  "admin_after_target_changed",
  "admin_after_test",
  "admin_before_finish",
] as const;
const body = {
  resource: "orders-db",
  task: { id: "ADMIN-FAULT-1" },
  intent: { action: "read", tool: "psql" },
  ttl: 60,
};

interface AdminRecord {
  username: string;
  password: string;
  pending_password?: string;
  previous_password?: string;
  last_rotated_at?: string;
}

let stack: Stack;
let c: StackClient;
/** Everything the sidecar processes and the CLI printed, searched for secrets at the end. */
const printed: string[] = [];

/** The admin record in Vault, read directly as an operator would. */
async function vaultAdmin(resource: string): Promise<AdminRecord> {
  const cfg = await readFile(stack.configFile, "utf8");
  const vaultPrefix = /prefix: (leasehold-test-[0-9a-f]+)/.exec(cfg)?.[1];
  const res = await fetch(
    `${stack.vault.address}/v1/${stack.vault.mount}/data/${vaultPrefix}/resources/${resource}/admin`,
    { headers: { "X-Vault-Token": stack.vault.token } },
  );
  const rec = ((await res.json()) as { data: { data: AdminRecord } }).data.data;
  for (const p of [rec.password, rec.pending_password, rec.previous_password]) if (p) c.secrets.push(p);
  return rec;
}

beforeAll(async () => {
  stack = await startStack({
    config: {
      rotation: { lockTtl: 1, reconcileInterval: 1, backoff: 0.3, maxBackoff: 1, adapterTimeout: 3 },
    },
  });
  c = new StackClient(stack);
  await stack.createRole("app_orders_1", "initial-pass-1234567");
  await c.registerPostgres("orders-db", { extra: { rotation: { admin: { every: "24h" } } } });
}, 120_000);

afterAll(async () => {
  await stack?.close();
});

describe("a crash at any step of an admin rotation leaves a working admin password in Vault", () => {
  for (const point of CRASH_POINTS) {
    it(`crash ${point}`, async () => {
      printed.push(stack.sidecar.output());
      await stack.restart({ LEASEHOLD_CRASH_AT: point });
      const before = await vaultAdmin("orders-db");
      expect(await stack.canLogin(before.username, before.password)).toBe(true);
      const r = await stack.cli("resources", "rotate", "orders-db", "--admin");
      expect(r.code).not.toBe(0);
      await stack.sidecar.exited;
      expect(stack.sidecar.child.signalCode).toBe("SIGKILL");
      printed.push(r.stdout, r.stderr, stack.sidecar.output());

      const crashed = await vaultAdmin("orders-db");
      expect(typeof crashed.pending_password).toBe("string");
      const current = await stack.canLogin(crashed.username, crashed.password);
      const pending = await stack.canLogin(crashed.username, crashed.pending_password ?? "");
      expect(current || pending, "Vault holds an admin password that logs in").toBe(true);

      await stack.restart();
      const after = await waitFor("the admin rotation completed after restart", async () => {
        const rec = await vaultAdmin("orders-db");
        return !rec.pending_password && rec.last_rotated_at !== before.last_rotated_at ? rec : false;
      });
      expect(after.password !== before.password, "a new admin password").toBe(true);
      expect(await stack.canLogin(after.username, after.password)).toBe(true);
      expect(await stack.canLogin(before.username, before.password)).toBe(false);

      // Accounts still rotate with the admin password now in force.
      const { id, token, password } = await c.checkoutAndReveal("a", body);
      expect((await c.http("DELETE", `/v1/leases/${id}`, { token })).status).toBe(202);
      await waitFor("the checked-in account rotated", async () => {
        const rec = await c.vaultAccount("orders-db", "app_orders_1");
        return rec.state === "available" && rec.password !== password;
      });
      const rec = await c.vaultAccount("orders-db", "app_orders_1");
      expect(await stack.canLogin("app_orders_1", rec.password)).toBe(true);
      expect(await stack.canLogin("app_orders_1", password)).toBe(false);
    }, 120_000);
  }

  it("`resources rotate NAME --admin` rotates it now and says so; the audit trail marks it admin", async () => {
    const before = await vaultAdmin("orders-db");
    const r = await stack.cli("resources", "rotate", "orders-db", "--admin");
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`${before.username}: rotated`);
    const after = await vaultAdmin("orders-db");
    expect(after.previous_password === before.password, "the password it replaced").toBe(true);
    expect(await stack.canLogin(after.username, after.password)).toBe(true);
    expect(await stack.canLogin(before.username, before.password)).toBe(false);
    const records = await c.auditRecords();
    const mine = records.filter((x) => x.account === before.username && x.scope === "admin");
    expect(mine.map((x) => x.event)).toContain("rotation_succeeded");
    const text = JSON.stringify(records);
    for (const s of c.secrets) expect(text.includes(s), "a secret in the audit trail").toBe(false);
    const logs = [...printed, r.stdout, r.stderr, stack.sidecar.output()].join("\n");
    for (const s of c.secrets) expect(logs.includes(s), "a secret in a log or the CLI's output").toBe(false);
  }, 60_000);
});
