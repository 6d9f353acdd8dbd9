import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  LEASE_MAC_KEY_PATH,
  type LeaseMacFields,
  LeaseStore,
  loadLeaseMacKey,
  signLease,
  signLeaseForAccounts,
  verifyLease,
} from "../../sidecar/leases/index.js";
import { createLogger } from "../../sidecar/logger.js";
import type { RedisClient } from "../../sidecar/redis.js";
import { VaultStore } from "../../sidecar/secrets/index.js";
import { useVault } from "../support/vault.js";
import { type OpenBackend, singleRedis } from "./redis-backends.js";

const key = randomBytes(32);
const fields: LeaseMacFields = {
  id: "lse_000000000001",
  resource: "db",
  agent: "spiffe://example.org/agent/a",
  account: "app_1",
  state: "active",
  expires_at: 1_800_000_000_000,
  max_expires_at: 1_800_000_600_000,
  spec: JSON.stringify({ id: "lse_000000000001", resource: "db", task: { id: "T-1" } }),
};

describe("lease MAC", () => {
  it("signs several accounts of one lease exactly as signLease signs each (the checkout's candidates)", () => {
    const accounts = ["app_1", 'quo"te', "back\\slash", "ünï\u2028code", "", "app_1 "];
    const { account: _one, ...shared } = fields;
    const batch = signLeaseForAccounts(key, shared, accounts);
    expect(batch).toEqual(accounts.map((account) => signLease(key, { ...shared, account })));
    expect(new Set(batch).size).toBe(accounts.length);
    for (const [i, account] of accounts.entries()) {
      expect(verifyLease(key, { ...shared, account }, batch[i])).toBe(true);
    }
  });

  it("verifies what it signed, and only under its own key", () => {
    const mac = signLease(key, fields);
    expect(verifyLease(key, fields, mac)).toBe(true);
    expect(verifyLease(randomBytes(32), fields, mac)).toBe(false);
  });

  it("fails a record with no MAC, an empty one or a malformed one", () => {
    expect(verifyLease(key, fields, undefined)).toBe(false);
    expect(verifyLease(key, fields, "")).toBe(false);
    expect(verifyLease(key, fields, "not-a-mac")).toBe(false);
  });

  const tampered: Array<[string, Partial<LeaseMacFields>]> = [
    ["id", { id: "lse_000000000002" }],
    ["resource", { resource: "other" }],
    ["agent", { agent: "spiffe://example.org/agent/b" }],
    ["account", { account: "app_2" }],
    ["state", { state: "ended" }],
    ["expires_at", { expires_at: fields.expires_at + 1 }],
    ["max_expires_at", { max_expires_at: fields.max_expires_at + 3_600_000 }],
    ["spec", { spec: fields.spec.replace("T-1", "T-2") }],
  ];
  for (const [name, change] of tampered) {
    it(`fails when the ${name} field is changed`, () => {
      const mac = signLease(key, fields);
      expect(verifyLease(key, { ...fields, ...change }, mac)).toBe(false);
    });
  }

  it("encodes fields unambiguously (no shifting of text between neighbours)", () => {
    const a = signLease(key, { ...fields, agent: "ab", account: "c" });
    expect(verifyLease(key, { ...fields, agent: "a", account: "bc" }, a)).toBe(false);
  });
});

describe("LeaseStore writes and checks the MAC", () => {
  let open: OpenBackend;
  let redis: RedisClient;
  let store: LeaseStore;
  let n = 0;
  const spec = (resource: string) => ({
    id: `lse_mac${String(++n).padStart(12, "0")}`,
    resource,
    agent: "spiffe://example.org/agent/a",
    task: { id: "T-1" },
    intent: { action: "read" },
  });
  const leaseKey = (resource: string, id: string) => `${open.prefix}{r:${resource}}:lease:${id}`;
  /** The MAC fields as Redis holds them now. */
  const stored = async (resource: string, id: string) => {
    const h = await redis.hgetall(leaseKey(resource, id));
    const f: LeaseMacFields = {
      id,
      resource,
      agent: JSON.parse(h.json as string).agent,
      account: h.account as string,
      state: h.state === "active" ? "active" : "ended",
      expires_at: Number(h.expires_at),
      max_expires_at: Number(h.max_expires_at),
      spec: h.json as string,
    };
    return { h, f };
  };
  const checkout = async (resource: string) => {
    await store.syncPool(resource, ["a1", "a2"], "available");
    const c = await store.checkout(spec(resource), 60_000, 600_000);
    if (!c.ok) throw new Error("checkout failed");
    return c.lease;
  };

  beforeAll(async () => {
    open = await singleRedis.open("lease-mac");
    redis = open.client();
    store = new LeaseStore({ redis: open.client(), prefix: open.prefix, macKey: key });
  });

  afterAll(async () => {
    await open?.close();
  });

  it("checkout, renew and end each leave a record whose MAC holds", async () => {
    const lease = await checkout("signed");
    let { h, f } = await stored("signed", lease.id);
    expect(verifyLease(key, f, h.mac)).toBe(true);
    expect((await store.use("signed", lease.id)).intact).toBe(true);

    const r = await store.renew("signed", lease.id, 120_000);
    expect(r.ok).toBe(true);
    ({ h, f } = await stored("signed", lease.id));
    expect(f.expires_at).toBe(r.lease?.expires_at);
    expect(verifyLease(key, f, h.mac)).toBe(true);

    const e = await store.end("signed", lease.id, "checkin");
    expect(e.ended).toBe(true);
    ({ h, f } = await stored("signed", lease.id));
    expect(f.state).toBe("ended");
    expect(verifyLease(key, f, h.mac)).toBe(true);
    const used = await store.use("signed", lease.id);
    expect(used).toMatchObject({ intact: true, lease: { state: "ended", end_reason: "checkin" } });
  });

  it("a store with another key does not accept the records", async () => {
    const lease = await checkout("foreign");
    const stranger = new LeaseStore({ redis: open.client(), prefix: open.prefix, macKey: randomBytes(32) });
    expect((await stranger.use("foreign", lease.id)).intact).toBe(false);
  });

  const edits: Array<[string, Record<string, string>]> = [
    ["expires_at", { expires_at: String(Date.now() + 10 * 365 * 86_400_000) }],
    ["max_expires_at", { max_expires_at: String(Date.now() + 10 * 365 * 86_400_000) }],
    ["account", { account: "a2" }],
    ["mac", { mac: "" }],
  ];
  for (const [name, edit] of edits) {
    it(`a record whose ${name} was written in Redis is not intact and is not renewed`, async () => {
      const lease = await checkout(`edit-${name}`);
      await redis.hset(leaseKey(`edit-${name}`, lease.id), edit);
      expect((await store.use(`edit-${name}`, lease.id)).intact).toBe(false);
      const before = await redis.hgetall(leaseKey(`edit-${name}`, lease.id));
      expect((await store.renew(`edit-${name}`, lease.id, 60_000)).ok).toBe(false);
      expect(await redis.hgetall(leaseKey(`edit-${name}`, lease.id))).toEqual(before);
    });
  }

  it("a record whose spec was replaced by JSON that is no object is read, and not intact", async () => {
    const lease = await checkout("spec-shape");
    for (const json of ["null", "5", '"ab"', "[1,2]", '{"__proto__":{"admin":true}}']) {
      await redis.hset(leaseKey("spec-shape", lease.id), { json });
      const used = await store.use("spec-shape", lease.id);
      expect(used.intact).toBe(false);
      expect(used.lease).toMatchObject({ account: lease.account, state: "active" });
      expect((used.lease as unknown as { admin?: unknown }).admin).toBeUndefined();
    }
  });

  it("a record copied onto another lease's key fails (the MAC binds the key's id)", async () => {
    const a = await checkout("copied");
    const b = await checkout("copied");
    const raw = await redis.hgetall(leaseKey("copied", a.id));
    await redis.hset(leaseKey("copied", b.id), raw);
    expect((await store.use("copied", b.id)).intact).toBe(false);
  });

  it("an ended lease set back to active is not intact", async () => {
    const lease = await checkout("revived");
    await store.end("revived", lease.id, "revoked");
    await redis.hset(leaseKey("revived", lease.id), { state: "active" });
    const used = await store.use("revived", lease.id);
    expect(used.intact).toBe(false);
    expect(used.lease?.state).toBe("active");
    expect(await store.getVerified("revived", lease.id)).toMatchObject({
      intact: false,
      lease: { state: "active" },
    });
  });

  it("an 'expired' end ends a tampered lease whatever expiry it claims, and leaves it unsigned", async () => {
    const lease = await checkout("extended");
    const far = Date.now() + 10 * 365 * 86_400_000;
    await redis.hset(leaseKey("extended", lease.id), {
      expires_at: String(far),
      max_expires_at: String(far),
    });
    const e = await store.end("extended", lease.id, "expired");
    expect(e.ended).toBe(true);
    const used = await store.use("extended", lease.id);
    expect(used.lease?.state).toBe("ended");
    expect(used.intact).toBe(false);
    expect((await store.accounts("extended")).find((a) => a.name === lease.account)?.state).toBe("rotating");
  });

  it("an 'expired' end of an intact lease that is not due is still refused", async () => {
    const lease = await checkout("notdue");
    expect((await store.end("notdue", lease.id, "expired")).ended).toBe(false);
    expect((await store.use("notdue", lease.id)).intact).toBe(true);
  });

  it("concurrent renewals and an end leave a record whose MAC holds", async () => {
    const lease = await checkout("race");
    const other = new LeaseStore({ redis: open.client(), prefix: open.prefix, macKey: key });
    await Promise.all([
      store.renew("race", lease.id, 90_000),
      other.renew("race", lease.id, 120_000),
      store.renew("race", lease.id, 150_000),
    ]);
    expect((await store.use("race", lease.id)).intact).toBe(true);
    await Promise.all([other.renew("race", lease.id, 60_000), store.end("race", lease.id, "checkin")]);
    const used = await store.use("race", lease.id);
    expect(used).toMatchObject({ intact: true, lease: { state: "ended" } });
  });
});

describe("loadLeaseMacKey", () => {
  it("creates one key in Vault on first start; sidecars starting together agree on it", async () => {
    const vault = await useVault();
    const log = createLogger("silent");
    const prefix = `leasehold-macKey-${randomBytes(4).toString("hex")}`;
    const open = () =>
      new VaultStore({
        address: vault.address,
        auth: { method: "token", token: vault.token },
        mount: vault.mount,
        prefix,
        timeoutMs: 5000,
        log,
      });
    const stores = [open(), open(), open()];
    try {
      const keys = await Promise.all(stores.map((s) => loadLeaseMacKey(s)));
      expect(keys[0]?.length).toBe(32);
      for (const k of keys) expect(k.equals(keys[0] as Buffer)).toBe(true);
      stores.push(open());
      const again = await loadLeaseMacKey(stores[3] as VaultStore);
      expect(again.equals(keys[0] as Buffer)).toBe(true);
      const inVault = await stores[0]?.read<{ key: string }>(LEASE_MAC_KEY_PATH);
      expect(Buffer.from(inVault?.data.key ?? "", "base64").equals(keys[0] as Buffer)).toBe(true);
      await stores[0]?.remove(LEASE_MAC_KEY_PATH);
    } finally {
      for (const s of stores) s.close();
    }
  });
});
