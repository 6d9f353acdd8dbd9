export {
  buildPolicyContext,
  type CallerFacts,
  cedarTypeOf,
  type ContextField,
  type ContextFieldType,
  type RecordMember,
  UNATTESTED_CALLER,
  POLICY_CONTEXT_FIELDS,
  type PolicyContext,
  type PolicyFacts,
  type StatementFacts,
} from "./context-fields.js";
export { defaultPolicyContext, parsePolicyContext } from "./policy-context.js";
export { loadPolicy } from "./policy-engine.js";
export { PolicyLoadError } from "./policy-load-error.js";
export {
  checkPolicyOffline,
  type OfflineCheckRequest,
  type PolicyFileValidation,
  validatePolicyFile,
} from "./policy-offline.js";
export { AGENT_ATTRIBUTES, type AttributeType, POLICY_SCHEMA, RESOURCE_ATTRIBUTES } from "./schema.js";
export {
  type LoadPolicyOptions,
  POLICY_ACTIONS,
  type PolicyAction,
  type PolicyDecision,
  type PolicyEngine,
  type PolicyOutlook,
  type PolicyPartialRequest,
  type PolicyReloadResult,
  type PolicyRequest,
} from "./types.js";
