import { refuse } from "./refusal.js";
import { spiffeIdProblem } from "./spiffe-id.js";
import { compileSubjectGlobs } from "./subject-glob.js";
import type {
  Delegation,
  DelegationOptions,
  IdentityUse,
  IdentityVerifier,
  VerifiedIdentity,
} from "./types.js";

/** The deepest delegation chain leasehold accepts. */
export const MAX_DELEGATION_DEPTH = 5;
/** A human delegator: `user:` and an e-mail address. */
const HUMAN_PRINCIPAL = /^user:[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(\.[A-Za-z0-9-]{1,63})+$/;
const ACT_MEMBERS = new Set(["sub", "act", "iss", "scope"]);
const MAX_SCOPE_LENGTH = 2000;
const MAX_SCOPE_ITEMS = 64;

/** Checks the `act` claim of verified identity claims; `undefined` when the token delegates nothing. */
export type DelegationChecker = (subject: string, claims: Record<string, unknown>) => Delegation | undefined;

/**
 * Builds the checker of delegation chains (RFC 8693 §4.1 `act`, nested for several hops).
 *
 * leasehold's reading: the token's `sub` is the agent that acts and signs; `act.sub` names who
 * delegated the task to it; `act.act.sub` who delegated to that one, and so on. A hop is
 * accepted when its `sub` is a SPIFFE ID matching the subject globs of a trust entry (an agent
 * that could authenticate here itself) or a human principal `user:<e-mail>` matching `humans`.
 * A hop may carry only `sub`, `act`, `iss` and `scope`. No subject may appear twice (no
 * cycles); more than `maxDepth` hops are refused. `scope` (space-separated resource names, on
 * a hop or the token) can only narrow from the origin towards the acting agent; the narrowest
 * is the delegation's scope. The chain is asserted by the acting agent's signature: hops are
 * checked against the trust configuration, not signed by the delegators themselves.
 * @throws Error when the options are unusable.
 */
export function createDelegationChecker(opts: DelegationOptions): DelegationChecker {
  const maxDepth = opts.maxDepth ?? MAX_DELEGATION_DEPTH;
  if (!Number.isInteger(maxDepth) || maxDepth < 1 || maxDepth > MAX_DELEGATION_DEPTH) {
    throw new Error(`delegation maxDepth must be an integer from 1 to ${MAX_DELEGATION_DEPTH}`);
  }
  const agentGlobs = opts.trust.flatMap((t) => [...t.subjects]);
  const isAgent = agentGlobs.length > 0 ? compileSubjectGlobs(agentGlobs) : () => false;
  const humanGlobs = [...(opts.humans ?? ["user:*"])];
  const isHuman = humanGlobs.length > 0 ? compileSubjectGlobs(humanGlobs) : () => false;

  const acceptable = (sub: string): boolean =>
    spiffeIdProblem(sub) === undefined ? isAgent(sub) : HUMAN_PRINCIPAL.test(sub) && isHuman(sub);

  return (subject, claims) => {
    if (claims.act === undefined) return undefined;
    const chain: string[] = [];
    const scopes: Array<string[] | undefined> = [];
    const seen = new Set([subject]);
    let cursor: unknown = claims.act;
    while (cursor !== undefined) {
      if (chain.length === maxDepth) {
        throw refuse(`identity token delegation chain is deeper than ${maxDepth} hops`);
      }
      const hop = chain.length + 1;
      if (typeof cursor !== "object" || cursor === null || Array.isArray(cursor)) {
        throw refuse(`identity token act claim is malformed (hop ${hop} is not an object)`);
      }
      const act = cursor as Record<string, unknown>;
      for (const name of Object.keys(act)) {
        if (!ACT_MEMBERS.has(name)) {
          throw refuse(
            `identity token act claim is malformed (hop ${hop} has member "${name.slice(0, 32)}")`,
          );
        }
      }
      const sub = act.sub;
      if (typeof sub !== "string" || sub.length === 0 || sub.length > 2048) {
        throw refuse(`identity token act claim is malformed (hop ${hop} has no sub)`);
      }
      if (act.iss !== undefined && typeof act.iss !== "string") {
        throw refuse(`identity token act claim is malformed (hop ${hop} iss)`);
      }
      if (!acceptable(sub)) throw refuse(`identity token delegator at hop ${hop} is not trusted`);
      if (seen.has(sub)) throw refuse("identity token delegation chain repeats a subject");
      seen.add(sub);
      chain.push(sub);
      scopes.push(parseScope(act.scope, `hop ${hop}`));
      cursor = act.act;
    }
    // From the origin towards the acting agent, each stated scope must fit inside the last one.
    let narrowest: string[] | undefined;
    for (const scope of [...scopes.reverse(), parseScope(claims.scope, "the token")]) {
      if (scope === undefined) continue;
      if (narrowest !== undefined) {
        const allowed = new Set(narrowest);
        if (!scope.every((s) => allowed.has(s))) {
          throw refuse("identity token scope widens along the delegation chain");
        }
      }
      narrowest = scope;
    }
    return narrowest === undefined ? { chain } : { chain, scope: narrowest };
  };
}

/**
 * Wraps an identity verifier so that every verified identity also has its delegation chain
 * checked and attached (`VerifiedIdentity.delegation`).
 */
export function withDelegation(verifier: IdentityVerifier, opts: DelegationOptions): IdentityVerifier {
  const check = createDelegationChecker(opts);
  return {
    async verify(jwt: string, use?: IdentityUse): Promise<VerifiedIdentity> {
      const identity = await verifier.verify(jwt, use);
      const delegation = check(identity.subject, identity.claims);
      return delegation === undefined ? identity : { ...identity, delegation };
    },
  };
}

function parseScope(raw: unknown, where: string): string[] | undefined {
  if (raw === undefined) return undefined;
  if (typeof raw !== "string" || raw.length > MAX_SCOPE_LENGTH) {
    throw refuse(`identity token scope of ${where} is malformed`);
  }
  const items = raw.split(" ").filter((s) => s.length > 0);
  if (items.length > MAX_SCOPE_ITEMS) throw refuse(`identity token scope of ${where} is malformed`);
  return [...new Set(items)];
}
