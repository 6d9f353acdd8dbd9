import { chmod, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  AUDIT_EVENTS,
  type AuditSink,
  auditRecordJsonSchema,
  checkAuditRecord,
  GENESIS,
  loadAuditKey,
} from "../../sidecar/audit/index.js";
import { auditEventsMarkdown } from "../../sidecar/audit/record-schema.js";
import { jsonSchemaValidator } from "./record-check.js";

const here = dirname(fileURLToPath(import.meta.url));
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "lh-audit-schema-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const valid = {
  time: "2025-03-01T10:00:00.000Z",
  event: "checkout",
  agent: "spiffe://example.org/agent/a",
  agent_chain: [],
  sidecar: "host-1-abc",
  seq: 0,
  prev: GENESIS,
  hash: "a".repeat(64),
};

describe("the audit record schema", () => {
  it("audit-record.schema.json is the zod schema exported (regenerate it when the schema changes)", async () => {
    const file = JSON.parse(
      await readFile(join(here, "../../sidecar/audit/audit-record.schema.json"), "utf8"),
    );
    expect(file).toEqual(auditRecordJsonSchema());
  });

  it("accepts a record and refuses unknown fields, unknown events and malformed chain fields", () => {
    expect(checkAuditRecord(valid)).toEqual({ ok: true });
    expect(jsonSchemaValidator.safeParse(valid).success).toBe(true);
    for (const bad of [
      { ...valid, password: "x" },
      { ...valid, token: "x" },
      { ...valid, event: "coffee" },
      { ...valid, scope: "coffee" },
      { ...valid, approval_id: "" },
      { ...valid, seq: -1 },
      { ...valid, prev: "xyz" },
      { ...valid, time: "yesterday" },
      { ...valid, decision: "maybe" },
      { ...valid, sidecar: undefined },
    ]) {
      expect(checkAuditRecord(bad).ok).toBe(false);
      expect(jsonSchemaValidator.safeParse(bad).success).toBe(false);
    }
    const r = checkAuditRecord({ ...valid, password: "hunter2-secret" });
    expect(JSON.stringify(r)).not.toContain("hunter2-secret");
  });

  it("admits every scope of the event table and an approval's id as a field of its own", () => {
    for (const [event, { scopes }] of Object.entries(AUDIT_EVENTS)) {
      for (const scope of scopes) {
        const rec = { ...valid, event, scope };
        expect(checkAuditRecord(rec), `${event} / ${scope}`).toEqual({ ok: true });
        expect(jsonSchemaValidator.safeParse(rec).success, `${event} / ${scope}`).toBe(true);
      }
    }
    const approval = {
      ...valid,
      event: "decision",
      scope: "approval_requested",
      decision: "approval_required",
      approval_id: "apr_ABCDEFGHIJKL",
      reason: "writes need a human",
    };
    expect(checkAuditRecord(approval)).toEqual({ ok: true });
    expect(jsonSchemaValidator.safeParse(approval).success).toBe(true);
  });

  it("docs/audit.md lists the events and scopes of the table (regenerate the block when it changes)", async () => {
    const doc = await readFile(join(here, "../../docs/audit.md"), "utf8");
    const block =
      /<!-- generated:audit-events \(scripts\/gen-docs\.ts; do not edit by hand\) -->\n([\s\S]*?)\n<!-- \/generated:audit-events -->/.exec(
        doc,
      );
    expect(block?.[1]).toBe(auditEventsMarkdown());
  });

  it("the compiler refuses an unknown event, an unknown scope, and a scope the event does not carry", async () => {
    const appended: unknown[] = [];
    const sink: AuditSink = {
      append: async (fields) => {
        appended.push(fields);
      },
      healthy: () => true,
    };
    await sink.append({ event: "decision", scope: "approved", approval_id: "apr_ABCDEFGHIJKL" });
    await sink.append({ event: "checkin" });
    // @ts-expect-error: not an event
    await sink.append({ event: "coffee" });
    // @ts-expect-error: not a scope
    await sink.append({ event: "decision", scope: "aproved" });
    // @ts-expect-error: a check-in carries no scope
    await sink.append({ event: "checkin", scope: "approved" });
    // @ts-expect-error: a tool call's scopes are its own
    await sink.append({ event: "tool_call", scope: "approval_requested" });
    // tsc checks the lines above; at run time the sink takes whatever it is given.
    expect(appended).toHaveLength(6);
  });
});

describe("the audit key file", () => {
  it("must be owner-only and at least 32 bytes", async () => {
    const f = join(dir, "k1");
    await writeFile(f, `${"k".repeat(40)}\n`, { mode: 0o644 });
    await chmod(f, 0o644);
    await expect(loadAuditKey(f)).rejects.toThrow(/chmod 600/);
    await chmod(f, 0o600);
    expect((await loadAuditKey(f)).toString()).toBe("k".repeat(40));
    await writeFile(f, "short\n");
    await expect(loadAuditKey(f)).rejects.toThrow(/too short/);
    await expect(loadAuditKey(join(dir, "missing"))).rejects.toThrow(/cannot read/);
  });
});
