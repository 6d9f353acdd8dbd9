export type { DependencyHealth, KvEntry, SecretStore } from "./types.js";
export { describeVaultError } from "./vault-errors.js";
export { type VaultAuth, VaultStore, type VaultStoreOptions } from "./vault-store.js";
