import { LeaseholdError } from "../errors.js";

/** An `unauthenticated` refusal; `message` goes to the client, `detail` stays in logs. */
export function refuse(message: string, detail?: string): LeaseholdError {
  return new LeaseholdError("unauthenticated", message, detail === undefined ? {} : { detail });
}
