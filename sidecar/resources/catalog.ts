import type { Credential } from "../../adapters/adapter.js";
import type { SecretStore } from "../secrets/index.js";
import type { AdminRecord, StoredRegistration } from "./types.js";
import { vaultPaths } from "./vault-paths.js";

/**
 * Registrations, read from Vault and cached. Vault is the truth, so a second sidecar (or a
 * restarted one) sees every registration; a miss re-reads Vault.
 */
export class ResourceCatalog {
  private readonly cache = new Map<string, StoredRegistration>();

  constructor(private readonly secrets: SecretStore) {}

  /** Loads every registration from Vault. */
  async load(): Promise<StoredRegistration[]> {
    const names = (await this.secrets.list(vaultPaths.resources()))
      .filter((n) => n.endsWith("/"))
      .map((n) => n.slice(0, -1));
    this.cache.clear();
    for (const name of names) {
      const entry = await this.secrets.read<StoredRegistration>(vaultPaths.config(name));
      if (entry) this.cache.set(name, entry.data);
    }
    return this.all();
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
  }

  async remove(name: string): Promise<void> {
    await this.secrets.remove(vaultPaths.config(name));
    await this.secrets.remove(vaultPaths.admin(name));
    this.cache.delete(name);
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
