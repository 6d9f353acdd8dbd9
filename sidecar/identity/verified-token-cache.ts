import { hash } from "node:crypto";
import type { CryptoKey } from "jose";
import type { VerifiedLeaseToken } from "./types.js";

/** How many verified lease tokens a sidecar remembers by default (about 1 MiB at most). */
export const VERIFIED_TOKEN_CACHE_SIZE = 4096;

/** A lease token this process verified: its claims, the key that verified it, its time claims (s). */
export interface VerifiedEntry {
  readonly claims: Readonly<VerifiedLeaseToken>;
  readonly key: CryptoKey;
  readonly exp: number;
  readonly nbf: number | undefined;
}

/** The name a token is remembered by: its SHA-256, so the process keeps no bearer token itself. */
export function tokenDigest(token: string): string {
  return hash("sha256", token, "base64url");
}

/**
 * Lease tokens whose signature and claims this process has already verified, so that the next use
 * of the same token skips the Ed25519 verification and the JOSE parsing. A token is a signed,
 * immutable string: the same bytes verified by the same key verify again, so the verification is
 * remembered exactly; what can change is checked on every hit by the caller: that the same key
 * still verifies for its kid (a removed or replaced key drops the entry) and the token's time
 * claims. The lease itself is still read from Redis on every use (I4). Only tokens that verified
 * are remembered, so refused tokens cannot fill it; it holds at most `max` entries, the oldest
 * leaving first, and an expired token's entry leaves at its next use.
 */
export class VerifiedTokenCache {
  readonly #entries = new Map<string, VerifiedEntry>();

  /** `max` 0 remembers nothing (every use verifies). */
  constructor(private readonly max: number = VERIFIED_TOKEN_CACHE_SIZE) {}

  get enabled(): boolean {
    return this.max > 0;
  }

  get size(): number {
    return this.#entries.size;
  }

  get(digest: string): VerifiedEntry | undefined {
    return this.#entries.get(digest);
  }

  set(digest: string, entry: VerifiedEntry): void {
    if (this.max <= 0) return;
    this.#entries.delete(digest);
    while (this.#entries.size >= this.max) {
      const oldest = this.#entries.keys().next().value;
      if (oldest === undefined) break;
      this.#entries.delete(oldest);
    }
    this.#entries.set(digest, entry);
  }

  delete(digest: string): void {
    this.#entries.delete(digest);
  }
}
