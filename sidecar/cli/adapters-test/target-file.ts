import { readFile } from "node:fs/promises";
import { parse } from "yaml";
import { z } from "zod";
import { LeaseholdError } from "../../errors.js";

const credential = z.strictObject({
  username: z.string().min(1),
  password: z.string().min(1),
});

/**
 * The target FILE of `leasehold adapters test MODULE --target FILE` (YAML or JSON): a real
 * system and test accounts to run the conformance checks against. docs/adapters.md
 * describes it. The accounts' passwords are changed during the run and put back at the end.
 */
export const conformanceTargetFile = z
  .strictObject({
    /** The adapter's connection settings, as in a resource registration. */
    connection: z.unknown(),
    /** How accounts are rotated, as in a registration. @default "admin" */
    rotateWith: z.enum(["admin", "self"]).default("admin"),
    /** Admin credential (needed for rotateWith: admin; with self, also enables the admin checks). */
    admin: credential.optional(),
    /** Existing test accounts with their current passwords; two or more spread the checks. */
    accounts: z.array(z.strictObject({ name: z.string().min(1), password: z.string().min(1) })).min(1),
    /** The same kind of connection, pointing where nothing listens: enables the retryable-error check. */
    unreachable: z.unknown().optional(),
    /** Upper bound for one adapter call, ms. @default 15000 */
    timeoutMs: z.number().int().min(100).max(600_000).optional(),
  })
  .superRefine((file, ctx) => {
    if (file.rotateWith === "admin" && file.admin === undefined) {
      ctx.addIssue({ code: "custom", path: ["admin"], message: "is required with rotateWith: admin" });
    }
    if (file.connection === undefined) {
      ctx.addIssue({ code: "custom", path: ["connection"], message: "is required" });
    }
    const names = file.accounts.map((a) => a.name);
    const dup = names.find((n, i) => names.indexOf(n) !== i);
    if (dup !== undefined)
      ctx.addIssue({ code: "custom", path: ["accounts"], message: "lists an account twice" });
  });

/** A parsed target file. */
export type ConformanceTarget = z.output<typeof conformanceTargetFile>;

/**
 * Parses a target file's text (YAML, of which JSON is a subset).
 * @throws LeaseholdError invalid_request naming the file and the field; never quoting a value.
 */
export function parseConformanceTarget(text: string, source: string): ConformanceTarget {
  let raw: unknown;
  try {
    raw = parse(text);
  } catch (err) {
    throw new LeaseholdError("invalid_request", `target file ${source}: not valid YAML or JSON`, {
      detail: err instanceof Error ? err.message : String(err),
    });
  }
  const result = conformanceTargetFile.safeParse(raw);
  if (!result.success) {
    const problems = result.error.issues.map((i) => `${i.path.join(".") || "(top)"}: ${i.message}`);
    throw new LeaseholdError("invalid_request", `target file ${source}: ${problems.join("; ")}`);
  }
  return result.data;
}

/** Reads and parses a target file. */
export async function loadConformanceTarget(file: string): Promise<ConformanceTarget> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    throw new LeaseholdError("invalid_request", `target file ${file}: cannot be read`, { cause: err });
  }
  return parseConformanceTarget(text, file);
}
