import { toCedarContext } from "./cedar-request.js";
import type { PolicyContext } from "./types.js";

/** A neutral context for offline checks: empty strings, zero counts, the current UTC hour, nothing approved. */
export function defaultPolicyContext(now: number = Date.now()): PolicyContext {
  return {
    task_id: "",
    intent: "",
    tool: "",
    ttl: 0,
    hour_utc: new Date(now).getUTCHours(),
    active_leases: 0,
    approved: false,
    dpop: false,
  };
}

const KNOWN_FIELDS = new Set([
  "task_id",
  "intent",
  "tool",
  "ttl",
  "hour_utc",
  "active_leases",
  "approved",
  "dpop",
  "delegated_by",
]);

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
  for (const name of Object.keys(input)) {
    if (!KNOWN_FIELDS.has(name)) return { ok: false, error: `unknown context field "${name}"` };
  }
  const context = { ...defaultPolicyContext(now), ...(input as Partial<PolicyContext>) };
  const checked = toCedarContext(context);
  if (typeof checked === "string") return { ok: false, error: checked };
  return { ok: true, context };
}
