import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuditLog, verifyAuditFile } from "../../sidecar/audit/index.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "lh-audit-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function writeSome(file: string, n: number): Promise<void> {
  const log = await AuditLog.open(file, "test-sidecar");
  await Promise.all(
    Array.from({ length: n }, (_, i) => log.append({ event: "checkout", agent: `a${i}`, resource: "r" })),
  );
  await log.close();
}

describe("audit log", () => {
  it("chains records across reopenings and verifies", async () => {
    const file = join(dir, "ok.jsonl");
    await writeSome(file, 5);
    await writeSome(file, 3);
    const lines = (await readFile(file, "utf8"))
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(lines.map((l) => l.seq)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(lines[5].prev).toBe(lines[4].hash);
    expect(await verifyAuditFile(file)).toEqual({ ok: true, records: 8 });
  });

  it("detects a changed byte, a removed record and swapped records", async () => {
    const file = join(dir, "tamper.jsonl");
    await writeSome(file, 4);
    const lines = (await readFile(file, "utf8")).trim().split("\n");
    const changed = join(dir, "changed.jsonl");
    await writeFile(
      changed,
      [lines[0], (lines[1] as string).replace('"a1"', '"a9"'), lines[2], lines[3]].join("\n"),
    );
    expect(await verifyAuditFile(changed)).toMatchObject({ ok: false, line: 2 });
    const removed = join(dir, "removed.jsonl");
    await writeFile(removed, [lines[0], lines[2], lines[3]].join("\n"));
    expect(await verifyAuditFile(removed)).toMatchObject({ ok: false, line: 2 });
    const swapped = join(dir, "swapped.jsonl");
    await writeFile(swapped, [lines[0], lines[2], lines[1], lines[3]].join("\n"));
    expect(await verifyAuditFile(swapped)).toMatchObject({ ok: false, line: 2 });
  });
});
