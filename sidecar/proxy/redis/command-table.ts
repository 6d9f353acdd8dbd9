import type { RedisCommandKind } from "../statement-policy.js";
import type { RespValue } from "./resp.js";

/** How a key spec finds where its keys start (Redis 7 `begin_search`). */
type BeginSearch =
  | { readonly type: "index"; readonly index: number }
  | { readonly type: "keyword"; readonly keyword: string; readonly startfrom: number }
  | { readonly type: "unknown" };

/** How a key spec finds its keys from there (Redis 7 `find_keys`). */
type FindKeys =
  | { readonly type: "range"; readonly lastkey: number; readonly keystep: number; readonly limit: number }
  | {
      readonly type: "keynum";
      readonly keynumidx: number;
      readonly firstkey: number;
      readonly keystep: number;
    }
  | { readonly type: "unknown" };

interface KeySpec {
  readonly notKey: boolean;
  readonly incomplete: boolean;
  readonly begin: BeginSearch;
  readonly find: FindKeys;
}

/** One command (or subcommand) as the server describes it. */
export interface CommandInfo {
  /** Lower case; `container|sub` for a subcommand. */
  readonly name: string;
  readonly arity: number;
  readonly movableKeys: boolean;
  /** ACL categories without the `@`. */
  readonly categories: readonly string[];
  readonly first: number;
  readonly last: number;
  readonly step: number;
  /** Absent before Redis 7: the first/last/step range is all there is. */
  readonly specs: readonly KeySpec[] | undefined;
  readonly subcommands: ReadonlyMap<string, CommandInfo>;
}

/** The server's commands by lower-case name. */
export type CommandTable = ReadonlyMap<string, CommandInfo>;

/** A command as statement policy sees it, or why it cannot be judged. */
export type RedisClassification =
  | {
      readonly ok: true;
      readonly kind: RedisCommandKind;
      readonly command: string;
      readonly keys: readonly string[];
    }
  | { readonly ok: false; readonly error: string };

/** The primary category: the first of these a command has (docs/policy.md, `statement_kind`). */
const PRECEDENCE: readonly RedisCommandKind[] = [
  "admin",
  "dangerous",
  "scripting",
  "write",
  "read",
  "pubsub",
  "transaction",
  "connection",
  "keyspace",
];

/** The primary ACL category of a command's categories. */
export function primaryKind(categories: readonly string[]): RedisCommandKind {
  return PRECEDENCE.find((k) => categories.includes(k)) ?? "other";
}

const list = (v: RespValue | undefined): readonly RespValue[] => (Array.isArray(v) ? v : []);
const num = (v: RespValue | undefined): number => (typeof v === "number" ? v : Number(v ?? Number.NaN));
const str = (v: RespValue | undefined): string => (typeof v === "string" ? v : "");

/** A flattened map (`[k, v, k, v]`, as RESP2 sends it and decodeResp flattens RESP3's) as an object. */
function fields(v: RespValue | undefined): Record<string, RespValue> {
  const out: Record<string, RespValue> = {};
  const l = list(v);
  for (let i = 0; i + 1 < l.length; i += 2) out[str(l[i]).toLowerCase()] = l[i + 1] as RespValue;
  return out;
}

function beginSearch(v: RespValue | undefined): BeginSearch {
  const f = fields(v);
  const spec = fields(f.spec);
  if (f.type === "index") return { type: "index", index: num(spec.index) };
  if (f.type === "keyword")
    return { type: "keyword", keyword: str(spec.keyword).toLowerCase(), startfrom: num(spec.startfrom) };
  return { type: "unknown" };
}

function findKeys(v: RespValue | undefined): FindKeys {
  const f = fields(v);
  const spec = fields(f.spec);
  if (f.type === "range")
    return { type: "range", lastkey: num(spec.lastkey), keystep: num(spec.keystep), limit: num(spec.limit) };
  if (f.type === "keynum")
    return {
      type: "keynum",
      keynumidx: num(spec.keynumidx),
      firstkey: num(spec.firstkey),
      keystep: num(spec.keystep),
    };
  return { type: "unknown" };
}

function keySpec(v: RespValue): KeySpec {
  const f = fields(v);
  const flags = list(f.flags).map((x) => str(x).toUpperCase());
  return {
    notKey: flags.includes("NOT_KEY"),
    incomplete: flags.includes("INCOMPLETE"),
    begin: beginSearch(f.begin_search),
    find: findKeys(f.find_keys),
  };
}

function commandInfo(v: RespValue): CommandInfo | undefined {
  const e = list(v);
  const name = str(e[0]).toLowerCase();
  if (name === "") return undefined;
  const subs = new Map<string, CommandInfo>();
  for (const s of list(e[9])) {
    const info = commandInfo(s);
    if (info) subs.set(info.name, info);
  }
  return {
    name,
    arity: num(e[1]),
    movableKeys: list(e[2]).some((f) => str(f).toLowerCase() === "movablekeys"),
    first: num(e[3]),
    last: num(e[4]),
    step: num(e[5]),
    categories: list(e[6]).map((c) => str(c).replace(/^@/, "").toLowerCase()),
    specs: e.length > 8 ? list(e[8]).map(keySpec) : undefined,
    subcommands: subs,
  };
}

/** The table of the server's reply to `COMMAND` (RESP2 or RESP3), or an error naming what is wrong. */
export function commandTable(reply: RespValue): CommandTable {
  if (!Array.isArray(reply) || reply.length === 0) throw new Error("COMMAND did not return a command table");
  const out = new Map<string, CommandInfo>();
  for (const v of reply) {
    const info = commandInfo(v);
    if (info) out.set(info.name, info);
  }
  return out;
}

/** An argument in lower case, as keywords and counts are read ("" for one too long to be either). */
type Word = (i: number) => string;

/** Positions of the keys one spec finds, or null when it cannot tell (Redis' invalid_spec). */
function specPositions(spec: KeySpec, argc: number, word: Word): number[] | null {
  let first = 0;
  const b = spec.begin;
  if (b.type === "index") first = b.index;
  else if (b.type === "keyword") {
    const start = b.startfrom > 0 ? b.startfrom : argc + b.startfrom;
    const end = b.startfrom > 0 ? argc - 1 : 1;
    for (let i = start; i !== end; i = start <= end ? i + 1 : i - 1) {
      if (i >= argc || i < 1) break;
      if (word(i) === b.keyword) {
        first = i + 1;
        break;
      }
    }
    if (first === 0) return [];
  } else return null;
  let last: number;
  let step: number;
  const f = spec.find;
  if (f.type === "range") {
    step = f.keystep;
    if (f.lastkey >= 0) last = first + f.lastkey;
    else if (!f.limit) last = argc + f.lastkey;
    else last = first + (Math.floor((argc - first) / f.limit) + f.lastkey);
  } else if (f.type === "keynum") {
    step = f.keystep;
    const at = first + f.keynumidx;
    const text = at < argc ? word(at) : "";
    const n = Number(text);
    if (!/^\d+$/.test(text) || !Number.isSafeInteger(n)) return null;
    first += f.firstkey;
    last = first + n - 1;
  } else return null;
  if (step < 1) return null;
  if (last < first) return [];
  if (last >= argc || first >= argc) return null;
  const out: number[] = [];
  for (let i = first; i <= last; i += step) out.push(i);
  return spec.incomplete ? null : out;
}

/** Key positions by the server's key specs (Redis 7) or its first/last/step (before), or null. */
function keyPositions(info: CommandInfo, argc: number, word: Word): number[] | null {
  if (info.specs === undefined) {
    if (info.movableKeys) return null;
    if (info.first <= 0) return [];
    const last = info.last < 0 ? argc + info.last : info.last;
    const out: number[] = [];
    for (let i = info.first; i <= last && i < argc; i += Math.max(1, info.step)) out.push(i);
    return out;
  }
  const out = new Set<number>();
  for (const spec of info.specs) {
    if (spec.notKey) continue;
    const found = specPositions(spec, argc, word);
    if (found === null) return null;
    for (const i of found) out.add(i);
  }
  return [...out].sort((a, b) => a - b);
}

/** Longer than any command name, keyword or count: never read as one. */
const WORD_MAX = 64;

/** The arity check Redis makes before anything else: a command failing it is never run. */
function arityFails(info: CommandInfo, argc: number): boolean {
  return info.arity > 0 ? argc !== info.arity : argc < -info.arity;
}

/**
 * What one command is, by the server's own table: its primary ACL category, its name, and the
 * keys it touches. Keys that are not UTF-8 (policy could not tell them apart), an unknown
 * command or subcommand, and key specs the server itself would not trust (INCOMPLETE, unknown
 * or invalid) cannot be judged.
 */
export function classifyRedis(table: CommandTable, raw: readonly Buffer[]): RedisClassification {
  // Only what is read is decoded: a value of many megabytes is never made a string.
  const word: Word = (i) => {
    const a = raw[i];
    return a === undefined || a.length > WORD_MAX ? "" : a.toString("latin1").toLowerCase();
  };
  const top = table.get(word(0));
  if (!top) return { ok: false, error: "unknown command" };
  let info = top;
  if (top.subcommands.size > 0 && raw.length >= 2) {
    const sub = top.subcommands.get(`${top.name}|${word(1)}`);
    if (!sub) return { ok: false, error: "unknown subcommand" };
    info = sub;
  }
  const kind = primaryKind(info.categories);
  if (arityFails(info, raw.length)) return { ok: true, kind, command: info.name, keys: [] };
  const positions = keyPositions(info, raw.length, word);
  if (positions === null) return { ok: false, error: "keys cannot be told" };
  const keys: string[] = [];
  for (const i of positions) {
    const key = raw[i] as Buffer;
    const text = key.toString("utf8");
    if (!Buffer.from(text, "utf8").equals(key)) return { ok: false, error: "a key that is not UTF-8" };
    keys.push(text);
  }
  return { ok: true, kind, command: info.name, keys };
}

/**
 * The command tables of the backends (`host:port`), each fetched by a session's first `COMMAND`
 * and kept `ttlMs`, so a module loaded or a server upgraded is seen within it.
 */
export class CommandTables {
  private readonly tables = new Map<string, { readonly table: CommandTable; readonly at: number }>();

  constructor(
    private readonly ttlMs = 600_000,
    private readonly now: () => number = Date.now,
  ) {}

  get(backend: string): CommandTable | undefined {
    const t = this.tables.get(backend);
    if (!t || this.now() - t.at > this.ttlMs) return undefined;
    return t.table;
  }

  set(backend: string, table: CommandTable): void {
    this.tables.set(backend, { table, at: this.now() });
  }
}
