import type { JWK } from "jose";
import type { Config } from "../config.js";
import {
  ClusterKeys,
  createDelegationTokens,
  type ExchangeOutcome,
  type VerifiedIdentity,
  exchangeToken,
  createDpopVerifier,
  createIdentityVerifier,
  createLeaseTokenService,
  loadLeaseTokenKeys,
  withDelegation,
  withReplayGuard,
} from "../identity/index.js";
import type { Logger } from "../logger.js";
import type { RedisClient } from "../redis.js";
import type { SecretStore } from "../secrets/index.js";
import type { DpopPort, IdentityPort, LeaseTokenPort } from "../service/index.js";
import { logText } from "../util/dependency-error.js";

/** Who callers are and what their tokens are worth: identity JWTs, DPoP proofs, lease tokens. */
export interface IdentityParts {
  readonly identity: IdentityPort;
  readonly dpop: DpopPort;
  readonly tokens: LeaseTokenPort;
  /** Publishes this sidecar's lease-token public keys to the cluster (again within their TTL). */
  publishKeys(): Promise<void>;
  /** Every lease-token public key of the cluster, this sidecar's first. */
  jwks(): Promise<{ keys: JWK[] }>;
  /** RFC 8693 token exchange: a delegator's identity JWT for a one-time delegation token naming the actor. */
  exchange(
    body: unknown,
    checkDelegator?: (delegator: VerifiedIdentity) => Promise<void>,
  ): Promise<ExchangeOutcome>;
}

/**
 * Builds identity verification (delegation, optional one-time jti), DPoP and the lease-token
 * service. Lease tokens verify only with keys of the own key file or published in Vault (`secrets`);
 * Redis is never asked for a key.
 */
export async function wireIdentity(
  config: Config,
  redis: RedisClient,
  log: Logger,
  secrets: SecretStore,
): Promise<IdentityParts> {
  const prefix = config.redis.prefix;
  const keys = await loadLeaseTokenKeys({ file: config.tokens.signingKey });
  const clusterKeys = new ClusterKeys({ secrets, ttlMs: config.tokens.publishTtl * 1000 });
  const publishKeys = async () => {
    await keys.refresh();
    await clusterKeys.publish(keys.publicJwks().keys);
  };
  await publishKeys().catch((err: unknown) =>
    log.warn({ err: { message: logText(err) } }, "could not publish lease-token keys to vault"),
  );
  const tokens = createLeaseTokenService({
    keys,
    extraKeyResolver: (kid: string) => clusterKeys.resolve(kid),
  });
  // leasehold's own delegation tokens (token exchange), signed and checked with the lease-token keys.
  const delegationTokens = createDelegationTokens({
    keys,
    extraKeyResolver: (kid: string) => clusterKeys.resolve(kid),
    redis,
    prefix,
    trust: config.identity.trust,
    maxDepth: config.identity.delegation.maxDepth,
    humans: config.identity.delegation.humans,
  });
  const delegated = withDelegation(
    createIdentityVerifier({
      audience: config.identity.audience,
      trust: config.identity.trust.map((t) => ({
        ...t,
        subjects: [...t.subjects],
        algorithms: t.algorithms ? [...t.algorithms] : undefined,
      })),
      maxTokenLifetime: config.identity.maxTokenLifetime,
      clockSkew: config.identity.clockSkew,
    }),
    {
      trust: config.identity.trust,
      maxDepth: config.identity.delegation.maxDepth,
      humans: config.identity.delegation.humans,
    },
    delegationTokens,
  );
  const identity = config.identity.oneTimeJti
    ? withReplayGuard(delegated, { redis, prefix, clockSkew: config.identity.clockSkew })
    : delegated;
  const dpop = createDpopVerifier({
    replay: redis,
    prefix,
    windowSeconds: config.identity.dpop.window,
    clockSkew: config.identity.clockSkew,
    ...(config.identity.dpop.algorithms ? { algorithms: config.identity.dpop.algorithms } : {}),
  });
  return {
    identity,
    dpop,
    tokens,
    publishKeys,
    // The replay-guarded verifier: a subject_token is spent by its exchange.
    exchange: (body, checkDelegator) => exchangeToken(body, identity, delegationTokens, checkDelegator),
    jwks: async () => {
      const all = await clusterKeys.all().catch(() => [] as JWK[]);
      const own = keys.publicJwks().keys;
      const seen = new Set(own.map((k) => k.kid));
      return { keys: [...own, ...all.filter((k) => !seen.has(k.kid))] };
    },
  };
}
