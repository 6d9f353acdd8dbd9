import { spawn, spawnSync } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { cliPath, repoRoot, unbundledCliPath } from "../support/sidecar-process.js";

/**
 * Issue 19: the `leasehold` bin is the CLI bundled by esbuild (scripts/bundle.mjs) into
 * dist/cli/. It must set the V8 flags before anything else runs, keep what a command loads on
 * demand out of what every command loads, and be the same program as the sources.
 */

interface Metafile {
  outputs: Record<
    string,
    { imports: Array<{ path: string; kind: string; external?: boolean }>; inputs: Record<string, unknown> }
  >;
}

const root = repoRoot();
const dist = join(root, "dist/cli");

/** The sources in an output file and in every file it imports statically, transitively. */
function staticInputs(meta: Metafile, output: string): string[] {
  const seen = new Set<string>();
  const todo = [output];
  for (let o = todo.pop(); o !== undefined; o = todo.pop()) {
    if (seen.has(o)) continue;
    seen.add(o);
    for (const i of meta.outputs[o]?.imports ?? [])
      if (i.kind === "import-statement" && !i.external) todo.push(i.path);
  }
  return [...seen].flatMap((o) => Object.keys(meta.outputs[o]?.inputs ?? {}));
}

/** Sources only the server (or a server-side command) needs. */
const SERVER_SOURCES =
  /node_modules\/(fastify|ioredis|@cedar-policy|node-vault|axios|pg|mysql2|ldapts|zod|pino|prom-client)\/|^sidecar\/(wire|app|config|logger)\.ts|^sidecar\/(policy|audit|http|service|leases|secrets|rotation)\//;

describe("the bundled CLI (dist/cli)", () => {
  it("imports the V8 flags first, from a module that imports nothing else", async () => {
    const bin = await readFile(cliPath(), "utf8");
    const imports = [...bin.matchAll(/^import\s+"([^"]+)";$/gm)].map((m) => m[1]);
    expect(imports).toEqual(["./v8-flags.mjs", "./main.mjs"]);
    const flags = await readFile(join(dist, "v8-flags.mjs"), "utf8");
    expect([...flags.matchAll(/\bfrom\s+"([^"]+)"/g)].map((m) => m[1])).toEqual(["node:v8"]);
  });

  it("its V8 flags module lets the repro of the Deoptimizer abort run to its end", () => {
    const r = spawnSync(
      process.execPath,
      [
        "--allow-natives-syntax",
        "--import",
        join(dist, "v8-flags.mjs"),
        "bench/repro-wasm-deopt.mjs",
        "externref",
      ],
      { cwd: root, encoding: "utf8", timeout: 60_000 },
    );
    expect(r.stderr).not.toContain("unreachable code");
    expect(r.status, r.stderr).toBe(0);
  });

  it("loads no server code before a command runs; serve's chunk does", async () => {
    const meta = JSON.parse(await readFile(join(dist, "meta.json"), "utf8")) as Metafile;
    const main = staticInputs(meta, "dist/cli/main.mjs");
    expect(main).toContain("sidecar/cli/program.ts");
    expect(main.filter((s) => SERVER_SOURCES.test(s))).toEqual([]);
    const serve = Object.keys(meta.outputs).find((o) =>
      Object.keys(meta.outputs[o]?.inputs ?? {}).includes("sidecar/cli/commands/serve-run.ts"),
    );
    expect(serve).toBeDefined();
    const served = staticInputs(meta, serve as string);
    expect(served.some((s) => s.includes("node_modules/fastify/"))).toBe(true);
    expect(served.some((s) => s.startsWith("sidecar/wire"))).toBe(true);
  });

  it.each([[["--help"]], [["serve", "--help"]], [["leases", "list", "--help"]], [["--version"]]])(
    "answers %j as the unbundled build does",
    (args) => {
      const run = (cli: string) =>
        spawnSync(process.execPath, [cli, ...args], { cwd: root, encoding: "utf8" });
      const bundled = run(cliPath());
      const unbundled = run(unbundledCliPath());
      expect(bundled.status, bundled.stderr).toBe(0);
      expect(bundled.stdout).not.toBe("");
      expect(bundled.stdout).toBe(unbundled.stdout);
    },
  );

  it("a reader that closes the pipe early (`--help | head -1`) ends the command quietly, exit 0", async () => {
    const child = spawn(process.execPath, [cliPath(), "--help"], { stdio: ["ignore", "pipe", "pipe"] });
    // The reading end goes before the CLI has started: its first write meets a closed pipe.
    child.stdout.destroy();
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString("utf8");
    });
    const code = await new Promise<number | null>((resolve) => child.on("close", (c) => resolve(c)));
    expect(stderr).not.toMatch(/EPIPE|Unhandled|Error/);
    expect(code).toBe(0);
  });
});
