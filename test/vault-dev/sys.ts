import {
  type Backend,
  type HandlerContext,
  type LogicalResult,
  failure,
  noResponse,
  respond,
} from "./backend.js";
import { commaStrings, weakString } from "./go-format.js";
import { compareGoStrings } from "./http-util.js";
import { PolicyParseError, type PolicyStore } from "./policies.js";
import type { TokenStore } from "./token-store.js";
import { type WrappedResponses, unwrap } from "./wrapping.js";

/** The logical part of `sys/`: ACL policies and unwrapping (health and seal-status are raw handlers). */
export function createSysBackend(
  policies: PolicyStore,
  tokens: TokenStore,
  wrapped: WrappedResponses,
): Backend {
  return {
    type: "system",
    routes: [
      {
        pattern: /^policy\/?$/,
        fields: [],
        injectDataIntoTop: true,
        operations: { read: () => listPolicies(policies, true), list: () => listPolicies(policies, false) },
      },
      {
        pattern: /^policy\/(?<name>.+)$/,
        fields: ["name", "policy", "rules"],
        injectDataIntoTop: true,
        operations: {
          read: (ctx) => readPolicy(ctx, policies, "rules"),
          update: (ctx) => writePolicy(ctx, policies),
          delete: (ctx) => deletePolicy(ctx, policies),
        },
      },
      {
        pattern: /^policies\/acl\/?$/,
        fields: [],
        operations: { list: () => listPolicies(policies, false) },
      },
      {
        pattern: /^policies\/acl\/(?<name>.+)$/,
        fields: ["name", "policy"],
        operations: {
          read: (ctx) => readPolicy(ctx, policies, "policy"),
          update: (ctx) => writePolicy(ctx, policies),
          delete: (ctx) => deletePolicy(ctx, policies),
        },
      },
      {
        pattern: /^capabilities-self$/,
        fields: ["path", "paths", "token"],
        injectDataIntoTop: true,
        operations: { update: (ctx) => capabilitiesSelf(ctx, policies) },
      },
      {
        pattern: /^wrapping\/unwrap$/,
        fields: ["token"],
        operations: { update: (ctx) => unwrap(ctx, tokens, wrapped) },
      },
    ],
  };
}

function listPolicies(policies: PolicyStore, withPoliciesKey: boolean): LogicalResult {
  const keys = policies.names();
  return respond(withPoliciesKey ? { keys, policies: keys } : { keys });
}

function policyName(ctx: HandlerContext): string {
  return (ctx.params.name ?? "").toLowerCase();
}

function readPolicy(ctx: HandlerContext, policies: PolicyStore, textKey: "rules" | "policy"): LogicalResult {
  const name = policyName(ctx);
  const text = policies.get(name);
  if (text === undefined || name === "response-wrapping") return noResponse();
  return respond({ name, [textKey]: text });
}

function writePolicy(ctx: HandlerContext, policies: PolicyStore): LogicalResult {
  const name = policyName(ctx);
  if (name === "root") return failure(400, 'cannot update "root" policy');
  if (name === "response-wrapping") return failure(400, 'cannot update "response-wrapping" policy');
  const raw = ctx.data.policy ?? ctx.data.rules;
  const text = raw === undefined ? "" : weakString(raw, "policy");
  if (text.trim() === "") return failure(400, "'policy' parameter not supplied or empty");
  try {
    policies.set(name, text);
  } catch (err) {
    if (err instanceof PolicyParseError) return failure(400, `failed to parse policy: ${err.message}`);
    throw err;
  }
  return noResponse();
}

function deletePolicy(ctx: HandlerContext, policies: PolicyStore): LogicalResult {
  const name = policyName(ctx);
  if (name === "root" || name === "default" || name === "response-wrapping") {
    return failure(400, `cannot delete "${name}" policy`);
  }
  policies.delete(name);
  return noResponse();
}

/**
 * `sys/capabilities-self` (Vault's `handleCapabilities`): the caller's own capabilities on each
 * of `paths` (or the deprecated `path`), each list sorted; `["root"]` for a root token. With one
 * path the list is also under `capabilities` (kept by Vault for old clients).
 */
function capabilitiesSelf(ctx: HandlerContext, policies: PolicyStore): LogicalResult {
  const token = ctx.token;
  if (!token) return failure(500, "no token found");
  let paths = commaStrings(ctx.data.paths, "paths");
  if (paths.length === 0) paths = commaStrings(ctx.data.path, "path");
  if (paths.length === 0) return failure(400, "paths must be supplied");
  const data: Record<string, unknown> = {};
  for (const path of paths) {
    const caps = token.policies.includes("root")
      ? ["root"]
      : policies.acl(token.policies).capabilities(path).sort(compareGoStrings);
    data[path] = caps;
  }
  if (paths.length === 1) data.capabilities = data[paths[0] ?? ""];
  return respond(data);
}
