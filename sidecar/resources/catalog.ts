import type { Credential } from "../../adapters/adapter.js";
import type { SecretStore } from "../secrets/index.js";
import type { AdminRecord, StoredRegistration } from "./types.js";
import { vaultPaths } from "./vault-paths.js";

/**
 * Registrations, read from Vault and cached. Vault is the truth, so a second sidecar (or a
 * restarted one) sees every registration; a miss re-reads Vault. A load reads into a new map and
 * swaps it in whole, so a reader never sees a partial list; loads asked for while one runs share
 * it, and registrations made here while it runs are kept over what it read.
 */
export class ResourceCatalog {
  private cache = new Map<string, StoredRegistration>();
  #loading: Promise<StoredRegistration[]> | undefined;
  /** Registrations put (or removed: null) through this catalog while a load runs. */
  #changes: Map<string, StoredRegistration | null> | undefined;
  #loadedAt = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly secrets: SecretStore,
    private readonly now: () => number = Date.now,
  ) {}

  /** Loads every registration from Vault; while a load runs, callers share it. */
  load(): Promise<StoredRegistration[]> {
    this.#loading ??= this.read().finally(() => {
      this.#loading = undefined;
    });
    return this.#loading;
  }

  /**
   * Every registration, from the cache when a load finished within `maxAgeMs` (registrations
   * made through this sidecar are in it at once; another sidecar's within `maxAgeMs`), else
   * loaded.
   */
  recent(maxAgeMs: number): Promise<StoredRegistration[]> {
    if (this.#loading === undefined && this.now() - this.#loadedAt <= maxAgeMs) {
      return Promise.resolve(this.all());
    }
    return this.load();
  }

  private async read(): Promise<StoredRegistration[]> {
    const changes = new Map<string, StoredRegistration | null>();
    this.#changes = changes;
    try {
      const names = (await this.secrets.list(vaultPaths.resources()))
        .filter((n) => n.endsWith("/"))
        .map((n) => n.slice(0, -1));
      const next = new Map<string, StoredRegistration>();
      for (const name of names) {
        const entry = await this.secrets.read<StoredRegistration>(vaultPaths.config(name));
        if (entry) next.set(name, entry.data);
      }
      for (const [name, reg] of changes) {
        if (reg === null) next.delete(name);
        else next.set(name, reg);
      }
      this.cache = next;
      this.#loadedAt = this.now();
      return this.all();
    } finally {
      this.#changes = undefined;
    }
  }

  all(): StoredRegistration[] {
    return [...this.cache.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  async get(name: string): Promise<StoredRegistration | null> {
    const hit = this.cache.get(name);
    if (hit) return hit;
    const entry = await this.secrets.read<StoredRegistration>(vaultPaths.config(name));
    if (!entry) return null;
    this.cache.set(name, entry.data);
    return entry.data;
  }

  async put(reg: StoredRegistration): Promise<void> {
    await this.secrets.write(vaultPaths.config(reg.name), reg);
    this.cache.set(reg.name, reg);
    this.#changes?.set(reg.name, reg);
  }

  async remove(name: string): Promise<void> {
    await this.secrets.remove(vaultPaths.config(name));
    await this.secrets.remove(vaultPaths.admin(name));
    this.cache.delete(name);
    this.#changes?.set(name, null);
  }

  /** The admin credential of a resource, from Vault; undefined in self mode. */
  async admin(name: string): Promise<Credential | undefined> {
    const entry = await this.secrets.read<AdminRecord>(vaultPaths.admin(name));
    return entry ? { username: entry.data.username, password: entry.data.password } : undefined;
  }

  /**
   * The admin credentials worth trying, read from Vault now: the one in force, then the
   * password an admin rotation in flight is setting (which the target may already have).
   */
  async adminCandidates(name: string): Promise<Credential[]> {
    const entry = await this.secrets.read<AdminRecord>(vaultPaths.admin(name));
    if (!entry) return [];
    const { username, password, pending_password: pending } = entry.data;
    const out: Credential[] = [{ username, password }];
    if (pending && pending !== password) out.push({ username, password: pending });
    return out;
  }
}
