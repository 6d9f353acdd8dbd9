import type { AuditSink } from "../audit/index.js";
import { defaultPolicyContext } from "../policy/index.js";
import type { StoredRegistration } from "../resources/types.js";
import { DecisionGate } from "./decision-gate.js";
import type { IdentityPort, PolicyPort } from "./ports.js";

/** The Cedar actions that make an identity an operator (revoke, approve) or a DBA (register). */
export type OperatorAction = "revoke" | "approve" | "register";

/** Who is acting on an operator route: the admin token, or an identity the policy decides for. */
export interface Operator {
  /** `admin`, or the identity token's subject (recorded as actor and approver). */
  readonly name: string;
  readonly admin: boolean;
  readonly claims: Readonly<Record<string, unknown>>;
}

export const ADMIN_OPERATOR: Operator = { name: "admin", admin: true, claims: {} };

export interface OperatorServiceOptions {
  readonly identity: IdentityPort;
  readonly policy: PolicyPort;
  readonly catalog: { get(name: string): Promise<StoredRegistration | null> };
  readonly audit: AuditSink;
  readonly now?: () => number;
  /** The decision gate; built from `policy` and `audit` when absent (LeaseService shares one). */
  readonly gate?: DecisionGate;
}

/**
 * Operators and DBAs with their own identity (DESIGN: "an identity JWT whose subject the policy
 * lets act as operator or DBA"). Every operator action on a resource is a Cedar decision with
 * `Action::"revoke" | "approve" | "register"`, the resource's groups and the token's claims as
 * attributes, and a neutral context (`defaultPolicyContext`: nothing approved, the current hour).
 * The admin token is outside policy: it is the break-glass credential of the host.
 */
export class OperatorService {
  private readonly now: () => number;
  private readonly gate: DecisionGate;

  constructor(private readonly o: OperatorServiceOptions) {
    this.now = o.now ?? Date.now;
    this.gate = o.gate ?? new DecisionGate({ policy: o.policy, audit: o.audit });
  }

  /** Verifies an identity JWT presented on an operator route. @throws 401 unauthenticated */
  async identify(jwt: string): Promise<Operator> {
    const ident = await this.o.identity.verify(jwt);
    return { name: ident.subject, admin: false, claims: ident.claims };
  }

  private permitsGroups(op: Operator, action: OperatorAction, resource: string, groups: readonly string[]) {
    return this.o.policy.decide({
      principal: op.name,
      action,
      resource,
      context: defaultPolicyContext(this.now()),
      principalAttrs: { ...op.claims },
      resourceGroups: [...groups],
    });
  }

  /** Whether policy lets `op` take `action` on the registered resource (not audited: list filters). */
  async permits(op: Operator, action: OperatorAction, resource: string): Promise<boolean> {
    if (op.admin) return true;
    const reg = await this.o.catalog.get(resource);
    return this.permitsGroups(op, action, resource, reg?.groups ?? []).decision === "allow";
  }

  /** The items whose resource `op` may take `action` on; one decision per distinct resource. */
  async filter<T>(op: Operator, action: OperatorAction, items: readonly T[], resourceOf: (t: T) => string) {
    if (op.admin) return [...items];
    const allowed = new Map<string, boolean>();
    for (const name of new Set(items.map(resourceOf)))
      allowed.set(name, await this.permits(op, action, name));
    return items.filter((t) => allowed.get(resourceOf(t)) === true);
  }

  /**
   * Throws 403 `policy_denied` unless policy allows `action` on `resource` for `op`; the decision
   * is audited with the operator as the acting subject. For a registration, `proposedGroups` are
   * the groups the new registration would put the resource in: both the resource as it is and
   * as it would be must be allowed (a DBA of staging cannot move a prod resource into staging).
   */
  async require(
    op: Operator,
    action: OperatorAction,
    resource: string,
    requestId: string,
    proposedGroups?: readonly string[],
  ): Promise<void> {
    if (op.admin) return;
    const reg = await this.o.catalog.get(resource);
    const variants: (readonly string[])[] = [];
    if (reg || proposedGroups === undefined) variants.push(reg?.groups ?? []);
    if (proposedGroups !== undefined) variants.push(proposedGroups);
    for (const groups of variants) {
      await this.gate.require({
        action,
        principal: op.name,
        attrs: op.claims,
        resource,
        groups,
        context: defaultPolicyContext(this.now()),
        record: { request_id: requestId },
        actor: "operator",
      });
    }
  }
}
