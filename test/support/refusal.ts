import { LeaseholdError } from "../../sidecar/errors.js";

/** The error `p` rejects with; throws when `p` resolves (what was sent was not refused). */
export async function refusalOf<E = Error>(p: Promise<unknown>): Promise<E> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e as E,
  );
  if (err === undefined) throw new Error("it was not refused");
  return err;
}

/** The LeaseholdError a promise rejects with; fails the test if it resolves or rejects otherwise. */
export async function refusal(p: Promise<unknown>): Promise<LeaseholdError> {
  const err = await refusalOf<unknown>(p);
  if (!(err instanceof LeaseholdError)) throw new Error(`expected a LeaseholdError, got ${String(err)}`);
  return err;
}
