import { toolCallDigest } from "../client/digest.js";

/** JSON with object keys sorted at every level: the same arguments always give the same text. */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(",")}]`;
  if (v !== null && typeof v === "object") {
    const entries = Object.entries(v as Record<string, unknown>)
      .filter(([, x]) => x !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, x]) => `${JSON.stringify(k)}:${canonicalJson(x)}`).join(",")}}`;
  }
  return JSON.stringify(v) ?? "null";
}

/** The audit digest of a tool call's arguments: SHA-256 of their canonical JSON. */
export function argumentsDigest(args: unknown): string {
  return toolCallDigest(canonicalJson(args ?? {}));
}
