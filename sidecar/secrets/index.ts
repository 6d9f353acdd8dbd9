export type { KvEntry, SecretStore } from "./types.js";
export { type VaultAuth, VaultStore, type VaultStoreOptions } from "./vault-store.js";
