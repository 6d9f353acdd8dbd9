export { type ApprovalView, approvalView } from "./approval-view.js";
export { attestedCaller, type CallerBindingOptions, requirePinnedCaller } from "./caller-binding.js";
export type { CheckoutOk, CheckoutPending } from "./checkout.js";
export { DecisionGate, type DecisionRequest, type PassedDecision } from "./decision-gate.js";
export type { PresentedToken } from "./lease-auth.js";
export type { RevokeGate } from "./lease-end.js";
export { LeaseService, type LeaseServiceOptions } from "./lease-service.js";
export { type LeaseView, leaseView } from "./lease-view.js";
export {
  ADMIN_OPERATOR,
  type Operator,
  type OperatorAction,
  OperatorService,
  type OperatorServiceOptions,
} from "./operator-service.js";
export type * from "./ports.js";
export type { RequestMeta } from "./request-meta.js";
export * from "./requests.js";
export { ResourceService } from "./resource-service.js";
export { parseBody } from "./validate.js";
