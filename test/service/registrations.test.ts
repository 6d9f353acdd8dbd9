import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Redis } from "ioredis";
import type { Connection } from "mysql2/promise";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LeaseholdError } from "../../sidecar/errors.js";
import { ownerKey } from "../../sidecar/resources/ownership.js";
import type { ResourceService } from "../../sidecar/service/index.js";
import { type InProcessSidecar, startInProcessSidecar } from "../deploy/in-process-sidecar.js";
import { createMariadbAccount, dropMariadbAccount, mariadbRoot } from "../support/mariadb.js";
import { REDIS_URL } from "../support/redis.js";
import { useVault, type VaultHandle } from "../support/vault.js";
import { refusal } from "../support/refusal.js";

/*
 * Registrations and removals in process, against real Vault (dev server), Redis and MariaDB:
 * one owner per account, all or nothing, and a removal that always finishes.
 */

let vault: VaultHandle;
let lh: InProcessSidecar;
let svc: ResourceService;
let root: Connection;
let redis: Redis;
const tag = randomBytes(3).toString("hex");
const spare = `lhreg_ok_${tag}`;
const doomed = `lhreg_q_${tag}`;
const missing = `lhreg_nope_${tag}`;
const raced = `lhreg_race_${tag}`;
const dropped = `lhreg_drop_${tag}`;
const waited = `lhreg_wait_${tag}`;
const opts = { dryRun: false, actor: "admin" } as const;
/** The sample exec command over a store file: its `down` map makes chosen actions answer 69. */
const FIXTURE = fileURLToPath(new URL("../fixtures/exec-adapter/store-passwords.mjs", import.meta.url));
const execAdmin = { username: "dba", password: randomBytes(18).toString("base64url") };
let execDir: string;

/** A registration of the local MariaDB with the in-process sidecar's admin, under another name. */
function registration(name: string, accounts: string[]): Record<string, unknown> {
  return { ...lh.registration, name, accounts };
}

async function vaultRead(path: string): Promise<Record<string, unknown> | null> {
  const url = `${vault.address}/v1/${vault.mount}/data/${lh.vaultPrefix}/${path}`;
  const res = await fetch(url, { headers: { "X-Vault-Token": vault.token } });
  if (res.status === 404) return null;
  return ((await res.json()) as { data: { data: Record<string, unknown> } }).data.data;
}

async function vaultWrite(path: string, data: unknown): Promise<void> {
  const url = `${vault.address}/v1/${vault.mount}/data/${lh.vaultPrefix}/${path}`;
  const res = await fetch(url, {
    method: "POST",
    headers: { "X-Vault-Token": vault.token, "content-type": "application/json" },
    body: JSON.stringify({ data }),
  });
  expect(res.status).toBeLessThan(300);
}

async function vaultDelete(path: string): Promise<void> {
  await fetch(`${vault.address}/v1/${vault.mount}/metadata/${lh.vaultPrefix}/${path}`, {
    method: "DELETE",
    headers: { "X-Vault-Token": vault.token },
  });
}

async function vaultList(path: string): Promise<string[]> {
  const url = `${vault.address}/v1/${vault.mount}/metadata/${lh.vaultPrefix}/${path}?list=true`;
  const res = await fetch(url, { headers: { "X-Vault-Token": vault.token } });
  if (res.status === 404) return [];
  return ((await res.json()) as { data: { keys: string[] } }).data.keys;
}

/** The in-process sidecar's Redis prefix (in-process-sidecar.ts derives both from one tag). */
function redisPrefix(): string {
  return `lhtest:docs:${lh.vaultPrefix.replace("leasehold-docs-", "")}:`;
}

/** Every Redis key of the sidecar that names the resource, and whether its resource set lists it. */
async function redisTraces(resource: string): Promise<string[]> {
  const keys = await redis.keys(`${redisPrefix()}*${resource}*`);
  const listed = await redis.sismember(`${redisPrefix()}resources`, resource);
  return listed ? [...keys, "resources set"] : keys;
}

beforeAll(async () => {
  vault = await useVault();
  execDir = await mkdtemp(join(tmpdir(), "leasehold-reg-exec-"));
  await writeFile(
    join(execDir, "store.json"),
    JSON.stringify({
      admin: execAdmin,
      accounts: { exec_down: "exec-initial-1234567", exec_flaky: "exec-initial-2234567" },
      down: { exec_down: ["check-account", "rotate"], exec_flaky: ["rotate"] },
    }),
    { mode: 0o600 },
  );
  const store = [process.execPath, FIXTURE, join(execDir, "store.json")];
  lh = await startInProcessSidecar({
    vault,
    config: { exec: { commands: { "store-passwords": { command: store, timeoutSeconds: 20 } } } },
  });
  svc = lh.sidecar.resourceService;
  redis = new Redis(REDIS_URL);
  root = await mariadbRoot();
  await createMariadbAccount(root, spare, randomBytes(18).toString("base64url"));
  for (const a of [doomed, raced, dropped, waited])
    await createMariadbAccount(root, a, randomBytes(18).toString("base64url"));
  const out = await svc.register(lh.registration, { ...opts, pathName: lh.resource });
  expect(out.registered).toBe(true);
}, 60_000);

afterAll(async () => {
  await lh?.close();
  await vault?.close();
  redis?.disconnect();
  for (const a of [spare, doomed, raced, dropped, waited])
    await dropMariadbAccount(root, a).catch(() => undefined);
  await root?.end();
  if (execDir) await rm(execDir, { recursive: true, force: true });
});

describe("one owner per account", () => {
  it("a second resource naming an owned account gets 409 at dry run and at registration; the first keeps working", async () => {
    const account = (lh.registration.accounts as string[])[0] ?? "";
    const before = await vaultRead(`resources/${lh.resource}/accounts/${account}`);
    const other = registration(`${lh.resource}-twin`, [account]);
    for (const dryRun of [true, false]) {
      const err = await refusal(svc.register(other, { ...opts, dryRun }));
      expect(err.code).toBe("conflict");
      expect(err.message).toContain(`resource "${lh.resource}" (account "${account}")`);
    }
    expect(await vaultRead(`resources/${lh.resource}-twin/config`)).toBeNull();
    expect(await vaultRead(`resources/${lh.resource}/accounts/${account}`)).toEqual(before);
    const v = await svc.verify(lh.resource);
    expect(v.results.every((r) => r.ok)).toBe(true);
  });

  it("the index is in Vault; re-registering the same resource keeps its entry", async () => {
    const account = (lh.registration.accounts as string[])[0] ?? "";
    const keys = await vaultList("owners");
    const entries = await Promise.all(keys.map((k) => vaultRead(`owners/${k}`)));
    const mine = entries.filter((e) => e?.resource === lh.resource);
    expect(mine).toHaveLength(1);
    expect(mine[0]).toMatchObject({ account });
    const again = await svc.register(lh.registration, { ...opts, pathName: lh.resource });
    expect(again.registered).toBe(true);
    expect(again.accounts).toEqual([{ account, ok: true, detail: "already managed" }]);
    expect(await vaultRead(`owners/${ownerKey(String(mine[0]?.identity))}`)).toEqual(mine[0]);
  });

  it("the start-up backfill gives registrations made before the index their entries, and reports a shared account", async () => {
    const keys = await vaultList("owners");
    for (const k of keys) await vaultDelete(`owners/${k}`);
    expect(await vaultList("owners")).toEqual([]);
    // A registration stored before the index existed, naming the same account: only Vault knows.
    const legacy = `${lh.resource}-legacy`;
    const config = await vaultRead(`resources/${lh.resource}/config`);
    await vaultWrite(`resources/${legacy}/config`, { ...config, name: legacy });
    const out = await svc.backfillOwners();
    await vaultDelete(`resources/${legacy}/config`);
    expect(out.claimed).toBe(keys.length);
    expect((await vaultList("owners")).sort()).toEqual([...keys].sort());
    const account = (lh.registration.accounts as string[])[0] ?? "";
    expect(out.conflicts).toEqual([
      {
        resource: legacy,
        account,
        owner: { resource: lh.resource, account, identity: expect.any(String) },
      },
    ]);
  });
});

describe("one owner per account, under races and updates", () => {
  it("two registrations racing for one account: exactly one wins, the other gets 409", async () => {
    const names = [`${lh.resource}-r1`, `${lh.resource}-r2`];
    const outs = await Promise.allSettled(names.map((n) => svc.register(registration(n, [raced]), opts)));
    const won = outs.flatMap((o, i) => (o.status === "fulfilled" && o.value.registered ? [names[i]] : []));
    const lost = outs.flatMap((o) => (o.status === "rejected" ? [o.reason as unknown] : []));
    expect(won).toHaveLength(1);
    expect(lost).toHaveLength(1);
    expect(lost[0]).toBeInstanceOf(LeaseholdError);
    expect((lost[0] as LeaseholdError).code).toBe("conflict");
    const loser = names.find((n) => n !== won[0]) ?? "";
    expect(await vaultRead(`resources/${loser}/config`)).toBeNull();
    expect(await vaultList(`resources/${loser}/accounts`)).toEqual([]);
    expect((await svc.verify(won[0] ?? "")).results.every((r) => r.ok)).toBe(true);
  });

  it("an update that drops an account releases it; another resource can then claim it", async () => {
    const owner = (await svc.list()).resources.find((r) => r.name.startsWith(`${lh.resource}-r`))?.name ?? "";
    expect((await svc.register(registration(owner, [raced, dropped]), opts)).registered).toBe(true);
    const err = await refusal(svc.register(registration(`${lh.resource}-r3`, [raced]), opts));
    expect(err.code).toBe("conflict");
    expect((await svc.register(registration(owner, [dropped]), opts)).registered).toBe(true);
    const next = await svc.register(registration(`${lh.resource}-r3`, [raced]), opts);
    expect(next.registered).toBe(true);
    expect((await svc.verify(`${lh.resource}-r3`)).results.every((r) => r.ok)).toBe(true);
    expect((await svc.verify(owner)).results.every((r) => r.ok)).toBe(true);
  });
});

describe("registrations that tell the truth", () => {
  it("an import waits while another rotation of the account holds its lock (a sweep elsewhere), then imports", async () => {
    const name = `${lh.resource}-wait`;
    // Another sidecar's reconciler sweep holds the account's rotation lock; it lapses on its own.
    const lock = `${lh.redisPrefix}{r:${name}}:lock:${waited}`;
    expect(await redis.set(lock, "another-sidecar", "PX", 1_500, "NX")).toBe("OK");
    const out = await svc.register(registration(name, [waited]), opts);
    expect(out.registered).toBe(true);
    expect(out.accounts.find((a) => a.account === waited)?.detail).toMatch(/imported \(password rotated\)/);
    expect((await svc.verify(name)).results.every((r) => r.ok)).toBe(true);
  });

  it("an account missing on the target: FAIL, nothing registered, nothing left in Vault or Redis", async () => {
    const name = `${lh.resource}-missing`;
    const dry = await svc.register(registration(name, [missing]), { ...opts, dryRun: true });
    expect(dry.registered).toBe(false);
    // This admin may not read mysql.user: the import rotation is what finds the account missing.
    const err = await refusal(svc.register(registration(name, [missing]), opts));
    expect(err.code).toBe("invalid_request");
    expect(err.status).toBe(400);
    expect(err.message).toMatch(
      new RegExp(`^registration\\.accounts: 1 of 1 accounts failed, nothing was registered: ${missing}: \\S`),
    );
    expect(err.details).toHaveLength(1);
    expect(err.details?.[0]?.field).toBe("registration.accounts.0");
    expect(err.details?.[0]?.message).toMatch(new RegExp(`^${missing}: \\S`));
    expect(err.details?.[0]?.message).not.toContain("stays in Vault");
    expect(await vaultRead(`resources/${name}/config`)).toBeNull();
    expect(await vaultRead(`resources/${name}/admin`)).toBeNull();
    expect(await vaultList(`resources/${name}/accounts`)).toEqual([]);
    const owners = await Promise.all((await vaultList("owners")).map((k) => vaultRead(`owners/${k}`)));
    expect(owners.filter((e) => e?.resource === name)).toEqual([]);
    expect(await redisTraces(name)).toEqual([]);
    await expect(svc.show(name)).rejects.toThrow(/not registered/);
  });

  it("a target fault that may pass is 503 upstream_unavailable; with a refusal among the failures, 400", async () => {
    const name = `${lh.resource}-down`;
    const exec = (accounts: string[]) => ({
      name,
      adapter: "exec",
      connection: { command: "store-passwords" },
      rotateWith: "admin",
      admin: execAdmin,
      accounts,
    });
    const down = await refusal(svc.register(exec(["exec_down"]), opts));
    expect(down.code).toBe("upstream_unavailable");
    expect(down.retryable).toBe(true);
    expect(down.message).toMatch(
      /^registration\.accounts: 1 of 1 accounts failed, nothing was registered: exec_down: .*exit 69/,
    );
    expect(down.details).toEqual([
      { field: "registration.accounts.0", message: expect.stringMatching(/^exec_down: .*exit 69/) },
    ]);
    const mixed = await refusal(svc.register(exec(["exec_down", missing]), opts));
    expect(mixed.code).toBe("invalid_request");
    expect(mixed.message).toContain("2 of 2 accounts failed, nothing was registered");
    expect(mixed.details?.map((d) => d.field)).toEqual([
      "registration.accounts.0",
      "registration.accounts.1",
    ]);
    expect(mixed.details?.[1]?.message).toMatch(new RegExp(`^${missing}: .*no such account`));
    expect(await vaultRead(`resources/${name}/config`)).toBeNull();
    expect(await vaultList(`resources/${name}/accounts`)).toEqual([]);
    expect(await redisTraces(name)).toEqual([]);
  });

  it("an import the target may have applied: the error says the account's record stays in Vault, and why", async () => {
    const name = `${lh.resource}-flaky`;
    const err = await refusal(
      svc.register(
        {
          name,
          adapter: "exec",
          connection: { command: "store-passwords" },
          rotateWith: "admin",
          admin: execAdmin,
          accounts: ["exec_flaky"],
        },
        opts,
      ),
    );
    expect(err.code).toBe("upstream_unavailable");
    expect(err.message).toContain(
      "nothing was registered (the Vault record of exec_flaky stays, see details)",
    );
    expect(err.details).toHaveLength(1);
    expect(err.details?.[0]?.message).toMatch(
      /^exec_flaky: import: .*exit 69.*; its record stays in Vault: the new password may have reached the target/,
    );
    expect(JSON.stringify(err.details)).not.toContain(execAdmin.password);
    expect(await vaultRead(`resources/${name}/config`)).toBeNull();
    expect(await vaultList(`resources/${name}/accounts`)).toEqual(["exec_flaky"]);
    expect(await redisTraces(name)).toEqual([]);
  });

  it("allowPartial registers the accounts that pass and names the one that failed", async () => {
    const name = `${lh.resource}-partial`;
    const out = await svc.register(registration(name, [spare, missing]), { ...opts, allowPartial: true });
    expect(out.registered).toBe(true);
    expect(out.failed).toEqual([missing]);
    expect(out.accounts.map((a) => [a.account, a.ok])).toEqual([
      [spare, true],
      [missing, false],
    ]);
    const view = await svc.show(name);
    expect(view.accounts.map((a) => [a.name, a.state])).toEqual([[spare, "available"]]);
    expect(await vaultList(`resources/${name}/accounts`)).toEqual([spare]);
    expect((await svc.verify(name)).results.every((r) => r.ok)).toBe(true);
    await svc.remove(name, { force: false, actor: "admin", revoke: async () => undefined });
  });
});

describe("removal that always finishes", () => {
  it("a quarantined account: remove says fix it or force; --force releases it and says what was left", async () => {
    const name = `${lh.resource}-q`;
    expect((await svc.register(registration(name, [doomed]), opts)).registered).toBe(true);
    await dropMariadbAccount(root, doomed);
    for (let i = 0; i < 5; i++) await svc.rotateAll(name, "admin");
    expect((await svc.show(name)).accounts[0]?.state).toBe("quarantined");

    const err = await refusal(
      svc.remove(name, { force: false, actor: "admin", revoke: async () => undefined }),
    );
    expect(err.code).toBe("conflict");
    expect(err.message).toContain(`account ${doomed} is quarantined`);
    expect(err.message).toContain("--force");
    expect(err.message).not.toContain("try again");

    const out = await svc.remove(name, { force: true, actor: "admin", revoke: async () => undefined });
    expect(out.removed).toBe(true);
    expect(["quarantined", "gone"]).toContain(out.accounts[0]?.password);
    expect(out.kept).toContain("stay in Vault");
    await expect(svc.show(name)).rejects.toThrow(/not registered/);
    expect(await vaultRead(`resources/${name}/accounts/${doomed}`)).not.toBeNull();
    expect(await redisTraces(name)).toEqual([]);
  });

  it("removal releases ownership: another resource can then claim the account", async () => {
    const account = (lh.registration.accounts as string[])[0] ?? "";
    const out = await svc.remove(lh.resource, {
      force: false,
      actor: "admin",
      revoke: async () => undefined,
    });
    expect(out.accounts).toEqual([
      { account, password: "unchanged", detail: "not revealed since its last rotation" },
    ]);
    const next = `${lh.resource}-next`;
    const reg = await svc.register(registration(next, [account]), opts);
    expect(reg.registered).toBe(true);
    expect((await svc.verify(next)).results.every((r) => r.ok)).toBe(true);
  });
});
