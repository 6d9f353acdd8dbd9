/**
 * CPU per listener statement record: what statement audit `text` adds to each statement a
 * PostgreSQL or MySQL listener relays. One `tool_call` record per statement, as `StatementTrail`
 * makes it (the session's fields, the statement's SHA-256, its text), appended deferred to the
 * audit log with the Redis stream mirror on, as `leasehold serve` runs by default: the log seals
 * each record into the hash chain, writes and fdatasyncs each batch, and mirrors the batch. The
 * appender is held back as a listener session is (2048 unwritten records, down to 512).
 *
 * The floor does the work no trail can skip, on the same records, in the same batches: the
 * record's JSON, its SHA-256, and one write + fdatasync per batch (no chain, no scrubbing, no
 * queue, no mirror). Both run in turns of 50 records per event-loop turn, alternating rounds;
 * CPU is the whole process's (the file writes run on libuv's threads), garbage collection
 * included.
 *
 *   npx tsx bench/audit-record.ts [--quick] [--hmac]
 */
import { hash, randomBytes } from "node:crypto";
import { mkdtemp, open, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { AuditLog, type AuditFields } from "../sidecar/audit/index.js";
import { dropPrefix, testPrefix } from "../test/support/redis.js";
import { printTable, quick, type Row, writeResults } from "./stats.js";

const RECORDS = quick ? 40_000 : 200_000;
const ROUNDS = quick ? 2 : 4;
const PER_TURN = 50;
const BATCH = 500;
const withHmac = process.argv.includes("--hmac");

/** The fields every record of one PostgreSQL listener session shares (session-record.ts). */
const BASE = {
  event: "tool_call",
  agent: "spiffe://example.org/agent/bench",
  agent_chain: [],
  task_id: "BENCH-1",
  intent: "read",
  resource: "bench-pg",
  account: "bench_app_1",
  lease_id: "lse_0123456789abcdefghij",
  scope: "proxy_statement",
  tool: "postgres",
  target: "127.0.0.1:54321",
  request_id: "req_0123456789ab",
} as const;

function statement(i: number): string {
  return `SELECT abalance FROM pgbench_accounts WHERE aid = ${(i * 7919) % 100_000};`;
}

/** As StatementTrail.record builds it. */
function fieldsOf(text: string): AuditFields<"tool_call"> {
  return Object.assign({}, BASE, {
    digest: `sha256:${hash("sha256", text, "hex")}`,
    statement: text,
    truncated: undefined,
  }) as AuditFields<"tool_call">;
}

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

function cpuUs(from: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(from);
  return d.user + d.system;
}

async function product(log: AuditLog, n: number): Promise<number> {
  // As a listener session does (StatementTrail): held back while 2048 of its records are unwritten,
  // until at most 512 are, so batches stay what a steady stream of statements makes them.
  let pending = 0;
  let release: (() => void) | undefined;
  const done = () => {
    pending -= 1;
    if (release && pending <= 512) {
      release();
      release = undefined;
    }
  };
  const c0 = process.cpuUsage();
  for (let i = 0; i < n; i += PER_TURN) {
    for (let j = i; j < i + PER_TURN; j++) {
      if (log.appendDeferred(fieldsOf(statement(j)), done) === "queued") pending += 1;
    }
    await turn();
    if (pending >= 2048) await new Promise<void>((resolve) => (release = resolve));
  }
  log.flush();
  // Every record on disk: an awaited append goes to disk after all of them.
  await log.append({ event: "admin", reason: "bench round end" });
  return cpuUs(c0) / n;
}

async function floor(file: string, n: number): Promise<number> {
  const fh = await open(file, "a");
  const c0 = process.cpuUsage();
  let lines: string[] = [];
  for (let i = 0; i < n; i += PER_TURN) {
    for (let j = i; j < i + PER_TURN; j++) {
      const json = JSON.stringify(Object.assign(fieldsOf(statement(j)), { time: new Date().toISOString() }));
      lines.push(`${json.slice(0, -1)},"hash":"${hash("sha256", json, "hex")}"}`);
      if (lines.length === BATCH) {
        await fh.write(`${lines.join("\n")}\n`);
        await fh.datasync();
        lines = [];
      }
    }
    await turn();
  }
  if (lines.length > 0) {
    await fh.write(`${lines.join("\n")}\n`);
    await fh.datasync();
  }
  const us = cpuUs(c0) / n;
  await fh.close();
  return us;
}

const dir = await mkdtemp(join(tmpdir(), "leasehold-bench-audit-"));
const prefix = testPrefix("bench-audit-record");
const redis = new Redis("redis://127.0.0.1:6379");
try {
  const log = await AuditLog.open(join(dir, "audit.jsonl"), "bench-sidecar", undefined, {
    watchIntervalMs: 0,
    maxBatch: BATCH,
    hmacKey: withHmac ? randomBytes(32) : undefined,
    mirror: { redis, key: `${prefix}audit`, maxLen: 10_000 },
  });
  // Warm-up of both.
  await product(log, 5_000);
  await floor(join(dir, "floor.jsonl"), 5_000);
  const p: number[] = [];
  const f: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    p.push(await product(log, RECORDS / ROUNDS));
    f.push(await floor(join(dir, "floor.jsonl"), RECORDS / ROUNDS));
  }
  await log.close();
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
  const rows: Row[] = [
    {
      figure: `CPU per statement record (audit text${withHmac ? ", hmac" : ""})`,
      product: median(p),
      floor: median(f),
      unit: "µs",
      better: "lower",
    },
  ];
  printTable(
    `statement audit records: ${RECORDS} records in ${ROUNDS} rounds, ${PER_TURN} per event-loop turn; product: AuditLog.appendDeferred with the Redis stream mirror; floor: JSON + SHA-256 + one write and fdatasync per ${BATCH} (medians; rounds: product ${p.map((x) => x.toFixed(1)).join(" / ")}, floor ${f.map((x) => x.toFixed(1)).join(" / ")} µs)`,
    rows,
  );
  process.stdout.write(`results: ${writeResults("audit-record", { rows, product: p, floor: f })}\n`);
} finally {
  redis.disconnect();
  await dropPrefix(prefix);
  await rm(dir, { recursive: true, force: true });
}
