#!/bin/sh
# compose.yaml's one-shot Vault setup (dev mode only): the leasehold policy, and an AppRole
# whose role id and secret id are the fixed demo values the sidecar is started with.
# A real deployment creates the secret id with `vault write -f auth/approle/role/leasehold/secret-id`
# and delivers it to the sidecar's environment out of band.
set -eu
vault policy write leasehold /deploy/vault-policy.hcl
vault auth list -format=json | grep -q '"approle/"' || vault auth enable approle
vault write auth/approle/role/leasehold \
  token_policies=leasehold token_ttl=1h token_max_ttl=24h secret_id_num_uses=0
vault write auth/approle/role/leasehold/role-id role_id="$LEASEHOLD_ROLE_ID"
# On a second `docker compose up` against the same Vault the secret id is already registered.
vault write auth/approle/role/leasehold/custom-secret-id secret_id="$LEASEHOLD_SECRET_ID" >/dev/null 2>&1 ||
  echo "vault-init: the secret id was already registered"
echo "vault-init: policy leasehold and AppRole leasehold are ready"
