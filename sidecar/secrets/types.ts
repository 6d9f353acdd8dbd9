/** One KV v2 entry and its version (the version is the fencing token for CAS writes). */
export interface KvEntry<T> {
  readonly data: T;
  readonly version: number;
}

/** A dependency's state for `/readyz` and start-up: usable, or the reason it is not. */
export type DependencyHealth = { readonly ok: true } | { readonly ok: false; readonly reason: string };

/**
 * The durable secret store (Vault KV v2). Paths are relative to the configured prefix,
 * as segments, so that no caller builds a Vault URL by hand.
 */
export interface SecretStore {
  /** null when the key does not exist (or its latest version is deleted). */
  read<T>(path: readonly string[]): Promise<KvEntry<T> | null>;
  /**
   * Writes a new version. With `cas`, the write succeeds only if the current version equals it
   * (0 = create only) and otherwise throws LeaseholdError("conflict").
   */
  write<T extends object>(path: readonly string[], data: T, cas?: number): Promise<number>;
  /** Direct children of a folder; folders end with "/". Empty when there is nothing. */
  list(path: readonly string[]): Promise<string[]>;
  /** Deletes a key with all its versions. */
  remove(path: readonly string[]): Promise<void>;
  /** True when Vault is reachable, unsealed and the token works (`health().ok`). */
  ready(): Promise<boolean>;
  /**
   * Whether Vault is reachable, unsealed and the token works; if not, why, naming the address
   * and the cause (`vault http://127.0.0.1:8200: sealed`), never the token.
   */
  health(): Promise<DependencyHealth>;
  close(): void;
}
