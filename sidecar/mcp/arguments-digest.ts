import { canonicalJson } from "../audit/canonical.js";
import { toolCallDigest } from "../client/digest.js";

/**
 * The audit digest of a tool call's arguments: SHA-256 of their canonical JSON (keys sorted at
 * every level, the audit chain's form), so the same arguments always give the same digest.
 */
export function argumentsDigest(args: unknown): string {
  return toolCallDigest(canonicalJson(args ?? {}));
}
