import { readFile } from "node:fs/promises";
import { parsePolicyContext } from "./policy-context.js";
import { loadPolicy } from "./policy-engine.js";
import { compilePolicyText } from "./policy-set.js";
import { POLICY_ACTIONS, type PolicyAction, type PolicyDecision } from "./types.js";

/** A request as the CLI gathers it: the context may be partial (defaults fill the rest). */
export interface OfflineCheckRequest {
  principal: string;
  action: string;
  resource: string;
  context?: unknown;
  principalAttrs?: Record<string, unknown>;
  principalGroups?: string[];
  resourceGroups?: string[];
  now?: number;
}

export interface PolicyFileValidation {
  ok: boolean;
  errors: string[];
  warnings: string[];
  /** Ids decisions would cite, when the file is valid. */
  policies: string[];
}

/**
 * Validates a policy file against the schema, for `leasehold policy validate`.
 * Never throws: an unreadable file is reported in `errors`.
 */
export async function validatePolicyFile(file: string): Promise<PolicyFileValidation> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    return {
      ok: false,
      errors: [`cannot read ${file}: ${(err as Error).message}`],
      warnings: [],
      policies: [],
    };
  }
  const compiled = compilePolicyText(text);
  if (!compiled.ok) return { ok: false, errors: compiled.errors, warnings: [], policies: [] };
  return { ok: true, errors: [], warnings: compiled.warnings, policies: compiled.ids };
}

/**
 * Decides one request against a policy file without a running sidecar, for
 * `leasehold policy check`. A missing file denies ("no policy file").
 * @throws PolicyLoadError for an invalid file; Error for an unknown action or a bad context.
 */
export async function checkPolicyOffline(
  file: string | undefined,
  request: OfflineCheckRequest,
): Promise<PolicyDecision> {
  if (!(POLICY_ACTIONS as readonly string[]).includes(request.action)) {
    throw new Error(`unknown action "${request.action}"; expected one of ${POLICY_ACTIONS.join(", ")}`);
  }
  const parsed = parsePolicyContext(request.context, request.now);
  if (!parsed.ok) throw new Error(parsed.error);
  const engine = await loadPolicy(file === undefined ? {} : { file });
  return engine.decide({
    principal: request.principal,
    action: request.action as PolicyAction,
    resource: request.resource,
    context: parsed.context,
    principalAttrs: request.principalAttrs ?? {},
    principalGroups: request.principalGroups ?? [],
    resourceGroups: request.resourceGroups ?? [],
  });
}
