import type { JWK } from "jose";
import type { RedisClient } from "../redis.js";

export interface ClusterKeysOptions {
  redis: RedisClient;
  prefix: string;
  /** How long a published key stays without being published again, ms. @default 60000 */
  ttlMs?: number;
}

/**
 * The lease-token public keys of every sidecar of a cluster, in Redis. Each sidecar publishes
 * the keys in its own key file again and again with a short TTL, so a key that leaves a file
 * (pruned after its retention, or deleted by hand) stops being accepted by every sidecar
 * within the TTL, and so do the keys of a sidecar that is gone.
 */
export class ClusterKeys {
  private readonly ttlMs: number;

  constructor(private readonly o: ClusterKeysOptions) {
    this.ttlMs = o.ttlMs ?? 60_000;
  }

  private key(kid: string): string {
    return `${this.o.prefix}jwks:${kid}`;
  }

  private get index(): string {
    return `${this.o.prefix}jwks-kids`;
  }

  /** Publishes (or refreshes) these public keys. */
  async publish(keys: readonly JWK[]): Promise<void> {
    for (const k of keys) {
      if (!k.kid) continue;
      const pub: JWK = { kty: k.kty, crv: k.crv, x: k.x, kid: k.kid, alg: k.alg ?? "EdDSA", use: "sig" };
      await this.o.redis.set(this.key(k.kid), JSON.stringify(pub), "PX", this.ttlMs);
      await this.o.redis.sadd(this.index, k.kid);
    }
  }

  /** A published key by kid, or undefined when no live sidecar publishes it. */
  async resolve(kid: string): Promise<JWK | undefined> {
    const raw = await this.o.redis.get(this.key(kid));
    return raw ? (JSON.parse(raw) as JWK) : undefined;
  }

  /** Every published key (for /.well-known/jwks.json); forgets kids whose key expired. */
  async all(): Promise<JWK[]> {
    const out: JWK[] = [];
    for (const kid of await this.o.redis.smembers(this.index)) {
      const k = await this.resolve(kid);
      if (k) out.push(k);
      else await this.o.redis.srem(this.index, kid);
    }
    return out;
  }
}
