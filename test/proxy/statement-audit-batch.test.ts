import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readAuditStream, verifyAuditFile } from "../../sidecar/audit/index.js";
import type { ProxyManager } from "../../sidecar/proxy/index.js";
import { asSuperuser, type ScramPostgres } from "../support/pg-cluster.js";
import { listenerPort, type ProxyHarness } from "./harness.js";
import { leaseClient, pgResource, startPgProxy } from "./pg-setup.js";

/**
 * Statement audit `text` through a real PostgreSQL listener, with the audit log's group commit:
 * thousands of statement records are written in batches, off the relay path, and still make one
 * chain that verifies, in the file and in the Redis stream; closing the log writes every queued
 * record; no password or token is in either.
 */

const RESOURCE = "px-gc";
let h: ProxyHarness;
let cluster: ScramPostgres;
let proxy: ProxyManager;

beforeAll(async () => {
  const setup = await startPgProxy({ name: "proxy-gc", admin: "gc_admin", auditStream: true });
  ({ h, cluster } = setup);
  await asSuperuser(cluster, async (c) => {
    await c.query(`CREATE ROLE gc_app_1 LOGIN PASSWORD '${randomBytes(12).toString("hex")}'`);
    await c.query("CREATE TABLE gc_rows (n int, note text)");
    await c.query("GRANT ALL ON gc_rows TO PUBLIC");
  });
  await h.register({ ...pgResource(setup), name: RESOURCE, accounts: ["gc_app_1"], proxy: { port: 0 } });
  proxy = await h.manager({ auditStatements: "text" });
}, 120_000);

afterAll(async () => {
  await h?.close();
  await cluster?.stop();
});

describe("statement records through a listener, group-committed", () => {
  it("thousands of statements make one verifiable chain in file and stream (statements mirrored); close() writes every queued record; no secret in either", async () => {
    // Statement records go to the stream only when asked (audit.stream.statements).
    h.auditMirror.statements = true;
    const lease = await h.checkout(RESOURCE);
    const c = leaseClient(lease, listenerPort(proxy, RESOURCE));
    await c.connect();
    const n = 2000;
    const tag = randomBytes(4).toString("hex");
    // One after another, as an agent's loop sends them: many records to a batch all the same.
    for (let i = 0; i < n; i++) await c.query(`insert into gc_rows values (${i}, 'row-${tag}-${i}')`);
    // A password change: recorded by its digest only, never its text.
    const secret = `pw-${randomBytes(12).toString("hex")}`;
    h.secrets.push(secret);
    await c.query(`alter role gc_app_1 password '${secret}'`).catch(() => undefined);
    await c.end();
    // Every statement was answered, so every record is queued; closing the log writes them all.
    await h.node.audit.close();

    const text = await readFile(h.auditFile, "utf8");
    const recs = text
      .split("\n")
      .filter((l) => l !== "")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const statements = recs.filter((r) => r.scope === "proxy_statement" && r.lease_id === lease.leaseId);
    const inserts = statements.filter((r) => String(r.statement ?? "").includes(`row-${tag}-`));
    expect(inserts.map((r) => r.statement)).toEqual(
      Array.from({ length: n }, (_, i) => `insert into gc_rows values (${i}, 'row-${tag}-${i}')`),
    );
    const alter = statements.at(-1);
    expect(alter).toMatchObject({ digest: expect.stringMatching(/^sha256:[0-9a-f]{64}$/) });
    expect(alter?.statement).toBeUndefined();
    expect(recs.some((r) => r.scope === "audit_dropped")).toBe(false);
    expect(await verifyAuditFile(h.auditFile)).toMatchObject({ ok: true, records: recs.length });

    const stream = (await readAuditStream(h.node.redis, `${h.prefix}audit`, { count: 10_000 })).map(
      (e) => e.record,
    );
    expect(stream).toEqual(recs);
    const streamText = JSON.stringify(stream);
    for (const s of [...h.secrets, lease.token]) {
      expect(text.includes(s), "a secret in the audit file").toBe(false);
      expect(streamText.includes(s), "a secret in the audit stream").toBe(false);
    }
  }, 120_000);
});
