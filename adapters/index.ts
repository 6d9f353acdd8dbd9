export type {
  Adapter,
  AdapterContext,
  AdapterLogger,
  Credential,
  PasswordChange,
  PasswordConstraints,
  Verdict,
} from "./adapter.js";
export { AdapterError } from "./adapter.js";
export { builtinAdapters, getAdapter } from "./registry.js";
export {
  AdminSessionPool,
  type AdminSessionDriver,
  type AdminSessionPoolOptions,
  type AdminSessionStats,
  adminSessionKey,
  adminSessions,
  closeAdminSessions,
} from "./admin-sessions.js";
