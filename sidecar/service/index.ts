export {
  approvalView,
  type CheckoutOk,
  type CheckoutPending,
  LeaseService,
  type LeaseServiceOptions,
  type PresentedToken,
  type RequestMeta,
} from "./lease-service.js";
export { type LeaseView, leaseView } from "./lease-view.js";
export {
  ADMIN_OPERATOR,
  type Operator,
  type OperatorAction,
  OperatorService,
  type OperatorServiceOptions,
} from "./operator-service.js";
export * from "./requests.js";
export { ResourceService } from "./resource-service.js";
export { parseBody } from "./validate.js";
