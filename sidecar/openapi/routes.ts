import type { z } from "zod";
import { registrationSchema } from "../resources/types.js";
import { checkoutSchema, renewSchema, revokeSchema, toolCallSchema } from "../service/index.js";
import { approvalDecisionSchema, revokeAgentSchema, tokenExchangeSchema } from "./request-schemas.js";
import {
  acceptedSchema,
  adapterListSchema,
  approvalListSchema,
  approvalOneSchema,
  approvalPollSchema,
  auditPageSchema,
  checkoutCreatedSchema,
  checkoutPendingSchema,
  credentialSchema,
  healthSchema,
  jwksSchema,
  leaseListSchema,
  leaseManySchema,
  leaseOneSchema,
  leaseSchema,
  openApiDocumentSchema,
  tokenExchangeResultSchema,
  readySchema,
  registerResultSchema,
  removeResultSchema,
  resourceListSchema,
  resourceViewSchema,
  rotateResultSchema,
  verifyResultSchema,
} from "./response-schemas.js";

export type { RouteAuth, RouteDoc, RouteOwner, RouteResponse } from "../http/route.js";
export { ROUTES } from "../http/route-table.js";

/** Names of the request and response schemas in `components.schemas`. */
export const SCHEMA_NAMES = new Map<z.ZodType, string>([
  [checkoutSchema, "CheckoutRequest"],
  [renewSchema, "RenewRequest"],
  [toolCallSchema, "ToolCallRequest"],
  [revokeSchema, "RevokeRequest"],
  [revokeAgentSchema, "RevokeAgentRequest"],
  [approvalDecisionSchema, "ApprovalDecisionRequest"],
  [registrationSchema, "Registration"],
  [leaseSchema, "Lease"],
  [checkoutCreatedSchema, "CheckoutCreated"],
  [checkoutPendingSchema, "CheckoutPending"],
  [credentialSchema, "Credential"],
  [leaseOneSchema, "LeaseResult"],
  [leaseManySchema, "LeasesResult"],
  [leaseListSchema, "LeaseList"],
  [acceptedSchema, "Accepted"],
  [approvalPollSchema, "ApprovalPoll"],
  [approvalOneSchema, "ApprovalResult"],
  [approvalListSchema, "ApprovalList"],
  [resourceListSchema, "ResourceList"],
  [resourceViewSchema, "Resource"],
  [registerResultSchema, "RegisterResult"],
  [verifyResultSchema, "VerifyResult"],
  [rotateResultSchema, "RotateResult"],
  [removeResultSchema, "RemoveResult"],
  [adapterListSchema, "AdapterList"],
  [healthSchema, "Health"],
  [readySchema, "Ready"],
  [jwksSchema, "Jwks"],
  [auditPageSchema, "AuditPage"],
  [openApiDocumentSchema, "OpenApiDocument"],
  [tokenExchangeSchema, "TokenExchangeRequest"],
  [tokenExchangeResultSchema, "TokenExchangeResult"],
]);
