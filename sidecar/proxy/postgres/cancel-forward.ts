import { serialize } from "pg-protocol";
import { openBackendSocket } from "./backend-socket.js";
import type { BackendCancelKey } from "./cancel-keys.js";

/**
 * Sends a CancelRequest with the backend's real key to its server. The server answers
 * nothing and closes; resolves then, or after `timeoutMs`. Never throws: a cancel is best effort.
 */
export async function forwardCancel(key: BackendCancelKey, timeoutMs: number): Promise<void> {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), timeoutMs);
  try {
    const sock = await openBackendSocket(key.target, ctl.signal);
    await new Promise<void>((resolve) => {
      sock.once("close", () => resolve());
      sock.on("error", () => undefined);
      sock.end(serialize.cancel(key.pid, key.secret));
      ctl.signal.addEventListener("abort", () => sock.destroy(), { once: true });
      sock.resume();
    });
  } catch {
    // best effort
  } finally {
    clearTimeout(timer);
  }
}
