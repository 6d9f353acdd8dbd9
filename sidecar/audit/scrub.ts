/** A compact JWS anywhere in a string: header and payload are base64url JSON ("eyJ..."). */
const JWT_IN_TEXT = /eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*/g;

export const REDACTED_JWT = "[redacted:jwt]";

function scrubText(s: string): string {
  return s.includes("eyJ") ? s.replace(JWT_IN_TEXT, REDACTED_JWT) : s;
}

/**
 * Last line of defence for I6 "never a secret": strings an agent controls (a tool call's target,
 * a task id) could carry a bearer token by mistake; anything shaped like a JWT in a record's
 * string, or in an array's strings, is replaced. Other values come back as they are.
 */
export function scrubValue(v: unknown): unknown {
  if (typeof v === "string") return scrubText(v);
  if (Array.isArray(v)) return v.map((x: unknown) => (typeof x === "string" ? scrubText(x) : x));
  return v;
}
