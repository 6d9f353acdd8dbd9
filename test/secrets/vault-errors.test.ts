import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LeaseholdError } from "../../sidecar/errors.js";
import { createLogger } from "../../sidecar/logger.js";
import { type VaultAuth, VaultStore } from "../../sidecar/secrets/index.js";
import { logText } from "../../sidecar/util/dependency-error.js";
import { freePort } from "../support/free-port.js";
import { startVaultDev, type VaultDevServer } from "../vault-dev/server.js";

/** Vault faults name the address and the cause in leasehold's words, never the token or secret id. */

const log = createLogger("silent");
const POLICY = `path "secret/data/lh/*" { capabilities = ["create", "read", "update", "delete"] }`;
const ROOT = "root-for-vault-errors-test";

let vault: VaultDevServer;
const stores: VaultStore[] = [];

function store(auth: VaultAuth, o: { address?: string; prefix?: string } = {}): VaultStore {
  const s = new VaultStore({
    address: o.address ?? vault.address,
    auth,
    mount: "secret",
    prefix: o.prefix ?? "lh",
    timeoutMs: 5_000,
    retries: 0,
    log,
  });
  stores.push(s);
  return s;
}

async function detailOf(p: Promise<unknown>): Promise<string> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(LeaseholdError);
  expect((err as LeaseholdError).code).toBe("upstream_unavailable");
  return (err as LeaseholdError).detail ?? "";
}

beforeAll(async () => {
  vault = await startVaultDev({
    rootToken: ROOT,
    policies: { leasehold: POLICY },
    approleRoles: {
      sidecar: { roleId: "role-1", secretId: "secret-1", policies: ["leasehold"], tokenTtl: 60 },
    },
  });
});

afterAll(async () => {
  for (const s of stores) s.close();
  await vault?.close();
});

describe("Vault errors name the address and the cause", () => {
  it("connection refused, in health and in a call; an address's user-info is not printed", async () => {
    const port = await freePort();
    const s = store({ method: "token", token: ROOT }, { address: `http://ops:hunter2@127.0.0.1:${port}` });
    expect(await s.health()).toEqual({
      ok: false,
      reason: `vault http://127.0.0.1:${port}: connection refused (ECONNREFUSED)`,
    });
    const detail = await detailOf(s.read(["x"]));
    expect(detail).toBe(`vault http://127.0.0.1:${port}: connection refused (ECONNREFUSED) (read)`);
    expect(detail).not.toContain("hunter2");
  });

  it("https against a plain-HTTP Vault: TLS handshake failed", async () => {
    const s = store({ method: "token", token: ROOT }, { address: vault.address.replace(/^http:/, "https:") });
    const h = await s.health();
    expect(h.ok).toBe(false);
    expect(h.ok ? "" : h.reason).toMatch(
      new RegExp(
        `^vault ${vault.address.replace(/^http:/, "https:").replace(/[.]/g, "\\.")}: TLS handshake failed: .+`,
      ),
    );
  });

  it("sealed", async () => {
    const s = store({ method: "token", token: ROOT });
    vault.seal();
    try {
      expect(await s.health()).toEqual({ ok: false, reason: `vault ${vault.address}: sealed` });
      expect(await detailOf(s.read(["x"]))).toBe(`vault ${vault.address}: sealed (read)`);
      // What the loops log: the message and the detail naming the address.
      const err = await s.list(["x"]).catch((e: unknown) => e);
      expect(logText(err)).toBe(
        `the secret store (Vault) is unavailable: vault ${vault.address}: sealed (list)`,
      );
    } finally {
      vault.unseal();
    }
    expect(await s.health()).toEqual({ ok: true });
  });

  it("a token without the policy for a path: permission denied naming the path", async () => {
    const s = store(
      { method: "approle", roleId: "role-1", secretId: "secret-1", mount: "approle" },
      { prefix: "other" },
    );
    expect(await detailOf(s.read(["x"]))).toBe(
      `vault ${vault.address}: permission denied (token lacks policy for secret/data/other/x) (read)`,
    );
  });

  it("an invalid token: permission denied (invalid or expired token), and the token is not printed", async () => {
    const token = "hvs.not-a-real-token-0123456789";
    const s = store({ method: "token", token });
    const h = await s.health();
    expect(h).toEqual({
      ok: false,
      reason: `vault ${vault.address}: permission denied (invalid or expired token)`,
    });
    expect(JSON.stringify(h)).not.toContain(token);
  });

  it("a refused AppRole login names the login, never the secret id", async () => {
    const secretId = "wrong-secret-id-987654321";
    const s = store({ method: "approle", roleId: "role-1", secretId, mount: "approle" });
    const h = await s.health();
    expect(h.ok).toBe(false);
    const reason = h.ok ? "" : h.reason;
    expect(reason.startsWith(`vault ${vault.address}: `)).toBe(true);
    expect(reason).toContain("(approle login at auth/approle)");
    expect(reason).not.toContain(secretId);
  });
});
