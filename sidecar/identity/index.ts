export { agentKeyFileStem, generateAgentKey } from "./agent-key.js";
export { type BundleAttributes, parseBundleAttributes } from "./bundle-attributes.js";
export { parseAllowedCallers } from "./allowed-callers.js";
export {
  createDelegationChecker,
  type DelegationChecker,
  MAX_DELEGATION_DEPTH,
  withDelegation,
} from "./delegation.js";
export {
  createDelegationTokens,
  type DelegationTokens,
  type ExchangeOutcome,
  exchangeToken,
  JWT_TOKEN_TYPE,
  TOKEN_EXCHANGE_GRANT,
} from "./delegation-token.js";
export {
  accessTokenHash,
  createDpopVerifier,
  DEFAULT_DPOP_ALGORITHMS,
  DEFAULT_DPOP_WINDOW_SECONDS,
  DPOP_PROOF_TYP,
  dpopRequestUrl,
  isJwkThumbprint,
} from "./dpop.js";
export { mintIdentityAssertion } from "./identity-assertion.js";
export { createIdentityVerifier } from "./identity-verifier.js";
export { DEFAULT_KEY_RETENTION_SECONDS, LeaseTokenKeys, loadLeaseTokenKeys } from "./lease-token-keys.js";
export {
  createLeaseTokenService,
  LEASE_TOKEN_AUDIENCE,
  LEASE_TOKEN_ISSUER,
  LEASE_TOKEN_TYP,
  type LeaseTokenServiceOptions,
} from "./lease-token-service.js";
export { looksLikeJwt } from "./looks-like-jwt.js";
export { tokenDigest, VERIFIED_TOKEN_CACHE_SIZE, VerifiedTokenCache } from "./verified-token-cache.js";
export { MAX_TOKEN_BYTES, refuseOversizedToken } from "./token-size.js";
export { isSpiffeId, type SpiffeIdProblem, spiffeIdProblem } from "./spiffe-id.js";
export {
  type BundleAttributeValue,
  type CallerPin,
  DEFAULT_IDENTITY_ALGORITHMS,
  type Delegation,
  type DelegationOptions,
  type DpopCheck,
  type DpopReplayStore,
  type DpopVerifier,
  type DpopVerifierOptions,
  type GeneratedAgentKey,
  type GenerateAgentKeyOptions,
  type IdentityOptions,
  type IdentityUse,
  type IdentityVerifier,
  type JwksFetch,
  type LeaseKeyResolver,
  type LeaseTokenInput,
  type LeaseTokenKeysOptions,
  type LeaseTokenService,
  type MintIdentityAssertionOptions,
  type OneTimeSpend,
  type RemoteJwksOptions,
  RESERVED_ATTRIBUTES,
  type TrustEntry,
  type VerifiedDpopProof,
  type VerifiedIdentity,
  type VerifiedLeaseToken,
} from "./types.js";
export { ClusterKeys, type ClusterKeysOptions } from "./cluster-keys.js";
export { type ReplayGuardOptions, withReplayGuard } from "./replay-guard.js";
