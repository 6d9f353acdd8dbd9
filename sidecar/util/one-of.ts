import { z } from "zod";
import { notOneOfMessage } from "./close-match.js";

/**
 * A zod enum whose refusal says what to do: a close match ("did you mean") and every valid
 * value, never the input itself (`state: unknown value (did you mean "active"?); valid values: active, ended`).
 */
export function oneOf<const T extends readonly [string, ...string[]]>(values: T) {
  return z.enum(values, { error: (issue) => notOneOfMessage(issue.input, values) });
}
