import { LeaseholdError } from "../../sidecar/errors.js";

/** The LeaseholdError a promise rejects with; fails the test if it resolves or rejects otherwise. */
export async function refusal(p: Promise<unknown>): Promise<LeaseholdError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof LeaseholdError)) throw new Error(`expected a LeaseholdError, got ${String(err)}`);
  return err;
}
