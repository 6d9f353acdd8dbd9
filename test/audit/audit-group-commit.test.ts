import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type AppendOutcome,
  AuditLog,
  type AuditRecord,
  ChainChecker,
  readAuditStream,
  verifyAuditFile,
} from "../../sidecar/audit/index.js";
import { createMetrics } from "../../sidecar/ops/index.js";
import { dropPrefix, REDIS_URL, testPrefix } from "../support/redis.js";
import { expectValidAuditRecords, readRecords } from "./record-check.js";

/**
 * Group commit of deferred records (AuditLog.appendDeferred, the listeners' statement records):
 * real files, real Redis.
 */

let dir: string;
let redis: Redis;
const prefix = testPrefix("audit-gc");
/** A delay no test waits out: a batch written before it ran out was written for another reason. */
const NEVER = 600_000;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "lh-audit-gc-"));
  redis = new Redis(REDIS_URL);
});
afterAll(async () => {
  redis.disconnect();
  await dropPrefix(prefix);
  await rm(dir, { recursive: true, force: true });
});

const fresh = async (name: string) => {
  const d = join(dir, `${name}-${randomBytes(3).toString("hex")}`);
  await mkdir(d);
  return join(d, "audit.jsonl");
};

const statement = (i: number) =>
  ({
    event: "tool_call",
    scope: "proxy_statement",
    lease_id: "lse_gc",
    tool: "postgres",
    digest: `sha256:${String(i).padStart(64, "0")}`,
    statement: `insert into t values (${i})`,
  }) as const;

/** Appends n deferred records; resolves once each was told it is on disk (or rejects on a refusal). */
function deferMany(
  log: AuditLog,
  n: number,
  from = 0,
): { outcomes: AppendOutcome[]; written: Promise<void> } {
  const outcomes: AppendOutcome[] = [];
  const waits: Promise<void>[] = [];
  for (let i = from; i < from + n; i++) {
    let done: (err?: Error) => void = () => undefined;
    const p = new Promise<void>((resolve, reject) => {
      done = (err) => (err ? reject(err) : resolve());
    });
    const o = log.appendDeferred(statement(i), done);
    outcomes.push(o);
    if (o === "queued") waits.push(p);
  }
  return { outcomes, written: Promise.all(waits).then(() => undefined) };
}

const lines = async (file: string) => (await readFile(file, "utf8")).split("\n").filter((l) => l !== "");

describe("deferred records (group commit)", () => {
  it("thousands of deferred records, mixed with awaited ones, make one chain that verifies, in append order, in the file and the stream", async () => {
    const file = await fresh("many");
    const key = `${prefix}many`;
    const seen: AuditRecord[] = [];
    const log = await AuditLog.open(file, "gc-many", (r) => seen.push(r), {
      watchIntervalMs: 0,
      batchDelayMs: 5,
      maxBatch: 256,
      mirror: { redis, key, maxLen: 100_000, statements: true },
    });
    const waits: Promise<void>[] = [];
    for (let k = 0; k < 10; k++) {
      waits.push(deferMany(log, 300, k * 300).written);
      waits.push(
        log.append({ event: "decision", scope: "checkout", decision: "allow", lease_id: `lse_${k}` }),
      );
    }
    await Promise.all(waits);
    await log.close();
    const recs = await readRecords(file);
    expect(recs).toHaveLength(3010);
    expect(await verifyAuditFile(file)).toMatchObject({ ok: true, records: 3010 });
    // Append order: 300 statements, then the decision appended after them, ten times.
    for (let k = 0; k < 10; k++) {
      const block = recs.slice(k * 301, (k + 1) * 301);
      expect(block.slice(0, 300).map((r) => r.statement)).toEqual(
        Array.from({ length: 300 }, (_, i) => `insert into t values (${k * 300 + i})`),
      );
      expect(block[300]).toMatchObject({ event: "decision", lease_id: `lse_${k}` });
    }
    expectValidAuditRecords(recs);
    expect(seen.map((r) => r.seq)).toEqual(recs.map((r) => r.seq));
    const stream = (await readAuditStream(redis, key, { count: 5000 })).map((e) => e.record);
    expect(stream).toEqual(recs);
    const checker = new ChainChecker();
    for (const r of stream) expect(checker.check(r)).toBeNull();
  });

  it("a batch is written once maxBatch deferred records wait; the rest wait for their delay", async () => {
    const file = await fresh("batch");
    const log = await AuditLog.open(file, "gc-batch", undefined, {
      watchIntervalMs: 0,
      batchDelayMs: NEVER,
      maxBatch: 100,
    });
    // 450 queued at once: four full batches go to disk on their own.
    const full = deferMany(log, 400);
    const rest = deferMany(log, 50, 400);
    expect([...full.outcomes, ...rest.outcomes].every((o) => o === "queued")).toBe(true);
    await full.written;
    // The last 50 (half a batch) still wait for their delay.
    expect(await lines(file)).toHaveLength(400);
    await log.close();
    await rest.written;
    expect(await lines(file)).toHaveLength(450);
    expect(await verifyAuditFile(file)).toMatchObject({ ok: true, records: 450 });
  });

  it("a deferred record alone is written within its delay, without a flush or another append", async () => {
    const file = await fresh("alone");
    const log = await AuditLog.open(file, "gc-alone", undefined, { watchIntervalMs: 0, batchDelayMs: 20 });
    await deferMany(log, 1).written;
    expect(await lines(file)).toHaveLength(1);
    await log.close();
  });

  it("close() writes everything queued (a clean shutdown loses nothing)", async () => {
    const file = await fresh("close");
    const log = await AuditLog.open(file, "gc-close", undefined, {
      watchIntervalMs: 0,
      batchDelayMs: NEVER,
      maxBatch: 10_000,
    });
    const { outcomes, written } = deferMany(log, 3000);
    expect(outcomes.every((o) => o === "queued")).toBe(true);
    expect(await lines(file)).toHaveLength(0);
    await log.close();
    await written;
    expect(await verifyAuditFile(file)).toMatchObject({ ok: true, records: 3000 });
    // After close, nothing more is taken.
    expect(log.appendDeferred(statement(0))).toBe("refused");
  });

  it("an awaited (decision) record is on disk when its append resolves, after the deferred records before it, without waiting for their delay", async () => {
    const file = await fresh("durable");
    const log = await AuditLog.open(file, "gc-durable", undefined, {
      watchIntervalMs: 0,
      batchDelayMs: NEVER,
    });
    const before = deferMany(log, 40);
    await log.append({ event: "decision", scope: "checkout", decision: "allow", lease_id: "lse_now" });
    // Read through a fresh descriptor: the record is in the file, the statements before it too.
    const recs = (await lines(file)).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(recs).toHaveLength(41);
    expect(recs[40]).toMatchObject({ event: "decision", lease_id: "lse_now", seq: 40 });
    await before.written;
    await log.close();
    expect(await verifyAuditFile(file)).toMatchObject({ ok: true, records: 41 });
  });

  it("a full queue drops deferred records, counts them in the metrics and an audit_dropped record, and the chain still verifies", async () => {
    const file = await fresh("full");
    const metrics = createMetrics();
    const log = await AuditLog.open(file, "gc-full", (r) => metrics.observeAudit(r), {
      watchIntervalMs: 0,
      batchDelayMs: NEVER,
      maxBatch: 10_000,
      maxQueued: 100,
    });
    const { outcomes, written } = deferMany(log, 150);
    expect(outcomes.filter((o) => o === "queued")).toHaveLength(100);
    expect(outcomes.filter((o) => o === "dropped")).toHaveLength(50);
    expect(log.droppedRecords()).toBe(50);
    // An awaited record is never dropped: it takes the queue along.
    await log.append({ event: "decision", scope: "checkout", decision: "allow", lease_id: "lse_after" });
    await written;
    // The queue has room again.
    const again = deferMany(log, 10, 500);
    expect(again.outcomes.every((o) => o === "queued")).toBe(true);
    await log.close();
    await again.written;
    const recs = await readRecords(file);
    const dropped = recs.filter((r) => r.scope === "audit_dropped");
    expect(dropped).toEqual([expect.objectContaining({ event: "admin", dropped: 50 })]);
    expect(recs.filter((r) => r.scope === "proxy_statement")).toHaveLength(110);
    expect(recs).toHaveLength(112);
    expectValidAuditRecords(recs);
    expect(await verifyAuditFile(file)).toMatchObject({ ok: true, records: 112 });
    expect((await metrics.render()).body).toMatch(/^leasehold_audit_dropped_records_total 50$/m);
  });

  it("a deferred record that cannot be written is refused to its session (fail closed), and counted as refused", async () => {
    const file = await fresh("fail");
    const errors: string[] = [];
    const log = await AuditLog.open(file, "gc-fail", undefined, {
      watchIntervalMs: 0,
      batchDelayMs: 5,
      onError: (_e, where) => errors.push(where),
    });
    await deferMany(log, 5).written;
    // The folder goes away (an unmounted volume): the log must not recreate it.
    await rm(dirname(file), { recursive: true, force: true });
    await expect(deferMany(log, 5, 5).written).rejects.toMatchObject({ code: "upstream_unavailable" });
    expect(log.healthy()).toBe(false);
    expect(errors).toContain("write");
    await log.close();
  });
});
