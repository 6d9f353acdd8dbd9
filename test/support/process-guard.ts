import type { ChildProcess } from "node:child_process";
import { spawn } from "node:child_process";
import { rmSync } from "node:fs";

/** A server process a test started, with the folder it lives in. */
export interface GuardedProcess {
  readonly child: ChildProcess;
  readonly dir: string;
  watchdog?: number | undefined;
}

const running = new Set<GuardedProcess>();
let exitHookInstalled = false;

/**
 * Makes sure a test server and its folder go away with this process: on a normal exit (an
 * exit hook) and when this process is killed (a detached shell watching its pid).
 */
export function guardProcess(child: ChildProcess, dir: string, name: string): GuardedProcess {
  const proc: GuardedProcess = { child, dir };
  running.add(proc);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on("exit", () => {
      for (const p of running) {
        p.child.kill("SIGKILL");
        rmSync(p.dir, { recursive: true, force: true });
        endWatchdog(p);
      }
      running.clear();
    });
  }
  proc.watchdog = startWatchdog(child.pid, dir, name);
  return proc;
}

/** The server was stopped (or never came up): stop guarding it. */
export function releaseProcess(proc: GuardedProcess): void {
  running.delete(proc);
  endWatchdog(proc);
}

function startWatchdog(pid: number | undefined, dir: string, name: string): number | undefined {
  if (pid === undefined) return undefined;
  const script = [
    'while kill -0 "$1" 2>/dev/null; do sleep 1; done',
    'kill -9 "$2" 2>/dev/null',
    'rm -rf "$3"',
  ].join("\n");
  const child = spawn(
    "/bin/sh",
    ["-c", script, `leasehold-${name}-watchdog`, String(process.pid), String(pid), dir],
    {
      detached: true,
      stdio: "ignore",
      cwd: "/",
    },
  );
  child.on("error", () => undefined);
  child.unref();
  return child.pid;
}

function endWatchdog(proc: GuardedProcess): void {
  if (proc.watchdog === undefined) return;
  try {
    process.kill(-proc.watchdog, "SIGTERM");
  } catch {
    // already gone
  }
  proc.watchdog = undefined;
}
