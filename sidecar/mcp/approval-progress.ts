import type { RequestHandlerExtra } from "@modelcontextprotocol/sdk/shared/protocol.js";
import type { ServerNotification, ServerRequest } from "@modelcontextprotocol/sdk/types.js";

type Extra = RequestHandlerExtra<ServerRequest, ServerNotification>;

export /**
 * Progress while a checkout waits for a human: one notification when the wait starts, at each
 * poll the backend reports, and every `intervalMs` (so a client that resets its timeout on
 * progress keeps waiting). Only when the client asked for progress (`_meta.progressToken`).
 */
function approvalProgress(
  extra: Extra,
  intervalMs: number,
  log: (m: string) => void,
): { onPending: (a: { id: string; status: string }) => void; stop(): void } {
  const token = extra._meta?.progressToken;
  let timer: NodeJS.Timeout | undefined;
  let n = 0;
  let last: { id: string; status: string } | undefined;
  const send = () => {
    if (token === undefined || last === undefined) return;
    n += 1;
    const message = `waiting for approval ${last.id} (${last.status}), ask an operator: leasehold approvals approve ${last.id}`;
    extra
      .sendNotification({
        method: "notifications/progress",
        params: { progressToken: token, progress: n, message },
      })
      .catch(() => undefined);
  };
  return {
    onPending: (a) => {
      const first = last === undefined;
      last = { id: a.id, status: a.status };
      if (first) {
        log(`checkout waits for approval ${a.id}`);
        timer = setInterval(send, intervalMs);
        timer.unref();
      }
      send();
    },
    stop: () => clearInterval(timer),
  };
}
