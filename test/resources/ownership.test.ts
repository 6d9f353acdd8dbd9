import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "../../sidecar/logger.js";
import { OwnershipIndex, ownerKey } from "../../sidecar/resources/ownership.js";
import { VaultStore } from "../../sidecar/secrets/index.js";
import { useVault, type VaultHandle } from "../support/vault.js";

/* The one-owner-per-account index against a real Vault (the dev server): CAS 0 decides races. */

let vault: VaultHandle;
let store: VaultStore;
let index: OwnershipIndex;

beforeAll(async () => {
  vault = await useVault();
  store = new VaultStore({
    address: vault.address,
    auth: { method: "token", token: vault.token },
    mount: vault.mount,
    prefix: `lh-owners-${randomBytes(4).toString("hex")}`,
    timeoutMs: 5_000,
    log: createLogger("silent"),
  });
  index = new OwnershipIndex(store);
});

afterAll(async () => {
  store?.close();
  await vault?.close();
});

describe("the ownership index", () => {
  it("of many resources claiming one account at once, exactly one wins and the rest learn who", async () => {
    const identity = `postgres://db.internal:5432/app_${randomBytes(3).toString("hex")}`;
    const claims = await Promise.all(
      ["a", "b", "c", "d"].map((r) => index.claim({ resource: r, account: "app", identity })),
    );
    const winners = claims.filter((c) => c.ok);
    expect(winners).toEqual([{ ok: true, created: true }]);
    const owner = await index.owner(identity);
    for (const c of claims) if (!c.ok) expect(c.owner).toEqual(owner);
  });

  it("a claim by the owner is a no-op; release only by the owner; then another may claim", async () => {
    const identity = `mysql://db.internal:3306/app_${randomBytes(3).toString("hex")}`;
    expect(await index.claim({ resource: "a", account: "app", identity })).toEqual({
      ok: true,
      created: true,
    });
    expect(await index.claim({ resource: "a", account: "app", identity })).toEqual({
      ok: true,
      created: false,
    });
    expect(await index.release(identity, "b")).toBe(false);
    expect(await index.owner(identity)).toEqual({ resource: "a", account: "app", identity });
    expect(await index.release(identity, "a")).toBe(true);
    expect(await index.owner(identity)).toBeNull();
    expect(await index.claim({ resource: "b", account: "app", identity })).toEqual({
      ok: true,
      created: true,
    });
  });

  it("keys are the SHA-256 of the identity: no target detail shapes a Vault path", () => {
    expect(ownerKey("ldap://h:389/cn=x,dc=example")).toMatch(/^[0-9a-f]{64}$/);
  });
});
