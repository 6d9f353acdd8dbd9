import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { abortWhenExited, waitFor } from "./wait-for.js";

const here = dirname(fileURLToPath(import.meta.url));

/** The repository root, from test/support (source) or dist/test/support (built). */
export function repoRoot(): string {
  let dir = here;
  for (let i = 0; i < 5; i++) {
    if (existsSync(resolve(dir, "package.json"))) return dir;
    dir = resolve(dir, "..");
  }
  throw new Error("cannot find the repository root");
}

/** The built CLI, the `leasehold` bin (bundled: scripts/bundle.mjs); tests and the demo drive it as users do. */
export function cliPath(): string {
  return built("dist/cli/leasehold.mjs");
}

/**
 * The CLI as tsc wrote it, one file per module (`dist/sidecar/cli/main.js`): for tests that
 * watch which of the program's modules a command loads.
 */
export function unbundledCliPath(): string {
  return built("dist/sidecar/cli/main.js");
}

function built(path: string): string {
  const p = resolve(repoRoot(), path);
  if (!existsSync(p)) throw new Error(`${p} is missing: run 'npm run build' first`);
  return p;
}

/**
 * How long a spawned server may take to be ready. Node, Cedar's WebAssembly and the first
 * connections to Redis and Vault take seconds on a machine whose cores are busy; this bounds a
 * hang, it does not pace a test.
 */
export const STARTUP_TIMEOUT_MS = 90_000;

export interface SidecarProcess {
  readonly url: string;
  readonly child: ChildProcess;
  /** Everything the process wrote to stdout and stderr so far. */
  output(): string;
  /** SIGTERM and wait for exit. */
  stop(): Promise<number | null>;
  /** SIGKILL and wait for exit. */
  kill(): Promise<void>;
  /** Resolves with the exit code when the process exits. */
  exited: Promise<number | null>;
}

/** Starts `leasehold serve --config FILE` and waits until /healthz answers (or the process exits). */
export async function startSidecarProcess(opts: {
  configFile: string;
  port: number;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
}): Promise<SidecarProcess> {
  const child = spawn(process.execPath, [cliPath(), "serve", "--config", opts.configFile], {
    env: { ...process.env, ...opts.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout?.on("data", (d: Buffer) => {
    out += d.toString();
  });
  child.stderr?.on("data", (d: Buffer) => {
    out += d.toString();
  });
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  const url = `http://127.0.0.1:${opts.port}`;
  try {
    await waitFor(
      `the sidecar on ${url} to answer /healthz`,
      async () => (await fetch(`${url}/healthz`)).ok,
      {
        timeoutMs: opts.timeoutMs ?? STARTUP_TIMEOUT_MS,
        signal: abortWhenExited(exited, "the sidecar"),
      },
    );
  } catch (err) {
    child.kill("SIGKILL");
    throw new Error(`sidecar did not start: ${(err as Error).message}\n${out.slice(-4000)}`);
  }
  return {
    url,
    child,
    output: () => out,
    exited,
    stop: async () => {
      if (child.exitCode === null) child.kill("SIGTERM");
      return exited;
    },
    kill: async () => {
      if (child.exitCode === null) child.kill("SIGKILL");
      await exited;
    },
  };
}

/** A running built CLI and what it has written so far. */
export interface CliProcess {
  readonly child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves once its output is closed: the exit code (-1 when a signal ended it) and output. */
  readonly result: Promise<{ code: number | null; stdout: string; stderr: string }>;
}

/** Starts the built CLI with exactly `env` (nothing inherited), collecting its output. */
export function spawnCli(args: string[], env: NodeJS.ProcessEnv): CliProcess {
  const child = spawn(process.execPath, [cliPath(), ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr?.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  const result = new Promise<{ code: number | null; stdout: string; stderr: string }>((r) =>
    child.once("close", (code, sig) => r({ code: code ?? (sig ? -1 : null), stdout, stderr })),
  );
  return { child, stdout: () => stdout, stderr: () => stderr, result };
}

/** Runs the built CLI to completion (with this process's environment plus `env`). */
export function runCli(
  args: string[],
  env?: NodeJS.ProcessEnv,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const p = spawnCli(args, { ...process.env, ...env });
  return new Promise((r) =>
    p.child.once("exit", (code) => r({ code, stdout: p.stdout(), stderr: p.stderr() })),
  );
}
