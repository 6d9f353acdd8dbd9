import { randomBytes } from "node:crypto";
import type { Socket } from "node:net";
import { LeaseholdError } from "../errors.js";
import type { TokenProof } from "../leases/index.js";
import type { SessionContext } from "./session-context.js";
import type { ProxyCredential, ProxyRequestMeta } from "./types.js";

/** The outcome of checking a lease token at a listener: refusals are values, not errors. */
export type TokenCheck =
  | { readonly ok: true; readonly credential: ProxyCredential }
  /** `refused`: the token, the lease or its resource is wrong; `unavailable`: Redis, Vault or the audit log failed. */
  | { readonly ok: false; readonly kind: "refused" | "unavailable"; readonly code: string };

/** A request id for one proxied connection (ties its audit records together). */
export function proxyRequestId(): string {
  return `prx_${randomBytes(9).toString("base64url")}`;
}

/**
 * The caller of a client connection, attested on first ask (once per connection). `socket` is
 * the accepted TCP socket itself, never a TLS wrapper over it: the peer is found by its
 * addresses and the cache is kept per accepted socket.
 */
export function connectionCaller(ctx: SessionContext, socket: Socket): ProxyRequestMeta["caller"] {
  const attestor = ctx.attestor;
  return attestor ? () => attestor.attest(socket) : undefined;
}

/**
 * Checks a lease token exactly as the HTTP API does, for this listener's resource; or, for a
 * client that proved by SCRAM that it knows the token, every check but the token's signature.
 */
export async function checkLeaseToken(
  ctx: SessionContext,
  token: string | TokenProof,
  leaseId: string,
  meta: ProxyRequestMeta,
): Promise<TokenCheck> {
  try {
    return { ok: true, credential: await ctx.leases.proxyCredential(token, leaseId, ctx.resource, meta) };
  } catch (err) {
    if (err instanceof LeaseholdError) {
      return { ok: false, kind: err.status < 500 ? "refused" : "unavailable", code: err.code };
    }
    ctx.log.error(
      { err: { message: (err as Error).message }, resource: ctx.resource },
      "proxy token check failed",
    );
    return { ok: false, kind: "unavailable", code: "internal" };
  }
}
