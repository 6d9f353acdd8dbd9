import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { repoRoot, runCli, unbundledCliPath } from "../support/sidecar-process.js";
import { type Stack, startStack } from "../support/stack.js";

/**
 * Issue 18, items 1-3: `leasehold --version`; each command loads only what it uses (`--help`
 * and the client commands never load the server's modules); client commands need only a
 * client's settings, so an unset VAULT_TOKEN (here LH_TEST_VAULT_TOKEN, which the stack's config
 * names) does not stop them, while `serve` still reads the whole config.
 */

/** Modules only the server (or a server-side command) needs. */
const SERVER_MODULES =
  /node_modules\/(fastify|ioredis|@cedar-policy|node-vault|pg|mysql2|ldapts|zod|pino|prom-client)\/|dist\/sidecar\/(wire|app|config|logger)\.js|dist\/sidecar\/(policy|audit|http|service|leases|secrets|rotation)\//;

let work: string;

/**
 * Runs the CLI as tsc built it (one file per module, so module names say what was loaded) with a
 * module loader hook that records every module it resolves. The bundle keeps the same lazy
 * imports as chunks: test/cli/bundle.test.ts checks what its bin loads before a command runs.
 */
function tracedRun(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number | null; stderr: string; modules: string[] }> {
  const trace = join(work, `trace-${Math.random().toString(36).slice(2)}.txt`);
  return new Promise((resolve) => {
    const child = spawn(
      process.execPath,
      ["--import", join(work, "register-trace.mjs"), unbundledCliPath(), ...args],
      {
        env: { ...process.env, ...env, LH_TRACE_FILE: trace },
        cwd: work,
        stdio: ["ignore", "ignore", "pipe"],
      },
    );
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    child.once("exit", async (code) => {
      const text = await readFile(trace, "utf8").catch(() => "");
      resolve({ code, stderr, modules: [...new Set(text.split("\n").filter(Boolean))] });
    });
  });
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "lh-cli-settings-"));
  await writeFile(
    join(work, "trace-hooks.mjs"),
    [
      'import { appendFileSync } from "node:fs";',
      "export async function resolve(specifier, context, next) {",
      "  const r = await next(specifier, context);",
      "  appendFileSync(process.env.LH_TRACE_FILE, `${r.url}\\n`);",
      "  return r;",
      "}",
    ].join("\n"),
  );
  await writeFile(
    join(work, "register-trace.mjs"),
    'import { register } from "node:module";\nregister(new URL("./trace-hooks.mjs", import.meta.url));\n',
  );
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe("leasehold --version", () => {
  it("prints the version of package.json", async () => {
    const pkg = JSON.parse(await readFile(join(repoRoot(), "package.json"), "utf8")) as { version: string };
    const r = await runCli(["--version"]);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(pkg.version);
  });
});

describe("each command loads only what it uses", () => {
  it("the trace sees a server module when a command does load one", async () => {
    // policy validate loads Cedar: proves the trace records what the CLI loads.
    await writeFile(join(work, "p.cedar"), "permit (principal, action, resource);\n");
    const r = await tracedRun(["policy", "validate", join(work, "p.cedar")]);
    expect(r.stderr).toBe("");
    expect(r.modules.some((m) => m.includes("/@cedar-policy/"))).toBe(true);
    expect(r.modules.some((m) => m.endsWith("dist/sidecar/cli/main.js"))).toBe(true);
  });

  it.each([
    [["--help"]],
    [["leases", "--help"]],
    [["agent", "assert", "--help"]],
    [["serve", "--help"]],
    [["completion", "bash"]],
  ])("leasehold %j loads no server module", async (args) => {
    const r = await tracedRun(args);
    expect(r.code).toBe(0);
    expect(r.modules.filter((m) => SERVER_MODULES.test(m))).toEqual([]);
  });

  it("leases list and agent assert load no server module either", async () => {
    const env = { LEASEHOLD_ADDR: "http://127.0.0.1:9", LEASEHOLD_ADMIN_TOKEN_FILE: join(work, "none") };
    const list = await tracedRun(["leases", "list"], env);
    expect(list.code).toBe(1); // nothing listens there, and there is no token file
    expect(list.modules.filter((m) => SERVER_MODULES.test(m))).toEqual([]);
    const keygen = await runCli([
      "--json",
      "agent",
      "keygen",
      "--id",
      "spiffe://example.org/agent/t",
      "--out",
      work,
    ]);
    const { keyFile } = JSON.parse(keygen.stdout) as { keyFile: string };
    const assert = await tracedRun(["agent", "assert", "--key", keyFile]);
    expect(assert.code).toBe(0);
    expect(assert.modules.filter((m) => SERVER_MODULES.test(m))).toEqual([]);
  });
});

describe("client commands need only a client's settings", () => {
  let stack: Stack;

  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(async () => {
    await stack?.close();
  });

  it("with --config, work while the config's ${LH_TEST_VAULT_TOKEN} is unset", async () => {
    expect(process.env.LH_TEST_VAULT_TOKEN).toBeUndefined();
    expect(await readFile(stack.configFile, "utf8")).toContain("${LH_TEST_VAULT_TOKEN}");
    const leases = await runCli(["--config", stack.configFile, "leases", "list"]);
    expect(leases.stderr).toBe("");
    expect(leases.code).toBe(0);
    expect(leases.stdout).toContain("no active leases");
    const resources = await runCli(["--config", stack.configFile, "--json", "resources", "list"]);
    expect(resources.code).toBe(0);
    expect(JSON.parse(resources.stdout)).toEqual({ resources: [] });
    const cluster = await runCli(["--config", stack.configFile, "cluster", "status"]);
    expect(cluster.code).toBe(0);
  });

  it("serve still reads the whole config: it names the unset variable", async () => {
    const r = await runCli(["--config", stack.configFile, "serve"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("vault.auth.token: environment variable LH_TEST_VAULT_TOKEN is not set");
  });

  it("without --config: LEASEHOLD_ADDR and LEASEHOLD_ADMIN_TOKEN_FILE", async () => {
    const env = {
      LEASEHOLD_ADDR: stack.sidecar.url,
      LEASEHOLD_ADMIN_TOKEN_FILE: join(stack.dir, "state", "admin.token"),
    };
    const r = await runCli(["--json", "leases", "list"], env);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ leases: [] });
    // A token file of another sidecar is refused by this one.
    await writeFile(join(work, "other.token"), "not-this-sidecars-admin-token-0123456789\n", { mode: 0o600 });
    const wrong = await runCli(["leases", "list"], {
      ...env,
      LEASEHOLD_ADMIN_TOKEN_FILE: join(work, "other.token"),
    });
    expect(wrong.code).toBe(1);
    // Without a token file nor a config, the error says what to set.
    const none = await runCli(["leases", "list"], { LEASEHOLD_ADDR: stack.sidecar.url });
    expect(none.code).toBe(1);
    expect(none.stderr).toContain("LEASEHOLD_ADMIN_TOKEN_FILE");
  });
});
