/**
 * How a runner logs in for one call: at the resource's listener (user = lease id, password =
 * lease token; the real password never reaches this process), or with the revealed credential
 * (`connection` is the resource's registered connection settings). Both passwords live only in
 * this process's memory and never enter a tool result.
 */
export type RunnerLogin =
  | {
      readonly kind: "proxy";
      readonly host: string;
      readonly port: number;
      readonly user: string;
      readonly password: string;
    }
  | {
      readonly kind: "credential";
      readonly username: string;
      readonly password: string;
      readonly connection: Readonly<Record<string, unknown>>;
    };

/** What the listener or the target refused: the message is meant for the model. */
export class TargetError extends Error {
  override readonly name = "TargetError";
  constructor(
    message: string,
    /** True when the sidecar's listener refused the statement (not the database). */
    readonly refusedByListener = false,
  ) {
    super(message);
  }
}

/** How long one call may take, ms. */
export const CALL_TIMEOUT_MS = 30_000;
