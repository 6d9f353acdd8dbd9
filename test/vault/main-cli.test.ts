/** The `npm run vault:dev` entry point, run as a separate process the way a developer runs it. */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { rawCall } from "./raw-call.js";

const MAIN = fileURLToPath(new URL("../vault-dev/main.ts", import.meta.url));
const children: ChildProcess[] = [];

interface Running {
  readonly child: ChildProcess;
  readonly firstLine: string;
  readonly address: string;
  /** Everything printed on stdout so far. */
  output(): string;
}

/** Starts the CLI under tsx and waits for its one "listening" line. */
function startCli(args: string[]): Promise<Running> {
  const child = spawn(process.execPath, ["--import", "tsx", MAIN, ...args], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(child);
  let stdout = "";
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  return new Promise((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`vault-dev exited early (${code}): ${stderr}`)));
    child.stdout?.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
      const newline = stdout.indexOf("\n");
      if (newline === -1) return;
      const firstLine = stdout.slice(0, newline);
      const address = /listening on (http:\/\/\S+)/.exec(firstLine)?.[1];
      if (!address) {
        reject(new Error(`unexpected first line: ${firstLine}`));
        return;
      }
      child.removeAllListeners("exit");
      resolve({ child, firstLine, address, output: () => stdout });
    });
  });
}

function exitCode(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once("exit", (code) => resolve(code)));
}

afterEach(() => {
  for (const child of children.splice(0)) {
    if (child.exitCode === null && child.pid !== undefined) child.kill("SIGKILL");
  }
});

describe("vault:dev CLI", () => {
  it("prints exactly one line when listening, serves Vault's API, and exits 0 on SIGTERM", async () => {
    const cli = await startCli(["--port", "0", "--root-token", "cli-root"]);
    expect(cli.firstLine).toMatch(
      /^vault-dev listening on http:\/\/127\.0\.0\.1:\d+ \(KV v2 at secret\/, root token: cli-root\)$/,
    );
    const write = await rawCall(cli.address, "POST", "/v1/secret/data/cli", {
      token: "cli-root",
      body: { data: { a: 1 } },
    });
    expect(write.status).toBe(200);
    const list = await rawCall(cli.address, "LIST", "/v1/secret/metadata", { token: "cli-root" });
    expect(list.json).toMatchObject({ data: { keys: ["cli"] } });
    const exited = exitCode(cli.child);
    cli.child.kill("SIGTERM");
    expect(await exited).toBe(0);
    expect(cli.output()).toBe(`${cli.firstLine}\n`);
  });

  it("keeps secrets across a restart with --persist and exits 0 on SIGINT", async () => {
    const dir = await mkdtemp(join(tmpdir(), "vault-dev-cli-"));
    try {
      const args = ["--port", "0", "--root-token", "cli-root", "--persist", join(dir, "state.json")];
      const first = await startCli(args);
      await rawCall(first.address, "POST", "/v1/secret/data/kept", {
        token: "cli-root",
        body: { data: { v: 7 } },
      });
      const firstExit = exitCode(first.child);
      first.child.kill("SIGINT");
      expect(await firstExit).toBe(0);

      const second = await startCli(args);
      const read = await rawCall(second.address, "GET", "/v1/secret/data/kept", { token: "cli-root" });
      expect(read.json).toMatchObject({ data: { data: { v: 7 } } });
      const secondExit = exitCode(second.child);
      second.child.kill("SIGINT");
      expect(await secondExit).toBe(0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
