import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  AUDIT_EVENTS,
  type AuditFields,
  AuditLog,
  type AuditRecord,
  auditFileSet,
  parseTimeBound,
  queryAudit,
} from "../../sidecar/audit/index.js";
import { LeaseholdError } from "../../sidecar/errors.js";
import { expectValidAuditRecords } from "./record-check.js";

let dir: string;
let fileA: string;
let fileB: string;
/** A clock the test moves: one record per minute. */
let clock = Date.parse("2025-03-01T10:00:00.000Z");
const minute = 60_000;

async function write(file: string, sidecar: string, records: AuditFields[], maxBytes = 0): Promise<void> {
  const log = await AuditLog.open(file, sidecar, undefined, {
    watchIntervalMs: 0,
    maxBytes,
    now: () => clock,
  });
  for (const r of records) {
    await log.append(r);
    clock += minute;
  }
  await log.close();
}

const A = "spiffe://t/agent/a";
const B = "spiffe://t/agent/b";

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "lh-audit-query-"));
  await mkdir(join(dir, "a"));
  await mkdir(join(dir, "b"));
  fileA = join(dir, "a", "audit.jsonl");
  fileB = join(dir, "b", "audit.jsonl");
  // Sidecar A (rotating every ~2 records) and sidecar B interleave in time.
  for (let i = 0; i < 6; i++) {
    await write(
      fileA,
      "sidecar-a",
      [
        {
          event: i % 2 ? "reveal" : "checkout",
          agent: i < 3 ? A : B,
          resource: "orders-db",
          lease_id: `lse_a${i}`,
        },
      ],
      700,
    );
    await write(fileB, "sidecar-b", [
      { event: "checkout", agent: A, resource: i % 2 ? "orders-db" : "crm", lease_id: `lse_b${i}` },
    ]);
  }
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const times = (rs: AuditRecord[]) => rs.map((r) => Date.parse(r.time));

describe("queryAudit", () => {
  it("answers newest first across chains and rotated files, with filters", async () => {
    expect((await auditFileSet(fileA)).length).toBeGreaterThan(2);
    const all = await queryAudit({ files: [fileA, fileB], limit: 100 });
    expect(all.records).toHaveLength(12);
    expectValidAuditRecords(all.records);
    expect(all.next_cursor).toBeUndefined();
    expect(times(all.records)).toEqual([...times(all.records)].sort((x, y) => y - x));
    expect(new Set(all.records.map((r) => r.sidecar))).toEqual(new Set(["sidecar-a", "sidecar-b"]));

    const aCheckouts = await queryAudit({
      files: [fileA, fileB],
      agent: A,
      event: "checkout",
      resource: "orders-db",
    });
    expect(aCheckouts.records.map((r) => r.lease_id)).toEqual([
      "lse_b5",
      "lse_b3",
      "lse_a2",
      "lse_b1",
      "lse_a0",
    ]);

    const reveals = await queryAudit({ files: [fileA], event: ["reveal"], agent: B });
    expect(reveals.records.map((r) => r.lease_id)).toEqual(["lse_a5", "lse_a3"]);
    expect((await queryAudit({ files: [fileA, fileB], leaseId: "lse_b2" })).records).toHaveLength(1);
  });

  it("refuses an unknown event by name, with a close match and every valid event (CLI and route alike)", async () => {
    const refused = await queryAudit({ files: [fileA], event: ["checkout", "reveel"] }).catch(
      (e: unknown) => e,
    );
    expect(refused).toBeInstanceOf(LeaseholdError);
    expect((refused as LeaseholdError).code).toBe("invalid_request");
    expect((refused as LeaseholdError).message).toBe(
      `event: unknown value (did you mean "reveal"?); valid values: ${Object.keys(AUDIT_EVENTS).join(", ")}`,
    );
  });

  it("pages with a cursor without repeating or skipping a record", async () => {
    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = await queryAudit({ files: [fileA, fileB], limit: 5, cursor });
      seen.push(...page.records.map((r) => r.lease_id as string));
      cursor = page.next_cursor;
      pages++;
    } while (cursor && pages < 10);
    expect(pages).toBe(3);
    const all = (await queryAudit({ files: [fileA, fileB], limit: 100 })).records.map((r) => r.lease_id);
    expect(seen).toEqual(all);
    const filtered: string[] = [];
    cursor = undefined;
    do {
      const page = await queryAudit({ files: [fileA, fileB], agent: A, limit: 2, cursor });
      filtered.push(...page.records.map((r) => r.lease_id as string));
      cursor = page.next_cursor;
    } while (cursor);
    expect(filtered).toEqual(
      (await queryAudit({ files: [fileA, fileB], agent: A, limit: 100 })).records.map((r) => r.lease_id),
    );
  });

  it("limits by time: a duration back from now or an RFC 3339 time", async () => {
    const now = clock;
    // One record a minute, the last one a minute before now: five records in the last 5 minutes.
    const recent = await queryAudit({ files: [fileA, fileB], since: "5m", now: () => now, limit: 100 });
    expect(recent.records.map((r) => r.lease_id)).toEqual(["lse_b5", "lse_a5", "lse_b4", "lse_a4", "lse_b3"]);
    const first = await queryAudit({ files: [fileA, fileB], until: "2025-03-01T10:01:00Z", limit: 100 });
    expect(first.records.map((r) => r.lease_id)).toEqual(["lse_b0", "lse_a0"]);
  });

  it("refuses a bad time or cursor with invalid_request naming the field", async () => {
    await expect(queryAudit({ files: [fileA], since: "yesterday" })).rejects.toMatchObject({
      code: "invalid_request",
      message: expect.stringMatching(/^since:/),
    });
    await expect(queryAudit({ files: [fileA], cursor: "bm9wZQ" })).rejects.toMatchObject({
      code: "invalid_request",
      message: expect.stringMatching(/^cursor:/),
    });
    expect(parseTimeBound("2h", 10 * 3_600_000)).toBe(8 * 3_600_000);
  });

  it("answers from a missing file with nothing", async () => {
    expect(
      await queryAudit({ files: [join(dir, "none", `${randomBytes(2).toString("hex")}.jsonl`)] }),
    ).toEqual({
      records: [],
    });
  });
});
