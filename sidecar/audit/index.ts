export { AuditLog, GENESIS, hashRecord, type VerifyResult, verifyAuditFile } from "./audit-log.js";
export { canonicalJson } from "./canonical.js";
export type * from "./types.js";
