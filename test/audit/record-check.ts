import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { expect } from "vitest";
import { z } from "zod";
import { auditRecordSchema } from "../../sidecar/audit/index.js";

const schemaFile = join(
  dirname(fileURLToPath(import.meta.url)),
  "../../sidecar/audit/audit-record.schema.json",
);

/** The committed JSON Schema file, as a validator (independent of the zod source it was made from). */
export const jsonSchemaValidator = z.fromJSONSchema(JSON.parse(readFileSync(schemaFile, "utf8")));

function problems(r: { success: boolean; error?: z.ZodError }): string[] {
  // Paths and rules only: a record's values never reach test output.
  return (r.error?.issues ?? []).map((i) =>
    i.code === "unrecognized_keys"
      ? `unknown field(s) ${i.keys.join(", ")}`
      : `${i.path.join(".")}: ${i.code}`,
  );
}

/** Fails the test unless every record passes both the zod schema and the JSON Schema file. */
export function expectValidAuditRecords(records: readonly unknown[], where = "records"): void {
  expect(records.length, `${where}: no records to check`).toBeGreaterThan(0);
  for (const [i, rec] of records.entries()) {
    const a = auditRecordSchema.safeParse(rec);
    expect(problems(a), `${where}[${i}] against the zod schema`).toEqual([]);
    const b = jsonSchemaValidator.safeParse(rec);
    expect(problems(b), `${where}[${i}] against audit-record.schema.json`).toEqual([]);
  }
}

/** Every record of the given files, in order. */
export async function readRecords(...files: string[]): Promise<Record<string, unknown>[]> {
  const out: Record<string, unknown>[] = [];
  for (const f of files) {
    const text = await readFile(f, "utf8");
    for (const line of text.split("\n"))
      if (line !== "") out.push(JSON.parse(line) as Record<string, unknown>);
  }
  return out;
}
