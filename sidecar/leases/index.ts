export { LeaseStore, type LeaseStoreOptions } from "./lease-store.js";
export { CHECKOUT_SKEW_MS, WAITER_TTL_MS } from "./store-scripts.js";
export type * from "./types.js";
export { Reaper, type ReaperOptions } from "./reaper.js";
export {
  LEASE_MAC_KEY_PATH,
  type LeaseMacFields,
  loadLeaseMacKey,
  signLease,
  signLeaseForAccounts,
  verifyLease,
} from "./lease-mac.js";
export { CALLER_PARTS, type CallerMismatchAction, type CallerPart } from "./caller.js";
export { type ScramVerifier, SCRAM_ITERATIONS, scramVerifier, type TokenProof } from "./token-verifier.js";
