import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type Browser, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ErrorBody, StackClient } from "../support/e2e-client.js";
import { cliPath, repoRoot } from "../support/sidecar-process.js";
import { DEMO_POLICY, type Stack, startStack } from "../support/stack.js";
import { waitFor } from "../support/wait-for.js";

const CHROMIUM = "/usr/bin/chromium";
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];

/** Reads go through as in the demo; a write needs a human's approval. */
const POLICY = `${DEMO_POLICY}
@id("writes-need-approval")
permit (
  principal,
  action == Action::"checkout",
  resource == Resource::"orders-db"
)
when { context.intent == "write" && context.ttl <= 600 && context.approved };
`;

const artifacts = join(repoRoot(), "test-artifacts");
let stack: Stack;
let client: StackClient;
let adminToken: string;
let browser: Browser | undefined;
let page: Page;

const readBody = (task: string, ttl = 300) => ({
  resource: "orders-db",
  task: { id: task, description: "operator views e2e" },
  intent: { action: "read", tool: "psql" },
  ttl,
});

async function accountsAvailable(): Promise<void> {
  await waitFor("the accounts of orders-db to be available", async () => {
    const r = await client.http("GET", "/v1/resources/orders-db", { token: adminToken });
    const accounts = (r.json as { accounts?: Array<{ state: string }> }).accounts ?? [];
    return accounts.length > 0 && accounts.every((a) => a.state === "available");
  });
}

async function checkout(agent: "a" | "b", body: Record<string, unknown>) {
  const res = await client.http("POST", "/v1/checkout", { token: await client.assertion(agent), body });
  return res;
}

/** The countdown the page shows for a lease, in seconds. */
async function secondsLeft(id: string): Promise<number> {
  const v = await page.locator(`tr[data-lease-id="${id}"] td.left`).getAttribute("data-seconds");
  return Number(v);
}

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `${CHROMIUM} is missing: the browser tests need Debian's Chromium (apt-get install chromium)`,
    );
  }
  await mkdir(artifacts, { recursive: true });
  stack = await startStack({ policy: POLICY });
  client = new StackClient(stack);
  adminToken = await client.adminToken();
  client.secrets.push(stack.adminPassword);
  const passwords = [randomBytes(12).toString("hex"), randomBytes(12).toString("hex")];
  client.secrets.push(...passwords);
  await stack.createRole("app_ops_1", passwords[0] as string);
  await stack.createRole("app_ops_2", passwords[1] as string);
  const reg = {
    name: "orders-db",
    adapter: "postgres",
    connection: { host: "127.0.0.1", port: stack.pg.port, database: "postgres" },
    rotateWith: "admin",
    admin: { username: "leasehold_admin", password: stack.adminPassword },
    accounts: ["app_ops_1", "app_ops_2"],
    lease: { defaultTtl: 300, maxTtl: 600 },
  };
  await writeFile(join(stack.dir, "orders-db.yaml"), JSON.stringify(reg));
  const r = await stack.cli("resources", "register", "-f", join(stack.dir, "orders-db.yaml"));
  expect(r.code, r.stderr).toBe(0);
  await accountsAvailable();
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
}, 180_000);

afterAll(async () => {
  await browser?.close();
  if (stack) {
    // No secret may reach the sidecar's own output.
    const out = stack.sidecar.output();
    for (const s of client.secrets) expect(out.includes(s)).toBe(false);
    await stack.close();
  }
});

describe("the dashboard in a real browser", () => {
  let leaseA = "";
  let tokenA = "";

  it("signs in with the pasted admin token and keeps it out of storage", async () => {
    await page.goto(`${stack.sidecar.url}/ui`);
    expect(await page.locator("#board").isVisible()).toBe(false);
    await page.locator("#token").fill("not-the-token");
    await page.locator("#login-form button[type=submit]").click();
    await expect.poll(() => page.locator("#login-error").textContent()).toContain("refused");

    await page.locator("#token").fill(adminToken);
    await page.locator("#approver-name").fill("alice");
    await page.locator("#login-form button[type=submit]").click();
    await page.locator("#board").waitFor({ state: "visible" });
    await expect.poll(() => page.locator("#status").textContent()).toBe("live");
    expect(await page.locator("#login").isVisible()).toBe(false);
    // Evaluated in the page (a string: this file is compiled without the DOM types).
    const stored = await page.evaluate<string>(
      "JSON.stringify([localStorage, sessionStorage, document.cookie, location.href])",
    );
    expect(stored.includes(adminToken)).toBe(false);
    expect(await page.locator("#token").inputValue()).toBe("");
  });

  it("shows a lease within a second of checkout, and its countdown decreases", async () => {
    const res = await checkout("a", readBody("TICKET-OPS-1"));
    expect(res.status, JSON.stringify(res.json)).toBe(201);
    leaseA = (res.json.lease as { id: string }).id;
    tokenA = res.json.token as string;
    client.secrets.push(tokenA);
    const row = page.locator(`tr[data-lease-id="${leaseA}"]`);
    // The row comes from the event stream (no polling): a second is ample.
    await row.waitFor({ state: "visible", timeout: 1000 });
    const text = await row.textContent();
    expect(text).toContain("orders-db");
    expect(text).toContain("spiffe://example.org/agent/a");
    expect(text).toContain("TICKET-OPS-1");
    expect(text).toMatch(/app_ops_[12]/);
    const first = await secondsLeft(leaseA);
    expect(first).toBeGreaterThan(200);
    expect(first).toBeLessThanOrEqual(300);
    await expect.poll(() => secondsLeft(leaseA), { timeout: 5000 }).toBeLessThan(first);
    const account = (res.json.lease as { account: string }).account;
    await expect
      .poll(() => page.locator(`#accounts tr[data-account="orders-db/${account}"] .state`).textContent())
      .toBe("leased");
    await page.screenshot({ path: join(artifacts, "operator-dashboard.png"), fullPage: true });
  });

  it("revokes a lease from the page: the row goes and the agent's token is refused right after", async () => {
    await page.locator(`tr[data-lease-id="${leaseA}"] button.revoke-lease`).click();
    await page.locator(`tr[data-lease-id="${leaseA}"]`).waitFor({ state: "detached" });
    const after = await client.http("GET", `/v1/leases/${leaseA}`, { token: tokenA });
    expect(after.status).toBe(401);
    expect((after.json as unknown as ErrorBody).error.code).toBe("lease_revoked");
    // The account is rotated after the revocation, and the page shows it in recent rotations.
    await page.locator("#recent li.rotated").first().waitFor({ state: "visible", timeout: 20_000 });
  });

  it("lets a waiting agent proceed once an approval is granted from the page", async () => {
    await accountsAvailable();
    const body = {
      resource: "orders-db",
      task: { id: "CHANGE-42", description: "fix a wrong invoice" },
      intent: { action: "write", tool: "psql" },
      ttl: 120,
    };
    const asked = await client.http("POST", "/v1/checkout", { token: await client.assertion("b"), body });
    expect(asked.status, JSON.stringify(asked.json)).toBe(202);
    const approvalId = (asked.json.approval as { id: string }).id;
    const before = await client.http("GET", `/v1/approvals/${approvalId}`, {
      token: await client.assertion("b"),
    });
    expect((before.json.approval as { status: string }).status).toBe("pending");

    const row = page.locator(`tr[data-approval-id="${approvalId}"]`);
    await row.waitFor({ state: "visible", timeout: 2000 });
    expect(await row.textContent()).toContain("CHANGE-42");
    await page.screenshot({ path: join(artifacts, "operator-dashboard-approval.png"), fullPage: true });
    await row.locator("button.approve").click();
    await row.waitFor({ state: "detached" });

    const polled = await client.http("GET", `/v1/approvals/${approvalId}`, {
      token: await client.assertion("b"),
    });
    const approval = polled.json.approval as {
      status: string;
      approver?: string;
      token?: string;
      lease?: { id: string; intent: { action: string } };
    };
    expect(approval.status).toBe("approved");
    expect(approval.approver).toBe("alice");
    expect(approval.lease?.intent.action).toBe("write");
    const token = approval.token ?? "";
    client.secrets.push(token);
    const leaseId = approval.lease?.id ?? "";
    const use = await client.http("GET", `/v1/leases/${leaseId}`, { token });
    expect(use.status).toBe(200);
    await page.locator(`tr[data-lease-id="${leaseId}"]`).waitFor({ state: "visible", timeout: 2000 });

    // Revoke every lease of the agent from the page (it asks for confirmation).
    page.once("dialog", (d) => void d.accept());
    await page.locator(`tr[data-lease-id="${leaseId}"] button.revoke-agent`).click();
    await page.locator(`tr[data-lease-id="${leaseId}"]`).waitFor({ state: "detached" });
    const refused = await client.http("GET", `/v1/leases/${leaseId}`, { token });
    expect(refused.status).toBe(401);
    expect((refused.json as unknown as ErrorBody).error.code).toBe("lease_revoked");
  });
});

describe("leasehold leases watch", () => {
  const tmuxSocket = `lhtest-watch-${randomBytes(4).toString("hex")}`;
  const tmux = (...args: string[]) =>
    execFileSync("tmux", ["-L", tmuxSocket, ...args], {
      env: { ...process.env, LH_TEST_VAULT_TOKEN: stack.vault.token },
      encoding: "utf8",
    });

  afterAll(() => {
    try {
      tmux("kill-server");
    } catch {
      // no server was started
    }
  });

  it("draws one row per active lease in an 80-column terminal, and the countdown moves", async () => {
    try {
      execFileSync("tmux", ["-V"]);
    } catch {
      throw new Error("tmux is missing: the pseudo-terminal test needs it (apt-get install tmux)");
    }
    await accountsAvailable();
    const res = await checkout("a", readBody("T-WATCH", 240));
    expect(res.status, JSON.stringify(res.json)).toBe(201);
    client.secrets.push(res.json.token as string);
    const account = (res.json.lease as { account: string }).account;
    const cmd = `${process.execPath} ${cliPath()} --config ${stack.configFile} leases watch --threshold 30`;
    tmux("new-session", "-d", "-x", "80", "-y", "24", "-s", "watch", cmd);
    const screen = () => tmux("capture-pane", "-p", "-t", "watch");
    const row = () =>
      screen()
        .split("\n")
        .find((l) => l.includes("T-WATCH")) ?? "";
    try {
      await expect.poll(row, { timeout: 10_000 }).toContain("orders-db");
    } catch {
      throw new Error(`no lease row on the watch screen:\n${screen()}`);
    }
    const first = screen();
    for (const line of first.split("\n")) expect(line.length).toBeLessThanOrEqual(80);
    expect(first).toMatch(/RESOURCE +ACCOUNT +AGENT +TASK +INTENT +LEFT +EXPIRY/);
    expect(row()).toContain(account);
    expect(row()).toContain("agent/a");
    expect(row()).toMatch(/ read +\d:\d\d \[#+\.*\]$/);
    const left = () => {
      const m = / (\d+):(\d\d) \[/.exec(row());
      return m ? Number(m[1]) * 60 + Number(m[2]) : Number.NaN;
    };
    const t1 = left();
    expect(t1).toBeGreaterThan(200);
    await expect.poll(left, { timeout: 5000 }).toBeLessThan(t1);
    await writeFile(join(artifacts, "leases-watch.txt"), screen());

    // A revocation reaches the screen from the stream: the row goes, the account shows rotating.
    const revoke = await stack.cli("leases", "revoke", (res.json.lease as { id: string }).id);
    expect(revoke.code, revoke.stderr).toBe(0);
    await expect.poll(() => screen().includes("T-WATCH"), { timeout: 5000 }).toBe(false);
    expect(screen()).toMatch(
      new RegExp(`orders-db/${account} +rotating|last: \\S+ rotated orders-db ${account}`),
    );
  });

  it("prints one line per event when stdout is not a terminal", async () => {
    await accountsAvailable();
    // A lease held before the watch starts is printed from the snapshot: once its line is out,
    // the watch follows the stream, and the next checkout must arrive as an event.
    const held = await checkout("b", readBody("TICKET-SNAP", 60));
    expect(held.status).toBe(201);
    client.secrets.push(held.json.token as string);
    const heldId = (held.json.lease as { id: string }).id;
    const child: ChildProcess = spawn(
      process.execPath,
      [cliPath(), "--config", stack.configFile, "leases", "watch"],
      { env: { ...process.env, LH_TEST_VAULT_TOKEN: stack.vault.token }, stdio: ["ignore", "pipe", "pipe"] },
    );
    let out = "";
    child.stdout?.on("data", (d: Buffer) => {
      out += d.toString();
    });
    const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
    try {
      await expect
        .poll(() => out, { timeout: 10_000 })
        .toMatch(
          new RegExp(
            `^\\S+Z active orders-db app_ops_[12] lease=${heldId} agent=\\S+ task="TICKET-SNAP"`,
            "m",
          ),
        );
      const res = await checkout("b", readBody("TICKET-LINES", 60));
      expect(res.status).toBe(201);
      client.secrets.push(res.json.token as string);
      const id = (res.json.lease as { id: string }).id;
      await expect.poll(() => out, { timeout: 5000 }).toContain(`issued orders-db`);
      const line = out.split("\n").find((l) => l.includes(`lease=${id}`)) ?? "";
      expect(line).toMatch(
        /^\S+Z issued orders-db app_ops_[12] lease=lse_\S+ agent=spiffe:\/\/example.org\/agent\/b$/,
      );
      expect(out).not.toContain("\x1b[");
      await stack.cli("leases", "revoke", id);
      await expect.poll(() => out, { timeout: 5000 }).toMatch(new RegExp(`ended orders-db \\S+ lease=${id}`));
    } finally {
      child.kill("SIGTERM");
      await stack.cli("leases", "revoke", heldId);
    }
    expect(await exited).toBe(0);
  });
});

describe("/metrics", () => {
  it("exposes the operator metrics with bounded labels (no lease ids, no agent ids)", async () => {
    const res = await fetch(`${stack.sidecar.url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/plain/);
    const text = await res.text();
    for (const name of [
      "leasehold_checkouts_total",
      "leasehold_approval_decisions_total",
      "leasehold_lease_duration_seconds",
      "leasehold_rotations_total",
      "leasehold_rotation_duration_seconds",
      "leasehold_leases_active",
      "leasehold_accounts",
      "leasehold_accounts_quarantined",
      "leasehold_approvals_pending",
      "leasehold_lease_soonest_expiry_seconds",
      "leasehold_reaper_lag_seconds",
      "leasehold_vault_request_duration_seconds",
      "leasehold_event_stream_clients",
    ]) {
      expect(text, name).toContain(`# TYPE ${name} `);
    }
    expect(text).toMatch(/leasehold_checkouts_total\{resource="orders-db",decision="allow"\} [1-9]/);
    expect(text).toMatch(
      /leasehold_checkouts_total\{resource="orders-db",decision="approval_required"\} [1-9]/,
    );
    expect(text).toMatch(/leasehold_approval_decisions_total\{resource="orders-db",decision="approved"\} 1/);
    expect(text).toMatch(/leasehold_rotations_total\{resource="orders-db",result="succeeded"\} [1-9]/);
    // The sidecar's own Redis client is instrumented: its commands are counted by name.
    expect(text).toMatch(
      /leasehold_redis_command_duration_seconds_count\{command="[a-z]+",result="ok"\} [1-9]/,
    );
    expect(text).toMatch(
      /leasehold_lease_duration_seconds_count\{resource="orders-db",reason="revoked"\} [1-9]/,
    );
    expect(text).not.toMatch(/lse_[A-Za-z0-9_-]{10}/);
    expect(text).not.toContain("spiffe://");
  });
});
