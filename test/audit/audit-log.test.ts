import { randomBytes } from "node:crypto";
import {
  appendFile,
  link,
  mkdir,
  mkdtemp,
  readFile,
  rename,
  rm,
  stat,
  symlink,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import {
  AuditLog,
  type AuditRecord,
  ChainChecker,
  auditFileSet,
  GENESIS,
  hashRecord,
  REDACTED_JWT,
  recordHmac,
  verifyAuditFile,
  verifyAuditFiles,
} from "../../sidecar/audit/index.js";
import { LeaseholdError } from "../../sidecar/errors.js";
import { expectValidAuditRecords, readRecords } from "./record-check.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "lh-audit-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const fresh = async (name: string) => {
  const d = join(dir, `${name}-${randomBytes(3).toString("hex")}`);
  await mkdir(d);
  return join(d, "audit.jsonl");
};

/** Appends n records, all at once (one batch) or one after another. */
async function writeSome(
  file: string,
  n: number,
  opts: Parameters<typeof AuditLog.open>[3] = {},
  oneByOne = false,
): Promise<void> {
  const log = await AuditLog.open(file, "test-sidecar", undefined, { watchIntervalMs: 0, ...opts });
  const one = (i: number) =>
    log.append({ event: "checkout", agent: `spiffe://t/agent/a${i}`, resource: "r", lease_id: `lse_${i}` });
  if (oneByOne) for (let i = 0; i < n; i++) await one(i);
  else await Promise.all(Array.from({ length: n }, (_, i) => one(i)));
  await log.close();
}

describe("the chain", () => {
  it("chains records across reopenings, validates against the schema, and verifies", async () => {
    const file = await fresh("ok");
    await writeSome(file, 5);
    await writeSome(file, 3);
    const recs = await readRecords(file);
    expect(recs.map((r) => r.seq)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(recs[0]?.prev).toBe(GENESIS);
    expect(recs[5]?.prev).toBe(recs[4]?.hash);
    for (const r of recs) expect(hashRecord(r)).toBe(r.hash);
    expectValidAuditRecords(recs);
    expect(await verifyAuditFile(file)).toMatchObject({ ok: true, records: 8 });
  });

  it("keeps the order and the chain when many appends race (group commit)", async () => {
    const file = await fresh("race");
    const seen: AuditRecord[] = [];
    const log = await AuditLog.open(file, "racer", (r) => seen.push(r), { watchIntervalMs: 0 });
    await Promise.all(
      Array.from({ length: 200 }, (_, i) => log.append({ event: "tool_call", target: `t${i}` })),
    );
    await log.close();
    const recs = await readRecords(file);
    expect(recs).toHaveLength(200);
    expect(recs.map((r) => r.seq)).toEqual(Array.from({ length: 200 }, (_, i) => i));
    // Appends are written in the order they were made.
    expect(recs.map((r) => r.target)).toEqual(Array.from({ length: 200 }, (_, i) => `t${i}`));
    expect(seen.map((r) => r.hash)).toEqual(recs.map((r) => r.hash));
    expect(await verifyAuditFile(file)).toMatchObject({ ok: true, records: 200 });
  });

  it("writes a record appended withNext with the next append, at flush, after lingerMs, or at close", async () => {
    const file = await fresh("with-next");
    const log = await AuditLog.open(file, "sc", undefined, { watchIntervalMs: 0, lingerMs: 60_000 });
    let decided = false;
    const decision = log.append({ event: "decision", decision: "allow" }, { withNext: true }).then(() => {
      decided = true;
    });
    await new Promise((r) => setTimeout(r, 50));
    expect(decided).toBe(false);
    expect(await readRecords(file)).toHaveLength(0);
    await log.append({ event: "checkout" });
    await decision;
    expect((await readRecords(file)).map((r) => r.event)).toEqual(["decision", "checkout"]);
    const atClose = log.append({ event: "decision", decision: "allow" }, { withNext: true });
    await log.close();
    await atClose;
    expect(await readRecords(file)).toHaveLength(3);

    const flushed = await fresh("with-next-flush");
    const eager = await AuditLog.open(flushed, "sc", undefined, { watchIntervalMs: 0, lingerMs: 60_000 });
    const pending = eager.append({ event: "decision", decision: "allow" }, { withNext: true });
    eager.flush();
    await pending;
    expect(await readRecords(flushed)).toHaveLength(1);
    await eager.close();

    const alone = await fresh("with-next-alone");
    const quick = await AuditLog.open(alone, "sc", undefined, { watchIntervalMs: 0, lingerMs: 5 });
    await quick.append({ event: "decision", decision: "allow" }, { withNext: true });
    expect((await readRecords(alone)).map((r) => r.event)).toEqual(["decision"]);
    await quick.close();
    expect(await verifyAuditFile(file)).toMatchObject({ ok: true, records: 3 });
  });

  it("keeps fields apart, states an empty delegation chain, and never lets a caller set chain fields", async () => {
    const file = await fresh("fields");
    const log = await AuditLog.open(file, "sc-1", undefined, { watchIntervalMs: 0 });
    const forged = {
      event: "decision",
      agent: "spiffe://t/a",
      seq: 99,
      prev: "f".repeat(64),
      hash: "x",
    } as const;
    await log.append(forged as unknown as Parameters<AuditLog["append"]>[0]);
    await log.append({ event: "rotation_succeeded", resource: "r", account: "acct" });
    await log.close();
    const [a, b] = await readRecords(file);
    expect(a).toMatchObject({
      event: "decision",
      agent: "spiffe://t/a",
      agent_chain: [],
      seq: 0,
      prev: GENESIS,
    });
    expect(a?.sidecar).toBe("sc-1");
    expect(b).not.toHaveProperty("agent_chain");
    expectValidAuditRecords([a, b]);
  });

  it("replaces anything shaped like a JWT in agent-supplied text", async () => {
    const file = await fresh("scrub");
    const jwt = `eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.${randomBytes(64).toString("base64url")}`;
    const log = await AuditLog.open(file, "sc", undefined, { watchIntervalMs: 0 });
    await log.append({ event: "tool_call", target: `psql -c 'select 1' --token ${jwt}`, task_id: jwt });
    await log.close();
    const text = await readFile(file, "utf8");
    expect(text.includes(jwt)).toBe(false);
    const [rec] = await readRecords(file);
    expect(rec?.target).toBe(`psql -c 'select 1' --token ${REDACTED_JWT}`);
    expect(rec?.task_id).toBe(REDACTED_JWT);
  });
});

describe("tamper evidence", () => {
  it("detects every single changed byte, a removed record and swapped records", async () => {
    const file = await fresh("tamper");
    await writeSome(file, 4);
    const bytes = await readFile(file);
    const lines = bytes.toString("utf8").trim().split("\n");
    const copy = join(dir, `copy-${randomBytes(3).toString("hex")}.jsonl`);
    // Every byte of the file, changed one at a time, breaks the chain (checked in memory, as
    // verify reads a file: lines split on "\n", each a JSON record), and a sample through the file.
    const intactInMemory = (buf: Buffer): boolean => {
      const text = buf.toString("utf8");
      if (!text.endsWith("\n")) return false;
      const checker = new ChainChecker();
      return text
        .slice(0, -1)
        .split("\n")
        .every((l) => {
          try {
            return l !== "" && checker.check(JSON.parse(l)) === null;
          } catch {
            return false;
          }
        });
    };
    expect(intactInMemory(bytes)).toBe(true);
    const undetected: number[] = [];
    for (let i = 0; i < bytes.length; i++) {
      const changed = Buffer.from(bytes);
      changed[i] = (changed[i] as number) === 0x41 ? 0x42 : 0x41;
      if (intactInMemory(changed)) undetected.push(i);
      if (i % 40 === 0 || i === bytes.length - 1) {
        await writeFile(copy, changed);
        if ((await verifyAuditFile(copy)).ok) undetected.push(i);
      }
    }
    expect(undetected).toEqual([]);

    await writeFile(
      copy,
      `${[lines[0], (lines[1] as string).replace('agent/a1"', 'agent/a9"'), lines[2], lines[3]].join("\n")}\n`,
    );
    expect(await verifyAuditFile(copy)).toMatchObject({
      ok: false,
      line: 2,
      problem: expect.stringContaining("hash"),
    });
    await writeFile(copy, `${[lines[0], lines[2], lines[3]].join("\n")}\n`);
    expect(await verifyAuditFile(copy)).toMatchObject({
      ok: false,
      line: 2,
      records: 1,
      problem: expect.stringContaining("removed"),
    });
    await writeFile(copy, `${[lines[0], lines[2], lines[1], lines[3]].join("\n")}\n`);
    expect(await verifyAuditFile(copy)).toMatchObject({ ok: false, line: 2 });
    await writeFile(copy, `${[lines[0], "", lines[1], lines[2], lines[3]].join("\n")}\n`);
    expect(await verifyAuditFile(copy)).toMatchObject({ ok: false, line: 2, problem: "empty line" });
  });

  it("a chain rewritten with fresh hashes passes without the key and fails with it", async () => {
    const file = await fresh("hmac");
    const key = randomBytes(32);
    await writeSome(file, 3, { hmacKey: key });
    const recs = await readRecords(file);
    for (const r of recs) expect(r.hmac).toBe(recordHmac(key, r.hash as string));
    expectValidAuditRecords(recs);
    expect(await verifyAuditFile(file, { hmacKey: key })).toMatchObject({ ok: true, records: 3, hmac: true });
    expect(await verifyAuditFile(file, { hmacKey: randomBytes(32) })).toMatchObject({
      ok: false,
      line: 1,
      problem: expect.stringContaining("hmac mismatch"),
    });

    // Someone who can edit the file changes record 1 and recomputes every hash after it.
    let prev = GENESIS;
    const rewritten = recs.map((r, i) => {
      const { hash: _h, hmac: _m, ...rest } = r;
      const body = { ...rest, prev, ...(i === 1 ? { agent: "spiffe://t/agent/innocent" } : {}) };
      const hash = hashRecord(body);
      prev = hash;
      return { ...body, hash };
    });
    const forged = join(dir, `forged-${randomBytes(3).toString("hex")}.jsonl`);
    await writeFile(forged, `${rewritten.map((r) => JSON.stringify(r)).join("\n")}\n`);
    expect(await verifyAuditFile(forged)).toMatchObject({ ok: true });
    expect(await verifyAuditFile(forged, { hmacKey: key })).toMatchObject({
      ok: false,
      line: 1,
      problem: expect.stringContaining("hmac missing"),
    });
  });
});

describe("rotation by size", () => {
  it("continues the chain in a new file, across reopenings, and verifies across files", async () => {
    const file = await fresh("rotate");
    const key = randomBytes(32);
    await writeSome(file, 6, { maxBytes: 1200, hmacKey: key }, true);
    await writeSome(file, 6, { maxBytes: 1200, hmacKey: key }, true);
    const set = await auditFileSet(file);
    expect(set.length).toBeGreaterThan(3);
    expect(set.at(-1)).toBe(file);
    expect(set[0]).toBe(`${file}.1`);
    for (const f of set.slice(0, -1)) expect((await stat(f)).size).toBeLessThanOrEqual(1200);
    const recs = await readRecords(...set);
    expect(recs.map((r) => r.seq)).toEqual(Array.from({ length: 12 }, (_, i) => i));
    expectValidAuditRecords(recs);
    expect(await verifyAuditFiles(set, { hmacKey: key })).toMatchObject({ ok: true, records: 12 });
    // A rotated file taken out of the middle shows, naming the file and line after the gap.
    const gap = [...set.slice(0, 1), ...set.slice(2)];
    expect(await verifyAuditFiles(gap)).toMatchObject({ ok: false, file: set[2], line: 1 });
    // The newest files alone verify only as a continuation of an archived chain.
    expect(await verifyAuditFiles(set.slice(2))).toMatchObject({ ok: false, file: set[2], line: 1 });
    expect(await verifyAuditFiles(set.slice(2), { partial: true })).toMatchObject({ ok: true });
  });

  it("after a crash between rotation and the first write, continues from the newest rotated file", async () => {
    const file = await fresh("rot-crash");
    await writeSome(file, 3);
    await rename(file, `${file}.1`);
    await writeSome(file, 2);
    expect(await verifyAuditFiles([`${file}.1`, file])).toMatchObject({ ok: true, records: 5 });
  });
});

describe("crash and failure", () => {
  it("drops a torn last line at open and says so in the trail", async () => {
    const file = await fresh("torn");
    await writeSome(file, 2);
    await appendFile(file, '{"time":"2025-01-01T00:00:00.000Z","event":"chec');
    expect(await verifyAuditFile(file)).toMatchObject({
      ok: false,
      line: 3,
      problem: expect.stringContaining("incomplete"),
    });
    await writeSome(file, 1);
    const recs = await readRecords(file);
    expect(recs.map((r) => [r.event, r.scope])).toEqual([
      ["checkout", undefined],
      ["checkout", undefined],
      ["admin", "audit_recovered"],
      ["checkout", undefined],
    ]);
    expect(await verifyAuditFile(file)).toMatchObject({ ok: true, records: 4 });
  });

  it("refuses to start on a last line that is not a record", async () => {
    const file = await fresh("garbage");
    await writeFile(file, "not json\n");
    await expect(AuditLog.open(file, "sc")).rejects.toThrow(/not valid JSON/);
  });

  it("fails closed when the path names a folder, and recovers when the file is back", async () => {
    const file = await fresh("closed");
    const log = await AuditLog.open(file, "sc", undefined, { watchIntervalMs: 20 });
    try {
      await log.append({ event: "checkout", agent: "spiffe://t/a" });
      expect(log.healthy()).toBe(true);
      // Swap the path atomically (no moment without it): a hard link keeps the file, a symlink
      // to a folder takes its place, and later the file comes back over the symlink.
      await link(file, `${file}.aside`);
      await symlink(await mkdtemp(join(dir, "folder-")), `${file}.link`);
      await rename(`${file}.link`, file);
      // The watcher notices without any write, so /readyz and checkout see it.
      await vi.waitFor(() => expect(log.healthy()).toBe(false), { timeout: 5000, interval: 10 });
      const refused = await log.append({ event: "checkout", agent: "spiffe://t/b" }).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(LeaseholdError);
      expect((refused as LeaseholdError).code).toBe("upstream_unavailable");
      expect((refused as LeaseholdError).status).toBe(503);
      await rename(`${file}.aside`, file);
      await vi.waitFor(() => expect(log.healthy()).toBe(true), { timeout: 5000, interval: 10 });
      await log.append({ event: "checkin", agent: "spiffe://t/a" });
    } finally {
      await log.close();
    }
    const recs = await readRecords(file);
    expect(recs.map((r) => r.event)).toEqual(["checkout", "admin", "checkin"]);
    expect(recs[1]).toMatchObject({
      scope: "audit_recovered",
      reason: expect.stringContaining("1 record(s) were refused"),
    });
    expect(recs.some((r) => r.agent === "spiffe://t/b")).toBe(false);
    expectValidAuditRecords(recs);
    expect(await verifyAuditFile(file)).toMatchObject({ ok: true, records: 3 });
  });

  it("fails closed while its folder is gone (never recreates it), and records the reopening", async () => {
    const file = await fresh("nodir");
    const folder = join(file, "..");
    const errors: string[] = [];
    const log = await AuditLog.open(file, "sc", undefined, {
      watchIntervalMs: 20,
      onError: (_e, where) => errors.push(where),
    });
    try {
      await log.append({ event: "checkout", agent: "spiffe://t/a" });
      await rm(folder, { recursive: true });
      await vi.waitFor(() => expect(log.healthy()).toBe(false), { timeout: 5000, interval: 10 });
      await expect(log.append({ event: "checkout" })).rejects.toMatchObject({ code: "upstream_unavailable" });
      expect(errors).toContain("write");
      await mkdir(folder);
      await vi.waitFor(() => expect(log.healthy()).toBe(true), { timeout: 5000, interval: 10 });
      await log.append({ event: "checkin", agent: "spiffe://t/a" });
    } finally {
      await log.close();
    }
    const recs = await readRecords(file);
    expect(recs.map((r) => [r.event, r.scope])).toEqual([
      ["admin", "audit_recovered"],
      ["admin", "audit_reopened"],
      ["checkin", undefined],
    ]);
    // The new file continues the chain of the lost one: it verifies only as a continuation.
    expect(await verifyAuditFile(file)).toMatchObject({ ok: false, line: 1 });
    expect(await verifyAuditFile(file, { partial: true })).toMatchObject({ ok: true, records: 3 });
  });

  it("records a write by someone else and keeps going; verify shows where the file was touched", async () => {
    const file = await fresh("foreign");
    const log = await AuditLog.open(file, "sc", undefined, { watchIntervalMs: 0 });
    await log.append({ event: "checkout", agent: "spiffe://t/a" });
    const forged = JSON.parse((await readFile(file, "utf8")).trim()) as Record<string, unknown>;
    await appendFile(
      file,
      `${JSON.stringify({ ...forged, agent: "spiffe://t/other", seq: 1, prev: forged.hash })}\n`,
    );
    await log.append({ event: "checkin", agent: "spiffe://t/a" });
    await log.close();
    const recs = await readRecords(file);
    expect(recs.map((r) => r.scope ?? r.event)).toEqual([
      "checkout",
      "checkout",
      "audit_foreign_write",
      "checkin",
    ]);
    expect(recs[2]?.prev).toBe(recs[0]?.hash);
    expect(await verifyAuditFile(file)).toMatchObject({ ok: false, line: 2 });
  });

  it("a throwing onRecord hook neither fails the append nor the log", async () => {
    const file = await fresh("hook");
    const places: string[] = [];
    const log = await AuditLog.open(
      file,
      "sc",
      () => {
        throw new Error("hook broke");
      },
      { watchIntervalMs: 0, onError: (_e, where) => places.push(where) },
    );
    await log.append({ event: "checkout" });
    await log.append({ event: "checkin" });
    expect(log.healthy()).toBe(true);
    await log.close();
    expect(places).toEqual(["hook", "hook"]);
    expect(await verifyAuditFile(file)).toMatchObject({ ok: true, records: 2 });
  });

  it("rejects appends after close", async () => {
    const file = await fresh("closed-log");
    const log = await AuditLog.open(file, "sc", undefined, { watchIntervalMs: 0 });
    await log.close();
    await expect(log.append({ event: "admin" })).rejects.toMatchObject({ code: "upstream_unavailable" });
  });
});
