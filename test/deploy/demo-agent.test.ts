import { spawn } from "node:child_process";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ScramPostgres, startScramPostgres } from "../support/pg-cluster.js";
import { repoRoot } from "../support/sidecar-process.js";
import { useVault, type VaultHandle } from "../support/vault.js";
import { type InProcessSidecar, startInProcessSidecar } from "./in-process-sidecar.js";

/**
 * compose.yaml's demo agent cannot run in Docker here, so it runs as a process against the
 * same kinds of services: a real sidecar, a scram-sha-256 PostgreSQL, Vault and Redis. The
 * leasehold CLI it calls is the source one (through tsx) instead of the image's build.
 */
describe("deploy/demo-agent.mjs", () => {
  let vault: VaultHandle;
  let pgc: ScramPostgres;
  let lh: InProcessSidecar;
  let url: string;

  beforeAll(async () => {
    [vault, pgc] = await Promise.all([useVault(), startScramPostgres()]);
    lh = await startInProcessSidecar({ vault });
    url = await lh.listen();
  });
  afterAll(async () => {
    await lh?.close();
    await Promise.allSettled([pgc?.stop(), vault?.close()]);
  });

  it("tells the whole story against real services and exits 0", async () => {
    const root = repoRoot();
    const child = spawn(process.execPath, [join(root, "deploy/demo-agent.mjs")], {
      cwd: root,
      env: {
        PATH: process.env.PATH,
        NODE_OPTIONS: "--import tsx",
        LEASEHOLD_URL: url,
        LEASEHOLD_CLI: join(root, "sidecar/cli/main.ts"),
        LEASEHOLD_ADMIN_TOKEN_FILE: join(lh.dir, "state/admin.token"),
        LEASEHOLD_TRUST_BUNDLE: join(lh.dir, "trust/agents.jwks.json"),
        LEASEHOLD_AUDIT_FILE: join(lh.dir, "state/audit.jsonl"),
        PGHOST: pgc.host,
        PGPORT: String(pgc.port),
        PGUSER: "postgres",
        PGPASSWORD: pgc.superuser.password,
        VAULT_ADDR: vault.address,
        VAULT_TOKEN: vault.token,
        VAULT_MOUNT: vault.mount,
        LEASEHOLD_VAULT_PREFIX: lh.vaultPrefix,
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on("data", (d: Buffer) => {
      out += d.toString();
    });
    const code = await new Promise<number | null>((r) => child.once("exit", r));
    expect(out).toContain("after the import rotation the DBA's password is refused");
    expect(out).toMatch(/checked out lease lse_\S+: account app_orders_1/);
    expect(out).toContain("connected as app_orders_1: 2 orders, total 200.75");
    expect(out).toContain("account state: available");
    expect(out).toContain("the password the agent saw: refused");
    expect(out).toContain("the new password in Vault: works");
    expect(out).toContain("the lease token after check-in: HTTP 401 unauthenticated");
    expect(out).toMatch(/audit trail: ok/);
    expect(out).toContain("demo agent finished");
    expect(code).toBe(0);
    expect(out).not.toContain(pgc.superuser.password);
    expect(out).not.toContain(vault.token);
  });
});
