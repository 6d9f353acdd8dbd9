import type { AuditFields, AuditSink } from "../audit/index.js";
import { LeaseholdError } from "../errors.js";
import type { PolicyContext } from "../policy/index.js";
import type { PolicyActionName, PolicyDecisionOut, PolicyPort } from "./ports.js";

/** How the principal was verified, from its vouched-for attributes (absent for the admin token). */
export function trustKind(
  attrs: Readonly<Record<string, unknown>> | undefined,
): "agents" | "issuer" | undefined {
  const kind = attrs?.trust_kind;
  return kind === "agents" || kind === "issuer" ? kind : undefined;
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
    const recorded = this.o.audit.append(
      {
        ...req.record,
        event: "decision",
        agent: req.principal,
        trust_kind: trustKind(req.attrs),
        scope: req.action,
        resource: req.resource,
        decision: operator && !allowed ? "deny" : decision.decision,
        policies: [...decision.policies],
        reason: allowed ? undefined : (decision.reasons[0] ?? "no policy permits this request"),
      },
      { withNext: req.withAction === true && allowed },
    );
    if (allowed || (decision.decision === "approval_required" && req.allowApproval && !operator)) {
      // Awaited by the caller later; a failure must not count as unhandled meanwhile.
      recorded.catch(() => undefined);
      return { decision, recorded };
    }
    await recorded;
    if (decision.decision === "approval_required" && !operator) {
      throw new LeaseholdError("policy_denied", `${req.action} of "${req.resource}" needs a human approval`);
    }
    throw new LeaseholdError(
      "policy_denied",
      `policy does not allow ${req.action} of "${req.resource}" for this ${operator ? "operator" : "agent"}`,
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
