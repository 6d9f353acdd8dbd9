import { describe, expect, it } from "vitest";
import type { z } from "zod";
import { checkoutSchema, revokeSchema, toolCallSchema } from "../../sidecar/service/requests.js";
import {
  approvalDecisionSchema,
  listQuery,
  revokeAgentSchema,
} from "../../sidecar/openapi/request-schemas.js";
import { describeIssues } from "../../sidecar/util/zod-errors.js";
import { escapeLines, escapeText, hasRefusedChars, jsonSafe, plainText } from "../../sidecar/util/text.js";

/** "Text is text": the API refuses control and bidi characters; output shows them escaped. */

const HOSTILE = {
  esc: "T-1\u001b[1A\u001b[2K",
  osc52: "T\u001b]52;c;ZXZpbA==\u0007",
  nul: "T\u0000",
  rlo: "T\u202eexe.txt",
  c1: "T\u009b31m",
  isolate: "T\u2066x\u2069",
  lrm: "T\u200e",
  lineSep: "T\u2028",
  newline: "T\nT",
  tab: "T\tT",
  lone: "T\ud800",
};

describe("plainText", () => {
  it("accepts ordinary text in any script, with spaces and punctuation", () => {
    const t = plainText(200, 1);
    for (const ok of ["TICKET-7", "Bestellung prüfen", "注文を読む", 'o\'brien; DROP "x"', "emoji 😀"])
      expect(t.safeParse(ok).success, ok).toBe(true);
  });

  it("refuses C0, C1, bidi overrides and isolates, marks, separators and lone surrogates", () => {
    const t = plainText(200);
    for (const [name, bad] of Object.entries(HOSTILE)) {
      expect(hasRefusedChars(bad), name).toBe(true);
      expect(t.safeParse(bad).success, name).toBe(false);
    }
  });

  it("is 400-shaped: the message names the field and the rule, never the value", () => {
    const r = checkoutSchema.safeParse({
      resource: "orders-db",
      task: { id: HOSTILE.osc52 },
      intent: { action: "read" },
    });
    expect(r.success).toBe(false);
    const msg = describeIssues(r.error?.issues ?? []);
    expect(msg).toContain("task.id");
    expect(msg).toContain("control characters");
    expect(msg).not.toContain("ZXZpbA");
  });

  it("guards every identifier and free-text field of the request bodies and filters", () => {
    const bad = HOSTILE.rlo;
    const cases: Array<[z.ZodType, unknown, string]> = [
      [checkoutSchema, { resource: bad, task: { id: "T" }, intent: { action: "r" } }, "resource"],
      [
        checkoutSchema,
        { resource: "r", task: { id: "T", description: bad }, intent: { action: "r" } },
        "task.description",
      ],
      [checkoutSchema, { resource: "r", task: { id: "T" }, intent: { action: bad } }, "intent.action"],
      [
        checkoutSchema,
        { resource: "r", task: { id: "T" }, intent: { action: "r", tool: bad } },
        "intent.tool",
      ],
      [toolCallSchema, { tool: bad, action: "a" }, "tool"],
      [toolCallSchema, { tool: "t", action: bad }, "action"],
      [toolCallSchema, { tool: "t", action: "a", target: bad }, "target"],
      [revokeSchema, { reason: bad }, "reason"],
      [approvalDecisionSchema, { reason: bad }, "reason"],
      [approvalDecisionSchema, { approver: bad }, "approver"],
      [revokeAgentSchema, { agent: bad }, "agent"],
      [revokeAgentSchema, { agent: "a", reason: bad }, "reason"],
      [listQuery, { agent: bad }, "agent"],
      [listQuery, { resource: bad }, "resource"],
    ];
    for (const [schema, body, field] of cases) {
      const r = schema.safeParse(body);
      expect(r.success, field).toBe(false);
      expect(describeIssues(r.error?.issues ?? []), field).toMatch(
        new RegExp(`^${field.replace(".", "\\.")}:`),
      );
    }
  });
});

describe("escaping for terminals and pages", () => {
  it("shows every non-printable character literally, leaving printable text alone", () => {
    expect(escapeText("T-1\u001b[1A")).toBe("T-1\\x1b[1A");
    expect(escapeText("a\u0000b")).toBe("a\\x00b");
    expect(escapeText("x\u202eyz")).toBe("x\\u202eyz");
    expect(escapeText("c1\u009b")).toBe("c1\\x9b");
    expect(escapeText("tag\u{e0041}")).toBe("tag\\u{e0041}");
    expect(escapeText("naïve 注文 😀")).toBe("naïve 注文 😀");
    for (const bad of Object.values(HOSTILE)) expect(hasRefusedChars(escapeText(bad))).toBe(false);
  });

  it("keeps the line breaks of composed output, escaping those inside a line's data", () => {
    expect(escapeLines("a\u001b\nb\u202e")).toBe("a\\x1b\nb\\u202e");
  });

  it("JSON stays the same value, with nothing raw that a terminal would act on", () => {
    const value = { task: HOSTILE.c1 + HOSTILE.rlo + HOSTILE.lineSep + HOSTILE.esc, tag: "\u{e0041}" };
    const text = jsonSafe(JSON.stringify(value, null, 2));
    expect(text.split("\n").some(hasRefusedChars)).toBe(false);
    expect(JSON.parse(text)).toEqual(value);
  });
});
