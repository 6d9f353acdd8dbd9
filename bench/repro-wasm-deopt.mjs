// Minimal repro of the Node 20 (V8 11.3) abort "Fatal error in , line 0 / unreachable code" in
// Deoptimizer::DoComputeBuiltinContinuation: an optimized function inlines a call into a
// WebAssembly export that returns an externref (as wasm-bindgen's output for cedar-wasm does);
// during that call, JS invalidates an assumption of the caller's optimized code, so the caller is
// deoptimized lazily, on return from WebAssembly.
//   node --allow-natives-syntax bench/repro-wasm-deopt.mjs externref   -> aborts (SIGTRAP, 133)
//   node --allow-natives-syntax bench/repro-wasm-deopt.mjs i32         -> "ok"
//   node --allow-natives-syntax --no-turbo-inline-js-wasm-calls bench/repro-wasm-deopt.mjs externref -> "ok"
//   node --allow-natives-syntax bench/repro-wasm-deopt.mjs externref setflags -> "ok" (the flag set
//   at run time with v8.setFlagsFromString, as sidecar/cli/v8-flags.ts does)
import { setFlagsFromString } from "node:v8";

if (process.argv[3] === "setflags") setFlagsFromString("--no-turbo-inline-js-wasm-calls");
const kind = process.argv[2] ?? "externref";
const t = kind === "i32" ? 0x7f : 0x6f;
// (import "m" "cb" (func)) (func (export "g") (param T) (result T) call 0 local.get 0)
// biome-ignore format: one line per section of the module
const bytes = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
  0x01, 0x09, 0x02, 0x60, 0x01, t, 0x01, t, 0x60, 0x00, 0x00, // types: (T) -> T, () -> ()
  0x02, 0x08, 0x01, 0x01, 0x6d, 0x02, 0x63, 0x62, 0x00, 0x01, // import m.cb: () -> ()
  0x03, 0x02, 0x01, 0x00, // one function of type 0
  0x07, 0x05, 0x01, 0x01, 0x67, 0x00, 0x01, // export it as "g"
  0x0a, 0x08, 0x01, 0x06, 0x00, 0x10, 0x00, 0x20, 0x00, 0x0b, // call 0; local.get 0; end
]);
const state = { x: 1 };
let invalidate = false;
const { exports } = new WebAssembly.Instance(new WebAssembly.Module(bytes), {
  m: {
    cb: () => {
      // A store to a field the optimized caller read as a constant: its code is marked for
      // deoptimization while its frame (inside the inlined WebAssembly call) is live.
      if (invalidate) state.x = 2;
    },
  },
});
const arg = kind === "i32" ? 7 : { v: 7 };
function caller() {
  const r = exports.g(arg);
  return state.x + (r === arg ? 1 : 0);
}
// V8 natives (--allow-natives-syntax), behind Function so the file stays plain JavaScript.
const natives = (call) => new Function("f", `%${call}(f)`);
natives("PrepareFunctionForOptimization")(caller);
caller();
caller();
natives("OptimizeFunctionOnNextCall")(caller);
caller();
invalidate = true;
console.log(kind, "result", caller(), "ok");
