import type { JWK } from "jose";
import type { SecretStore } from "../secrets/index.js";

export interface ClusterKeysOptions {
  /** Vault: the only place besides the own key file that lease-token keys are trusted from. */
  secrets: SecretStore;
  /** How long a published key stays valid without being published again, ms. @default 60000 */
  ttlMs?: number;
  /** How long the set of published keys read from Vault is reused, ms. @default 5000 */
  cacheMs?: number;
  /**
   * How old the cached set must be before an unknown kid makes it be read again, ms: a flood of
   * random kids costs Vault at most one read of the set per this interval. @default 2000
   */
  missRefreshMs?: number;
}

/** What a sidecar writes at `<vault prefix>/cluster/lease-token-keys/<kid>`. */
interface PublishedKey {
  readonly jwk: JWK;
  /** ms since the epoch; past it the key is no longer accepted, whatever else holds it. */
  readonly expires_at: number;
}

const FOLDER = ["cluster", "lease-token-keys"] as const;
/** Kids are base64url thumbprints; anything else is not looked up at all. */
const KID = /^[A-Za-z0-9_-]{1,128}$/;
/** More keys than any real cluster has; bounds the work of one read of the set. */
const MAX_KEYS = 256;

/** Only the public members of an Ed25519 key, or undefined when the stored value is anything else. */
function publicPart(jwk: unknown, kid: string): JWK | undefined {
  const k = jwk as Partial<JWK> | null;
  if (!k || typeof k !== "object" || k.kty !== "OKP" || k.crv !== "Ed25519") return undefined;
  if (typeof k.x !== "string" || k.kid !== kid) return undefined;
  return { kty: "OKP", crv: "Ed25519", x: k.x, kid, alg: "EdDSA", use: "sig" };
}

/**
 * The lease-token public keys of every sidecar of a cluster, in Vault (never in Redis: write
 * access to Redis must not mint a token). Each sidecar publishes the keys of its own key file
 * again and again with an `expires_at` one TTL ahead, so a key that leaves a file (pruned, or
 * deleted by hand) stops being accepted by every sidecar once that instant passes, and so do
 * the keys of a sidecar that is gone. Reads are cached briefly in memory.
 */
export class ClusterKeys {
  private readonly ttlMs: number;
  private readonly cacheMs: number;
  private readonly missRefreshMs: number;
  private snapshot: { at: number; keys: Map<string, PublishedKey> } | undefined;
  private loading: Promise<Map<string, PublishedKey>> | undefined;
  /** Reads of the whole set from Vault so far (tests: the negative cache holds). */
  readonly stats = { loads: 0 };

  constructor(private readonly o: ClusterKeysOptions) {
    this.ttlMs = o.ttlMs ?? 60_000;
    this.cacheMs = o.cacheMs ?? 5_000;
    this.missRefreshMs = Math.min(o.missRefreshMs ?? 2_000, this.cacheMs);
  }

  /** Publishes (or refreshes) these public keys; only their public members are written. */
  async publish(keys: readonly JWK[]): Promise<void> {
    const expires_at = Date.now() + this.ttlMs;
    for (const k of keys) {
      if (!k.kid || !KID.test(k.kid)) continue;
      const jwk = publicPart(k, k.kid);
      if (!jwk) continue;
      await this.o.secrets.write<PublishedKey>([...FOLDER, k.kid], { jwk, expires_at });
      this.snapshot?.keys.set(k.kid, { jwk, expires_at });
    }
  }

  /** A published, unexpired key by kid, or undefined (also when Vault cannot be read). */
  async resolve(kid: string): Promise<JWK | undefined> {
    if (!KID.test(kid)) return undefined;
    let hit = (await this.current(this.cacheMs)).get(kid);
    if (!hit) hit = (await this.current(this.missRefreshMs)).get(kid);
    return hit && hit.expires_at > Date.now() ? hit.jwk : undefined;
  }

  /** Every published, unexpired key (for /.well-known/jwks.json). */
  async all(): Promise<JWK[]> {
    const now = Date.now();
    return [...(await this.current(this.cacheMs)).values()]
      .filter((p) => p.expires_at > now)
      .map((p) => p.jwk);
  }

  /** The cached set when younger than maxAgeMs, else a fresh read (one at a time). */
  private async current(maxAgeMs: number): Promise<Map<string, PublishedKey>> {
    if (this.snapshot && Date.now() - this.snapshot.at < maxAgeMs) return this.snapshot.keys;
    this.loading ??= this.load().finally(() => {
      this.loading = undefined;
    });
    return this.loading;
  }

  private async load(): Promise<Map<string, PublishedKey>> {
    const started = Date.now();
    this.stats.loads++;
    try {
      const kids = (await this.o.secrets.list([...FOLDER])).filter((k) => KID.test(k)).slice(0, MAX_KEYS);
      const keys = new Map<string, PublishedKey>();
      await Promise.all(
        kids.map(async (kid) => {
          const entry = await this.o.secrets.read<PublishedKey>([...FOLDER, kid]);
          const jwk = publicPart(entry?.data.jwk, kid);
          const expires_at = entry?.data.expires_at;
          if (!jwk || typeof expires_at !== "number") return;
          if (expires_at > started) keys.set(kid, { jwk, expires_at });
          // Long gone (its sidecar stopped publishing a TTL ago): tidy the folder.
          else if (expires_at < started - this.ttlMs)
            await this.o.secrets.remove([...FOLDER, kid]).catch(() => undefined);
        }),
      );
      this.snapshot = { at: started, keys };
      return keys;
    } catch {
      // Vault unreachable: keep what was known (each key still dies at its expires_at) and
      // try again after missRefreshMs, not on every request.
      const keys = this.snapshot?.keys ?? new Map<string, PublishedKey>();
      this.snapshot = { at: started - this.cacheMs + this.missRefreshMs, keys };
      return keys;
    }
  }
}
