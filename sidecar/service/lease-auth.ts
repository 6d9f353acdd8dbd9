import type { CallerAttestation } from "../attest/types.js";
import type { AuditFields, AuditSink } from "../audit/index.js";
import type { LeaseEventPublisher } from "../events/index.js";
import { LeaseholdError } from "../errors.js";
import type { LeaseRecord, LeaseStore, TokenProof } from "../leases/index.js";
import {
  attestedCaller,
  auditCaller,
  type CallerBindingOptions,
  callerMismatch,
  isBound,
  type MismatchPart,
  mismatchMessage,
} from "./caller-binding.js";
import { auditLease } from "./lease-audit.js";
import type { DpopPort, LeaseTokenClaims, LeaseTokenPort } from "./ports.js";
import type { RequestMeta } from "./request-meta.js";

/**
 * A token as a request presents it: the Authorization scheme, the token, the `DPoP` proof
 * header if any, and the method and URL (`dpopRequestUrl`) the proof must name. A bare
 * string is a Bearer token with no proof (the protocol proxies present tokens that way).
 */
export interface PresentedToken {
  readonly scheme: "Bearer" | "DPoP";
  readonly token: string;
  readonly proof?: string | undefined;
  readonly htm: string;
  readonly htu: string | undefined;
}

export const asPresented = (t: string | PresentedToken): PresentedToken =>
  typeof t === "string" ? { scheme: "Bearer", token: t, htm: "", htu: undefined } : t;

/** Identity tokens are bearer tokens; a proof of possession goes in the DPoP header. */
export function identityToken(t: string | PresentedToken): PresentedToken {
  const presented = asPresented(t);
  if (presented.scheme !== "Bearer") {
    throw new LeaseholdError(
      "unauthenticated",
      "identity tokens are sent as 'Authorization: Bearer <token>' (a DPoP proof goes in the DPoP header)",
    );
  }
  return presented;
}

/** A lease token that passed every check, with its live lease. */
export interface AuthenticatedLease {
  readonly lease: LeaseRecord;
  readonly claims: LeaseTokenClaims;
  /** The token is DPoP-bound (and this request proved its key). */
  readonly dpop: boolean;
  /** The request's caller, when the lease's binding needed it attested (reused for policy). */
  readonly caller?: CallerAttestation | undefined;
}

/** What lease auth knows of the request: its id and, lazily, its local caller. */
export type LeaseAuthMeta = Pick<RequestMeta, "requestId" | "caller">;

/** Ends a lease through the normal revocation path (LeaseEnd.endLease: audited, rotated). */
export type RevokeLease = (
  resource: string,
  id: string,
  requestId: string | undefined,
  why: string,
) => Promise<unknown>;

export interface LeaseAuthOptions {
  readonly tokens: LeaseTokenPort;
  readonly leases: LeaseStore;
  /** DPoP proof verification; without it, a proof or a bound token is refused. */
  readonly dpop?: DpopPort | undefined;
  readonly audit: AuditSink;
  /** `identity.bindCaller` / `onCallerMismatch`; without it no lease is bound to its caller. */
  readonly binding?: CallerBindingOptions | undefined;
  /** Where a caller mismatch is announced (metrics follow the audit record). */
  readonly events?: LeaseEventPublisher | undefined;
  /** Revokes a lease on a caller mismatch (`onCallerMismatch: revoke`). */
  readonly revoke?: RevokeLease | undefined;
}

const refuse = (message: string) => new LeaseholdError("unauthenticated", message);

/**
 * Invariant I4's keeper: a lease token is accepted only with its signature, its lease read from
 * Redis on every use (one round trip) with an intact MAC (Redis is not trusted: an edited record
 * is refused and audited) and still active, for a DPoP-bound token, a fresh proof by its key, and,
 * for a lease bound to the local caller that checked it out (issue 22), the same caller on every
 * bound part. Proofs presented at issue (checkout, approval poll) are checked here too.
 */
export class LeaseAuth {
  constructor(private readonly o: LeaseAuthOptions) {}

  /** Checks a lease token and the lease in Redis: refuses ended, expired and foreign leases. */
  async authenticate(
    token: string | PresentedToken,
    leaseId: string,
    meta?: LeaseAuthMeta,
  ): Promise<AuthenticatedLease> {
    const presented = asPresented(token);
    const claims = await this.o.tokens.verify(presented.token);
    if (claims.leaseId !== leaseId) throw refuse("the lease token is for another lease");
    const bound = claims.jkt !== undefined || presented.scheme === "DPoP";
    const { lease, caller } = await this.liveLease(claims.resource, claims.leaseId, meta, (l) =>
      bound ? this.checkBinding(presented, claims.jkt, l, meta?.requestId) : undefined,
    );
    return { lease, claims, dpop: claims.jkt !== undefined, caller };
  }

  /**
   * For a listener's client that proved, by SCRAM against the verifier stored at checkout, that it
   * knows the lease's Bearer token (only Bearer leases get a verifier): every check of
   * `authenticate` but the token's signature, which the proof stands in for.
   */
  async authenticateByProof(
    proof: TokenProof,
    meta?: LeaseAuthMeta,
  ): Promise<{ lease: LeaseRecord; caller?: CallerAttestation | undefined }> {
    // The proof stands in for the token's signature: it counts only while that signing key would.
    if (proof.kid === undefined || !(await this.o.tokens.keyKnown(proof.kid)))
      throw refuse("lease token signing key unknown");
    return this.liveLease(proof.resource, proof.leaseId, meta);
  }

  /**
   * The lease read from Redis with its MAC checked, `bindingCheck` (DPoP) and the caller binding
   * applied before its state is told, then refused unless active and unexpired.
   */
  private async liveLease(
    resource: string,
    leaseId: string,
    meta: LeaseAuthMeta | undefined,
    bindingCheck?: (lease: LeaseRecord) => Promise<void> | undefined,
  ): Promise<{ lease: LeaseRecord; caller?: CallerAttestation | undefined }> {
    const requestId = meta?.requestId;
    const { lease, now, intact } = await this.o.leases.use(resource, leaseId);
    if (!lease) throw refuse("the lease does not exist");
    if (!intact) {
      // The record's fields are untrusted: the audit names only what the signed token (or proof) says.
      await this.o.audit.append({
        event: "decision",
        scope: "lease_integrity",
        decision: "deny",
        lease_id: leaseId,
        resource,
        request_id: requestId,
        reason:
          "the lease record in Redis failed its integrity check (tampered, or written before lease MACs)",
      });
      throw refuse("the lease record failed its integrity check");
    }
    // Before the lease's state is told: a token without its key learns nothing.
    await bindingCheck?.(lease);
    // Also before the lease's state: another process holding the token learns nothing either.
    let caller: CallerAttestation | undefined;
    const binding = this.o.binding;
    if (binding !== undefined && isBound(binding, lease.caller)) {
      caller = await attestedCaller(meta);
      const part = await callerMismatch(binding, lease.caller, caller);
      if (part !== undefined) await this.callerMismatch(lease, part, caller, requestId);
    }
    if (lease.state === "ended") {
      if (lease.end_reason === "revoked") throw new LeaseholdError("lease_revoked", "the lease was revoked");
      if (lease.end_reason === "expired") throw new LeaseholdError("lease_expired", "the lease has expired");
      throw refuse("the lease has ended (checked in)");
    }
    if (lease.expires_at <= now) throw new LeaseholdError("lease_expired", "the lease has expired");
    return { lease, caller };
  }

  /**
   * A bound lease used by another caller: audited with both callers (the metric follows the
   * record), announced, the lease revoked first under `onCallerMismatch: revoke`; then refused.
   */
  private async callerMismatch(
    lease: LeaseRecord,
    part: MismatchPart,
    caller: CallerAttestation,
    requestId: string | undefined,
  ): Promise<never> {
    // A caller that could not be attested is refused but ends nothing: a passing /proc fault of
    // the agent's own must not cost it its lease.
    const revoke =
      this.o.binding?.onMismatch === "revoke" && lease.state === "active" && part !== "unattested";
    await auditLease(this.o.audit, lease, {
      event: "caller_mismatch",
      scope: part,
      request_id: requestId,
      caller: auditCaller(caller),
      ...(lease.caller ? { bound_caller: auditCaller(lease.caller) } : {}),
      reason: revoke ? "refused; the lease is revoked (onCallerMismatch: revoke)" : "refused",
    });
    // The stream may be down: the refusal stands whatever the announcement does.
    await this.o.events
      ?.publish({ type: "caller_mismatch", lease, part, action: revoke ? "revoke" : "refuse" })
      .catch(() => undefined);
    if (revoke) {
      await this.o.revoke?.(lease.resource, lease.id, requestId, `caller mismatch: ${part}`);
    }
    throw new LeaseholdError("caller_mismatch", mismatchMessage(part));
  }

  /**
   * Verifies the DPoP proof of a checkout or approval poll (RFC 9449 §5: no `ath` needed);
   * returns its key's thumbprint, or `undefined` when the request has no proof. Refusals are audited.
   */
  async proofAtIssue(
    presented: PresentedToken,
    fields: Omit<AuditFields, "event">,
  ): Promise<string | undefined> {
    if (presented.proof === undefined) return undefined;
    try {
      const { dpop } = this.o;
      if (dpop === undefined) throw refuse("DPoP is not enabled on this sidecar");
      if (presented.htu === undefined)
        throw refuse("DPoP proof cannot be checked: the request URL is unusable");
      return (await dpop.verify({ proof: presented.proof, htm: presented.htm, htu: presented.htu })).jkt;
    } catch (err) {
      if (isRefusal(err)) {
        await this.o.audit.append({
          ...fields,
          event: "decision",
          scope: "dpop",
          decision: "deny",
          reason: err.message,
        });
      }
      throw err;
    }
  }

  /** RFC 9449 §7: a bound token needs the DPoP scheme and a fresh proof by its key. Refusals are audited. */
  private async checkBinding(
    presented: PresentedToken,
    jkt: string | undefined,
    lease: LeaseRecord,
    requestId: string | undefined,
  ): Promise<void> {
    try {
      if (jkt === undefined) {
        throw refuse("the lease token is not DPoP-bound; send it as 'Authorization: Bearer <token>'");
      }
      if (presented.scheme !== "DPoP") {
        throw refuse(
          "the lease token is DPoP-bound: send it as 'Authorization: DPoP <token>' with a DPoP proof",
        );
      }
      if (presented.proof === undefined) {
        throw refuse(
          "DPoP proof missing: a DPoP-bound lease token needs a fresh DPoP header on every request",
        );
      }
      if (this.o.dpop === undefined) throw refuse("DPoP is not enabled on this sidecar");
      if (presented.htu === undefined)
        throw refuse("DPoP proof cannot be checked: the request URL is unusable");
      await this.o.dpop.verify({
        proof: presented.proof,
        htm: presented.htm,
        htu: presented.htu,
        accessToken: presented.token,
        jkt,
      });
    } catch (err) {
      if (isRefusal(err)) {
        await auditLease(this.o.audit, lease, {
          event: "decision",
          scope: "dpop",
          decision: "deny",
          reason: err.message,
          request_id: requestId,
        });
      }
      throw err;
    }
  }
}

function isRefusal(err: unknown): err is LeaseholdError {
  return err instanceof LeaseholdError && err.code === "unauthenticated";
}
