export { PROXY_HOST, ProxyManager } from "./proxy-manager.js";
export type {
  AuditStatements,
  ProxyCredential,
  ProxyEndpoint,
  ProxyLeasePort,
  ProxyManagerOptions,
  ProxyProtocol,
  ProxyRequestMeta,
  ProxySyncReport,
  ProxyTls,
} from "./types.js";
