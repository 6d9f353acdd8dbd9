import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { repoRoot } from "../support/sidecar-process.js";

/**
 * Node 20's V8 (11.3) aborts the process when an optimized function is deoptimized lazily
 * around an inlined call into a WebAssembly export returning an externref, as every cedar-wasm
 * call is (bench/repro-wasm-deopt.mjs, docs/operations.md "Node 20 and WebAssembly"). The CLI's
 * first module turns that inlining off (sidecar/cli/v8-flags.ts).
 */
describe("the CLI's V8 flags", () => {
  const repro = (...flags: string[]) =>
    spawnSync(
      process.execPath,
      ["--allow-natives-syntax", ...flags, "bench/repro-wasm-deopt.mjs", "externref"],
      { cwd: repoRoot(), encoding: "utf8", timeout: 60_000 },
    );

  it("let the repro of the Deoptimizer abort run to its end", () => {
    const r = repro("--import", "tsx", "--import", "./sidecar/cli/v8-flags.ts");
    expect(r.stderr).not.toContain("unreachable code");
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain("ok");
  });

  it.runIf(process.versions.v8.startsWith("11.3."))("are needed: without them this V8 aborts", () => {
    const r = repro();
    expect(r.signal).toBe("SIGTRAP");
    expect(r.stderr).toContain("unreachable code");
  });

  it("are set by the first module main.ts loads", async () => {
    const { readFile } = await import("node:fs/promises");
    const main = await readFile(`${repoRoot()}/sidecar/cli/main.ts`, "utf8");
    const firstImport = /^import [^\n]+$/m.exec(main)?.[0];
    expect(firstImport).toBe('import "./v8-flags.js";');
  });
});
