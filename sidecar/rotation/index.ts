export { type AdminRotationSetting, checkAdminRotation } from "./admin-check.js";
export { withAdminCredential } from "./admin-credential.js";
export {
  type AdminCrashPoint,
  AdminRotation,
  type AdminRotationOptions,
  type AdminRotationOutcome,
} from "./admin-rotation.js";
export { acquireLock, type HeldLock } from "./lock.js";
export { generatePassword, type PasswordPolicy } from "./password.js";
export { Reconciler, type ReconcilerOptions } from "./reconciler.js";
export {
  type CrashPoint,
  leaseSubject,
  RotationEngine,
  type RotationEngineOptions,
  type RotationOutcome,
  type RotationRequest,
} from "./rotation-engine.js";
