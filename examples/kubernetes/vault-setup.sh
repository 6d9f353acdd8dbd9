#!/bin/sh
# Vault's side of examples/kubernetes (run once, with a Vault token allowed to configure auth
# methods and policies; VAULT_ADDR set). The sidecar logs in with its pod's projected token of
# audience "vault"; the role binds it to the service account agents/reporter.
set -eu
here=$(dirname "$0")

vault auth list -format=json | grep -q '"kubernetes/"' || vault auth enable kubernetes
# Vault reviews the tokens it is shown with the TokenReview API: give it the cluster's address
# (and, when Vault runs outside the cluster, kubernetes_ca_cert and a token_reviewer_jwt).
vault write auth/kubernetes/config kubernetes_host="${KUBERNETES_HOST:-https://kubernetes.default.svc:443}"

# Least privilege: the sidecar's KV v2 prefix only (docs/operations.md).
vault policy write leasehold "$here/../../deploy/vault-policy.hcl"

vault write auth/kubernetes/role/leasehold-sidecar \
  bound_service_account_names=reporter \
  bound_service_account_namespaces=agents \
  audience=vault \
  token_policies=leasehold \
  token_ttl=1h token_max_ttl=24h
