import type { LeaseEventType } from "../events/index.js";
import type { Logger } from "../logger.js";
import type { RedisClient } from "../redis.js";
import { DEFAULT_BLOCK_MS } from "./redis-connection.js";
import { toStreamEvent } from "./event-stream.js";
import type { OpsMetrics } from "./metrics.js";
import { eventStreamKey, type StreamEvent } from "./types.js";
import { webhookHeaders, webhookKey } from "./webhook-signature.js";

/** Event types sent to the webhook unless configured otherwise. */
export const DEFAULT_WEBHOOK_EVENTS: readonly LeaseEventType[] = [
  "rotation_failed",
  "quarantined",
  "expiring_soon",
  "caller_mismatch",
];

/** The consumer group every sidecar of a cluster shares: each event is delivered by one of them. */
export const WEBHOOK_GROUP = "leasehold-webhook";

export interface WebhookOptions {
  /** Opens a dedicated connection (XREADGROUP BLOCK holds it); closed by `stop()`. */
  readonly connect: () => RedisClient;
  readonly prefix: string;
  /** http(s) URL that receives a POST of each event's JSON. */
  readonly url: string;
  /** The signing secret: `whsec_<base64 key>` (Standard Webhooks), or a string of 16+ characters. */
  readonly secret: string;
  /** This sidecar's name in the consumer group (unique in the cluster). */
  readonly consumer: string;
  readonly events?: readonly string[];
  /** Per attempt, ms. @default 5000 */
  readonly timeoutMs?: number;
  /** @default 3 */
  readonly attempts?: number;
  /** First retry delay (doubles), ms. @default 500 */
  readonly retryDelayMs?: number;
  /** How long one XREADGROUP blocks, ms (below the connection's command timeout). @default 2000 */
  readonly blockMs?: number;
  /** Entries another consumer left unacknowledged this long are taken over, ms. @default 60000 */
  readonly claimIdleMs?: number;
  readonly log: Logger;
  readonly metrics?: OpsMetrics;
  /** The HTTP client (injected so a test or a proxy setup can supply its own). @default fetch */
  readonly fetch?: typeof fetch;
}

type RawEntry = [id: string, fields: string[]];

/**
 * Delivers alert events (rotation_failed, quarantined, expiring_soon, caller_mismatch) from the cluster's event
 * stream to a webhook: HTTP POST of the event JSON, signed as Standard Webhooks asks
 * (`webhook-id`, `webhook-timestamp`, `webhook-signature`: see `webhookHeaders`), retried with
 * backoff. A Redis consumer group shares the work between sidecars, so each event is posted
 * once; entries a dead sidecar held are claimed after `claimIdleMs`.
 */
export class WebhookDispatcher {
  private readonly types: ReadonlySet<string>;
  private readonly abort = new AbortController();
  private conn: RedisClient | undefined;
  private loop: Promise<void> | undefined;
  private stopped = false;

  constructor(private readonly o: WebhookOptions) {
    if (!/^https?:\/\//.test(o.url)) throw new Error("webhook url: must be http:// or https://");
    // A secret no receiver could verify with is refused before any delivery.
    webhookKey(o.secret);
    this.types = new Set(o.events ?? DEFAULT_WEBHOOK_EVENTS);
  }

  start(): void {
    this.loop ??= this.run();
  }

  private get key(): string {
    return eventStreamKey(this.o.prefix);
  }

  private async ensureGroup(conn: RedisClient): Promise<void> {
    try {
      await conn.xgroup("CREATE", this.key, WEBHOOK_GROUP, "$", "MKSTREAM");
    } catch (err) {
      if (!/BUSYGROUP/.test((err as Error).message)) throw err;
    }
  }

  private async run(): Promise<void> {
    const conn = this.o.connect();
    conn.on("error", () => undefined);
    this.conn = conn;
    const claimIdle = this.o.claimIdleMs ?? 60_000;
    let lastClaim = 0;
    let backoff = 250;
    let grouped = false;
    while (!this.stopped) {
      try {
        if (!grouped) {
          await this.ensureGroup(conn);
          grouped = true;
        }
        if (Date.now() - lastClaim >= claimIdle / 2) {
          lastClaim = Date.now();
          const claimed = (await conn.xautoclaim(
            this.key,
            WEBHOOK_GROUP,
            this.o.consumer,
            claimIdle,
            "0-0",
            "COUNT",
            50,
          )) as [string, RawEntry[], ...unknown[]];
          for (const entry of claimed[1] ?? []) await this.handle(conn, entry);
        }
        const res = (await conn.xreadgroup(
          "GROUP",
          WEBHOOK_GROUP,
          this.o.consumer,
          "COUNT",
          50,
          "BLOCK",
          this.o.blockMs ?? DEFAULT_BLOCK_MS,
          "STREAMS",
          this.key,
          ">",
        )) as Array<[string, RawEntry[]]> | null;
        backoff = 250;
        for (const [, entries] of res ?? []) for (const entry of entries) await this.handle(conn, entry);
      } catch (err) {
        if (this.stopped) break;
        if (/NOGROUP/.test((err as Error).message)) grouped = false;
        this.o.log.warn({ err: { message: (err as Error).message } }, "webhook stream read failed; retrying");
        await new Promise((r) => setTimeout(r, backoff));
        backoff = Math.min(backoff * 2, 5000);
      }
    }
  }

  private async handle(conn: RedisClient, entry: RawEntry | null): Promise<void> {
    // XAUTOCLAIM reports entries deleted from the stream meanwhile as null.
    if (!entry) return;
    const [id, flat] = entry;
    const event = toStreamEvent(id, flat);
    if (this.types.has(event.type)) await this.deliver(event);
    if (!this.stopped) await conn.xack(this.key, WEBHOOK_GROUP, id);
  }

  /** Posts one event, retrying; true when the receiver answered 2xx. */
  async deliver(event: StreamEvent): Promise<boolean> {
    const body = JSON.stringify(event);
    const attempts = this.o.attempts ?? 3;
    const doFetch = this.o.fetch ?? fetch;
    let delay = this.o.retryDelayMs ?? 500;
    let last = "";
    for (let i = 1; i <= attempts && !this.stopped; i++) {
      const ts = Math.floor(Date.now() / 1000);
      try {
        const res = await doFetch(this.o.url, {
          method: "POST",
          headers: {
            "content-type": "application/json",
            "user-agent": "leasehold-webhook",
            ...webhookHeaders(this.o.secret, { id: event.id, type: event.type, timestamp: ts, body }),
          },
          body,
          signal: AbortSignal.any([this.abort.signal, AbortSignal.timeout(this.o.timeoutMs ?? 5000)]),
        });
        await res.arrayBuffer().catch(() => undefined);
        if (res.ok) {
          this.o.metrics?.observeWebhook("delivered");
          return true;
        }
        last = `HTTP ${res.status}`;
      } catch (err) {
        last = (err as Error).name === "TimeoutError" ? "timeout" : (err as Error).message;
      }
      if (i < attempts && !this.stopped) {
        await new Promise((r) => setTimeout(r, delay));
        delay *= 2;
      }
    }
    this.o.metrics?.observeWebhook("failed");
    this.o.log.error(
      { event: event.type, eventId: event.id, resource: event.resource, error: last },
      "webhook delivery failed",
    );
    return false;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.abort.abort();
    this.conn?.disconnect();
    await this.loop;
  }
}
