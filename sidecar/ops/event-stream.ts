import type { RedisClient } from "../redis.js";
import type { StreamEvent } from "./types.js";

type RawEntry = [id: string, fields: string[]];

function fieldsOf(flat: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) out[flat[i] as string] = flat[i + 1] as string;
  return out;
}

/** A stream entry as an event; the time comes from the entry id (Redis' clock). */
export function toStreamEvent(id: string, flat: readonly string[]): StreamEvent {
  const f = fieldsOf(flat);
  const ms = Number(id.split("-")[0]);
  return {
    id,
    time: new Date(Number.isFinite(ms) ? ms : 0).toISOString(),
    type: f.type ?? "unknown",
    resource: f.resource ?? "",
    ...(f.account ? { account: f.account } : {}),
    ...(f.lease_id ? { lease_id: f.lease_id } : {}),
    ...(f.agent ? { agent: f.agent } : {}),
    ...(f.reason ? { reason: f.reason } : {}),
    ...(f.approval_id ? { approval_id: f.approval_id } : {}),
  };
}

/** True when `id` looks like a Redis stream id (`<ms>-<seq>`). */
export function isStreamId(id: string): boolean {
  return /^\d{1,20}-\d{1,20}$/.test(id);
}

/** Orders two stream ids: negative when a comes first. */
export function compareStreamIds(a: string, b: string): number {
  const [am = "0", as = "0"] = a.split("-");
  const [bm = "0", bs = "0"] = b.split("-");
  const d = BigInt(am) - BigInt(bm);
  if (d !== 0n) return d < 0n ? -1 : 1;
  const e = BigInt(as) - BigInt(bs);
  return e === 0n ? 0 : e < 0n ? -1 : 1;
}

/** The id of the newest entry, or "0-0" for an empty stream: a concrete place to read after. */
export async function lastStreamId(redis: RedisClient, key: string): Promise<string> {
  const tail = (await redis.xrevrange(key, "+", "-", "COUNT", 1)) as RawEntry[];
  return tail[0]?.[0] ?? "0-0";
}

/** Entries strictly after `afterId`, oldest first, at most `count`. */
export async function eventsAfter(
  redis: RedisClient,
  key: string,
  afterId: string,
  count: number,
): Promise<StreamEvent[]> {
  const entries = (await redis.xrange(key, `(${afterId}`, "+", "COUNT", count)) as RawEntry[];
  return entries.map(([id, flat]) => toStreamEvent(id, flat));
}

/** The newest `limit` events of the given types, newest first (looks at most `scan` entries back). */
export async function recentEvents(
  redis: RedisClient,
  key: string,
  types: ReadonlySet<string>,
  limit: number,
  scan = 2000,
): Promise<StreamEvent[]> {
  const entries = (await redis.xrevrange(key, "+", "-", "COUNT", scan)) as RawEntry[];
  const out: StreamEvent[] = [];
  for (const [id, flat] of entries) {
    const e = toStreamEvent(id, flat);
    if (types.has(e.type)) out.push(e);
    if (out.length >= limit) break;
  }
  return out;
}
