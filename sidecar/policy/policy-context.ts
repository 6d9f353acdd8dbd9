import {
  ACTIONS_WITH_OWN_CONTEXT,
  type ContextField,
  isContextField,
  POLICY_CONTEXT_FIELDS,
  type PolicyContext,
  toCedarContext,
} from "./context-fields.js";

/**
 * A neutral context for offline checks (`policy check`, operator actions): each required field
 * at its offline default (empty strings, zero counts, the UTC hour of `now`, nothing approved),
 * optional fields absent.
 */
export function defaultPolicyContext(now: number = Date.now()): PolicyContext {
  const out: Record<string, unknown> = {};
  for (const [name, field] of Object.entries<ContextField>(POLICY_CONTEXT_FIELDS)) {
    if (field.optional) continue;
    out[name] = typeof field.offline === "function" ? field.offline(now) : field.offline;
  }
  return out as PolicyContext;
}

/**
 * Reads a partial context (e.g. `policy check --context JSON`) over the defaults.
 * Unknown fields and wrong types are reported by name.
 */
export function parsePolicyContext(
  input: unknown,
  now: number = Date.now(),
): { ok: true; context: PolicyContext } | { ok: false; error: string } {
  if (input === undefined) return { ok: true, context: defaultPolicyContext(now) };
  if (typeof input !== "object" || input === null || Array.isArray(input)) {
    return { ok: false, error: "context must be a JSON object" };
  }
  const defaults = defaultPolicyContext(now) as Record<string, unknown>;
  const merged: Record<string, unknown> = { ...defaults };
  for (const [name, value] of Object.entries(input)) {
    if (!isContextField(name)) return { ok: false, error: `unknown context field "${name}"` };
    const field: ContextField = POLICY_CONTEXT_FIELDS[name];
    // A record field given in part keeps its other members' defaults; unknown members are named.
    if (field.type === "Record" && typeof value === "object" && value !== null && !Array.isArray(value)) {
      for (const member of Object.keys(value)) {
        if (!Object.hasOwn(field.members, member))
          return { ok: false, error: `unknown context field "${name}.${member}"` };
      }
      merged[name] = { ...(defaults[name] as object), ...value };
    } else merged[name] = value;
  }
  const context = merged as PolicyContext;
  // Every field is checked, also those only some actions' context has (`statement_kind`).
  for (const action of [undefined, ...ACTIONS_WITH_OWN_CONTEXT]) {
    const checked = toCedarContext(context, action);
    if (typeof checked === "string") return { ok: false, error: checked };
  }
  return { ok: true, context };
}
