export { acquireLock, type HeldLock } from "./lock.js";
export { generatePassword, type PasswordPolicy } from "./password.js";
export { Reconciler, type ReconcilerOptions } from "./reconciler.js";
export {
  type CrashPoint,
  RotationEngine,
  type RotationEngineOptions,
  type RotationOutcome,
  type RotationRequest,
} from "./rotation-engine.js";
