import { mkdtempSync } from "node:fs";
import { readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { type AdapterContext, AdapterError, type Credential } from "../../adapters/adapter.js";
import { createExecAdapter, type ExecCommand } from "../../adapters/exec/index.js";
import { testPassword } from "./conformance.js";

// The exec adapter's check-account action, with the sample command over a store file.

const FIXTURE = fileURLToPath(new URL("../fixtures/exec-adapter/store-passwords.mjs", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "leasehold-exec-check-"));
const store = join(dir, "store.json");
const admin: Credential = { username: "dba", password: testPassword() };
const lines: string[] = [];

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function command(env?: Record<string, string>): ExecCommand {
  return { command: [process.execPath, FIXTURE, store], timeoutSeconds: 20, ...(env ? { env } : {}) };
}

const adapter = createExecAdapter({
  commands: {
    "store-passwords": command(),
    "store-old": command({ FIXTURE_NO_CHECK: "1" }),
    "store-down": command({ FIXTURE_EXIT: "69" }),
  },
});

function ctx(cred: Credential | undefined): AdapterContext {
  const push = (o: object, m?: string) => lines.push(`${JSON.stringify(o)} ${m ?? ""}`);
  return { admin: cred, log: { debug: push, info: push, warn: push, error: push }, timeoutMs: 20_000 };
}

async function writeStore(): Promise<void> {
  await writeFile(
    store,
    JSON.stringify({
      admin,
      accounts: { app_orders_1: testPassword(), app_locked: testPassword() },
      sessions: {},
      locked: ["app_locked"],
    }),
    { mode: 0o600 },
  );
}

describe("exec checkAccount (action check-account)", () => {
  it("exit 0 passes; 67 (no such account) and 77 (may not change it) fail naming the account", async () => {
    await writeStore();
    const before = await readFile(store, "utf8");
    const t = { command: "store-passwords" };
    expect(await adapter.checkAccount?.(t, "app_orders_1", ctx(admin))).toEqual({ valid: true });
    expect(await adapter.checkAccount?.(t, "app_orders_9", ctx(admin))).toEqual({
      valid: false,
      reason: 'the command reports no such account "app_orders_9" (exit 67)',
    });
    expect(await adapter.checkAccount?.(t, "app_locked", ctx(admin))).toEqual({
      valid: false,
      reason: 'the command reports the credential may not change account "app_locked" (exit 77)',
    });
    // A refused admin credential is the command's 77 as well.
    const wrong = { username: "dba", password: testPassword() };
    expect((await adapter.checkAccount?.(t, "app_orders_1", ctx(wrong)))?.valid).toBe(false);
    // Self mode: the command checks what it can without an admin.
    expect(await adapter.checkAccount?.(t, "app_orders_1", ctx(undefined))).toEqual({ valid: true });
    expect((await adapter.checkAccount?.(t, "app_orders_9", ctx(undefined)))?.valid).toBe(false);
    // Checking changed nothing.
    expect(await readFile(store, "utf8")).toBe(before);
  });

  it("a command that does not know check-account (exit 64) passes, and a warning says so", async () => {
    await writeStore();
    const before = lines.length;
    expect(await adapter.checkAccount?.({ command: "store-old" }, "app_orders_9", ctx(admin))).toEqual({
      valid: true,
    });
    expect(lines.slice(before).join("\n")).toMatch(/cannot check accounts up front \(exit 64\)/);
  });

  it("a target the command cannot reach (exit 69) is a retryable fault, not an answer", async () => {
    const err = await adapter
      .checkAccount?.({ command: "store-down" }, "app_orders_1", ctx(admin))
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AdapterError);
    expect((err as AdapterError).code).toBe("unreachable");
    expect((err as AdapterError).retryable).toBe(true);
  });

  it("accountIdentity: the operator's command and the account", () => {
    const id = adapter.accountIdentity?.bind(adapter);
    expect(id?.({ command: "store-passwords" }, "app/1@x")).toBe("exec://store-passwords/app%2F1%40x");
    expect(id?.({ command: "store-old" }, "app/1@x")).not.toBe(
      id?.({ command: "store-passwords" }, "app/1@x"),
    );
  });

  it("no password reached the log", () => {
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.join("\n")).not.toContain(admin.password);
  });
});
