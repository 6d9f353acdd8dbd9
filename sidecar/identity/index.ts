export { agentKeyFileStem, generateAgentKey } from "./agent-key.js";
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
export { isSpiffeId, type SpiffeIdProblem, spiffeIdProblem } from "./spiffe-id.js";
export {
  DEFAULT_IDENTITY_ALGORITHMS,
  type GeneratedAgentKey,
  type GenerateAgentKeyOptions,
  type IdentityOptions,
  type IdentityVerifier,
  type JwksFetch,
  type LeaseKeyResolver,
  type LeaseTokenInput,
  type LeaseTokenKeysOptions,
  type LeaseTokenService,
  type MintIdentityAssertionOptions,
  type RemoteJwksOptions,
  type TrustEntry,
  type VerifiedIdentity,
  type VerifiedLeaseToken,
} from "./types.js";
