import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ErrorBody, StackClient } from "../support/e2e-client.js";
import { type Stack, startStack } from "../support/stack.js";

/**
 * Issue 16, attack 1: a DBA allowed to register only `staging` resources registered an `exec`
 * resource whose command was `/bin/sh -c …` with `?dry_run=true`; the command ran as the
 * sidecar and its stderr (the admin token, the Vault token) came back in the 400. Commands
 * are the operator's now: a registration names one of `exec.commands`, nothing else runs.
 */

const DBA = "spiffe://example.org/operator/dba";
const POLICY = `@id("dbas-register-staging")
permit (principal == Agent::"${DBA}", action == Action::"register", resource in ResourceGroup::"staging");
`;
const FIXTURE = fileURLToPath(new URL("../fixtures/exec-adapter/store-passwords.mjs", import.meta.url));

let stack: Stack;
let c: StackClient;
let admin: string;
let dir: string;
let store: string;
/** Created by any attack command that runs: it must never exist. */
let marker: string;
const execAdmin = { username: "dba", password: `exec-admin-${randomBytes(8).toString("hex")}` };

/** What the attacker's command did: mark that it ran, then print every secret it can reach. */
function attackArgv(): string[] {
  const tokenFile = join(stack.dir, "state", "admin.token");
  return [
    "/bin/sh",
    "-c",
    `touch ${marker}; cat ${tokenFile} >&2; tr '\\0' '\\n' < /proc/$PPID/environ >&2; exit 3`,
  ];
}

function registration(name: string, command: unknown): Record<string, unknown> {
  return {
    name,
    adapter: "exec",
    connection: { command },
    admin: execAdmin,
    accounts: ["mainframe_1"],
    groups: ["staging"],
  };
}

/** Everything Vault holds under the stack's prefix for resource `name` (names only). */
async function vaultKeys(name: string): Promise<number> {
  const cfg = await readFile(stack.configFile, "utf8");
  const prefix = /prefix: (leasehold-test-[0-9a-f]+)/.exec(cfg)?.[1];
  const res = await fetch(
    `${stack.vault.address}/v1/${stack.vault.mount}/metadata/${prefix}/resources/${name}?list=true`,
    { headers: { "X-Vault-Token": stack.vault.token } },
  );
  if (res.status === 404) return 0;
  const body = (await res.json()) as { data: { keys: string[] } };
  return body.data.keys.length;
}

async function vaultWrite(path: string, data: Record<string, unknown>): Promise<void> {
  const cfg = await readFile(stack.configFile, "utf8");
  const prefix = /prefix: (leasehold-test-[0-9a-f]+)/.exec(cfg)?.[1];
  const res = await fetch(`${stack.vault.address}/v1/${stack.vault.mount}/data/${prefix}/${path}`, {
    method: "POST",
    headers: { "X-Vault-Token": stack.vault.token, "content-type": "application/json" },
    body: JSON.stringify({ data }),
  });
  expect(res.ok, `vault write ${path}`).toBe(true);
}

function expectNoSecret(text: string): void {
  expect(text.includes(admin), "the admin token").toBe(false);
  expect(text.includes(stack.vault.token), "the Vault token").toBe(false);
  expect(text.includes(execAdmin.password), "the exec admin password").toBe(false);
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "lh-attack-exec-"));
  store = join(dir, "store.json");
  marker = join(dir, "the-command-ran");
  await writeFile(
    store,
    JSON.stringify({ admin: execAdmin, accounts: { mainframe_1: "initial-exec-123456" }, sessions: {} }),
    { mode: 0o600 },
  );
  const exec = {
    commands: { "store-passwords": { command: [process.execPath, FIXTURE, store], timeoutSeconds: 20 } },
  };
  stack = await startStack({ policy: POLICY, operators: ["dba"], config: { exec } });
  c = new StackClient(stack);
  admin = await c.adminToken();
  c.secrets.push(execAdmin.password, stack.vault.token);
}, 120_000);

afterAll(async () => {
  await stack?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("attack 1: a DBA's registration chooses what the sidecar runs", () => {
  it("a command path or argv in a registration is refused (400 naming the field) before anything runs, dry run included", async () => {
    for (const command of [attackArgv(), "/bin/sh", `/bin/sh -c "touch ${marker}"`]) {
      for (const query of ["?dry_run=true", ""]) {
        const r = await c.http("PUT", `/v1/resources/x${query}`, {
          token: await c.assertion("dba"),
          body: registration("x", command),
        });
        expect(r.status, JSON.stringify(r.json)).toBe(400);
        const { error } = r.json as unknown as ErrorBody;
        expect(error.code).toBe("invalid_request");
        expect(error.message).toMatch(/^registration\.connection\.command: /);
        expect(error.message).toContain("exec.commands");
        expectNoSecret(JSON.stringify(r.json));
      }
    }
    expect(existsSync(marker)).toBe(false);
    expect(await vaultKeys("x")).toBe(0);
    expect((await c.http("GET", "/v1/resources/x", { token: admin })).status).toBe(404);
  });

  it("through the CLI: refused, naming the field; the answer it prints holds no secret", async () => {
    const file = join(stack.dir, "x.json");
    await writeFile(file, JSON.stringify(registration("x", attackArgv())));
    const key = await c.keyFile("dba");
    const r = await stack.cli("--identity-key", key, "resources", "register", "-f", file, "--dry-run");
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("registration.connection.command");
    expectNoSecret(r.stdout + r.stderr);
    expect(existsSync(marker)).toBe(false);
  });

  it("a name the operator did not configure: 400 naming the field, listing none of the configured ones", async () => {
    const r = await c.http("PUT", "/v1/resources/x?dry_run=true", {
      token: await c.assertion("dba"),
      body: registration("x", "rotate-mainframe"),
    });
    expect(r.status).toBe(400);
    const { error } = r.json as unknown as ErrorBody;
    expect(error.message).toBe(
      "registration.connection.command: not one of the commands this sidecar's config lists (exec.commands)",
    );
    expect(error.message).not.toContain("store-passwords");
    expect(await vaultKeys("x")).toBe(0);
  });

  it("a registration stored before commands were the operator's never runs its program", async () => {
    const legacy = {
      ...registration("legacy", attackArgv()),
      rotateWith: "admin",
      admin: { username: execAdmin.username },
      accounts: ["mainframe_1"],
      reveal: true,
      lease: { defaultTtl: 300, maxTtl: 3600 },
      rotation: { length: 32, terminateSessions: true, exclude: "" },
      registered_at: new Date().toISOString(),
    };
    await vaultWrite("resources/legacy/config", legacy);
    await vaultWrite("resources/legacy/admin", execAdmin);
    const r = await c.http("POST", "/v1/resources/legacy/verify", { token: admin, body: {} });
    expect(r.status, JSON.stringify(r.json)).toBe(200);
    const results = (r.json as { results: Array<{ ok: boolean; reason?: string }> }).results;
    expect(results.length).toBeGreaterThan(0);
    for (const x of results) expect(x.ok).toBe(false);
    expect(results[0]?.reason).toContain("not one of the commands this sidecar's config lists");
    expectNoSecret(JSON.stringify(r.json));
    expect(existsSync(marker)).toBe(false);
  });

  it("nothing of the attempts reached the logs or the audit trail as a registration", async () => {
    expectNoSecret(stack.sidecar.output());
    const records = await c.auditRecords();
    expect(records.filter((r) => r.event === "registration" && r.resource === "x")).toEqual([]);
    expectNoSecret(JSON.stringify(records));
  });

  it("a command the operator configured: the DBA registers it by name; it imports and rotates", async () => {
    const r = await c.http("PUT", "/v1/resources/staging-mf", {
      token: await c.assertion("dba"),
      body: registration("staging-mf", "store-passwords"),
    });
    expect(r.status, JSON.stringify(r.json)).toBe(201);
    await c.waitForAccounts("staging-mf", "available");
    const passwords = async () =>
      (JSON.parse(await readFile(store, "utf8")) as { accounts: Record<string, string> }).accounts
        .mainframe_1;
    const imported = await passwords();
    expect(imported).not.toBe("initial-exec-123456");
    expect((await c.vaultAccount("staging-mf", "mainframe_1")).password).toBe(imported);
    const rot = await stack.cli("resources", "rotate", "staging-mf");
    expect(rot.code, rot.stdout + rot.stderr).toBe(0);
    const rotated = await passwords();
    expect(rotated).not.toBe(imported);
    expect((await c.vaultAccount("staging-mf", "mainframe_1")).password).toBe(rotated);
    const shown = await c.http("GET", "/v1/resources/staging-mf", { token: admin });
    expect((shown.json as { connection: unknown }).connection).toEqual({ command: "store-passwords" });
    const records = await c.auditRecords();
    expect(records.some((x) => x.event === "registration" && x.resource === "staging-mf")).toBe(true);
    expect(existsSync(marker)).toBe(false);
  });
});
