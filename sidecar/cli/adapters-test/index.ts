export { conformanceChecks, HOSTILE_GROUP, hostileNames, leakCheck } from "./checks.js";
export { CheckFailed, ensure, isAdapterError, Recorder, render, testPassword } from "./harness.js";
export type {
  Check,
  CheckEnv,
  CheckPlan,
  ConformanceReport,
  ConformanceSession,
  Skipped,
  TestAccount,
} from "./types.js";
export { type RunConformanceOptions, runConformance, runConformanceFromFile } from "./run-conformance.js";
export {
  type ConformanceTarget,
  conformanceTargetFile,
  loadConformanceTarget,
  parseConformanceTarget,
} from "./target-file.js";
