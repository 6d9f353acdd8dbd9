import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";

export interface RunResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** A clean environment for client tools: no PG* / REDIS* settings of the caller leak in. */
export function toolEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/tmp", LANG: "C", ...extra };
}

/** Spawns a tool; the result resolves when it exits. */
export function start(
  file: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv,
): { child: ChildProcessWithoutNullStreams; result: Promise<RunResult>; stdout: () => string } {
  const child = spawn(file, [...args], { env, stdio: ["pipe", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (c: Buffer) => {
    stdout += c.toString("utf8");
  });
  child.stderr.on("data", (c: Buffer) => {
    stderr += c.toString("utf8");
  });
  const result = new Promise<RunResult>((resolve) => {
    child.once("close", (code) => resolve({ code, stdout, stderr }));
  });
  return { child, result, stdout: () => stdout };
}

/** Runs a tool to completion with `input` on its stdin. */
export async function run(
  file: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv,
  input = "",
): Promise<RunResult> {
  const p = start(file, args, env);
  p.child.stdin.end(input);
  return p.result;
}
