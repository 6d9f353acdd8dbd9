import { readSse, type SseMessage } from "../../sidecar/cli/watch/sse-reader.js";

export interface TestStream {
  readonly status: number;
  readonly headers: Headers;
  /** The next message matching `match` (earlier non-matching ones are skipped). */
  next(match?: (m: SseMessage) => boolean, timeoutMs?: number): Promise<SseMessage>;
  /** How many bytes of comments (heartbeats) were seen. */
  heartbeats(): number;
  close(): void;
}

/** Opens /v1/leases/stream with fetch (as the dashboard and `leases watch` do). */
export async function openStream(url: string, headers: Record<string, string>): Promise<TestStream> {
  const ac = new AbortController();
  const res = await fetch(`${url}/v1/leases/stream`, { headers, signal: ac.signal });
  const queue: SseMessage[] = [];
  const waiters: Array<() => void> = [];
  let beats = 0;
  let ended = false;
  if (res.ok && res.body) {
    const body = res.body;
    void (async () => {
      try {
        const tee = async function* () {
          for await (const chunk of body) {
            if (new TextDecoder().decode(chunk).includes(": ping")) beats++;
            yield chunk;
          }
        };
        for await (const m of readSse(tee())) {
          queue.push(m);
          for (const w of waiters.splice(0)) w();
        }
      } catch {
        // aborted by close()
      } finally {
        ended = true;
        for (const w of waiters.splice(0)) w();
      }
    })();
  }
  return {
    status: res.status,
    headers: res.headers,
    heartbeats: () => beats,
    // The deadline bounds a hung stream on a busy machine; a message normally comes in milliseconds.
    async next(match = () => true, timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const i = queue.findIndex(match);
        if (i >= 0) return queue.splice(0, i + 1)[i] as SseMessage;
        if (ended) throw new Error("the stream ended");
        const left = deadline - Date.now();
        if (left <= 0) throw new Error("no matching message in time");
        await new Promise<void>((r) => {
          const t = setTimeout(r, left);
          waiters.push(() => {
            clearTimeout(t);
            r();
          });
        });
      }
    },
    close: () => ac.abort(),
  };
}
