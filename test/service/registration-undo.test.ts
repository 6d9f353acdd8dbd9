import { randomBytes } from "node:crypto";
import type { Connection } from "mysql2/promise";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { builtinAdapters } from "../../adapters/registry.js";
import { createLogger } from "../../sidecar/logger.js";
import type { AccountRecord } from "../../sidecar/resources/types.js";
import { vaultPaths } from "../../sidecar/resources/vault-paths.js";
import type { RotationOutcome } from "../../sidecar/rotation/index.js";
import { VaultStore } from "../../sidecar/secrets/index.js";
import { validateRegistration } from "../../sidecar/service/registration-checks.js";
import { discardNewAccount } from "../../sidecar/service/registration-undo.js";
import { createMariadbAccount, dropMariadbAccount, localMariadb, mariadbRoot } from "../support/mariadb.js";
import { useVault, type VaultHandle } from "../support/vault.js";

/*
 * I3 when a registration is undone: an account's Vault record goes only when it provably holds
 * no password the target may now use. Each case leaves the record as the rotation engine leaves
 * it at that point, against a real MariaDB account and a real Vault (the dev server).
 */

const tag = randomBytes(3).toString("hex");
const account = `lhundo_${tag}`;
const log = createLogger("silent");
let vault: VaultHandle;
let store: VaultStore;
let root: Connection;

const v = () =>
  validateRegistration(
    { adapters: builtinAdapters },
    {
      name: "undo-db",
      adapter: "mysql",
      connection: { host: localMariadb.host, port: localMariadb.port },
      rotateWith: "self",
      accounts: [{ name: account, password: "given-password-123456" }],
    },
  );
const refused: RotationOutcome = { status: "failed", error: "refused", quarantined: false, retryable: false };
const timedOut: RotationOutcome = {
  status: "failed",
  error: "timed out",
  quarantined: false,
  retryable: true,
};

async function leave(rec: AccountRecord): Promise<void> {
  await store.write(vaultPaths.account("undo-db", account), rec);
}

async function recordThere(): Promise<boolean> {
  return (await store.read(vaultPaths.account("undo-db", account))) !== null;
}

beforeAll(async () => {
  vault = await useVault();
  store = new VaultStore({
    address: vault.address,
    auth: { method: "token", token: vault.token },
    mount: vault.mount,
    prefix: `lh-undo-${tag}`,
    timeoutMs: 5_000,
    log,
  });
  root = await mariadbRoot();
  await createMariadbAccount(root, account, "given-password-123456");
});

afterAll(async () => {
  await dropMariadbAccount(root, account).catch(() => undefined);
  await root?.end();
  store?.close();
  await vault?.close();
});

describe("undoing a new account's record (I3)", () => {
  const d = () => ({ secrets: store, log });
  const given = { name: account, password: "given-password-123456" };

  it("removes a record no rotation touched (the DBA's own password, or none)", async () => {
    await leave({ username: account, password: "given-password-123456", state: "rotating" });
    expect(await discardNewAccount(d(), v(), given, undefined)).toEqual({ record: "removed", why: "" });
    expect(await recordThere()).toBe(false);
  });

  it("removes a record whose change the target refused outright and whose new password does not log in", async () => {
    await leave({
      username: account,
      password: "",
      pending_password: "never-set-on-target-1",
      state: "rotating",
    });
    expect((await discardNewAccount(d(), v(), { name: account }, refused)).record).toBe("removed");
    expect(await recordThere()).toBe(false);
  });

  it("keeps a record whose import may have reached the target (a retryable failure)", async () => {
    await leave({
      username: account,
      password: "",
      pending_password: "maybe-set-on-target-1",
      state: "rotating",
    });
    const out = await discardNewAccount(d(), v(), { name: account }, timedOut);
    expect(out.record).toBe("kept");
    expect(out.why).toContain("may have reached the target");
    expect(await recordThere()).toBe(true);
  });

  it("keeps a record whose new password the target accepts, even after a refusal", async () => {
    await root.query("ALTER USER ?@'%' IDENTIFIED BY 'now-set-on-target-12'", [account]);
    await leave({
      username: account,
      password: "",
      pending_password: "now-set-on-target-12",
      state: "rotating",
    });
    const out = await discardNewAccount(d(), v(), { name: account }, refused);
    expect(out).toEqual({ record: "kept", why: "the target accepts the new password the import set" });
    expect(await recordThere()).toBe(true);
  });

  it("keeps a record whose import rotation succeeded: it holds the only working password", async () => {
    await leave({ username: account, password: "now-set-on-target-12", state: "available" });
    const out = await discardNewAccount(d(), v(), given, undefined);
    expect(out.record).toBe("kept");
    expect(out.why).toContain("only working password");
    expect(await recordThere()).toBe(true);
  });
});
