const TRUST_DOMAIN = /^[a-z0-9._-]+$/;
const PATH_SEGMENT = /^[A-Za-z0-9._-]+$/;
const MAX_LENGTH = 2048;
const MAX_TRUST_DOMAIN_LENGTH = 255;

/** Why a string is not a workload SPIFFE ID; `undefined` means it is one. */
export type SpiffeIdProblem =
  | "not a string"
  | "too long"
  | "scheme must be spiffe://"
  | "invalid trust domain"
  | "missing path"
  | "empty path segment"
  | "dot segment"
  | "invalid character in path";

/**
 * Checks a workload SPIFFE ID (`spiffe://trust-domain/path`) against the SPIFFE
 * ID specification: lowercase trust domain of `[a-z0-9._-]`, a non-empty path
 * whose segments use only `[A-Za-z0-9._-]` (so no percent-encoding, query or
 * fragment can appear), no empty, `.` or `..` segments, no trailing slash.
 */
export function spiffeIdProblem(id: unknown): SpiffeIdProblem | undefined {
  if (typeof id !== "string") return "not a string";
  if (id.length > MAX_LENGTH) return "too long";
  const prefix = "spiffe://";
  if (!id.startsWith(prefix)) return "scheme must be spiffe://";
  const rest = id.slice(prefix.length);
  const slash = rest.indexOf("/");
  const trustDomain = slash === -1 ? rest : rest.slice(0, slash);
  if (trustDomain.length === 0 || trustDomain.length > MAX_TRUST_DOMAIN_LENGTH) return "invalid trust domain";
  if (!TRUST_DOMAIN.test(trustDomain)) return "invalid trust domain";
  if (slash === -1) return "missing path";
  const segments = rest.slice(slash + 1).split("/");
  for (const segment of segments) {
    if (segment.length === 0) return "empty path segment";
    if (segment === "." || segment === "..") return "dot segment";
    if (!PATH_SEGMENT.test(segment)) return "invalid character in path";
  }
  return undefined;
}

/** True when `id` is a well-formed workload SPIFFE ID (see {@link spiffeIdProblem}). */
export function isSpiffeId(id: unknown): id is string {
  return spiffeIdProblem(id) === undefined;
}
