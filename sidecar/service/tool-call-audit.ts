import type { RequestMeta } from "./request-meta.js";
import type { ToolCallRequest } from "./requests.js";

/**
 * The audit fields of a reported tool call (tool, intent, target, digest, client) and the request
 * it came in: shared by the `tool_call` records with a lease and without one.
 */
export function toolCallFields(req: ToolCallRequest, meta: RequestMeta) {
  return {
    tool: req.tool,
    intent: req.action,
    target: req.target,
    digest: req.digest,
    client: req.client,
    request_id: meta.requestId,
  };
}
