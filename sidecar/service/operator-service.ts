import type { AuditSink } from "../audit/index.js";
import { LeaseholdError } from "../errors.js";
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
  /** The identity's vouched-for attributes (VerifiedCaller.attributes), never its raw claims. */
  readonly attributes: Readonly<Record<string, unknown>>;
}

export const ADMIN_OPERATOR: Operator = { name: "admin", admin: true, attributes: {} };

export interface OperatorServiceOptions {
  readonly identity: IdentityPort;
  readonly policy: PolicyPort;
  readonly catalog: {
    get(name: string): Promise<StoredRegistration | null>;
    /** The registrations known now (a cache is fine: it only widens what an operator may list). */
    all(): readonly StoredRegistration[];
  };
  readonly audit: AuditSink;
  readonly now?: () => number;
  /** The decision gate; built from `policy` and `audit` when absent (LeaseService shares one). */
  readonly gate?: DecisionGate;
}

/**
 * Operators and DBAs with their own identity (DESIGN: "an identity JWT whose subject the policy
 * lets act as operator or DBA"). Every operator action on a resource is a Cedar decision with
 * `Action::"revoke" | "approve" | "register"`, the resource's groups, the identity's vouched-for
 * attributes (never its raw claims), and a neutral context (`defaultPolicyContext`: nothing approved, the current hour).
 * The admin token is outside policy: it is the break-glass credential of the host.
 */
export class OperatorService {
  private readonly now: () => number;
  private readonly gate: DecisionGate;

  constructor(private readonly o: OperatorServiceOptions) {
    this.now = o.now ?? Date.now;
    this.gate = o.gate ?? new DecisionGate({ policy: o.policy, audit: o.audit });
  }

  /**
   * Verifies an identity JWT presented on an operator route; a state-changing request (the
   * default) spends its one-time `jti`, a read-only one passes `{ oneTime: false }`.
   * @throws 401 unauthenticated
   */
  async identify(jwt: string, use?: { readonly oneTime?: boolean }): Promise<Operator> {
    const ident = await this.o.identity.verify(jwt, use);
    return { name: ident.subject, admin: false, attributes: ident.attributes };
  }

  private permitsGroups(op: Operator, action: OperatorAction, resource: string, groups: readonly string[]) {
    return this.o.policy.decide({
      principal: op.name,
      action,
      resource,
      context: defaultPolicyContext(this.now()),
      principalAttrs: { ...op.attributes },
      resourceGroups: [...groups],
    });
  }

  /** Whether policy lets `op` take `action` on the registered resource (not audited: list filters). */
  async permits(op: Operator, action: OperatorAction, resource: string): Promise<boolean> {
    if (op.admin) return true;
    const reg = await this.o.catalog.get(resource);
    return this.permitsGroups(op, action, resource, reg?.groups ?? []).decision === "allow";
  }

  /**
   * The items whose resource `op` may take `action` on; one decision per distinct resource. An
   * identity policy lets take `action` on no registered resource at all is no operator for it:
   * 403 `policy_denied`, audited, rather than an empty list.
   */
  async filter<T>(
    op: Operator,
    action: OperatorAction,
    items: readonly T[],
    resourceOf: (t: T) => string,
    requestId: string,
  ): Promise<T[]> {
    if (op.admin) return [...items];
    const allowed = new Map<string, boolean>();
    for (const name of new Set(items.map(resourceOf)))
      allowed.set(name, await this.permits(op, action, name));
    const visible = items.filter((t) => allowed.get(resourceOf(t)) === true);
    if (visible.length === 0) await this.requireSome(op, [action], requestId);
    return visible;
  }

  /**
   * Resolves when policy lets `op` take one of `actions` on at least one registered resource;
   * otherwise records the refusal and throws 403 `policy_denied`. Not a decision on any one
   * resource: it tells an operator (or DBA) from an identity that is none.
   */
  async requireSome(op: Operator, actions: readonly OperatorAction[], requestId: string): Promise<void> {
    if (op.admin) return;
    for (const reg of this.o.catalog.all()) {
      for (const action of actions) {
        if (this.permitsGroups(op, action, reg.name, reg.groups).decision === "allow") return;
      }
    }
    const what = actions.join(", ");
    await this.o.audit.append({
      event: "decision",
      agent: op.name,
      ...(actions.length === 1 ? { scope: actions[0] } : {}),
      decision: "deny",
      reason: `policy allows this identity ${what} on no resource`,
      request_id: requestId,
    });
    throw new LeaseholdError("policy_denied", `policy allows this identity ${what} on no resource`);
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
        attrs: op.attributes,
        resource,
        groups,
        context: defaultPolicyContext(this.now()),
        record: { request_id: requestId },
        actor: "operator",
      });
    }
  }
}
