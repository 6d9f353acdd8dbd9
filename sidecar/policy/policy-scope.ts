import type {
  ActionConstraint,
  EntityUidJson,
  PolicyJson,
  PrincipalConstraint,
  ResourceConstraint,
} from "@cedar-policy/cedar-wasm/nodejs";

/** The request's scope as the entities hand it to Cedar: who, what, on which resource, and their groups. */
export interface ScopeRequest {
  readonly principal: string;
  readonly action: string;
  readonly resource: string;
  readonly principalGroups: readonly string[];
  readonly resourceGroups: readonly string[];
}

/**
 * Whether a policy's scope (`principal`, `action`, `resource` in its head) can match the request.
 * A policy whose scope cannot match is neither satisfied nor evaluated by Cedar, so leaving it
 * out of an evaluation changes no answer. The entities leasehold builds have one level of
 * hierarchy (an agent in its `AgentGroup`s, a resource in its `ResourceGroup`s; no action
 * groups), so `in` is decided exactly; anything else (a slot) is kept.
 */
export function scopeCanMatch(policy: PolicyJson, req: ScopeRequest): boolean {
  return (
    entityMatches(
      policy.principal,
      { type: "Agent", id: req.principal },
      "AgentGroup",
      req.principalGroups,
    ) &&
    actionMatches(policy.action, req.action) &&
    entityMatches(
      policy.resource,
      { type: "Resource", id: req.resource },
      "ResourceGroup",
      req.resourceGroups,
    )
  );
}

type TypeAndId = { type: string; id: string };

function uid(e: EntityUidJson): TypeAndId {
  return "__entity" in e ? e.__entity : e;
}

function same(a: TypeAndId, b: TypeAndId): boolean {
  return a.type === b.type && a.id === b.id;
}

/** `self in target`: the entity itself or one of its groups. */
function isIn(self: TypeAndId, groupType: string, groups: readonly string[], target: TypeAndId): boolean {
  return same(self, target) || (target.type === groupType && groups.includes(target.id));
}

function entityMatches(
  c: PrincipalConstraint | ResourceConstraint,
  self: TypeAndId,
  groupType: string,
  groups: readonly string[],
): boolean {
  switch (c.op) {
    case "All":
      return true;
    case "==":
      return "entity" in c ? same(uid(c.entity), self) : true;
    case "in":
      return "entity" in c ? isIn(self, groupType, groups, uid(c.entity)) : true;
    case "is": {
      if (c.entity_type !== self.type) return false;
      const inner = c.in;
      return inner === undefined || !("entity" in inner) || isIn(self, groupType, groups, uid(inner.entity));
    }
    default:
      return true;
  }
}

function actionMatches(c: ActionConstraint, action: string): boolean {
  const named = (e: EntityUidJson) => same(uid(e), { type: "Action", id: action });
  switch (c.op) {
    case "All":
      return true;
    case "==":
      return "entity" in c ? named(c.entity) : true;
    case "in":
      return "entity" in c ? named(c.entity) : c.entities.some(named);
    default:
      return true;
  }
}
