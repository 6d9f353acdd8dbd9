import type { CedarValueJson, Context, EntityJson } from "@cedar-policy/cedar-wasm/nodejs";
import { fitsCedarType } from "./cedar-value.js";
import { toCedarContext } from "./context-fields.js";
import { AGENT_ATTRIBUTES, type AttributeType, RESOURCE_ATTRIBUTES } from "./schema.js";
import { POLICY_ACTIONS, type PolicyRequest } from "./types.js";

export interface CedarRequest {
  entities: EntityJson[];
  context: Context;
}

/**
 * Turns a request into Cedar entities and context. Undeclared or mistyped
 * attributes are dropped (strict schemas refuse them); a malformed context is
 * an error, since no policy could be evaluated on it.
 */
export function toCedarRequest(
  req: PolicyRequest,
): { ok: true; value: CedarRequest } | { ok: false; error: string } {
  const entities = toCedarEntities(req);
  if (typeof entities === "string") return { ok: false, error: entities };
  const context = toCedarContext(req.context, req.action);
  if (typeof context === "string") return { ok: false, error: context };
  return { ok: true, value: { entities, context } };
}

/**
 * The request's principal and resource as Cedar entities (undeclared or mistyped attributes
 * dropped), or a message naming what is malformed: the action, the principal or the resource.
 */
export function toCedarEntities(req: Omit<PolicyRequest, "context">): EntityJson[] | string {
  if (!(POLICY_ACTIONS as readonly string[]).includes(req.action)) {
    return `unknown action ${JSON.stringify(req.action)}`;
  }
  if (typeof req.principal !== "string" || req.principal.length === 0) {
    return "principal must be a non-empty string";
  }
  if (typeof req.resource !== "string" || req.resource.length === 0) {
    return "resource must be a non-empty string";
  }
  return [
    {
      uid: { type: "Agent", id: req.principal },
      attrs: pickAttributes(req.principalAttrs, AGENT_ATTRIBUTES),
      parents: groups(req.principalGroups).map((id) => ({ type: "AgentGroup", id })),
    },
    {
      uid: { type: "Resource", id: req.resource },
      attrs: pickAttributes(req.resourceAttrs, RESOURCE_ATTRIBUTES),
      parents: groups(req.resourceGroups).map((id) => ({ type: "ResourceGroup", id })),
    },
  ];
}

function pickAttributes(
  attrs: Record<string, unknown> | undefined,
  declared: Readonly<Record<string, AttributeType>>,
): Record<string, CedarValueJson> {
  const out: Record<string, CedarValueJson> = {};
  if (attrs === undefined || attrs === null) return out;
  for (const [name, type] of Object.entries(declared)) {
    const value = attrs[name];
    if (fitsCedarType(value, type)) out[name] = value as CedarValueJson;
  }
  return out;
}

function groups(ids: string[] | undefined): string[] {
  return (ids ?? []).filter((id) => typeof id === "string" && id.length > 0);
}
