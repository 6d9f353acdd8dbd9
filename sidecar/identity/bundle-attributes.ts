import { type BundleAttributeValue, RESERVED_ATTRIBUTES } from "./types.js";

const NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;
const MAX_ATTRIBUTES = 32;
const MAX_ITEMS = 64;
const MAX_TEXT = 256;
// Controls, bidi marks and separators, as the API refuses them: attributes reach audit views and traces.
const UNPRINTABLE = /[\p{Cc}\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029\p{Cs}]/u;

export type BundleAttributes = Readonly<Record<string, BundleAttributeValue>>;

/**
 * Reads the `attributes` member of a trust-bundle key: a JSON object of at most 32 attributes,
 * each named like a Cedar identifier and not reserved (`trust_kind`, `iss`, `sub`), whose value
 * is a string (at most 256 printable characters), a boolean, a safe integer or a list of at most
 * 64 such strings. Absent means none.
 * @returns the attributes, or the problem that makes them unusable
 */
export function parseBundleAttributes(
  raw: unknown,
): { ok: true; attributes: BundleAttributes } | { ok: false; problem: string } {
  if (raw === undefined) return { ok: true, attributes: {} };
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    return { ok: false, problem: "attributes must be a JSON object" };
  }
  const entries = Object.entries(raw);
  if (entries.length > MAX_ATTRIBUTES) {
    return { ok: false, problem: `attributes: at most ${MAX_ATTRIBUTES}` };
  }
  const out: Array<[string, BundleAttributeValue]> = [];
  for (const [name, value] of entries) {
    if (!NAME.test(name))
      return { ok: false, problem: `attributes: "${name.slice(0, 64)}" is not a valid name` };
    if (RESERVED_ATTRIBUTES.includes(name)) {
      return { ok: false, problem: `attributes: "${name}" is reserved (leasehold sets it)` };
    }
    const problem = valueProblem(value);
    if (problem !== undefined) return { ok: false, problem: `attributes.${name}: ${problem}` };
    out.push([name, Array.isArray(value) ? [...(value as string[])] : (value as BundleAttributeValue)]);
  }
  // fromEntries defines own properties: a name like __proto__ stays a plain key.
  return { ok: true, attributes: Object.fromEntries(out) };
}

function textProblem(v: unknown): string | undefined {
  if (typeof v !== "string") return "must be a string";
  if (v.length > MAX_TEXT) return `at most ${MAX_TEXT} characters`;
  if (UNPRINTABLE.test(v)) return "control characters are not allowed";
  return undefined;
}

function valueProblem(v: unknown): string | undefined {
  if (typeof v === "boolean") return undefined;
  if (typeof v === "number") return Number.isSafeInteger(v) ? undefined : "a number must be a safe integer";
  if (Array.isArray(v)) {
    if (v.length > MAX_ITEMS) return `at most ${MAX_ITEMS} items`;
    for (const item of v) {
      const p = textProblem(item);
      if (p !== undefined) return `each item: ${p}`;
    }
    return undefined;
  }
  if (typeof v === "string") return textProblem(v);
  return "must be a string, a boolean, an integer or a list of strings";
}
