import { readFile } from "node:fs/promises";
import { setFlagsFromString } from "node:v8";
import {
  type AuthorizationAnswer,
  type Context,
  isAuthorizedPartial,
  type PolicyJson,
  policyToJson,
  preparsePolicySet,
  statefulIsAuthorized,
} from "@cedar-policy/cedar-wasm/nodejs";
import { type CedarRequest, toCedarEntities, toCedarRequest } from "./cedar-request.js";
import { partialContext } from "./context-fields.js";
import { PolicyLoadError } from "./policy-load-error.js";
import { scopeCanMatch } from "./policy-scope.js";
import { compilePolicyText } from "./policy-set.js";
import type {
  LoadPolicyOptions,
  PolicyDecision,
  PolicyEngine,
  PolicyOutlook,
  PolicyPartialRequest,
  PolicyReloadResult,
  PolicyRequest,
} from "./types.js";

// The CLI sets this flag first thing (sidecar/cli/v8-flags.ts: Node 20's V8 aborts when an
// optimized function that inlined a call into cedar-wasm deoptimizes). Set here too, before any
// decision runs hot, for every other process that decides in-process: the library API, benches
// and tests (bench/checkout.ts's in-process floor aborted without it on 2026-12-03).
setFlagsFromString("--no-turbo-inline-js-wasm-calls");

let engineSerial = 0;
const NO_IDS: readonly string[] = Object.freeze([]);

/** Partial answers kept per policy set; past this many the oldest go first. */
const OUTLOOK_CACHE_SIZE = 10_000;

type Active =
  | { kind: "deny_all"; reason: string }
  | {
      kind: "cedar";
      setId: string;
      ids: string[];
      mentionsApproved: boolean;
      /**
       * The policies in Cedar's JSON form by id, for partial evaluation (which takes no preparsed
       * set; JSON is cheaper for Cedar to read than text, and its scope can be matched here).
       */
      policies: ReadonlyArray<readonly [string, PolicyJson]>;
      /** couldAllow's answers for this set, by request; a reload brings a new set and an empty cache. */
      outlooks: Map<string, PolicyOutlook>;
    };

type Outcome = { decision: "allow" | "deny"; policies: string[]; errors: string[] } | { failure: string[] };

/**
 * Loads the Cedar policy file. No file configured, or a missing file, gives an
 * engine that denies everything with the reason "no policy file".
 * @throws PolicyLoadError when the file does not parse or validate against the schema.
 */
export async function loadPolicy(opts: LoadPolicyOptions = {}): Promise<PolicyEngine> {
  const engine = new CedarPolicyEngine(opts.file);
  const result = await engine.load();
  if (!result.ok) throw new PolicyLoadError(opts.file ?? "(none)", result.errors);
  return engine;
}

class CedarPolicyEngine implements PolicyEngine {
  readonly file: string | undefined;
  #active: Active = { kind: "deny_all", reason: "no policy file" };
  // Two cache slots per engine: a reload parses into the idle one and then
  // switches, so the cache never grows and a failed reload leaves the live set untouched.
  readonly #slots: [string, string];
  #slot = 0;

  constructor(file: string | undefined) {
    this.file = file;
    engineSerial += 1;
    this.#slots = [`leasehold-policy-${engineSerial}-a`, `leasehold-policy-${engineSerial}-b`];
  }

  /** The same array until the next load (callers cache decisions by its identity). */
  get policyIds(): readonly string[] {
    return this.#active.kind === "cedar" ? this.#active.ids : NO_IDS;
  }

  async reload(): Promise<PolicyReloadResult> {
    const result = await this.load();
    return result.ok ? { ok: true } : { ok: false, error: result.errors.join("; ") };
  }

  /** Reads and swaps in the file's policies; on failure the live set is untouched. */
  async load(): Promise<{ ok: true } | { ok: false; errors: string[] }> {
    if (this.file === undefined) return { ok: true };
    let text: string;
    try {
      text = await readFile(this.file, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") {
        // Fail closed: a deleted policy file denies everything, as an absent one does at start.
        this.#active = { kind: "deny_all", reason: "no policy file" };
        return { ok: true };
      }
      return { ok: false, errors: [`cannot read ${this.file}: ${(err as Error).message}`] };
    }
    const compiled = compilePolicyText(text);
    if (!compiled.ok) return { ok: false, errors: compiled.errors };
    const next = 1 - this.#slot;
    const setId = this.#slots[next] ?? this.#slots[0];
    const answer = preparsePolicySet(setId, { staticPolicies: compiled.policies });
    if (answer.type === "failure") return { ok: false, errors: answer.errors.map((e) => e.message) };
    this.#slot = next;
    // Only a set that can read `approved` can answer differently with it: a set that never
    // names it (even in a string, which only costs a spare evaluation) skips the second pass.
    const mentionsApproved = Object.values(compiled.policies).some((p) => /\bapproved\b/.test(p));
    const policies: Array<readonly [string, PolicyJson]> = [];
    for (const [id, text] of Object.entries(compiled.policies)) {
      const json = policyToJson(text);
      if (json.type === "failure") return { ok: false, errors: json.errors.map((e) => e.message) };
      policies.push([id, json.json]);
    }
    this.#active = {
      kind: "cedar",
      setId,
      ids: compiled.ids,
      mentionsApproved,
      policies,
      outlooks: new Map(),
    };
    return { ok: true };
  }

  decide(req: PolicyRequest): PolicyDecision {
    const active = this.#active;
    if (active.kind === "deny_all") {
      return { decision: "deny", policies: [], reasons: [active.reason], errors: [] };
    }
    const built = toCedarRequest(req);
    if (!built.ok) {
      return {
        decision: "deny",
        policies: [],
        reasons: ["request could not be evaluated"],
        errors: [built.error],
      };
    }
    const first = this.#authorize(active.setId, req, built.value, built.value.context);
    if ("failure" in first) {
      return {
        decision: "deny",
        policies: [],
        reasons: ["request could not be evaluated"],
        errors: first.failure,
      };
    }
    if (first.decision === "allow") {
      return {
        decision: "allow",
        policies: first.policies,
        reasons: [`permitted by ${first.policies.join(", ")}`],
        errors: first.errors,
      };
    }
    if (active.mentionsApproved && built.value.context.approved === false) {
      const second = this.#authorize(active.setId, req, built.value, {
        ...built.value.context,
        approved: true,
      });
      if (!("failure" in second) && second.decision === "allow") {
        return {
          decision: "approval_required",
          policies: second.policies,
          reasons: [`permitted with human approval by ${second.policies.join(", ")}`],
          errors: unique([...first.errors, ...second.errors]),
        };
      }
    }
    return {
      decision: "deny",
      policies: first.policies,
      reasons:
        first.policies.length > 0
          ? [`forbidden by ${first.policies.join(", ")}`]
          : ["no policy permits this request"],
      errors: first.errors,
    };
  }

  couldAllow(req: PolicyPartialRequest): PolicyOutlook {
    const active = this.#active;
    if (active.kind === "deny_all") return { possible: false, policies: [], errors: [] };
    const entities = toCedarEntities(req);
    if (typeof entities === "string") return { possible: false, policies: [], errors: [entities] };
    const context = partialContext(req.delegation ?? {});
    // The entities carry only the attributes and groups policy can see: what decides, and all of it.
    const key = JSON.stringify([req.action, entities, context]);
    const hit = active.outlooks.get(key);
    if (hit !== undefined) return hit;
    const outlook = this.#partial(active.policies, req, entities, context);
    if (active.outlooks.size >= OUTLOOK_CACHE_SIZE) {
      const oldest = active.outlooks.keys().next();
      if (!oldest.done) active.outlooks.delete(oldest.value);
    }
    active.outlooks.set(key, outlook);
    return outlook;
  }

  /** One partial evaluation, with only the policies whose scope can match the request. */
  #partial(
    all: ReadonlyArray<readonly [string, PolicyJson]>,
    req: PolicyPartialRequest,
    entities: Exclude<ReturnType<typeof toCedarEntities>, string>,
    context: Context,
  ): PolicyOutlook {
    const scope = {
      principal: req.principal,
      action: req.action,
      resource: req.resource,
      principalGroups: req.principalGroups ?? [],
      resourceGroups: req.resourceGroups ?? [],
    };
    const policies = Object.fromEntries(all.filter(([, p]) => scopeCanMatch(p, scope)));
    // No policy applies: Cedar's default deny.
    if (Object.keys(policies).length === 0) return { possible: false, policies: [], errors: [] };
    const answer = isAuthorizedPartial({
      principal: { type: "Agent", id: req.principal },
      action: { type: "Action", id: req.action },
      resource: { type: "Resource", id: req.resource },
      context,
      policies: { staticPolicies: policies },
      entities,
    });
    if (answer.type === "failure") {
      return { possible: false, policies: [], errors: unique(answer.errors.map((e) => e.message)) };
    }
    const { decision, satisfied, errored, residuals } = answer.response;
    const errors = unique(errored.map((id) => `${id}: could not be evaluated`));
    // null: the residual policies need the request; allow: allowed whatever it carries.
    if (decision !== "deny") return { possible: true, policies: [], errors };
    const forbids = satisfied.filter((id) => residuals[id]?.effect === "forbid");
    return { possible: false, policies: unique(forbids), errors };
  }

  #authorize(setId: string, req: PolicyRequest, built: CedarRequest, context: Context): Outcome {
    const answer: AuthorizationAnswer = statefulIsAuthorized({
      principal: { type: "Agent", id: req.principal },
      action: { type: "Action", id: req.action },
      resource: { type: "Resource", id: req.resource },
      context,
      entities: built.entities,
      // toCedarRequest builds only schema-typed contexts and entities (a test checks every
      // action against Cedar's own request validation): validating again here doubled the cost.
      validateRequest: false,
      preparsedPolicySetId: setId,
    });
    if (answer.type === "failure") return { failure: answer.errors.map((e) => e.message) };
    const { decision, diagnostics } = answer.response;
    return {
      decision,
      policies: diagnostics.reason,
      errors: diagnostics.errors.map((e) => `${e.policyId}: ${e.error.message}`),
    };
  }
}

function unique(items: string[]): string[] {
  return [...new Set(items)];
}
