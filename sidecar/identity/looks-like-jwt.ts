const COMPACT_JWS = /^eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*$/;

/**
 * Cheap shape test for a compact JWS (three base64url parts, a JSON header).
 * It proves nothing about validity; it only tells a JWT from other bearer strings.
 */
export function looksLikeJwt(s: string): boolean {
  return s.length <= 16_384 && COMPACT_JWS.test(s);
}
