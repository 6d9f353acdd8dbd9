import { refuse } from "./refusal.js";

/** The largest token leasehold reads (identity JWTs, lease tokens, DPoP proofs), in bytes. */
export const MAX_TOKEN_BYTES = 8192;

/**
 * Refuses a token longer than {@link MAX_TOKEN_BYTES} before anything parses it, so an oversized
 * token costs no base64 or JSON decoding. Tokens are ASCII (compact JWS), so characters are bytes;
 * anything else counts by its UTF-8 length.
 * @throws LeaseholdError `unauthenticated` naming the limit
 */
export function refuseOversizedToken(token: string, what: string): void {
  if (token.length > MAX_TOKEN_BYTES || Buffer.byteLength(token, "utf8") > MAX_TOKEN_BYTES) {
    throw refuse(`${what} is larger than the ${MAX_TOKEN_BYTES}-byte (8 KiB) limit`);
  }
}
