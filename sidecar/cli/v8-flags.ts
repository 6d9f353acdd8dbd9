import { setFlagsFromString } from "node:v8";

/**
 * V8 flags the `leasehold` process sets for itself before any of its code runs hot.
 *
 * `--no-turbo-inline-js-wasm-calls`: Node 20's V8 (11.3) aborts the whole process ("Fatal error
 * in , line 0 / unreachable code", in `Deoptimizer::DoComputeBuiltinContinuation`) when an
 * optimized function that inlined a call into WebAssembly is deoptimized lazily around that call.
 * The sidecar calls WebAssembly on every decision (Cedar, `@cedar-policy/cedar-wasm`) and parses
 * SQL with it (`libpg-query`): bench/repro-reveal.ts, the reveal path on an in-process sidecar,
 * aborted in 7 of 17 runs without the flag and in none of 18 with it (docs/operations.md, "Node 20
 * and WebAssembly"). JIT flags are read when a function is optimized, so setting them here, the
 * first module `main.ts` loads, covers everything the process optimizes later.
 */
export const V8_FLAGS = ["--no-turbo-inline-js-wasm-calls"] as const;

for (const flag of V8_FLAGS) setFlagsFromString(flag);
