import { LeaseholdClientError } from "./errors.js";
import type { LeaseHandle } from "./types.js";

/** A running renewal loop. */
export interface Renewal {
  /** Aborted when the lease is over: a renewal was refused as expired or revoked, or the expiry passed. */
  readonly signal: AbortSignal;
  /** Stops renewing and waits for a renewal in flight. */
  stop(): Promise<void>;
}

/** Retry delay after a renewal that failed for a reason that may pass (sidecar busy, unreachable). */
const RETRY_MS = 1000;

/**
 * Renews `lease` at about 2/3 of its remaining time, asking for `ttl` seconds each time, until
 * stopped. Times are measured on the sidecar's clock: the offset to the local clock is taken
 * from `issued_at` when the loop starts. Once the lease cannot be extended (`max_expires_at`
 * reached, or policy refuses), the loop only waits for the expiry to abort the signal.
 */
export function startRenewal(lease: LeaseHandle, ttl: number | undefined): Renewal {
  const controller = new AbortController();
  const offset = Date.now() - Date.parse(lease.lease.issued_at);
  const remaining = () => Date.parse(lease.lease.expires_at) - (Date.now() - offset);
  let timer: NodeJS.Timeout | undefined;
  let inFlight: Promise<void> | undefined;
  let stopped = false;

  const at = (ms: number, fn: () => void) => {
    if (stopped) return;
    timer = setTimeout(fn, Math.max(0, ms));
    timer.unref();
  };
  const endAtExpiry = () =>
    at(remaining(), () =>
      controller.abort(new LeaseholdClientError("lease_expired", `lease ${lease.lease.id} has expired`)),
    );
  const schedule = () => {
    if (Date.parse(lease.lease.max_expires_at) <= Date.parse(lease.lease.expires_at)) endAtExpiry();
    else at((remaining() * 2) / 3, renewNow);
  };
  const renewNow = () => {
    inFlight = lease.renew(ttl).then(schedule, (err: unknown) => {
      if (err instanceof LeaseholdClientError && (err.status === 401 || err.code === "not_found")) {
        controller.abort(err);
      } else if (err instanceof LeaseholdClientError && err.retryable && remaining() > RETRY_MS) {
        at(RETRY_MS, renewNow);
      } else {
        endAtExpiry();
      }
    });
  };
  schedule();

  return {
    signal: controller.signal,
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await inFlight;
    },
  };
}
