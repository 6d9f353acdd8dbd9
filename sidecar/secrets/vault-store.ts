import { readFile } from "node:fs/promises";
import { Agent as HttpAgent } from "node:http";
import { Agent as HttpsAgent } from "node:https";
import NodeVault from "node-vault";
import { LeaseholdError } from "../errors.js";
import { withoutUserinfo } from "../util/dependency-error.js";
import type { Logger } from "../logger.js";
import type { DependencyHealth, KvEntry, SecretStore } from "./types.js";
import { describeVaultError, vaultStatus } from "./vault-errors.js";
import { vaultTransport } from "./vault-transport.js";

export type VaultAuth =
  | { method: "token"; token: string }
  | { method: "approle"; roleId: string; secretId: string; mount: string }
  | { method: "jwt"; role: string; jwtFile: string; mount: string };

export interface VaultStoreOptions {
  address: string;
  auth: VaultAuth;
  mount: string;
  prefix: string;
  timeoutMs: number;
  log: Logger;
  /** Retries for retryable faults (5xx, sealed, connection errors). @default 2 */
  retries?: number;
}

const statusOf = vaultStatus;

/** A read or list of a path that does not exist (an answer, not a fault). */
const ABSENT = Symbol("absent");

function absentOn404<T>(p: Promise<T>): Promise<T | typeof ABSENT> {
  return p.catch((err: unknown) => {
    if (statusOf(err) === 404) return ABSENT;
    throw err;
  });
}

/** Faults that may pass: Vault down, sealed, overloaded, slow. Never a 4xx. */
function isRetryable(err: unknown): boolean {
  const status = statusOf(err);
  if (status === undefined) return true;
  return status >= 500;
}

function vaultBody(err: unknown): unknown {
  return (err as { response?: { body?: unknown } } | null)?.response?.body;
}

const LOGIN_FAILED = "the sidecar could not log in to Vault";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The secrets layer over node-vault: timeouts on every call, jittered retries, mapped errors. */
export class VaultStore implements SecretStore {
  private readonly client: NodeVault.client;
  private readonly opts: VaultStoreOptions;
  /** One keep-alive connection pool per store: every Vault call reuses open connections. */
  private readonly agents = {
    httpAgent: new HttpAgent({ keepAlive: true }),
    httpsAgent: new HttpsAgent({ keepAlive: true }),
  };
  private loginPromise: Promise<void> | undefined;
  private renewTimer: NodeJS.Timeout | undefined;
  private closed = false;
  /** Logins and token renewals so far (operators' metrics; tests). */
  readonly stats = { logins: 0, renewals: 0, renewalFailures: 0 };

  constructor(opts: VaultStoreOptions) {
    this.opts = opts;
    // noCustomHTTPVerbs: LIST becomes GET ?list=1, which every Vault accepts and Node servers can parse.
    // No config-level headers: node-vault makes them sticky (VAULT-API.md §7.6.3).
    // The transport is leasehold's own (node:http on this store's agents), not node-vault's axios.
    this.client = NodeVault({
      endpoint: opts.address,
      token: opts.auth.method === "token" ? opts.auth.token : "",
      noCustomHTTPVerbs: true,
      requestOptions: { timeout: opts.timeoutMs },
      "request-promise": vaultTransport(this.agents),
    });
  }

  private kvPath(kind: "data" | "metadata", path: readonly string[]): string {
    const segs = [...this.opts.prefix.split("/").filter(Boolean), ...path].map((s) => encodeURIComponent(s));
    return `${this.opts.mount}/${kind}/${segs.join("/")}`;
  }

  private async login(): Promise<void> {
    const auth = this.opts.auth;
    if (auth.method === "token") return;
    const res = await this.loginCall(auth).catch((err: unknown) => {
      const status = statusOf(err);
      throw new LeaseholdError("upstream_unavailable", LOGIN_FAILED, {
        detail: `${this.describe(err)} (${auth.method} login at auth/${auth.mount})`,
        // A refused login stays refused until its credentials change; a fault may pass.
        retryable: status === undefined || status >= 500,
      });
    });
    this.stats.logins++;
    const lease = Number(res?.auth?.lease_duration ?? 0);
    if (res?.auth?.renewable && lease > 0) this.scheduleRenewal(lease);
    else if (lease > 0) this.scheduleRelogin(lease);
    this.opts.log.info({ method: auth.method, leaseSeconds: lease }, "vault login");
  }

  private async loginCall(
    auth: Exclude<VaultAuth, { method: "token" }>,
  ): Promise<{ auth?: { lease_duration?: number; renewable?: boolean } }> {
    return auth.method === "approle"
      ? await this.client.approleLogin({
          role_id: auth.roleId,
          secret_id: auth.secretId,
          mount_point: auth.mount,
        })
      : await this.client.jwtLogin({
          role: auth.role,
          jwt: (await readFile(auth.jwtFile, "utf8")).trim(),
          mount_point: auth.mount,
        });
  }

  /** `vault <address>: <cause>` for a fault of a call about `path`. */
  private describe(err: unknown, path?: string): string {
    return describeVaultError(this.opts.address, err, path);
  }

  private scheduleRenewal(seconds: number): void {
    clearTimeout(this.renewTimer);
    this.renewTimer = setTimeout(
      () => {
        this.client
          .tokenRenewSelf()
          .then((r: { auth?: { lease_duration?: number } }) => {
            this.stats.renewals++;
            const next = Number(r?.auth?.lease_duration ?? 0);
            if (next > 0) this.scheduleRenewal(next);
          })
          .catch((err: unknown) => {
            this.stats.renewalFailures++;
            this.opts.log.warn(
              { err: { message: this.describe(err, "auth/token/renew-self") } },
              "vault token renewal failed; logging in again",
            );
            this.loginPromise = undefined;
          });
      },
      Math.max(1000, seconds * 800),
    );
    this.renewTimer.unref();
  }

  private scheduleRelogin(seconds: number): void {
    clearTimeout(this.renewTimer);
    this.renewTimer = setTimeout(() => (this.loginPromise = undefined), Math.max(1000, seconds * 800));
    this.renewTimer.unref();
  }

  private ensureLogin(): Promise<void> {
    if (!this.loginPromise) {
      this.loginPromise = this.login().catch((err: unknown) => {
        this.loginPromise = undefined;
        throw err;
      });
    }
    return this.loginPromise;
  }

  /** Runs one Vault call with retries for retryable faults and one re-login on 403. */
  private async call<T>(what: string, path: string, fn: () => Promise<T>): Promise<T> {
    const retries = this.opts.retries ?? 2;
    let relogged = false;
    for (let attempt = 0; ; attempt++) {
      try {
        await this.ensureLogin();
        return await fn();
      } catch (err) {
        const canRetry = attempt < retries && !this.closed;
        if (err instanceof LeaseholdError) {
          // A login that failed for a fault (not a refusal) is tried again like any call.
          if (err.retryable && err.message === LOGIN_FAILED && canRetry) {
            await sleep(50 * 2 ** attempt + Math.random() * 50);
            continue;
          }
          throw err;
        }
        const status = statusOf(err);
        if (status === 403 && this.opts.auth.method !== "token" && !relogged) {
          relogged = true;
          this.loginPromise = undefined;
          continue;
        }
        if (isRetryable(err) && canRetry) {
          await sleep(50 * 2 ** attempt + Math.random() * 50);
          continue;
        }
        throw this.mapError(what, path, err);
      }
    }
  }

  private mapError(what: string, path: string, err: unknown): LeaseholdError {
    const status = statusOf(err);
    const detail = `${this.describe(err, path)} (${what})`;
    if (status === undefined || status >= 500) {
      return new LeaseholdError("upstream_unavailable", "the secret store (Vault) is unavailable", {
        detail,
        retryable: true,
      });
    }
    if (status === 403) {
      return new LeaseholdError("upstream_unavailable", "the sidecar's Vault token was refused", {
        detail,
        retryable: true,
      });
    }
    return new LeaseholdError("internal", "unexpected answer from Vault", { detail, retryable: false });
  }

  async read<T>(path: readonly string[]): Promise<KvEntry<T> | null> {
    const p = this.kvPath("data", path);
    const res = await this.call("read", p, () => absentOn404(this.client.read(p)));
    if (res === ABSENT) return null;
    const version = Number(res?.data?.metadata?.version);
    return { data: res.data.data as T, version };
  }

  async write<T extends object>(path: readonly string[], data: T, cas?: number): Promise<number> {
    const p = this.kvPath("data", path);
    const body = cas === undefined ? { data } : { data, options: { cas } };
    const res = await this.call("write", p, () =>
      this.client.write(p, body).catch((err: unknown) => {
        if (statusOf(err) === 400 && /check-and-set/.test(JSON.stringify(vaultBody(err)))) {
          throw new LeaseholdError("conflict", "the record changed concurrently", {
            detail: `${this.describe(err, p)} (write)`,
          });
        }
        throw err;
      }),
    );
    return Number(res?.data?.version);
  }

  async list(path: readonly string[]): Promise<string[]> {
    const p = this.kvPath("metadata", path);
    const res = await this.call("list", p, () => absentOn404(this.client.list(p)));
    if (res === ABSENT) return [];
    const keys = res?.data?.keys;
    return Array.isArray(keys) ? keys.map((k) => decodeURIComponent(String(k))) : [];
  }

  async remove(path: readonly string[]): Promise<void> {
    const p = this.kvPath("metadata", path);
    await this.call("remove", p, () => this.client.delete(p));
  }

  async ready(): Promise<boolean> {
    return (await this.health()).ok;
  }

  /** Reachable, initialized, unsealed, and the sidecar's token (or login) accepted; else why not. */
  async health(): Promise<DependencyHealth> {
    const where = `vault ${withoutUserinfo(this.opts.address)}`;
    try {
      const h = await this.client.health({ standbyok: true });
      if (h?.sealed === true) return { ok: false, reason: `${where}: sealed` };
      if (h?.initialized !== true) return { ok: false, reason: `${where}: not initialized` };
    } catch (err) {
      return { ok: false, reason: this.describe(err) };
    }
    try {
      await this.ensureLogin();
    } catch (err) {
      return { ok: false, reason: (err as LeaseholdError).detail ?? this.describe(err) };
    }
    try {
      await this.client.tokenLookupSelf();
      return { ok: true };
    } catch (err) {
      return { ok: false, reason: this.describe(err, "auth/token/lookup-self") };
    }
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.renewTimer);
    this.agents.httpAgent.destroy();
    this.agents.httpsAgent.destroy();
  }
}
