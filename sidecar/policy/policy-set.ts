import {
  type DetailedError,
  policySetTextToParts,
  policyToJson,
  validate,
} from "@cedar-policy/cedar-wasm/nodejs";
import { POLICY_SCHEMA } from "./schema.js";

/** A validated policy set, keyed by the ids decisions will cite. */
export interface CompiledPolicySet {
  /** Policy text by id: the `@id` annotation, else Cedar's `policyN` (N = position in the file). */
  policies: Record<string, string>;
  ids: string[];
  warnings: string[];
}

export type CompileResult = ({ ok: true } & CompiledPolicySet) | { ok: false; errors: string[] };

/**
 * Parses Cedar policy text, validates it against {@link POLICY_SCHEMA} in strict
 * mode and keys each policy by its `@id` (or Cedar's default `policyN`).
 * Templates and duplicate ids are refused. Messages carry line and column.
 */
export function compilePolicyText(text: string): CompileResult {
  const parts = policySetTextToParts(text);
  if (parts.type === "failure") return { ok: false, errors: parts.errors.map((e) => describe(e, text)) };
  if (parts.policy_templates.length > 0) {
    return {
      ok: false,
      errors: ["templates (policies with ?principal or ?resource slots) are not supported"],
    };
  }

  // policySetTextToParts returns the policies sorted by their default id
  // (policy0, policy1, policy10, ...), so sorting those ids the same way
  // recovers which default id each part had.
  const defaultIds = parts.policies.map((_, i) => `policy${i}`).sort();
  const displayIds = new Map<string, string>();
  const policies: Record<string, string> = {};
  const errors: string[] = [];
  parts.policies.forEach((policy, i) => {
    const defaultId = defaultIds[i] ?? `policy${i}`;
    const json = policyToJson(policy);
    const annotated = json.type === "success" ? json.json.annotations?.id : undefined;
    const id = annotated ?? defaultId;
    if (Object.hasOwn(policies, id)) errors.push(`duplicate policy id "${id}"`);
    policies[id] = policy;
    displayIds.set(defaultId, id);
  });
  if (errors.length > 0) return { ok: false, errors };

  const answer = validate({
    schema: POLICY_SCHEMA,
    policies: { staticPolicies: text },
    validationSettings: { mode: "strict" },
  });
  if (answer.type === "failure") return { ok: false, errors: answer.errors.map((e) => describe(e, text)) };
  if (answer.validationErrors.length > 0) {
    const messages = answer.validationErrors.map(
      // The same mistake is reported once per action the policy may apply to; say it once.
      (v) =>
        `${displayIds.get(v.policyId) ?? v.policyId}: ${describe(v.error, text).replace(/ for Action::"[a-z_]+"/, "")}`,
    );
    return { ok: false, errors: [...new Set(messages)] };
  }
  const ids = [...displayIds.values()];
  const warnings = [
    ...answer.validationWarnings.map(
      (w) => `${displayIds.get(w.policyId) ?? w.policyId}: ${describe(w.error, text)}`,
    ),
    ...answer.otherWarnings.map((w) => describe(w, text)),
  ];
  return { ok: true, policies, ids, warnings };
}

/** One line per Cedar message: position, message, help. */
function describe(error: DetailedError, text: string): string {
  const at = error.sourceLocations?.[0];
  const where = at === undefined ? "" : `${position(text, at.start)}: `;
  const label = at?.label ? ` (${at.label})` : "";
  const help = error.help ? ` (${error.help})` : "";
  return `${where}${error.message}${label}${help}`;
}

function position(text: string, offset: number): string {
  // Cedar reports byte offsets into the UTF-8 text.
  const before = Buffer.from(text, "utf8").subarray(0, offset).toString("utf8");
  const line = before.split("\n").length;
  const column = before.length - before.lastIndexOf("\n");
  return `line ${line}, column ${column}`;
}
