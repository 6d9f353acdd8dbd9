import { createHash } from "node:crypto";

/**
 * The `digest` of a tool call: `sha256:` and the hex SHA-256 of its arguments (a string as
 * UTF-8, bytes as they are, anything else as its JSON). Lets the audit log prove which
 * arguments were used without storing them.
 */
export function toolCallDigest(args: string | Uint8Array | object): string {
  const h = createHash("sha256");
  if (typeof args === "string") h.update(args, "utf8");
  else if (args instanceof Uint8Array) h.update(args);
  else h.update(JSON.stringify(args));
  return `sha256:${h.digest("hex")}`;
}
