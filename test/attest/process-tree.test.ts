import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ProcProcessTree } from "../../sidecar/attest/index.js";
import { waitFor } from "../support/wait-for.js";

function startTimeOf(pid: number): string {
  const text = readFileSync(`/proc/${pid}/stat`, "latin1");
  return text.slice(text.lastIndexOf(")") + 2).split(" ")[19] as string;
}

/** A child `node -e` that starts a grandchild and prints its pid; both stay until stdin closes. */
const PARENT = `
const { spawn } = require("node:child_process");
const g = spawn(process.execPath, ["-e", "process.stdin.resume(); process.stdin.on('end', () => process.exit(0))"], { stdio: ["pipe", "ignore", "ignore"] });
process.stdout.write("grandchild " + g.pid + "\\n");
process.stdin.resume();
process.stdin.on("end", () => { g.stdin.end(); g.on("exit", () => process.exit(0)); });
`;

const running: Array<{
  stdin: { end(): void };
  exitCode: number | null;
  once(e: "exit", f: () => void): void;
}> = [];

async function startFamily(): Promise<{ child: number; grandchild: number }> {
  const c = spawn(process.execPath, ["-e", PARENT], { stdio: ["pipe", "pipe", "inherit"] });
  running.push(c);
  let out = "";
  c.stdout.on("data", (d) => {
    out += String(d);
  });
  const grandchild = await waitFor("the child to print its grandchild's pid", () => {
    const m = /grandchild (\d+)/.exec(out);
    return m ? Number(m[1]) : undefined;
  });
  return { child: c.pid as number, grandchild };
}

afterAll(async () => {
  await Promise.all(
    running.map(
      (c) =>
        new Promise<void>((r) => {
          if (c.exitCode !== null) return r();
          c.once("exit", () => r());
          c.stdin.end();
        }),
    ),
  );
});

describe.runIf(process.platform === "linux")("ProcProcessTree on this host's /proc", () => {
  const tree = new ProcProcessTree();

  it("counts a process itself, its child and its grandchild; not a sibling; not a pid with another start time", async () => {
    const a = await startFamily();
    const b = await startFamily();
    const st = (pid: number) => startTimeOf(pid);
    const me = process.pid;
    expect(await tree.isSameOrDescendant(a.child, st(a.child), a.child, st(a.child))).toBe(true);
    expect(await tree.isSameOrDescendant(a.grandchild, st(a.grandchild), a.child, st(a.child))).toBe(true);
    expect(await tree.isSameOrDescendant(a.grandchild, st(a.grandchild), me, st(me))).toBe(true);
    // A sibling tree, and the ancestor the other way round.
    expect(await tree.isSameOrDescendant(b.grandchild, st(b.grandchild), a.child, st(a.child))).toBe(false);
    expect(await tree.isSameOrDescendant(b.child, st(b.child), a.child, st(a.child))).toBe(false);
    expect(await tree.isSameOrDescendant(a.child, st(a.child), a.grandchild, st(a.grandchild))).toBe(false);
    // The same pids recorded with another start time: a reused pid, not the recorded process.
    const other = String(BigInt(st(a.child)) + 1n);
    expect(await tree.isSameOrDescendant(a.grandchild, st(a.grandchild), a.child, other)).toBe(false);
    expect(await tree.isSameOrDescendant(a.grandchild, "1", a.child, st(a.child))).toBe(false);
    // A process that is gone.
    expect(await tree.isSameOrDescendant(2 ** 22 + 1, "1", a.child, st(a.child))).toBe(false);
  });
});

describe("ProcProcessTree on a made-up /proc", () => {
  const proc = mkdtempSync(join(tmpdir(), "lh-proc-"));
  afterAll(() => rmSync(proc, { recursive: true, force: true }));

  /** A stat line whose comm holds spaces and parentheses, as the kernel prints it. */
  function stat(pid: number, comm: string, ppid: number, start: number): void {
    mkdirSync(join(proc, String(pid)), { recursive: true });
    // Fields 3 (state) and 4 (ppid), then fields 5 to 21, then 22 (starttime) and one more.
    const after = ["S", String(ppid), ...Array(17).fill("0"), String(start), "0"];
    writeFileSync(join(proc, String(pid), "stat"), `${pid} (${comm}) ${after.join(" ")}\n`);
  }

  it("parses comm with spaces and parentheses, and refuses a parent that started after its child", async () => {
    stat(1, "init", 0, 1);
    stat(100, "agent (v2) ) x", 1, 500);
    stat(200, "psql", 100, 600);
    stat(300, ") (", 200, 700);
    // pid 400's recorded parent 100 is fine, but pid 500's parent 450 started after it: reused.
    stat(450, "late", 100, 900);
    stat(500, "orphan", 450, 800);
    const tree = new ProcProcessTree(proc);
    expect(await tree.isSameOrDescendant(300, "700", 100, "500")).toBe(true);
    expect(await tree.isSameOrDescendant(300, "700", 1, "1")).toBe(true);
    expect(await tree.isSameOrDescendant(200, "600", 300, "700")).toBe(false);
    expect(await tree.isSameOrDescendant(500, "800", 100, "500")).toBe(false);
  });
});
