import { hash, randomBytes } from "node:crypto";
import type { AdapterLogger, Credential } from "./adapter.js";
import { AdapterError } from "./adapter.js";

/** How an adapter opens, checks and closes one authenticated admin connection. */
export interface AdminSessionDriver<S> {
  /** Opens a connection and authenticates as the admin; rejects with an AdapterError. */
  open(): Promise<S>;
  /** False once the connection is known to be closed, failed or no longer authenticated. */
  isOpen(session: S): boolean;
  /** Closes the connection; never throws. */
  close(session: S): void | Promise<void>;
  /** Lets an idle connection's socket stop keeping the process alive (`idle`), or keep it again. */
  setIdle?(session: S, idle: boolean): void;
}

export interface AdminSessionPoolOptions {
  /** An idle connection is closed after this long unused, ms. @default 30000 */
  idleMs?: number;
  /**
   * A connection is not reused once this old, ms: the server checked the admin credential when
   * it was opened, so this bounds how long a revoked credential or privilege keeps working.
   * @default 60000
   */
  maxAgeMs?: number;
  /** Clock, for tests. @default Date.now */
  now?: () => number;
}

/** Counters for one adapter id, for tests and diagnostics. */
export interface AdminSessionStats {
  /** Connections opened (and authenticated). */
  opened: number;
  /** Calls served by an idle connection. */
  reused: number;
  /** Reused connections found dead on use, after which the call ran once more on a new one. */
  retried: number;
}

interface Entry {
  readonly key: string;
  readonly adapter: string;
  readonly session: unknown;
  readonly driver: AdminSessionDriver<unknown>;
  readonly openedAt: number;
  readonly generation: string;
}

interface Idle {
  readonly entry: Entry;
  readonly timer: NodeJS.Timeout;
}

/** Refusals the server gave on purpose: a fresh connection would be refused the same way. */
const DEFINITE = new Set<AdapterError["code"]>(["auth_failed", "privilege", "password_rejected", "invalid"]);

/** Mixed into every key digest, so keys mean nothing outside this process. */
const keySecret = randomBytes(32).toString("hex");

function digest(...parts: string[]): string {
  return hash("sha256", [keySecret, ...parts].join("\0"), "hex");
}

/**
 * The pool key for an admin connection of `adapter` to `target` as `admin`:
 * `<adapter>:<login>:<password>`, where `<login>` is a SHA-256 digest (keyed per process) of
 * the target's settings and the admin's user name, and `<password>` one of the admin's
 * password. Any change to one of them gives another key, so a changed admin credential
 * never reuses a connection opened with the old one; the key holds no secret. Computed
 * afresh on every call (a few microseconds): nothing is cached by object identity.
 */
export function adminSessionKey(adapter: string, target: unknown, admin: Credential): string {
  const login = digest("login", canonicalJson(target), admin.username);
  return `${adapter}:${login}:${digest("password", admin.password)}`;
}

/** The key without its password part: connections of the same admin to the same target. */
function loginOf(key: string): string {
  return key.slice(0, key.lastIndexOf(":"));
}

/** JSON with object keys sorted (undefined members left out), so equal settings give equal text. */
function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value) ?? "null";
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  const record = value as Record<string, unknown>;
  const members: string[] = [];
  for (const name of Object.keys(record).sort()) {
    if (record[name] !== undefined) members.push(`${JSON.stringify(name)}:${canonicalJson(record[name])}`);
  }
  return `{${members.join(",")}}`;
}

/**
 * Keeps at most one idle, authenticated admin connection per key. A call takes the idle
 * connection (so no two calls ever share one), or opens a new one when there is none; when
 * the call ends the connection goes back if the slot is free, else it is closed. A reused
 * connection that turns out dead is dropped and the call runs once more on a new one; a
 * refusal the server gave is never retried.
 */
export class AdminSessionPool {
  readonly #idle = new Map<string, Idle>();
  readonly #stats = new Map<string, AdminSessionStats>();
  readonly #idleMs: number;
  readonly #maxAgeMs: number;
  readonly #now: () => number;
  /** Bumped by closeAll, or per adapter by closeAdapter: connections in use then are closed when their call ends. */
  #generation = 0;
  readonly #adapterGenerations = new Map<string, number>();
  /** Keys of admin passwords no longer in force (see retire). */
  readonly #retired = new Set<string>();

  constructor(opts: AdminSessionPoolOptions = {}) {
    this.#idleMs = opts.idleMs ?? 30_000;
    this.#maxAgeMs = opts.maxAgeMs ?? 60_000;
    this.#now = opts.now ?? Date.now;
  }

  /**
   * Runs `work` on an admin connection for `key` (see {@link adminSessionKey}). `work` must
   * reject with AdapterErrors; any failure closes the connection it ran on.
   */
  async use<S, T>(
    key: string,
    driver: AdminSessionDriver<S>,
    work: (session: S) => Promise<T>,
    log?: AdapterLogger,
  ): Promise<T> {
    const adapter = key.slice(0, key.indexOf(":"));
    const stats = this.stats(adapter);
    const idle = this.#take(key);
    if (idle !== undefined) {
      stats.reused++;
      try {
        return await this.#run(key, idle, work);
      } catch (err) {
        if (!connectionLost(err, () => idle.driver.isOpen(idle.session))) throw err;
        stats.retried++;
        log?.debug(
          { adapter, code: err instanceof AdapterError ? err.code : "closed" },
          "admin connection was lost; retrying once on a new one",
        );
      }
    }
    const generation = this.#generationOf(adapter);
    const session = await driver.open();
    stats.opened++;
    this.#retired.delete(key);
    // The admin's password changed: a connection opened with the old one must not linger.
    this.#closeOtherPasswords(key);
    const entry: Entry = {
      key,
      adapter,
      session,
      driver: driver as AdminSessionDriver<unknown>,
      openedAt: this.#now(),
      generation,
    };
    return this.#run(key, entry, work);
  }

  /** Closes every idle connection; connections in use are closed when their call ends. */
  async closeAll(): Promise<void> {
    this.#generation++;
    const idle = [...this.#idle.values()];
    this.#idle.clear();
    for (const { timer } of idle) clearTimeout(timer);
    await Promise.all(idle.map(({ entry }) => closeEntry(entry)));
  }

  /** Closes the idle connections of one adapter id; its connections in use are closed when their call ends. */
  async closeAdapter(adapter: string): Promise<void> {
    this.#adapterGenerations.set(adapter, (this.#adapterGenerations.get(adapter) ?? 0) + 1);
    const closing: Promise<void>[] = [];
    for (const [key, { entry, timer }] of this.#idle) {
      if (entry.adapter !== adapter) continue;
      this.#idle.delete(key);
      clearTimeout(timer);
      closing.push(closeEntry(entry));
    }
    await Promise.all(closing);
  }

  /**
   * Closes the connections opened with `key` (see {@link adminSessionKey}): its admin password
   * is no longer in force (leasehold rotated it). The idle one is closed now; one in use is
   * closed when its call ends.
   */
  async retire(key: string): Promise<void> {
    this.#retired.add(key);
    // Bounded: a key is a digest of a random password, never used again after a while.
    if (this.#retired.size > 1024) this.#retired.delete(this.#retired.values().next().value as string);
    const idle = this.#idle.get(key);
    if (idle === undefined) return;
    this.#idle.delete(key);
    clearTimeout(idle.timer);
    await closeEntry(idle.entry);
  }

  /** The live counters of one adapter id. */
  stats(adapter: string): AdminSessionStats {
    let s = this.#stats.get(adapter);
    if (s === undefined) {
      s = { opened: 0, reused: 0, retried: 0 };
      this.#stats.set(adapter, s);
    }
    return s;
  }

  /** How many idle connections are kept now. */
  get idleCount(): number {
    return this.#idle.size;
  }

  #closeOtherPasswords(key: string): void {
    const login = loginOf(key);
    for (const [other, { entry, timer }] of this.#idle) {
      if (other === key || loginOf(other) !== login) continue;
      this.#idle.delete(other);
      clearTimeout(timer);
      void closeEntry(entry);
    }
  }

  async #run<T>(key: string, entry: Entry, work: (session: never) => Promise<T>): Promise<T> {
    let result: T;
    try {
      result = await work(entry.session as never);
    } catch (err) {
      // Closing a broken connection may wait on it; the caller (or its retry) must not.
      void closeEntry(entry);
      throw err;
    }
    this.#release(key, entry);
    return result;
  }

  /** The idle connection for `key` if it may still be used; drops one that may not. */
  #take(key: string): Entry | undefined {
    const idle = this.#idle.get(key);
    if (idle === undefined) return undefined;
    this.#idle.delete(key);
    clearTimeout(idle.timer);
    const { entry } = idle;
    if (!this.#reusable(entry)) {
      void closeEntry(entry);
      return undefined;
    }
    entry.driver.setIdle?.(entry.session, false);
    return entry;
  }

  /** Changes whenever closeAll or closeAdapter(adapter) runs. */
  #generationOf(adapter: string): string {
    return `${this.#generation}.${this.#adapterGenerations.get(adapter) ?? 0}`;
  }

  #reusable(entry: Entry): boolean {
    return (
      !this.#retired.has(entry.key) &&
      entry.generation === this.#generationOf(entry.adapter) &&
      this.#now() - entry.openedAt < this.#maxAgeMs &&
      entry.driver.isOpen(entry.session)
    );
  }

  #release(key: string, entry: Entry): void {
    if (this.#idle.has(key) || !this.#reusable(entry)) {
      void closeEntry(entry);
      return;
    }
    entry.driver.setIdle?.(entry.session, true);
    const timer = setTimeout(() => {
      if (this.#idle.get(key)?.entry !== entry) return;
      this.#idle.delete(key);
      void closeEntry(entry);
    }, this.#idleMs);
    timer.unref();
    this.#idle.set(key, { entry, timer });
  }
}

/**
 * True when a call on a reused connection failed because the connection is gone (the
 * server restarted or ended the session, the network dropped it), not because the server
 * refused the operation: only then is the call worth one more try on a new connection.
 */
function connectionLost(err: unknown, isOpen: () => boolean): boolean {
  if (!(err instanceof AdapterError)) return !isOpen();
  if (DEFINITE.has(err.code) || err.code === "timeout") return false;
  return err.code === "unreachable" || !isOpen();
}

async function closeEntry(entry: Entry): Promise<void> {
  try {
    // An idle socket no longer holds the process: hold it again until the close completes,
    // or the process could exit in the middle of an awaited close.
    entry.driver.setIdle?.(entry.session, false);
    await entry.driver.close(entry.session);
  } catch {
    // Closing is best effort: the connection is dropped either way.
  }
}

/** The pool the built-in adapters share. */
export const adminSessions = new AdminSessionPool();

/** Closes every pooled admin connection of the built-in adapters (call on shutdown). */
export function closeAdminSessions(): Promise<void> {
  return adminSessions.closeAll();
}

/** Stops or restores a socket's hold on the event loop; ignores anything that is not one. */
export function setSocketIdle(socket: unknown, idle: boolean): void {
  const s = socket as { ref?: unknown; unref?: unknown } | null | undefined;
  if (s === null || s === undefined) return;
  if (idle && typeof s.unref === "function") s.unref();
  if (!idle && typeof s.ref === "function") s.ref();
}
