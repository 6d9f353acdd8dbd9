import { timingSafeEqual } from "node:crypto";
import type { FastifyRequest } from "fastify";
import { LeaseholdError } from "../errors.js";
import { dpopRequestUrl, MAX_TOKEN_BYTES, refuseOversizedToken } from "../identity/index.js";
import type { PresentedToken } from "../service/index.js";

/** Compares two secrets in time independent of where they differ. */
export function sameSecret(a: string, b: string): boolean {
  // Strings of different lengths differ; their byte lengths would have told the same below.
  if (a.length !== b.length) return false;
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** The longest Authorization header holding a token within the limit: scheme, space, token. */
const MAX_AUTHORIZATION_LENGTH = MAX_TOKEN_BYTES + "Bearer ".length + 16;

/** Refuses an Authorization header too long to hold a token within the limit, before any regex runs on it. */
function refuseOversizedHeader(h: string): void {
  if (h.length > MAX_AUTHORIZATION_LENGTH) refuseOversizedToken(h, "the token");
}

/** The header carrying a delegation token from `POST /v1/token-exchange` beside the actor's identity. */
export const DELEGATION_HEADER = "x-leasehold-delegation";

/**
 * The delegation token of the `X-Leasehold-Delegation` header, or undefined when there is none.
 * @throws 401 unauthenticated when the header is repeated, empty or over the 8 KiB token limit
 */
export function delegationToken(req: FastifyRequest): string | undefined {
  const h = req.headers[DELEGATION_HEADER];
  if (h === undefined) return undefined;
  if (typeof h !== "string" || h.trim().length === 0) {
    throw new LeaseholdError("unauthenticated", "X-Leasehold-Delegation must hold one delegation token");
  }
  refuseOversizedToken(h.trim(), "delegation token");
  return h.trim();
}

/**
 * The token of `Authorization: Bearer <token>`.
 * @throws 401 unauthenticated when absent, malformed or over the 8 KiB token limit
 */
export function bearer(req: FastifyRequest): string {
  const h = req.headers.authorization;
  if (!h) throw new LeaseholdError("unauthenticated", "an Authorization: Bearer header is required");
  refuseOversizedHeader(h);
  const m = /^Bearer\s+(\S+)$/i.exec(h);
  if (!m?.[1])
    throw new LeaseholdError("unauthenticated", "the Authorization header must be 'Bearer <token>'");
  refuseOversizedToken(m[1], "the token");
  return m[1];
}

/** Whether the request carries `Authorization: Bearer <admin token>`; never throws. */
export function hasAdminToken(req: FastifyRequest, adminToken: string): boolean {
  const h = req.headers.authorization ?? "";
  if (h.length > MAX_AUTHORIZATION_LENGTH) return false;
  const m = /^Bearer\s+(\S+)$/i.exec(h);
  return m?.[1] !== undefined && sameSecret(m[1], adminToken);
}

/**
 * The 401 for a bearer token that is not the admin token: it says where the admin token comes
 * from (the setting, never a token), and on routes open to operators what else would pass.
 */
export function notTheAdminToken(operatorsToo: boolean): LeaseholdError {
  const source = "the admin token is the content of the file named by the sidecar's admin.tokenFile setting";
  return new LeaseholdError(
    "unauthenticated",
    operatorsToo
      ? `the bearer token is neither the admin token nor an operator identity JWT (${source}; an operator signs one with 'leasehold agent assert' or passes --identity-key to the CLI)`
      : `the bearer token is not the admin token (${source})`,
  );
}

/** Throws 401 unless the request carries `Authorization: Bearer <admin token>`; returns the actor. */
export function requireAdminToken(req: FastifyRequest, adminToken: string): string {
  if (!sameSecret(bearer(req), adminToken)) throw notTheAdminToken(false);
  return "admin";
}

/**
 * An agent's token as presented: `Authorization: Bearer <token>` or `DPoP <token>` (RFC 9449),
 * the `DPoP` proof header, and the method and URL (`dpopRequestUrl`) the proof must name. Only
 * its shape and size are checked here (a token or proof over 8 KiB is refused before any parsing);
 * the lease service verifies it.
 * @throws 401 unauthenticated when the header is absent, malformed or oversized
 */
export function presentedToken(req: FastifyRequest): PresentedToken {
  const h = req.headers.authorization;
  if (!h)
    throw new LeaseholdError("unauthenticated", "an Authorization: Bearer (or DPoP) header is required");
  refuseOversizedHeader(h);
  const m = /^(Bearer|DPoP)\s+(\S+)$/i.exec(h);
  if (!m?.[1] || !m[2]) {
    throw new LeaseholdError(
      "unauthenticated",
      "the Authorization header must be 'Bearer <token>' or 'DPoP <token>'",
    );
  }
  refuseOversizedToken(m[2], "the token");
  const proof = req.headers.dpop;
  if (typeof proof === "string") refuseOversizedToken(proof, "the DPoP proof");
  return {
    scheme: m[1].toLowerCase() === "dpop" ? "DPoP" : "Bearer",
    token: m[2],
    proof: typeof proof === "string" ? proof : undefined,
    htm: req.method,
    // Only a proof is checked against the URL: without one, no request pays for normalising it.
    htu: typeof proof === "string" ? dpopRequestUrl(req.headers.host, req.url) : undefined,
  };
}
