import { randomBytes } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type AuditFields, hashRecord, RecordTemplate, sealLine } from "../../sidecar/audit/index.js";

/** Strings a record can hold: quotes, escapes, newlines, astral characters, a JWT-shaped run. */
const JWT = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJl";
const text = fc.oneof(
  fc.string({ unit: "binary", maxLength: 40 }),
  fc.constantFrom("", "select 1", 'say "hi" \\ there', "a\nb\u2028c", "naïve ✓ 🦀", `token ${JWT} end`),
);
/** Values a shared field can hold, the ones sealLine round-trips through JSON included. */
const fixedValue = fc.oneof(
  text,
  fc.array(text, { maxLength: 3 }),
  fc.boolean(),
  fc.integer(),
  fc.constantFrom(undefined, -0, Number.NaN, 1.5),
  fc.dictionary(fc.constantFrom("b", "a", "10", "9"), text, { maxKeys: 3 }),
);
const fixedKey = fc.constantFrom(
  "event",
  "scope",
  "agent",
  "agent_chain",
  "resource",
  "lease_id",
  "tool",
  "target",
  "10",
  "2",
  "Zed",
  "digest",
  "time",
  "hash",
);
const variableKeys = ["digest", "statement", "truncated", "aaa", "zzz"] as const;
type Variable = (typeof variableKeys)[number];
const values = fc.record(
  Object.fromEntries(
    variableKeys.map((k) => [k, fc.oneof(text, fc.boolean(), fc.constant(undefined))]),
  ) as Record<Variable, fc.Arbitrary<string | boolean | undefined>>,
);
const ctx = fc.record({
  time: fc.constantFrom("2026-12-04T18:00:00.000Z", "2026-01-01T00:00:00.001Z"),
  sidecar: fc.constantFrom("sc-1", 'odd "sidecar"\n'),
  seq: fc.nat(),
  prev: fc.constantFrom("0".repeat(64), "ab".repeat(32)),
  hmacKey: fc.option(fc.constant(randomBytes(32)), { nil: undefined }),
});

describe("RecordTemplate", () => {
  it("seals exactly as sealLine does for the same fields: line, hash, hmac and record", () => {
    fc.assert(
      fc.property(
        fc.dictionary(fixedKey, fixedValue, { maxKeys: 10 }),
        fc.subarray([...variableKeys], { minLength: 1 }),
        values,
        ctx,
        (fixed, keys, all, c) => {
          const fields = { event: "tool_call", ...fixed } as unknown as AuditFields;
          const own = Object.fromEntries(keys.map((k) => [k, all[k]])) as Record<
            Variable,
            string | boolean | undefined
          >;
          const template = new RecordTemplate(fields, keys);
          const got = template.seal(own, c);
          const want = sealLine(Object.assign({}, fields, own), c);
          expect(got.canonical).toBe(want.canonical);
          expect(got.tail).toBe(want.tail);
          expect(got.record).toEqual(want.record);
          // And a reader of the line finds the record, and its hash, again.
          const line = got.canonical.slice(0, -1) + got.tail;
          expect(JSON.parse(line)).toEqual(got.record);
          expect(hashRecord(JSON.parse(line))).toBe(got.record.hash);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it("scrubs a JWT from a record's own strings as from its shared ones", () => {
    const template = new RecordTemplate({ event: "tool_call", target: `t ${JWT}` }, ["statement"]);
    const sealed = template.seal(
      { statement: `select '${JWT}'` },
      { time: "2026-12-04T18:00:00.000Z", sidecar: "s", seq: 1, prev: "0".repeat(64) },
    );
    expect(sealed.canonical.includes(JWT)).toBe(false);
    expect(sealed.record.statement).toBe("select '[redacted:jwt]'");
    expect(sealed.record.target).toBe("t [redacted:jwt]");
  });

  it("reads each value by its key, so a getter can compute it when the record is sealed", () => {
    class Values {
      readonly statement = "select 1";
      readonly truncated = undefined;
      reads = 0;
      get digest(): string {
        this.reads += 1;
        return "sha256:00";
      }
    }
    const template = new RecordTemplate({ event: "tool_call", agent: "spiffe://t/a" }, [
      "digest",
      "statement",
      "truncated",
    ]);
    const values = new Values();
    expect(values.reads).toBe(0);
    const c = { time: "2026-12-04T18:00:00.000Z", sidecar: "s", seq: 3, prev: "0".repeat(64) };
    const sealed = template.seal(values, c);
    expect(values.reads).toBe(1);
    expect(sealed.record).toMatchObject({ digest: "sha256:00", statement: "select 1", agent_chain: [] });
    expect(template.fieldsWith(values)).toMatchObject({ digest: "sha256:00", statement: "select 1" });
    expect(sealed.canonical).toBe(sealLine(template.fieldsWith(values), c).canonical);
  });

  it("refuses to vary a chain field, agent or agent_chain", () => {
    for (const k of ["seq", "prev", "hash", "agent", "agent_chain"]) {
      expect(() => new RecordTemplate({ event: "tool_call" }, [k])).toThrow(`cannot vary '${k}'`);
    }
  });
});
