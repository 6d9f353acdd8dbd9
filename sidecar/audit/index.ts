export { auditFileSet, groupAuditFiles, rotatedFiles } from "./audit-files.js";
export { createAuditKey, loadAuditKey, MIN_AUDIT_KEY_BYTES } from "./audit-key.js";
export { AuditLog } from "./audit-log.js";
export {
  AuditStreamMirror,
  DEFAULT_STREAM_MAXLEN,
  readAuditStream,
  type StreamRecord,
} from "./audit-mirror.js";
export { type AuditRouteDeps, auditQuerySchema, registerAuditRoutes } from "./audit-routes.js";
export { canonicalJson } from "./canonical.js";
export { GENESIS, hashRecord, hmacMatches, recordHmac, sealLine, sealRecord } from "./chain.js";
export {
  type AuditPage,
  type AuditQuery,
  DEFAULT_QUERY_LIMIT,
  MAX_QUERY_LIMIT,
  parseTimeBound,
  queryAudit,
  type TimeBound,
  unknownEventProblem,
} from "./query.js";
export {
  type AuditRecordShape,
  auditRecordJsonSchema,
  auditRecordSchema,
  checkAuditRecord,
} from "./record-schema.js";
export { RecordTemplate, type TemplateValue, TemplatedFields } from "./record-template.js";
export { REDACTED_JWT } from "./scrub.js";
export type * from "./types.js";
export { AUDIT_DECISIONS, AUDIT_EVENTS } from "./types.js";
export {
  ChainChecker,
  type VerifyOptions,
  type VerifyResult,
  verifyAuditFile,
  verifyAuditFiles,
} from "./verify.js";
