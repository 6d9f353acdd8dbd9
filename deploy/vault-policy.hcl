# The Vault policy leasehold's sidecar needs, and nothing more (docs/operations.md).
# Written for vault.mount "secret" and vault.prefix "leasehold"; replace both if yours differ.
#
#   vault policy write leasehold deploy/vault-policy.hcl

# Registrations, admin credentials and account records: read, and write with check-and-set.
# Also the cluster's lease-token public keys (leasehold/cluster/lease-token-keys/<kid>): each
# sidecar writes its own and reads the others' (only Vault and the own key file are trusted).
path "secret/data/leasehold/*" {
  capabilities = ["create", "read", "update"]
}

# Listing resources, accounts and the cluster's lease-token keys; removing a registration, a
# released ownership entry (leasehold/owners/<sha256>), or a lease-token key expired a TTL ago
# (DELETE on metadata removes every version of that key). An account record is removed only
# when a failed registration is undone and the record provably holds no usable password.
path "secret/metadata/leasehold/*" {
  capabilities = ["list", "delete"]
}

# Looking up and renewing its own token comes from Vault's built-in "default" policy;
# keep it attached (token_no_default_policy = false, the default).
