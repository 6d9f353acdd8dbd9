/** Vault layout under the configured prefix (DESIGN.md). */
export const vaultPaths = {
  resources: (): string[] => ["resources"],
  config: (name: string): string[] => ["resources", name, "config"],
  admin: (name: string): string[] => ["resources", name, "admin"],
  accounts: (name: string): string[] => ["resources", name, "accounts"],
  account: (name: string, account: string): string[] => ["resources", name, "accounts", account],
  /** The one-owner-per-account index: one entry per account on a target, keyed by its identity's hash. */
  owners: (): string[] => ["owners"],
  owner: (key: string): string[] => ["owners", key],
};
