import type { AuditFields, AuditSink } from "../audit/index.js";
import { LeaseholdError } from "../errors.js";
import type { PolicyContext } from "../policy/index.js";
import { shellQuote } from "../util/shell-quote.js";
import type { PolicyActionName, PolicyDecisionOut, PolicyPort } from "./ports.js";

/** How the principal was verified, from its vouched-for attributes (absent for the admin token). */
export function trustKind(
  attrs: Readonly<Record<string, unknown>> | undefined,
): "agents" | "issuer" | undefined {
  const kind = attrs?.trust_kind;
  return kind === "agents" || kind === "issuer" ? kind : undefined;
}

/**
 * The `leasehold policy check` command that decides the same request offline: the principal,
 * action, resource, its groups and the context exactly as policy saw them, each quoted for a
 * POSIX shell. It holds only the request's own facts, never policy text, so the refused caller
 * may see it; the operator runs it against the policy file to see which policy decided.
 */
export function policyCheckCommand(
  req: Pick<DecisionRequest, "principal" | "action" | "resource" | "groups" | "context">,
): string {
  const words = [
    "leasehold policy check",
    `--principal ${shellQuote(req.principal)}`,
    `--action ${shellQuote(req.action)}`,
    `--resource ${shellQuote(req.resource)}`,
    ...(req.groups.length > 0 ? [`--groups ${shellQuote(req.groups.join(","))}`] : []),
    // Always quoted: JSON's braces and quotes mean something to a shell.
    `--context '${JSON.stringify(req.context).replaceAll("'", "'\\''")}'`,
  ];
  return words.join(" ");
}

/** What one decision is about, and what its audit record names besides the decision itself. */
export interface DecisionRequest {
  readonly action: PolicyActionName;
  /** The acting subject: the agent, or the operator identity. */
  readonly principal: string;
  /** Policy attributes of the principal (claims or the lease's kept attributes). */
  readonly attrs?: Readonly<Record<string, unknown>> | undefined;
  readonly resource: string;
  readonly groups: readonly string[];
  readonly context: PolicyContext;
  /** The record's other fields: chain, approver, task, intent, tool, account, lease id, request id. */
  readonly record: Omit<AuditFields, "event" | "agent" | "scope" | "resource" | "decision" | "policies">;
  /** An approval_required decision is returned (a pending approval follows) instead of refused. */
  readonly allowApproval?: boolean | undefined;
  /**
   * An allow is written with the action's own record (one flush for both): the caller must run
   * the action through {@link DecisionGate.proceed}.
   */
  readonly withAction?: boolean | undefined;
  /** Who is refused, for the message: operators' refusals never offer an approval. @default "agent" */
  readonly actor?: "agent" | "operator" | undefined;
}

/** A decision that let the request through, and the settling of its audit record. */
export interface PassedDecision {
  readonly decision: PolicyDecisionOut;
  /** Settles when the decision's record is on disk; rejects if it cannot be written. */
  readonly recorded: Promise<void>;
}

export interface DecisionGateOptions {
  readonly policy: PolicyPort;
  readonly audit: AuditSink;
}

/**
 * Invariant I6's keeper for decisions: every policy decision is one audit record, and nothing a
 * decision allowed leaves the sidecar before that record is durable. A refusal is answered only
 * once its record is written.
 */
export class DecisionGate {
  constructor(private readonly o: DecisionGateOptions) {}

  /**
   * Asks policy and appends the decision. A refusal waits for its record and throws 403
   * `policy_denied`. An allow (or, with `allowApproval`, an approval_required) returns at once
   * with `recorded`: the caller works meanwhile and must await it (or use {@link proceed})
   * before anything the decision allowed leaves the sidecar.
   */
  async evaluate(req: DecisionRequest): Promise<PassedDecision> {
    const decision = this.o.policy.decide({
      principal: req.principal,
      action: req.action,
      resource: req.resource,
      context: req.context,
      principalAttrs: { ...req.attrs },
      resourceGroups: [...req.groups],
    });
    const allowed = decision.decision === "allow";
    const operator = req.actor === "operator";
    // Object.assign, not `{ ...req.record, … }`: V8 (Node 20) spends ~10 µs on a spread followed by more fields.
    const recorded = this.o.audit.append(
      Object.assign({}, req.record, {
        event: "decision" as const,
        agent: req.principal,
        trust_kind: trustKind(req.attrs),
        scope: req.action,
        resource: req.resource,
        decision: operator && !allowed ? ("deny" as const) : decision.decision,
        policies: [...decision.policies],
        reason: allowed ? undefined : (decision.reasons[0] ?? "no policy permits this request"),
      }),
      { withNext: req.withAction === true && allowed },
    );
    if (allowed || (decision.decision === "approval_required" && req.allowApproval && !operator)) {
      // Awaited by the caller later; a failure must not count as unhandled meanwhile.
      recorded.catch(() => undefined);
      return { decision, recorded };
    }
    await recorded;
    // The command alone: an agent or a script can hand it to an operator as is.
    const hint = policyCheckCommand(req);
    if (decision.decision === "approval_required" && !operator) {
      throw new LeaseholdError("policy_denied", `${req.action} of "${req.resource}" needs a human approval`, {
        hint,
      });
    }
    throw new LeaseholdError(
      "policy_denied",
      `policy does not allow ${req.action} of "${req.resource}" for this ${operator ? "operator" : "agent"}`,
      { hint },
    );
  }

  /** {@link evaluate}, answering only once the decision's record is on disk. */
  async require(req: DecisionRequest): Promise<PolicyDecisionOut> {
    const { decision, recorded } = await this.evaluate(req);
    await recorded;
    return decision;
  }

  /**
   * Runs what an allowing decision permits while the decision's record is still being written
   * (appended `withAction`, it goes to disk with the action's own record: one flush for both);
   * answers, or fails, only once the decision is on disk.
   */
  async proceed<T>(recorded: Promise<void>, act: () => Promise<T>): Promise<T> {
    try {
      return await act();
    } catch (err) {
      // No action record follows to carry the decision: write it now.
      this.o.audit.flush?.();
      throw err;
    } finally {
      await recorded;
    }
  }
}
