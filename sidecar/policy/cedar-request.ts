import type { CedarValueJson, Context, EntityJson } from "@cedar-policy/cedar-wasm/nodejs";
import { AGENT_ATTRIBUTES, type AttributeType, RESOURCE_ATTRIBUTES } from "./schema.js";
import { POLICY_ACTIONS, type PolicyContext, type PolicyRequest } from "./types.js";

export interface CedarRequest {
  entities: EntityJson[];
  context: Context;
}

const LONG_FIELDS = ["ttl", "hour_utc", "active_leases"] as const;
const STRING_FIELDS = ["task_id", "intent", "tool"] as const;
const BOOL_FIELDS = ["approved", "dpop"] as const;

/**
 * Turns a request into Cedar entities and context. Undeclared or mistyped
 * attributes are dropped (strict schemas refuse them); a malformed context is
 * an error, since no policy could be evaluated on it.
 */
export function toCedarRequest(
  req: PolicyRequest,
): { ok: true; value: CedarRequest } | { ok: false; error: string } {
  if (!(POLICY_ACTIONS as readonly string[]).includes(req.action)) {
    return { ok: false, error: `unknown action ${JSON.stringify(req.action)}` };
  }
  if (typeof req.principal !== "string" || req.principal.length === 0) {
    return { ok: false, error: "principal must be a non-empty string" };
  }
  if (typeof req.resource !== "string" || req.resource.length === 0) {
    return { ok: false, error: "resource must be a non-empty string" };
  }
  const context = toCedarContext(req.context);
  if (typeof context === "string") return { ok: false, error: context };
  const entities: EntityJson[] = [
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
  return { ok: true, value: { entities, context } };
}

/** The Cedar context, or a message naming the first bad field. */
export function toCedarContext(ctx: PolicyContext): Context | string {
  if (typeof ctx !== "object" || ctx === null) return "context is required";
  const out: Context = {};
  for (const name of STRING_FIELDS) {
    if (typeof ctx[name] !== "string") return `context.${name} must be a string`;
    out[name] = ctx[name];
  }
  for (const name of LONG_FIELDS) {
    if (!Number.isSafeInteger(ctx[name])) return `context.${name} must be an integer`;
    out[name] = ctx[name];
  }
  for (const name of BOOL_FIELDS) {
    if (typeof ctx[name] !== "boolean") return `context.${name} must be a boolean`;
    out[name] = ctx[name];
  }
  if (ctx.delegated_by !== undefined) {
    if (typeof ctx.delegated_by !== "string") return "context.delegated_by must be a string";
    out.delegated_by = ctx.delegated_by;
  }
  return out;
}

function pickAttributes(
  attrs: Record<string, unknown> | undefined,
  declared: Readonly<Record<string, AttributeType>>,
): Record<string, CedarValueJson> {
  const out: Record<string, CedarValueJson> = {};
  if (attrs === undefined || attrs === null) return out;
  for (const [name, type] of Object.entries(declared)) {
    const value = attrs[name];
    if (fits(value, type)) out[name] = value as CedarValueJson;
  }
  return out;
}

function fits(value: unknown, type: AttributeType): boolean {
  switch (type) {
    case "String":
      return typeof value === "string";
    case "Bool":
      return typeof value === "boolean";
    case "Long":
      return Number.isSafeInteger(value);
    case "Set<String>":
      return Array.isArray(value) && value.every((v) => typeof v === "string");
  }
}

function groups(ids: string[] | undefined): string[] {
  return (ids ?? []).filter((id) => typeof id === "string" && id.length > 0);
}
