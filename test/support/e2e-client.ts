import { readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { expect } from "vitest";
import type { Stack } from "./stack.js";
import { WAIT_TIMEOUT_MS, waitFor } from "./wait-for.js";

export interface HttpResult {
  status: number;
  headers: Headers;
  json: Record<string, unknown>;
}

export interface ErrorBody {
  error: { code: string; message: string; request_id: string; retry_after?: number };
}

/** A test's view of a running stack over HTTP and the CLI. Collects every secret it sees. */
export class StackClient {
  /** Passwords and tokens seen, to search logs and files for. */
  readonly secrets: string[] = [];

  constructor(private readonly stack: Stack) {}

  async http(
    method: string,
    path: string,
    opts: { token?: string; body?: unknown; raw?: string; headers?: Record<string, string> } = {},
  ): Promise<HttpResult> {
    // As every real client does (the sidecar's CSRF rule); a test may override it via `headers`.
    const headers: Record<string, string> = { "x-leasehold-request": "true", ...opts.headers };
    if (opts.token) headers.authorization = `Bearer ${opts.token}`;
    let body: string | undefined;
    if (opts.raw !== undefined) body = opts.raw;
    else if (opts.body !== undefined) body = JSON.stringify(opts.body);
    if (body !== undefined && !headers["content-type"]) headers["content-type"] = "application/json";
    const res = await fetch(`${this.stack.sidecar.url}${path}`, { method, headers, body });
    const text = await res.text();
    return {
      status: res.status,
      headers: res.headers,
      json: text ? (JSON.parse(text) as Record<string, unknown>) : {},
    };
  }

  async adminToken(): Promise<string> {
    const t = (await readFile(join(this.stack.dir, "state", "admin.token"), "utf8")).trim();
    this.secrets.push(t);
    return t;
  }

  /** The private key file `agent keygen` wrote for agent `a` or `b`. */
  async keyFile(agent: string): Promise<string> {
    const files = await readdir(join(this.stack.dir, "trust"));
    const f = files.find((n) => n.endsWith(".key.jwk") && n.replace(/\.key\.jwk$/, "").endsWith(agent));
    if (!f) throw new Error(`no key file for agent ${agent} in ${files.join(", ")}`);
    return join(this.stack.dir, "trust", f);
  }

  /** A fresh identity assertion minted by the CLI for agent `a` or `b`. */
  async assertion(agent: string, ...extra: string[]): Promise<string> {
    const r = await this.stack.cli("agent", "assert", "--key", await this.keyFile(agent), ...extra);
    if (r.code !== 0) throw new Error(`agent assert failed: ${r.stderr}`);
    const jwt = r.stdout.trim();
    this.secrets.push(jwt);
    return jwt;
  }

  /** Checks out and reveals; returns the lease id, token and password. */
  async checkoutAndReveal(
    agent: string,
    body: Record<string, unknown>,
  ): Promise<{ id: string; token: string; password: string }> {
    const co = await this.http("POST", "/v1/checkout", { token: await this.assertion(agent), body });
    if (co.status !== 201) throw new Error(`checkout answered ${co.status}: ${JSON.stringify(co.json)}`);
    const token = co.json.token as string;
    const id = (co.json.lease as { id: string }).id;
    this.secrets.push(token);
    const cred = await this.http("GET", `/v1/leases/${id}/credential`, { token });
    if (cred.status !== 200)
      throw new Error(`credential answered ${cred.status}: ${JSON.stringify(cred.json)}`);
    const password = cred.json.password as string;
    this.secrets.push(password);
    return { id, token, password };
  }

  /** Resolves once every account of the resource is in `state` (as the API reports it). */
  async waitForAccounts(resource: string, state: string, timeoutMs = WAIT_TIMEOUT_MS): Promise<void> {
    const admin = await this.adminToken();
    let last = "";
    await waitFor(
      () => `every account of ${resource} to be ${state} (last seen: ${last})`,
      async () => {
        const r = await this.http("GET", `/v1/resources/${resource}`, { token: admin });
        if (r.status !== 200) return false;
        const accounts = (r.json as { accounts: Array<{ state: string }> }).accounts;
        last = JSON.stringify(accounts);
        return accounts.every((a) => a.state === state);
      },
      { timeoutMs, intervalMs: 100 },
    );
  }

  /** The account record in Vault (read directly, as an operator would). */
  async vaultAccount(
    resource: string,
    account: string,
  ): Promise<Record<string, unknown> & { password: string; state: string }> {
    const cfg = await readFile(this.stack.configFile, "utf8");
    const vaultPrefix = /prefix: (leasehold-test-[0-9a-f]+)/.exec(cfg)?.[1];
    const res = await fetch(
      `${this.stack.vault.address}/v1/${this.stack.vault.mount}/data/${vaultPrefix}/resources/${resource}/accounts/${encodeURIComponent(account)}`,
      { headers: { "X-Vault-Token": this.stack.vault.token } },
    );
    const body = (await res.json()) as {
      data: { data: Record<string, unknown> & { password: string; state: string } };
    };
    const rec = body.data.data;
    for (const k of ["password", "previous_password", "pending_password"]) {
      if (typeof rec[k] === "string" && rec[k] !== "") this.secrets.push(rec[k] as string);
    }
    return rec;
  }

  /**
   * Registers a resource through the CLI (as a DBA does) and waits until its accounts are
   * available. `accounts` and `port` default to one role on the stack's private PostgreSQL.
   */
  async registerPostgres(
    name: string,
    opts: { accounts?: string[]; port?: number; extra?: Record<string, unknown> } = {},
  ): Promise<void> {
    await this.register({
      name,
      adapter: "postgres",
      connection: { host: "127.0.0.1", port: opts.port ?? this.stack.pg.port, database: "postgres" },
      admin: { username: "leasehold_admin", password: this.stack.adminPassword },
      accounts: opts.accounts ?? ["app_orders_1"],
      ...opts.extra,
    });
  }

  /** Registers a resource with the CLI, as a DBA does, and waits until its accounts are available. */
  async register(reg: Record<string, unknown> & { name: string }): Promise<void> {
    const file = join(this.stack.dir, `${reg.name}.json`);
    await writeFile(file, JSON.stringify(reg));
    const r = await this.stack.cli("resources", "register", "-f", file);
    if (r.code !== 0) throw new Error(`register ${reg.name} failed: ${r.stderr}`);
    await this.waitForAccounts(reg.name, "available");
  }

  /** The audit file's records. */
  async auditRecords(): Promise<Array<Record<string, unknown>>> {
    const text = await readFile(join(this.stack.dir, "state", "audit.jsonl"), "utf8");
    return text
      .trim()
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  }
}

/**
 * Asserts an error answer: the status, the documented shape with this code, and a request id;
 * returns the message for checks of its wording.
 */
export function expectError(r: HttpResult, status: number, code: string): string {
  expect(r.status, JSON.stringify(r.json)).toBe(status);
  const e = (r.json as unknown as ErrorBody).error;
  expect(e.code).toBe(code);
  expect(e.request_id).toMatch(/^req_/);
  return e.message;
}
