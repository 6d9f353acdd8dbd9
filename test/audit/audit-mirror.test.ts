import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuditLog, ChainChecker, readAuditStream, verifyAuditFile } from "../../sidecar/audit/index.js";
import { dropPrefix, REDIS_URL, testPrefix } from "../support/redis.js";
import { openMonitor } from "../support/redis-monitor.js";
import { expectValidAuditRecords, readRecords } from "./record-check.js";

let dir: string;
let redis: Redis;
const prefix = testPrefix("audit-mirror");

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "lh-audit-mirror-"));
  redis = new Redis(REDIS_URL);
});
afterAll(async () => {
  redis.disconnect();
  await dropPrefix(prefix);
  await rm(dir, { recursive: true, force: true });
});

describe("the Redis stream mirror", () => {
  it("copies every record, in order, to the stream, capped near maxLen", async () => {
    const key = `${prefix}audit`;
    const file = join(dir, `m-${randomBytes(3).toString("hex")}.jsonl`);
    const log = await AuditLog.open(file, "sc-m", undefined, {
      watchIntervalMs: 0,
      mirror: { redis, key, maxLen: 1000 },
    });
    for (let i = 0; i < 30; i++)
      await log.append({ event: "tool_call", agent: "spiffe://t/a", target: `t${i}` });
    await log.close();
    const fromFile = await readRecords(file);
    const fromStream = (await readAuditStream(redis, key)).map((e) => e.record);
    expect(fromStream).toEqual(fromFile);
    expectValidAuditRecords(fromStream, "stream");
    const checker = new ChainChecker();
    expect(fromStream.map((r) => checker.check(r))).toEqual(fromStream.map(() => null));
    const [, fields] = (await redis.xrange(key, "-", "+", "COUNT", 1))[0] ?? [];
    expect(fields?.slice(0, 6)).toEqual(["sidecar", "sc-m", "seq", "0", "event", "tool_call"]);

    const capped = `${prefix}capped`;
    const log2 = await AuditLog.open(`${file}.capped`, "sc-c", undefined, {
      watchIntervalMs: 0,
      mirror: { redis, key: capped, maxLen: 50 },
    });
    await Promise.all(
      Array.from({ length: 400 }, (_, i) => log2.append({ event: "admin", reason: `r${i}` })),
    );
    await log2.close();
    const len = await redis.xlen(capped);
    expect(len).toBeGreaterThanOrEqual(50);
    expect(len).toBeLessThan(400);
  });

  it("leaves statement records out of the stream unless asked; every other record, a statement's refusal too, goes in order", async () => {
    const key = `${prefix}nostmt`;
    const file = join(dir, `n-${randomBytes(3).toString("hex")}.jsonl`);
    const log = await AuditLog.open(file, "sc-n", undefined, {
      watchIntervalMs: 0,
      maxBatch: 1000,
      mirror: { redis, key, maxLen: 10_000 },
    });
    const waits: Promise<void>[] = [];
    for (let k = 0; k < 5; k++) {
      for (let i = 0; i < 40; i++) {
        log.appendDeferred({
          event: "tool_call",
          scope: "proxy_statement",
          agent: "spiffe://t/a",
          statement: `select ${k * 40 + i} — naïve ✓`,
        });
      }
      waits.push(
        log.append({ event: "decision", scope: "proxy_statement", decision: "deny", reason: `r${k}` }),
      );
      waits.push(
        log.append({ event: "tool_call", scope: "proxy_session", agent: "spiffe://t/a", target: `s${k}` }),
      );
    }
    await Promise.all(waits);
    await log.close();
    const fromFile = await readRecords(file);
    expect(fromFile).toHaveLength(210);
    const fromStream = (await readAuditStream(redis, key, { count: 5000 })).map((e) => e.record);
    expect(fromStream).toEqual(
      fromFile.filter((r) => !(r.event === "tool_call" && r.scope === "proxy_statement")),
    );
    expect(fromStream.map((r) => r.scope)).toEqual(
      Array.from({ length: 5 }, () => ["proxy_statement", "proxy_session"]).flat(),
    );
    const entries = await redis.xrange(key, "-", "+", "COUNT", 5000);
    expect(entries.map(([, f]) => f[3])).toEqual(fromStream.map((r) => String(r.seq)));
  });

  it("mirrors a write's lines as the file has them: any text, batches larger than one command, with an hmac", async () => {
    const key = `${prefix}lines`;
    const file = join(dir, `l-${randomBytes(3).toString("hex")}.jsonl`);
    const hmacKey = randomBytes(32);
    const log = await AuditLog.open(file, "sc-l", undefined, {
      watchIntervalMs: 0,
      hmacKey,
      maxBatch: 1200,
      mirror: { redis, key, maxLen: 10_000, statements: true },
    });
    // Strings a statement can hold: newlines, quotes, backslashes, multi-byte and astral characters.
    const texts = ["select 'a\nb'", 'say "hi" \\ there', "naïve – ünïcödé ✓ 🦀", "\u2028\u0000tail", ""];
    for (let i = 0; i < 1200; i++) {
      const outcome = log.appendDeferred({
        event: "tool_call",
        scope: "proxy_statement",
        agent: "spiffe://t/a",
        tool: "psql",
        statement: `${texts[i % texts.length]} #${i}`,
      });
      expect(outcome).toBe("queued");
    }
    await log.close();
    const fromFile = await readRecords(file);
    expect(fromFile).toHaveLength(1200);
    expect(await verifyAuditFile(file, { hmacKey })).toMatchObject({ ok: true, hmac: true });
    const fromStream = (await readAuditStream(redis, key, { count: 5000 })).map((e) => e.record);
    expect(fromStream).toEqual(fromFile);
    expect(fromStream.map((r) => r.statement)).toEqual(
      Array.from({ length: 1200 }, (_, i) => `${texts[i % texts.length]} #${i}`),
    );
    const entries = await redis.xrange(key, "-", "+", "COUNT", 5000);
    expect(entries.map(([, f]) => [f[3], f[5]])).toEqual(fromFile.map((r) => [String(r.seq), r.event]));
  });

  it("splits one large write of the log into commands of at most 500 records (Redis serves no one else while a script runs)", async () => {
    const key = `${prefix}split`;
    const file = join(dir, `s-${randomBytes(3).toString("hex")}.jsonl`);
    const log = await AuditLog.open(file, "sc-s", undefined, {
      watchIntervalMs: 0,
      maxBatch: 1300,
      mirror: { redis, key, maxLen: 10_000, statements: true },
    });
    for (let i = 0; i < 1300; i++) {
      log.appendDeferred({
        event: "tool_call",
        scope: "proxy_statement",
        agent: "spiffe://t/a",
        statement: `s${i}`,
      });
    }
    const marker = `mirror-marker-${randomBytes(4).toString("hex")}`;
    const commands: number[] = [];
    const monitor = await openMonitor(redis);
    const seen = new Promise<void>((resolve) => {
      monitor.on("monitor", (_t: string, args: string[], source: string) => {
        if (args[0]?.toLowerCase() === "echo" && args[1] === marker) resolve();
        // The script's command (EVALSHA, or EVAL the first time): its records are ARGV[3]'s lines.
        else if (source !== "lua" && /^eval/i.test(args[0] ?? "") && args[3] === key)
          commands.push((args[6] ?? "").split("\\n").filter(Boolean).length);
      });
    });
    try {
      // One write of the log: the queue held fewer than maxBatch records, so close takes them all.
      await log.close();
      await redis.echo(marker);
      await seen;
    } finally {
      monitor.disconnect();
    }
    const fromFile = await readRecords(file);
    expect(fromFile).toHaveLength(1300);
    expect(commands.reduce((a, b) => a + b, 0)).toBe(1300);
    expect(Math.max(...commands)).toBeLessThanOrEqual(500);
    const fromStream = (await readAuditStream(redis, key, { count: 5000 })).map((e) => e.record);
    expect(fromStream).toEqual(fromFile);
  });

  it("never blocks or fails the file when Redis refuses or hangs", async () => {
    // Refuses: nothing listens on the port.
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, "127.0.0.1", r));
    const deadPort = (closed.address() as { port: number }).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const refusing = new Redis({
      port: deadPort,
      host: "127.0.0.1",
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      lazyConnect: true,
    });
    refusing.on("error", () => undefined);
    // Hangs: accepts connections and never answers.
    const sockets: Socket[] = [];
    const silent: Server = createServer((s) => sockets.push(s));
    await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
    const hanging = new Redis({ port: (silent.address() as { port: number }).port, host: "127.0.0.1" });
    hanging.on("error", () => undefined);
    try {
      for (const client of [refusing, hanging]) {
        const errors: string[] = [];
        const file = join(dir, `f-${randomBytes(3).toString("hex")}.jsonl`);
        const log = await AuditLog.open(file, "sc-f", undefined, {
          watchIntervalMs: 0,
          mirror: { redis: client, key: `${prefix}never`, drainTimeoutMs: 200 },
          onError: (_e, where) => errors.push(where),
        });
        for (let i = 0; i < 5; i++) await log.append({ event: "checkout", agent: "spiffe://t/a" });
        expect(log.healthy()).toBe(true);
        await log.close();
        expect(await verifyAuditFile(file)).toMatchObject({ ok: true, records: 5 });
        if (client === refusing) expect(errors).toContain("mirror");
        expect(errors).not.toContain("write");
      }
    } finally {
      refusing.disconnect();
      hanging.disconnect();
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => silent.close(() => r()));
    }
  });
});
