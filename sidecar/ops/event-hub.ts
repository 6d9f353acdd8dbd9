import type { Logger } from "../logger.js";
import type { RedisClient } from "../redis.js";
import { DEFAULT_BLOCK_MS } from "./redis-connection.js";
import { lastStreamId, toStreamEvent } from "./event-stream.js";
import { eventStreamKey, type StreamEvent } from "./types.js";

/** A stream event with what a viewer needs to show it (the lease, the pending approvals). */
export interface EnrichedEvent extends StreamEvent {
  readonly lease?: unknown;
  readonly approvals?: readonly unknown[];
}

export type HubListener = (event: EnrichedEvent) => void;

export interface EventHubOptions {
  /** Opens a dedicated connection (XREAD BLOCK holds it); closed by `stop()`. */
  readonly connect: () => RedisClient;
  readonly prefix: string;
  /** Adds details to an event before it is fanned out; failures leave the event as it is. */
  readonly enrich?: (event: StreamEvent) => Promise<EnrichedEvent>;
  readonly log: Logger;
  /** How long one XREAD blocks, ms (below the connection's command timeout). @default 2000 */
  readonly blockMs?: number;
}

export interface Subscription {
  /** Events after this stream id reach the listener (some at or before it may too: apply idempotently). */
  readonly afterId: string;
  unsubscribe(): void;
}

/**
 * Follows the cluster's event stream on one dedicated connection and fans each event out to
 * every subscriber of this sidecar (SSE clients). Started by the first subscriber; reads resume
 * from the last id seen, so a Redis reconnect loses nothing.
 */
export class LeaseEventHub {
  private readonly listeners = new Set<HubListener>();
  private conn: RedisClient | undefined;
  private loop: Promise<void> | undefined;
  private ready: Promise<void> | undefined;
  private last = "0-0";
  private stopped = false;

  constructor(private readonly o: EventHubOptions) {}

  /** Subscribers now connected. */
  get size(): number {
    return this.listeners.size;
  }

  /** Adds a listener once the hub knows where the stream ends (so nothing after that is missed). */
  async subscribe(listener: HubListener): Promise<Subscription> {
    if (this.stopped) throw new Error("the event hub is stopped");
    this.ready ??= this.start();
    try {
      await this.ready;
    } catch (err) {
      this.ready = undefined;
      throw err;
    }
    this.listeners.add(listener);
    return { afterId: this.last, unsubscribe: () => this.listeners.delete(listener) };
  }

  private async start(): Promise<void> {
    const conn = this.o.connect();
    conn.on("error", () => undefined);
    this.conn = conn;
    try {
      this.last = await lastStreamId(conn, eventStreamKey(this.o.prefix));
    } catch (err) {
      this.conn = undefined;
      conn.disconnect();
      throw err;
    }
    this.loop = this.run(conn);
  }

  private async run(conn: RedisClient): Promise<void> {
    const key = eventStreamKey(this.o.prefix);
    const block = this.o.blockMs ?? DEFAULT_BLOCK_MS;
    let backoff = 250;
    while (!this.stopped) {
      try {
        const res = await conn.xread("COUNT", 200, "BLOCK", block, "STREAMS", key, this.last);
        backoff = 250;
        for (const [, entries] of res ?? []) {
          for (const [id, flat] of entries) {
            this.last = id;
            const event = toStreamEvent(id, flat);
            const enriched = this.o.enrich ? await this.o.enrich(event).catch(() => event) : event;
            for (const l of this.listeners) l(enriched);
          }
        }
      } catch (err) {
        if (this.stopped) break;
        this.o.log.warn({ err: { message: (err as Error).message } }, "event stream read failed; retrying");
        await new Promise((r) => setTimeout(r, backoff));
        backoff = Math.min(backoff * 2, 5000);
      }
    }
  }

  /** Stops reading and drops every listener. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.listeners.clear();
    this.conn?.disconnect();
    await this.loop;
  }
}
