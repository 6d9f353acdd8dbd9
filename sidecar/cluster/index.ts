export { CLUSTER_VAULT_PATH, ClusterIdentity, type ClusterState } from "./cluster-identity.js";
export { redisKeyspaceName, vaultPrefixName } from "./names.js";
export { ClusterDesk, type ClusterView } from "./cluster-desk.js";
