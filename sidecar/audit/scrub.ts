import type { AuditFields } from "./types.js";

/** A compact JWS anywhere in a string: header and payload are base64url JSON ("eyJ..."). */
const JWT_IN_TEXT = /eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*/g;

export const REDACTED_JWT = "[redacted:jwt]";

function scrubText(s: string): string {
  return s.includes("eyJ") ? s.replace(JWT_IN_TEXT, REDACTED_JWT) : s;
}

/**
 * Last line of defence for I6 "never a secret": strings an agent controls (a tool call's target,
 * a task id) could carry a bearer token by mistake; anything shaped like a JWT is replaced.
 * Also states an empty delegation chain explicitly, so "for whom" always has an answer.
 */
export function scrubFields(fields: AuditFields): AuditFields {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(fields)) {
    if (typeof v === "string") out[k] = scrubText(v);
    else if (Array.isArray(v)) out[k] = v.map((x: unknown) => (typeof x === "string" ? scrubText(x) : x));
    else out[k] = v;
  }
  if (fields.agent !== undefined && fields.agent_chain === undefined) out.agent_chain = [];
  return out as unknown as AuditFields;
}
