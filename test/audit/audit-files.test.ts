import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { auditFileSet, groupAuditFiles } from "../../sidecar/audit/index.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "lh-audit-files-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("audit file sets", () => {
  it("lists rotated files by number (10 after 9), the live file last, and ignores other names", async () => {
    const d = join(dir, randomBytes(3).toString("hex"));
    await mkdir(d);
    const base = join(d, "audit.jsonl");
    for (const n of [
      "audit.jsonl",
      "audit.jsonl.10",
      "audit.jsonl.9",
      "audit.jsonl.1",
      "audit.jsonl.aside",
      "other.jsonl.2",
    ]) {
      await writeFile(join(d, n), "");
    }
    expect(await auditFileSet(base)).toEqual([`${base}.1`, `${base}.9`, `${base}.10`, base]);
  });

  it("groups files named on a command line into chains in chain order", () => {
    expect(
      groupAuditFiles([
        "/a/audit.jsonl",
        "/a/audit.jsonl.10",
        "/a/audit.jsonl.2",
        "/b/side.jsonl",
        "/b/side.jsonl.1",
      ]),
    ).toEqual([
      ["/a/audit.jsonl.2", "/a/audit.jsonl.10", "/a/audit.jsonl"],
      ["/b/side.jsonl.1", "/b/side.jsonl"],
    ]);
    expect(groupAuditFiles(["/copy/x.jsonl.3"])).toEqual([["/copy/x.jsonl.3"]]);
  });
});
