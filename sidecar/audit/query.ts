import { LeaseholdError } from "../errors.js";
import { auditFileSet, firstRecordOf } from "./audit-files.js";
import { linesBackward } from "./file-lines.js";
import { AUDIT_EVENTS, type AuditRecord } from "./types.js";
import { notOneOfMessage } from "../util/close-match.js";
import { parseDurationMs } from "../util/duration.js";

/** Most records one page may hold. */
export const MAX_QUERY_LIMIT = 1000;
export const DEFAULT_QUERY_LIMIT = 50;

export type TimeBound = Date | number | string;

export interface AuditQuery {
  /** Live audit files; each one's rotated files are searched too. Several files: several chains. */
  readonly files: readonly string[];
  readonly agent?: string | undefined;
  readonly resource?: string | undefined;
  /** One event or several (any of them). */
  readonly event?: string | readonly string[] | undefined;
  readonly leaseId?: string | undefined;
  readonly taskId?: string | undefined;
  readonly account?: string | undefined;
  readonly approver?: string | undefined;
  /** Oldest time: a Date, ms since the epoch, RFC 3339, or a duration back from now ("90s", "15m", "1h", "7d"). */
  readonly since?: TimeBound | undefined;
  /** Newest time, same forms. */
  readonly until?: TimeBound | undefined;
  /** @default 50, at most 1000 */
  readonly limit?: number | undefined;
  /** `next_cursor` of the previous page. */
  readonly cursor?: string | undefined;
  /** Clock for durations. @default Date.now */
  readonly now?: () => number;
}

export interface AuditPage {
  /** Newest first. */
  readonly records: AuditRecord[];
  /** Pass it as `cursor` for the next (older) page; absent on the last page. */
  readonly next_cursor?: string;
}

/**
 * Turns a time bound into ms since the epoch: a Date, a number (ms), an RFC 3339 time or date,
 * or a duration back from now such as "90s", "15m", "1h", "7d", "2w".
 * @throws LeaseholdError invalid_request naming `field`.
 */
export function parseTimeBound(value: TimeBound, now: number, field = "since"): number {
  if (value instanceof Date) {
    if (Number.isNaN(value.getTime()))
      throw new LeaseholdError("invalid_request", `${field}: not a valid time`);
    return value.getTime();
  }
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new LeaseholdError("invalid_request", `${field}: not a valid time`);
    return value;
  }
  const back = parseDurationMs(value);
  if (back !== null) return now - back;
  if (/^\d{4}-\d{2}-\d{2}([T ][0-9:.]+(Z|[+-]\d{2}:?\d{2})?)?$/i.test(value.trim())) {
    const t = Date.parse(value.trim());
    if (!Number.isNaN(t)) return t;
  }
  throw new LeaseholdError(
    "invalid_request",
    `${field}: expected a duration like 15m, 1h, 7d or an RFC 3339 time like 2025-01-31T12:00:00Z`,
  );
}

/** Per chain, in the order of `files`: records with a seq below this are still to come; 0: none. */
type Cursor = number[];

function encodeCursor(c: Cursor): string {
  return Buffer.from(JSON.stringify({ v: 1, below: c })).toString("base64url");
}

function decodeCursor(s: string, chains: number): Cursor {
  const bad = () => new LeaseholdError("invalid_request", "cursor: not a cursor from a previous page");
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(s, "base64url").toString("utf8"));
  } catch {
    throw bad();
  }
  const p = parsed as { v?: unknown; below?: unknown } | null;
  if (p?.v !== 1 || !Array.isArray(p.below) || p.below.length !== chains) throw bad();
  return p.below.map((v: unknown) => {
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0) throw bad();
    return v;
  });
}

/** Newest-first records of one chain that pass the filters, below the cursor, not older than `since`. */
async function* chainBackward(
  live: string,
  below: number | undefined,
  keep: (r: AuditRecord) => boolean,
  since: number | undefined,
): AsyncGenerator<AuditRecord> {
  const files = await auditFileSet(live);
  for (let i = files.length - 1; i >= 0; i--) {
    const file = files[i] as string;
    if (below !== undefined) {
      // A file that starts at or above the cursor holds only records already shown.
      const first = await firstRecordOf(file);
      if (first && Number.isInteger(first.seq) && first.seq >= below) continue;
    }
    for await (const line of linesBackward(file)) {
      let rec: AuditRecord;
      try {
        rec = JSON.parse(line.text) as AuditRecord;
      } catch {
        continue; // `audit verify` reports broken lines; a query skips them
      }
      if (typeof rec !== "object" || rec === null || typeof rec.seq !== "number") continue;
      if (below !== undefined && rec.seq >= below) continue;
      if (since !== undefined && Date.parse(rec.time) < since) return;
      if (keep(rec)) yield rec;
    }
  }
}

interface Head {
  readonly chain: string;
  readonly it: AsyncGenerator<AuditRecord>;
  rec: AuditRecord | undefined;
}

const EVENT_NAMES = Object.keys(AUDIT_EVENTS);

/**
 * The event filter as a set, every name one of `AUDIT_EVENTS`.
 * @throws LeaseholdError invalid_request naming `event`, a close match and every valid event.
 */
function eventFilter(event: string | readonly string[] | undefined): ReadonlySet<string> | undefined {
  if (event === undefined) return undefined;
  const names = typeof event === "string" ? [event] : event;
  const problem = unknownEventProblem(names);
  if (problem !== undefined) throw new LeaseholdError("invalid_request", `event: ${problem}`);
  return new Set(names);
}

/**
 * Why a list of event names is refused (the first not in `AUDIT_EVENTS`: a close match and
 * every valid event), or undefined when each is an audit event.
 */
export function unknownEventProblem(names: readonly string[]): string | undefined {
  const unknown = names.find((name) => !Object.hasOwn(AUDIT_EVENTS, name));
  return unknown === undefined ? undefined : notOneOfMessage(unknown, EVENT_NAMES);
}

/**
 * Answers "what happened" from the audit files: records that match every given filter, newest
 * first, `limit` at a time; `next_cursor` continues with older records. Several chains (files of
 * several sidecars) are merged by time. Reads files from their end, so recent pages are cheap.
 * @throws LeaseholdError invalid_request for an unknown event, a bad time bound or cursor.
 */
export async function queryAudit(q: AuditQuery): Promise<AuditPage> {
  const now = (q.now ?? Date.now)();
  const limit = Math.min(Math.max(Math.trunc(q.limit ?? DEFAULT_QUERY_LIMIT), 1), MAX_QUERY_LIMIT);
  const since = q.since === undefined ? undefined : parseTimeBound(q.since, now, "since");
  const until = q.until === undefined ? undefined : parseTimeBound(q.until, now, "until");
  const events = eventFilter(q.event);
  const keep = (r: AuditRecord): boolean =>
    (q.agent === undefined || r.agent === q.agent) &&
    (q.resource === undefined || r.resource === q.resource) &&
    (events === undefined || events.has(r.event)) &&
    (q.leaseId === undefined || r.lease_id === q.leaseId) &&
    (q.taskId === undefined || r.task_id === q.taskId) &&
    (q.account === undefined || r.account === q.account) &&
    (q.approver === undefined || r.approver === q.approver) &&
    (until === undefined || Date.parse(r.time) <= until);

  const chains = [...new Set(q.files)];
  const cursor = q.cursor ? decodeCursor(q.cursor, chains.length) : undefined;
  const heads: Head[] = [];
  for (const [i, chain] of chains.entries()) {
    const below = cursor?.[i];
    // A chain the cursor saw to its end has nothing more (0 = exhausted).
    if (cursor && below === 0) continue;
    const it = chainBackward(chain, below, keep, since);
    heads.push({ chain, it, rec: (await it.next()).value ?? undefined });
  }

  const records: AuditRecord[] = [];
  try {
    while (records.length < limit) {
      let best: Head | undefined;
      for (const h of heads) {
        if (!h.rec) continue;
        if (!best?.rec || newer(h.rec, best.rec)) best = h;
      }
      if (!best?.rec) break;
      records.push(best.rec);
      best.rec = (await best.it.next()).value ?? undefined;
    }
  } finally {
    await Promise.all(heads.map((h) => h.it.return(undefined)));
  }

  if (!heads.some((h) => h.rec)) return { records };
  const next: Cursor = chains.map((chain) => {
    const rec = heads.find((x) => x.chain === chain)?.rec;
    return rec ? rec.seq + 1 : 0;
  });
  return { records, next_cursor: encodeCursor(next) };
}

/** Order of the merged result: later time first; within one time, the higher seq first. */
function newer(a: AuditRecord, b: AuditRecord): boolean {
  const ta = Date.parse(a.time);
  const tb = Date.parse(b.time);
  return ta !== tb ? ta > tb : a.seq > b.seq;
}
