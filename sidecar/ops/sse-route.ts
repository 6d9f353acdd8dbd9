import type { FastifyReply, FastifyRequest } from "fastify";
import type { RedisClient } from "../redis.js";
import { LeaseholdError } from "../errors.js";
import type { Logger } from "../logger.js";
import type { EnrichedEvent, LeaseEventHub } from "./event-hub.js";
import { compareStreamIds, eventsAfter, isStreamId } from "./event-stream.js";
import type { OpsMetrics } from "./metrics.js";
import { opsRoute } from "./ops-route-defs.js";
import { buildSnapshot, type OpsServices } from "./snapshot.js";
import { eventStreamKey } from "./types.js";

export interface StreamRouteDeps {
  readonly services: OpsServices;
  readonly hub: LeaseEventHub;
  /** Shared, non-blocking connection: snapshot and backlog reads. */
  readonly redis: RedisClient;
  readonly prefix: string;
  readonly metrics: OpsMetrics;
  readonly log: Logger;
  /** Comment line sent when nothing else was, ms. @default 15000 */
  readonly heartbeatMs?: number;
  /** Streams open at once on this sidecar. @default 64 */
  readonly maxClients?: number;
}

/** A client that stops reading is dropped once this much is queued for it. */
const MAX_BUFFERED = 1024 * 1024;
const MAX_BACKLOG = 1000;

function frame(event: string | undefined, id: string | undefined, data: unknown): string {
  return `${event ? `event: ${event}\n` : ""}${id ? `id: ${id}\n` : ""}data: ${JSON.stringify(data)}\n\n`;
}

/**
 * `GET /v1/leases/stream` (operators): `text/event-stream`. Without `Last-Event-ID` the first
 * message is `event: snapshot` (leases, approvals, accounts, recent rotations); with it (or
 * `?since=<id>`) the missed events are replayed instead. Then every stream event, as it happens,
 * as a default `message` whose `id` is the stream id; `: ping` comments keep the line alive.
 */
export const streamRoute = opsRoute({
  method: "GET",
  path: "/v1/leases/stream",
  operationId: "streamLeaseEvents",
  tag: "operations",
  summary: "Lease events as Server-Sent Events (operators)",
  auth: "admin",
  responses: {
    200: { description: "text/event-stream of lease events", contentType: "text/event-stream" },
  },
  errors: ["rate_limited"],
  handle: ({ req, reply }, d) => streamEvents(req, reply, d.stream),
});

async function streamEvents(req: FastifyRequest, reply: FastifyReply, d: StreamRouteDeps): Promise<void> {
  const q = (req.query ?? {}) as Record<string, unknown>;
  const header = req.headers["last-event-id"];
  const since = typeof header === "string" && header !== "" ? header : q.since;
  if (since !== undefined && (typeof since !== "string" || !isStreamId(since)))
    throw new LeaseholdError("invalid_request", "query.since: not a stream id (<ms>-<seq>)");
  if (d.hub.size >= (d.maxClients ?? 64))
    throw new LeaseholdError("rate_limited", "too many event streams are open", { retryAfter: 5 });

  const pending: EnrichedEvent[] = [];
  let live = false;
  let sentUpTo = "0-0";
  const res = reply.raw;
  let closed = false;
  const write = (chunk: string) => {
    if (closed) return;
    res.write(chunk);
    if (res.writableLength > MAX_BUFFERED) res.destroy();
  };
  const send = (e: EnrichedEvent) => {
    if (compareStreamIds(e.id, sentUpTo) <= 0) return;
    sentUpTo = e.id;
    write(frame(undefined, e.id, e));
  };
  let sub: Awaited<ReturnType<LeaseEventHub["subscribe"]>>;
  try {
    sub = await d.hub.subscribe((e) => (live ? send(e) : pending.push(e)));
  } catch (err) {
    throw new LeaseholdError("upstream_unavailable", "the event stream cannot be read", {
      detail: (err as Error).message,
    });
  }
  reply.hijack();
  d.metrics.streamClientsChanged(1);
  const heartbeat = setInterval(() => write(": ping\n\n"), d.heartbeatMs ?? 15_000);
  const cleanup = () => {
    if (closed) return;
    closed = true;
    clearInterval(heartbeat);
    sub.unsubscribe();
    d.metrics.streamClientsChanged(-1);
  };
  res.on("close", cleanup);
  res.writeHead(200, {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-store",
    "x-request-id": req.id,
    "x-accel-buffering": "no",
    connection: "keep-alive",
  });
  write("retry: 2000\n\n");
  try {
    if (typeof since === "string") {
      sentUpTo = since;
      for (const e of await eventsAfter(d.redis, eventStreamKey(d.prefix), since, MAX_BACKLOG)) send(e);
    } else {
      const snap = await buildSnapshot(d.services, d.redis, d.prefix, sub.afterId);
      write(frame("snapshot", sub.afterId, snap));
      sentUpTo = sub.afterId;
    }
  } catch (err) {
    d.log.warn({ err: { message: (err as Error).message } }, "event stream could not start");
    write(frame("error", undefined, { code: "upstream_unavailable", message: "state cannot be read" }));
    res.end();
    cleanup();
    return;
  }
  // Events that arrived while the snapshot was read follow it; the snapshot may already reflect
  // some of them, which is harmless: viewers apply events idempotently.
  live = true;
  for (const e of pending.splice(0)) send(e);
}
