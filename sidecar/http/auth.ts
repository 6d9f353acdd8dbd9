import type { FastifyRequest } from "fastify";
import { LeaseholdError } from "../errors.js";
import {
  ADMIN_OPERATOR,
  type Operator,
  type OperatorAction,
  type OperatorService,
} from "../service/index.js";
import { looksLikeJwt } from "../identity/index.js";
import {
  bearer,
  hasAdminToken,
  notTheAdminToken,
  presentedToken,
  requireAdminToken,
  sameSecret,
} from "./credentials.js";
import type { AnonymousCaller, Caller, OperatorCaller, RouteAuth } from "./route.js";

/** The auth step of the route table: who the request comes from, by the route's `auth`. */
export type Authenticate = (auth: RouteAuth, req: FastifyRequest) => Promise<Caller>;

export interface AuthOptions {
  readonly adminToken: string;
  /** Operators and DBAs with their own identity JWT; without it, operator routes want the admin token. */
  readonly operators?: OperatorService | undefined;
  /** Whether `admin-if-configured` routes want the admin token. @default false */
  readonly adminIfConfigured?: boolean | undefined;
}

const ANONYMOUS: AnonymousCaller = { kind: "anonymous" };

/** Methods whose requests change state: an identity token presented on one is spent (one-time jti). */
const STATE_CHANGING = new Set(["POST", "PUT", "DELETE", "PATCH"]);

const ACTIONS: Partial<Record<RouteAuth, OperatorAction>> = {
  "operator-revoke": "revoke",
  "operator-approve": "approve",
  "operator-register": "register",
};

/** Every operator action: an identity allowed none of them on any resource is no operator. */
const OPERATOR_ACTIONS = Object.values(ACTIONS);

/**
 * An operator as the handler sees it, with the route's `action` bound: the admin token passes
 * every decision; an identity is decided by policy (audited), and refused without a policy.
 */
export function operatorCaller(
  operator: Operator,
  ctx: { action?: OperatorAction | undefined; operators?: OperatorService | undefined; requestId: string },
): OperatorCaller {
  const { action, operators } = ctx;
  const mustAct = (): OperatorAction => {
    if (!action) throw new Error("this route names no operator action to decide");
    return action;
  };
  return {
    kind: "operator",
    operator,
    require: async (resource, proposedGroups) => {
      if (operator.admin) return;
      if (!operators) throw new LeaseholdError("unauthenticated", "operator credentials required");
      const name = typeof resource === "string" ? resource : await resource();
      await operators.require(operator, mustAct(), name, ctx.requestId, proposedGroups);
    },
    visible: async (items, resourceOf) => {
      if (operator.admin) return [...items];
      if (!operators) throw new LeaseholdError("unauthenticated", "operator credentials required");
      return operators.filter(operator, mustAct(), items, resourceOf, ctx.requestId);
    },
  };
}

/**
 * The admin token, or an identity JWT verified by the operator service: spent on a
 * state-changing request (one-time jti), reusable on a read-only one. On a route open to any
 * operator (`operator`), an identity policy lets take no operator action on any resource is
 * refused (403, audited). @throws 401, 403
 */
async function identifyOperator(req: FastifyRequest, auth: RouteAuth, o: AuthOptions): Promise<Operator> {
  const token = bearer(req);
  if (sameSecret(token, o.adminToken)) return ADMIN_OPERATOR;
  // A bearer string that is no JWT was meant as the admin token: say so, not "malformed JWT".
  if (!o.operators || !looksLikeJwt(token)) throw notTheAdminToken(o.operators !== undefined);
  const op = await o.operators.identify(token, { oneTime: STATE_CHANGING.has(req.method) });
  if (auth === "operator") await o.operators.requireSome(op, OPERATOR_ACTIONS, req.id);
  return op;
}

/**
 * The auth step keyed by a route's `auth`. Agent tokens are only taken from the request here
 * (the lease service verifies them); the admin token is compared in constant time; operator
 * identities are verified. Throws 401 `unauthenticated` when the credential is missing or wrong.
 */
export function createAuthenticator(o: AuthOptions): Authenticate {
  const admin = (req: FastifyRequest) =>
    operatorCaller(ADMIN_OPERATOR, { operators: o.operators, requestId: req.id });
  return async (auth, req) => {
    switch (auth) {
      case "none":
        return ANONYMOUS;
      case "identity":
      case "lease":
        return { kind: "agent", presented: presentedToken(req) };
      case "lease-or-admin":
        return hasAdminToken(req, o.adminToken)
          ? admin(req)
          : { kind: "agent", presented: presentedToken(req) };
      case "admin":
        requireAdminToken(req, o.adminToken);
        return admin(req);
      case "admin-if-configured":
        if (!o.adminIfConfigured) return ANONYMOUS;
        requireAdminToken(req, o.adminToken);
        return admin(req);
      default:
        return operatorCaller(await identifyOperator(req, auth, o), {
          action: ACTIONS[auth],
          operators: o.operators,
          requestId: req.id,
        });
    }
  };
}
