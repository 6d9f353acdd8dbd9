import { spawn } from "node:child_process";
import { dirname } from "node:path";

/** PATH the command gets unless its `env` sets one: the system's standard folders. */
export const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** Bytes of each output stream kept; the rest is read and dropped so the command never blocks. */
const CAPTURE_BYTES = 64 * 1024;
/** Bytes of the end of stdout always kept, for a result on its last line however long the output. */
const TAIL_BYTES = 1024;
/** How long to wait for output pipes to close after the command exits (descendants may hold them). */
const DRAIN_MS = 1_000;

export interface CommandSpec {
  /** Program (absolute) and fixed arguments. */
  readonly argv: readonly [string, ...string[]];
  readonly env: Readonly<Record<string, string>> | undefined;
  readonly cwd: string | undefined;
  /** Written to stdin, then stdin is closed. */
  readonly input: string;
  readonly timeoutMs: number;
  /** Runs the command as this uid and gid (no supplementary groups); needs root. */
  readonly runAs?: { readonly uid: number; readonly gid: number } | undefined;
}

export type CommandOutcome =
  | {
      readonly kind: "exited";
      readonly exitCode: number | null;
      readonly signal: NodeJS.Signals | null;
      readonly stdout: string;
      readonly stderr: string;
      /** The last bytes of stdout, even when `stdout` was cut at the capture limit. */
      readonly stdoutTail: string;
    }
  | { readonly kind: "timeout"; readonly stdout: string; readonly stderr: string }
  | { readonly kind: "spawn_failed"; readonly code: string };

interface Captured {
  text(): string;
  tail(): string;
}

function capture(stream: NodeJS.ReadableStream | null): Captured {
  const chunks: Buffer[] = [];
  let kept = 0;
  let tail = Buffer.alloc(0);
  stream?.on("data", (chunk: Buffer) => {
    tail = Buffer.concat([tail, chunk]).subarray(-TAIL_BYTES);
    if (kept >= CAPTURE_BYTES) return;
    const part = chunk.subarray(0, CAPTURE_BYTES - kept);
    chunks.push(part);
    kept += part.length;
  });
  return {
    text: () => Buffer.concat(chunks).toString("utf8"),
    tail: () => tail.toString("utf8"),
  };
}

function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    // Negative pid: the whole process group the command leads (spawned detached).
    process.kill(-pid, "SIGKILL");
  } catch {
    // the group is already gone
  }
}

/**
 * Runs a command without a shell, in its own process group, with exactly `env` (plus a
 * default PATH) as its environment, `input` on stdin and a timeout. When the command exits
 * or times out, whatever is left of its process group is killed, so no helper outlives it
 * holding a secret. Never rejects: spawn failures and timeouts are outcomes. The output it
 * returns is raw; callers scrub it before it goes anywhere.
 */
export function runCommand(spec: CommandSpec): Promise<CommandOutcome> {
  const [program, ...args] = spec.argv;
  return new Promise((resolve) => {
    let settled = false;
    const finish = (outcome: CommandOutcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(drainTimer);
      resolve(outcome);
    };
    let drainTimer: NodeJS.Timeout | undefined;
    const child = spawn(program, args, {
      cwd: spec.cwd ?? dirname(program),
      env: { PATH: DEFAULT_PATH, ...spec.env },
      stdio: ["pipe", "pipe", "pipe"],
      detached: true,
      shell: false,
      windowsHide: true,
      // libuv also drops supplementary groups (setgroups) when it changes the ids.
      ...(spec.runAs === undefined ? {} : { uid: spec.runAs.uid, gid: spec.runAs.gid }),
    });
    const stdout = capture(child.stdout);
    const stderr = capture(child.stderr);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child.pid);
    }, spec.timeoutMs);

    child.on("error", (err: NodeJS.ErrnoException) => {
      killGroup(child.pid);
      finish({ kind: "spawn_failed", code: err.code ?? "unknown" });
    });
    // A command that exits without reading stdin makes the write fail with EPIPE: not a fault.
    child.stdin?.on("error", () => undefined);
    child.stdin?.end(spec.input);

    let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
    const done = () => {
      if (exit === undefined) return;
      finish(
        timedOut
          ? { kind: "timeout", stdout: stdout.text(), stderr: stderr.text() }
          : {
              kind: "exited",
              exitCode: exit.code,
              signal: exit.signal,
              stdout: stdout.text(),
              stderr: stderr.text(),
              stdoutTail: stdout.tail(),
            },
      );
    };
    child.on("exit", (code, signal) => {
      exit = { code, signal };
      killGroup(child.pid);
      // Output may still be in the pipes; 'close' follows once they are drained.
      drainTimer = setTimeout(() => {
        child.stdout?.destroy();
        child.stderr?.destroy();
        done();
      }, DRAIN_MS);
    });
    child.on("close", done);
  });
}
