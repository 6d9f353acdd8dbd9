import type { z } from "zod";
import { LeaseholdError } from "../errors.js";
import { describeIssues } from "../util/zod-errors.js";

/** Parses a request body or throws 400 invalid_request naming the field. */
export function parseBody<S extends z.ZodType>(schema: S, body: unknown, root = "body"): z.output<S> {
  if (body === undefined || body === null) {
    throw new LeaseholdError("invalid_request", `${root}: a JSON object is required`);
  }
  const r = schema.safeParse(body);
  if (!r.success) throw new LeaseholdError("invalid_request", describeIssues(r.error.issues, root));
  return r.data;
}
