import { LeaseholdError } from "../errors.js";
import { tokenExchangeSchema } from "../openapi/request-schemas.js";
import { tokenExchangeResultSchema } from "../openapi/response-schemas.js";
import { attestedCaller, requirePinnedCaller } from "../service/index.js";
import { appRoute } from "./app-deps.js";

/*
 * RFC 8693 token exchange: a delegator trades its own identity JWT for a short-lived, one-time
 * delegation token naming the agent that will act for it. The credential is the body's
 * `subject_token`, so the route needs no Authorization header.
 */

export const tokenExchangeRoute = appRoute({
  method: "POST",
  path: "/v1/token-exchange",
  operationId: "tokenExchange",
  tag: "agents",
  summary: "Delegate to another agent: a one-time delegation token (RFC 8693 token exchange)",
  description:
    "The delegator's own identity JWT is `subject_token` (spent by the exchange); `audience` is the acting agent's SPIFFE ID; `scope` (space-separated resource names) may only narrow the delegator's own. The actor then checks out with its own identity JWT and the delegation token in `X-Leasehold-Delegation`; policy sees the actor as principal and `context.on_behalf_of`. Audited.",
  auth: "none",
  body: tokenExchangeSchema,
  responses: { 200: { description: "the delegation token", schema: tokenExchangeResultSchema } },
  errors: ["unauthenticated", "policy_denied", "not_found"],
  handle: async ({ body, meta }, d) => {
    if (!d.tokenExchange) throw new LeaseholdError("not_found", "token exchange is not enabled");
    // The delegator's key may be pinned to local callers: a delegation is made only from one.
    const out = await d.tokenExchange(body, (delegator) =>
      requirePinnedCaller(delegator, attestedCaller(meta), d.audit, { request_id: meta.requestId }),
    );
    await d.audit?.append({
      event: "decision",
      scope: "token_exchange",
      agent: out.actor,
      agent_chain: out.onBehalfOf === out.delegator ? [out.delegator] : [out.delegator, out.onBehalfOf],
      decision: "allow",
      reason: out.scope ? `scope: ${out.scope.join(" ")}` : "scope: unrestricted",
      request_id: meta.requestId,
    });
    return out.issued;
  },
});
