import { type ChildProcessByStdio, spawn } from "node:child_process";
import type { Readable, Writable } from "node:stream";
import { waitFor } from "../support/wait-for.js";

/**
 * A child `node -e` that connects to `target` (a Unix socket path, or host and port), prints
 * `connected`, and stays until its stdin closes. `runAs` runs it as another OS user (runuser).
 */
const SCRIPT = `
const net = require("node:net");
const [kind, a, b] = process.argv.slice(1);
const s = kind === "unix" ? net.connect(a) : net.connect(Number(b), a);
s.on("connect", () => process.stdout.write("connected " + process.pid + "\\n"));
s.on("error", (e) => { process.stderr.write(String(e.message) + "\\n"); process.exit(2); });
process.stdin.resume();
process.stdin.on("end", () => process.exit(0));
`;

export interface Connector {
  readonly child: ChildProcessByStdio<Writable, Readable, Readable>;
  /** The pid of the node process that holds the connection (runuser's child when `runAs`). */
  readonly pid: number;
  stop(): Promise<void>;
}

export type Target = { kind: "unix"; path: string } | { kind: "tcp"; host: string; port: number };

export async function connectFromChild(target: Target, runAs?: string): Promise<Connector> {
  const args = [
    "-e",
    SCRIPT,
    target.kind,
    ...(target.kind === "unix" ? [target.path] : [target.host, String(target.port)]),
  ];
  const child =
    runAs === undefined
      ? spawn(process.execPath, args, { stdio: ["pipe", "pipe", "pipe"] })
      : spawn("runuser", ["-u", runAs, "--", process.execPath, ...args], { stdio: ["pipe", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stdout.on("data", (d) => {
    out += String(d);
  });
  child.stderr.on("data", (d) => {
    err += String(d);
  });
  const exited = new AbortController();
  child.once("exit", (code) => exited.abort(new Error(`connector exited ${code}: ${err.trim()}`)));
  const pid = await waitFor(
    () => `the connector to print "connected" (stderr: ${err.trim()})`,
    () => {
      const m = /connected (\d+)/.exec(out);
      return m ? Number(m[1]) : undefined;
    },
    { signal: exited.signal },
  );
  return {
    child,
    pid,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const gone = new Promise<void>((r) => child.once("exit", () => r()));
      child.stdin.end();
      await gone;
    },
  };
}
