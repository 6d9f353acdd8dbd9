export { ProcCallerAttestor, type ProcCallerAttestorOptions } from "./proc-attestor.js";
export { ProcProcessTree } from "./process-tree.js";
export type {
  AttestedCaller,
  CallerAttestation,
  CallerAttestor,
  CallerTransport,
  ProcessTree,
  UnattestedCaller,
} from "./types.js";
