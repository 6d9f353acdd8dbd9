/**
 * The agent SDK of leasehold (`leasehold/client`): check out a credential for one task, use
 * it, and always give it back.
 *
 * ```ts
 * import { createClient } from "leasehold/client";
 * const lh = createClient({ url: "http://127.0.0.1:7733", keyFile: "./agent.key.jwk" });
 * const total = await lh.withCredential(
 *   "orders-db",
 *   { task: { id: "TICKET-123" }, intent: { action: "read", tool: "psql" }, ttl: 300 },
 *   async (cred) => queryWith(cred.username, cred.password),
 * );
 * ```
 */
export { createClient } from "./client.js";
export { clientOptionsFromEnv } from "./env.js";
export { identityFetch, type IdentityFetchOptions } from "./identity-fetch.js";
export { toolCallDigest } from "./digest.js";
export {
  type ClientErrorCode,
  LeaseholdClientError,
  type LeaseholdClientErrorCode,
  type LeaseholdClientErrorOptions,
  type LeaseholdErrorDetail,
  type ServerErrorCode,
} from "./errors.js";
export type {
  ActClaim,
  AgentRequestOptions,
  CatalogResource,
  CheckoutRequest,
  ClientOptions,
  CompleteTaskOptions,
  Credential,
  Lease,
  LeaseHandle,
  LeaseholdClient,
  ProxyConnection,
  ProxyEndpoint,
  ToolCall,
} from "./types.js";
