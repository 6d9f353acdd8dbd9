import { setTimeout as pause } from "node:timers/promises";

/** What a probe answers while the awaited thing has not happened yet. */
export type NotYet = undefined | null | false;

export interface WaitOptions {
  /**
   * Bounds a hung test; it never paces one, so it is generous enough for a machine whose cores
   * are all busy. Keep it below the test's own timeout so the failure names what was awaited.
   * @default 60000
   */
  timeoutMs?: number;
  /** Time between two probes. @default 50 */
  intervalMs?: number;
  /** Ends the wait early (e.g. the process being waited on exited); rejects with its reason. */
  signal?: AbortSignal;
}

/** The default deadline of {@link waitFor}, exported for helpers that pass it on. */
export const WAIT_TIMEOUT_MS = 60_000;

/**
 * Polls `probe` until it answers something other than `undefined`, `null` or `false`, and
 * resolves with that answer. `what` names the awaited thing (a function is read only on failure,
 * so it can report the last state seen). A probe that throws counts as "not yet"; its last error is part of
 * the timeout message. Rejects with an error naming `what` once `timeoutMs` has passed, or with
 * the signal's reason once `signal` aborts.
 */
export async function waitFor<T>(
  what: string | (() => string),
  probe: () => T | NotYet | Promise<T | NotYet>,
  opts: WaitOptions = {},
): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? WAIT_TIMEOUT_MS;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    opts.signal?.throwIfAborted();
    try {
      const v = await probe();
      if (v !== undefined && v !== null && v !== false) return v;
      lastError = undefined;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const why =
        lastError === undefined ? "" : ` (last probe failed: ${(lastError as Error).message ?? lastError})`;
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${typeof what === "string" ? what : what()}${why}`,
      );
    }
    try {
      await pause(opts.intervalMs ?? 50, undefined, opts.signal ? { signal: opts.signal } : {});
    } catch {
      opts.signal?.throwIfAborted();
    }
  }
}

/** An AbortSignal that aborts, with a message naming the process, once `exited` settles. */
export function abortWhenExited(exited: Promise<unknown>, name: string, output?: () => string): AbortSignal {
  const ac = new AbortController();
  void exited.then(
    (code) =>
      ac.abort(
        new Error(`${name} exited (${String(code)}) before it was ready:\n${output?.().slice(-4000) ?? ""}`),
      ),
    () => ac.abort(new Error(`${name} failed before it was ready`)),
  );
  return ac.signal;
}

/**
 * Resolves with the clock's reading once `clock` reads at least `t`. For tests whose subject is
 * time passing on a clock they cannot hold (Redis TIME, which lease times come from): they wait
 * for that clock to reach the instant, not for a guess of how long it takes.
 */
export function waitForClock(
  what: string,
  clock: () => Promise<number>,
  t: number,
  opts: WaitOptions = {},
): Promise<number> {
  return waitFor(
    what,
    async () => {
      const now = await clock();
      return now >= t && now;
    },
    { intervalMs: 5, ...opts },
  );
}
