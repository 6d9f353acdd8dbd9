import type { CedarValueJson, Context } from "@cedar-policy/cedar-wasm/nodejs";
import { fitsCedarType } from "./cedar-value.js";
import type { PolicyAction } from "./types.js";

/** What the request path knows when it asks policy; each context field is computed from these. */
export interface PolicyFacts {
  readonly taskId: string;
  /** The intent's action (for a tool call: the call's action). */
  readonly intent: string;
  readonly tool?: string | undefined;
  /** Seconds. */
  readonly ttl: number;
  /** ms since the epoch, the sidecar's clock. */
  readonly now: number;
  readonly activeLeases: number;
  readonly approved: boolean;
  readonly dpop: boolean;
  /** Delegators, nearest first. */
  readonly chain?: readonly string[] | undefined;
  /** The party the agent acts for; the last of `chain` when not given. */
  readonly onBehalfOf?: string | undefined;
  /** The local process that made the request (issue 22); absent or unattested: the neutral values. */
  readonly caller?: CallerFacts | undefined;
  /** The statement a protocol listener decides (`Action::"statement"` only). */
  readonly statement?: StatementFacts | undefined;
}

/** What policy sees of one statement sent through a protocol listener. */
export interface StatementFacts {
  /** SQL: `select`, `insert`, … `other`; Redis: the command's primary ACL category (`read`, `write`, …). */
  readonly kind: string;
  /** The tables it names, schema-qualified where the statement qualifies them. */
  readonly tables: readonly string[];
  /** The message held more than one statement. */
  readonly multiple: boolean;
  /** A Redis command's name, lower case, `container|subcommand` for a subcommand (`config|set`). */
  readonly command?: string | undefined;
  /** The keys a Redis command touches, by the server's own key specs. */
  readonly keys?: readonly string[] | undefined;
}

/** What policy sees of an attested local caller. */
export interface CallerFacts {
  readonly attested: boolean;
  readonly uid?: number | undefined;
  readonly exe_sha256?: string | undefined;
  readonly cgroup?: string | undefined;
}

/** The caller's fields when it could not be attested: no uid (-1), no digest, no cgroup. */
export const UNATTESTED_CALLER = { attested: false, uid: -1, exe_sha256: "", cgroup: "" } as const;

/** Cedar type of a context field (a `Record` field's members are of the scalar types). */
export type ScalarFieldType = "String" | "Long" | "Bool" | "Set<String>";
export type ContextFieldType = ScalarFieldType | "Record";

/** The TypeScript type a Cedar type is carried in (a Long is a safe integer). */
interface ValueOf {
  String: string;
  Long: number;
  Bool: boolean;
  "Set<String>": readonly string[];
}

interface FieldBase<T extends ScalarFieldType> {
  readonly type: T;
  /** One line for policy authors: what the value means and where it comes from (docs/policy.md). */
  readonly doc: string;
}

interface RequiredField<T extends ScalarFieldType> extends FieldBase<T> {
  readonly optional?: false;
  /**
   * The actions whose context has the field (e.g. only `statement`); absent: every action. Such a
   * field is required in those actions' context type and absent from every other's, so strict
   * validation refuses a policy that reads it for another action.
   */
  readonly actions?: readonly PolicyAction[];
  readonly from: (facts: PolicyFacts) => ValueOf[T];
  /**
   * The value when no request supplies one (`policy check` without it, operator actions):
   * a constant, or computed from the check's clock.
   */
  readonly offline: ValueOf[T] | ((now: number) => ValueOf[T]);
}

interface OptionalField<T extends ScalarFieldType> extends FieldBase<T> {
  readonly optional: true;
  /**
   * The value follows from the verified caller alone (its delegation), so it is known before any
   * request is made: the agent's catalog evaluates policy with it rather than leaving it unknown.
   */
  readonly fromCaller?: true;
  /** `undefined` leaves the field out of the context; a policy tests `context has <name>`. */
  readonly from: (facts: PolicyFacts) => ValueOf[T] | undefined;
}

/** One member of a `Record` field: its Cedar type and its doc line. */
export interface RecordMember {
  readonly type: ScalarFieldType;
  readonly doc: string;
}

type RecordValue = Readonly<Record<string, ValueOf[ScalarFieldType]>>;

/** A field that is a Cedar record of scalar members (`context.caller.uid`); always present. */
interface RecordField {
  readonly type: "Record";
  readonly optional?: false;
  readonly doc: string;
  readonly members: Readonly<Record<string, RecordMember>>;
  readonly from: (facts: PolicyFacts) => RecordValue;
  readonly offline: RecordValue;
}

/** One context field: its Cedar type, how the request path computes it, its offline default, its doc. */
export type ContextField =
  | {
      [T in ScalarFieldType]: RequiredField<T> | OptionalField<T>;
    }[ScalarFieldType]
  | RecordField;

/** The field's type as the Cedar schema writes it (`Long`, or `{ uid: Long, ... }` for a record). */
export function cedarTypeOf(field: ContextField): string {
  if (field.type !== "Record") return field.type;
  const members = Object.entries(field.members).map(([name, m]) => `${name}: ${m.type}`);
  return `{ ${members.join(", ")} }`;
}

const utcHour = (ms: number): number => new Date(ms).getUTCHours();

/**
 * Every field of the Cedar `context`, in schema order. The schema's `RequestContext`, the
 * {@link PolicyContext} type, the context builder, validation, offline defaults and the
 * reference in docs/policy.md are all derived from this table: a new field is one entry here.
 */
export const POLICY_CONTEXT_FIELDS = {
  task_id: {
    type: "String",
    doc: "The task the agent declared at checkout (`task.id`); later requests on the lease carry the lease's task.",
    from: (f) => f.taskId,
    offline: "",
  },
  intent: {
    type: "String",
    doc: "What the agent means to do: the checkout's `intent.action` (e.g. `read`), kept for reveal and renew; the call's `action` for a tool call.",
    from: (f) => f.intent,
    offline: "",
  },
  tool: {
    type: "String",
    doc: 'The tool named by the intent (`intent.tool`), or the call\'s `tool` for a tool call; `""` when none is named.',
    from: (f) => f.tool ?? "",
    offline: "",
  },
  ttl: {
    type: "Long",
    doc: "Seconds: the TTL a checkout or renew asks for (else the resource's `lease.defaultTtl`), capped by its `lease.maxTtl`; for reveal and tool calls, what is left of the lease.",
    from: (f) => f.ttl,
    offline: 0,
  },
  hour_utc: {
    type: "Long",
    doc: "The hour (0–23, UTC) on the sidecar's clock when the request is decided.",
    from: (f) => utcHour(f.now),
    offline: utcHour,
  },
  active_leases: {
    type: "Long",
    doc: "How many leases the agent holds when the request is decided (not counting the one a checkout asks for).",
    from: (f) => f.activeLeases,
    offline: 0,
  },
  approved: {
    type: "Bool",
    doc: "A human approved this request. A deny that `approved: true` would turn into an allow becomes a pending approval (202).",
    from: (f) => f.approved,
    offline: false,
  },
  dpop: {
    type: "Bool",
    doc: "The request proves possession of the agent's key (DPoP, RFC 9449): a checkout with a valid proof, or a DPoP-bound lease token.",
    from: (f) => f.dpop,
    offline: false,
  },
  delegated_by: {
    type: "String",
    optional: true,
    fromCaller: true,
    doc: "The nearest delegator when the agent acts for another (a vouched RFC 8693 delegation: the most recent prior actor, or the party acted for when there is one hop); absent otherwise.",
    from: (f) => f.chain?.[0],
  },
  on_behalf_of: {
    type: "String",
    optional: true,
    fromCaller: true,
    doc: "The party the agent acts for (RFC 8693 `sub` of an issuer's delegated token or of leasehold's delegation token); the principal stays the acting agent. Absent when the agent acts for itself.",
    from: (f) => f.onBehalfOf ?? f.chain?.at(-1),
  },
  caller: {
    type: "Record",
    doc: "The local process that made the request, as the kernel reports it (issue 22; at checkout the caller the lease is bound to). When it cannot be attested (no connection, an unreadable `/proc` entry, a non-Linux host, another network namespace) `attested` is false and the others are neutral: `uid` -1, `exe_sha256` and `cgroup` empty.",
    members: {
      attested: { type: "Bool", doc: "The kernel told who the caller is." },
      uid: { type: "Long", doc: "The caller's user id (-1 when not attested)." },
      exe_sha256: {
        type: "String",
        doc: 'Hex SHA-256 of the caller\'s executable (`""` when not attested).',
      },
      cgroup: {
        type: "String",
        doc: 'The caller\'s cgroup v2 path, e.g. `/system.slice/agent.service` (`""` when not attested).',
      },
    },
    from: (f) =>
      f.caller?.attested
        ? {
            attested: true,
            uid: f.caller.uid ?? -1,
            exe_sha256: f.caller.exe_sha256 ?? "",
            cgroup: f.caller.cgroup ?? "",
          }
        : UNATTESTED_CALLER,
    offline: UNATTESTED_CALLER,
  },
  statement_kind: {
    type: "String",
    actions: ["statement"],
    doc: "What the statement does. PostgreSQL, by its own grammar: `select`, `insert`, `update`, `delete`, `ddl`, `dcl` (roles, grants), `copy`, `call`, `do`, `transaction`, `set`, `other`; a data-modifying `WITH` is its strongest part (`delete` over `update` over `insert` over `select`); `EXPLAIN`, `PREPARE` and `DECLARE` take their statement's kind; `SELECT … INTO` is `ddl`. Redis: the command's primary ACL category as the server reports it (`COMMAND`), the first of `admin`, `dangerous`, `scripting`, `write`, `read`, `pubsub`, `transaction`, `connection`, `keyspace` it has, else `other` (`GET` is `read`, `SET` `write`, `FLUSHALL` and `KEYS` `dangerous`, `CONFIG SET` `admin`, `EVAL` `scripting`).",
    from: (f) => f.statement?.kind ?? "",
    offline: "",
  },
  tables: {
    type: "Set<String>",
    actions: ["statement"],
    doc: 'The tables (and views, sequences) the statement names, as written: `orders`, or `sales.orders` when schema-qualified; a `WITH` query\'s own names are listed too. Test with `context.tables.isEmpty()` or `["orders", "customers"].containsAll(context.tables)`.',
    from: (f) => f.statement?.tables ?? [],
    offline: [],
  },
  multiple: {
    type: "Bool",
    actions: ["statement"],
    doc: "The message held several statements (`SELECT 1; DROP TABLE t`); each is decided on its own, with this set, and the message is refused if any one is.",
    from: (f) => f.statement?.multiple ?? false,
    offline: false,
  },
  command: {
    type: "String",
    actions: ["statement"],
    doc: "A Redis command's name in lower case (`get`); a subcommand is named as `COMMAND` and Redis ACLs name it, the container's name, a vertical bar, its own (CONFIG SET: `config`, bar, `set`); `\"\"` for SQL statements.",
    from: (f) => f.statement?.command ?? "",
    offline: "",
  },
  keys: {
    type: "Set<String>",
    actions: ["statement"],
    doc: 'The keys a Redis command touches, found by the server\'s own key specs (`COMMAND`); empty for a command without keys and for SQL statements. Test with `["cache:a", "cache:b"].containsAll(context.keys)`; a key prefix is the ACL user\'s job (`~cache:*`), as Cedar cannot match a pattern over a set.',
    from: (f) => f.statement?.keys ?? [],
    offline: [],
  },
} as const satisfies Readonly<Record<string, ContextField>>;

type Fields = typeof POLICY_CONTEXT_FIELDS;
type FieldName = keyof Fields;
/** Optional in the TypeScript type: optional fields, and those only some actions' context has. */
type OptionalName = {
  [K in FieldName]: Fields[K] extends { optional: true } | { actions: readonly string[] } ? K : never;
}[FieldName];
type Flat<T> = { [K in keyof T]: T[K] };

/** The value type of a field: a scalar, or a record of its members' scalars. */
type FieldValue<F> = F extends { type: "Record"; members: infer M }
  ? { -readonly [N in keyof M]: M[N] extends { type: infer T extends ScalarFieldType } ? ValueOf[T] : never }
  : F extends { type: infer T extends ScalarFieldType }
    ? ValueOf[T]
    : never;

/** The Cedar `context` of every request, one property per {@link POLICY_CONTEXT_FIELDS} entry. */
export type PolicyContext = Flat<
  { -readonly [K in Exclude<FieldName, OptionalName>]: FieldValue<Fields[K]> } & {
    -readonly [K in OptionalName]?: FieldValue<Fields[K]>;
  }
>;

// Computed once: buildPolicyContext runs on every decision.
const FIELDS: ReadonlyArray<readonly [string, ContextField]> = Object.entries(POLICY_CONTEXT_FIELDS);

/** Whether the context of `action` has the field (every action's, unless the field names its actions). */
export function fieldApplies(field: ContextField, action: string | undefined): boolean {
  const only = "actions" in field ? field.actions : undefined;
  return only === undefined || (action !== undefined && (only as readonly string[]).includes(action));
}

/**
 * The context of a request from what the request path knows; optional fields that do not apply
 * are absent, and so are fields of other actions than `action` (none without it).
 */
export function buildPolicyContext(facts: PolicyFacts, action?: PolicyAction): PolicyContext {
  const out: Record<string, ValueOf[ScalarFieldType] | RecordValue> = {};
  for (const [name, field] of FIELDS) {
    if (!fieldApplies(field, action)) continue;
    const value = field.from(facts);
    if (value !== undefined) out[name] = value;
  }
  return out as PolicyContext;
}

/** Whether `name` is a context field. */
export function isContextField(name: string): name is FieldName {
  return Object.hasOwn(POLICY_CONTEXT_FIELDS, name);
}

const EXPECTED: Readonly<Record<ContextFieldType, string>> = {
  String: "a string",
  Long: "an integer",
  Bool: "a boolean",
  "Set<String>": "an array of strings",
  Record: "an object",
};

/**
 * The Cedar context of `action`, or a message naming the first bad field (`context.ttl must be
 * an integer`). Only the fields declared for the action are passed on, each of its declared
 * type, so the result passes strict schema validation; an optional field may be absent
 * (`undefined`). Without `action`, the fields every action has.
 */
export function toCedarContext(ctx: PolicyContext, action?: string): Context | string {
  if (typeof ctx !== "object" || ctx === null) return "context is required";
  const values = ctx as Readonly<Record<string, unknown>>;
  const out: Context = {};
  for (const [name, field] of FIELDS) {
    if (!fieldApplies(field, action)) continue;
    const value = values[name];
    if (value === undefined && field.optional) continue;
    if (field.type === "Record") {
      if (typeof value !== "object" || value === null || Array.isArray(value))
        return `context.${name} must be ${EXPECTED.Record}`;
      const record: Record<string, CedarValueJson> = {};
      for (const [member, m] of Object.entries(field.members)) {
        const v = (value as Record<string, unknown>)[member];
        if (!fitsCedarType(v, m.type)) return `context.${name}.${member} must be ${EXPECTED[m.type]}`;
        record[member] = v as CedarValueJson;
      }
      out[name] = record;
      continue;
    }
    if (!fitsCedarType(value, field.type)) return `context.${name} must be ${EXPECTED[field.type]}`;
    out[name] = (Array.isArray(value) ? [...value] : value) as CedarValueJson;
  }
  return out;
}

/** The actions with fields of their own (`statement`), each with its own context type. */
export const ACTIONS_WITH_OWN_CONTEXT: readonly PolicyAction[] = [
  ...new Set(FIELDS.flatMap(([, f]) => ("actions" in f && f.actions ? [...f.actions] : []))),
];

/** The Cedar schema's name of an action's context type: `RequestContext`, or e.g. `StatementContext`. */
export function contextTypeName(action?: string): string {
  if (action === undefined || !(ACTIONS_WITH_OWN_CONTEXT as readonly string[]).includes(action))
    return "RequestContext";
  const pascal = action.replace(/(^|_)([a-z])/g, (_, _u: string, c: string) => c.toUpperCase());
  return `${pascal}Context`;
}

/** The Cedar schema's context record types: `RequestContext`, then one per action with fields of its own. */
export function requestContextSchema(): string {
  const type = (action: string | undefined) => {
    const lines = FIELDS.filter(([, f]) => fieldApplies(f, action)).map(
      ([name, f]) => `  ${name}${f.optional ? "?" : ""}: ${cedarTypeOf(f)},`,
    );
    return `type ${contextTypeName(action)} = {\n${lines.join("\n")}\n};`;
  };
  return [undefined, ...ACTIONS_WITH_OWN_CONTEXT].map(type).join("\n\n");
}

/** Cedar's partial-evaluation placeholder for a value not known yet (`unknown("context.ttl")`). */
function unknownValue(name: string): CedarValueJson {
  return { __extn: { fn: "unknown", arg: `context.${name}` } };
}

/** What is known of a request before it is made: the verified caller's delegation (none: it acts for itself). */
export type KnownCallerFacts = Pick<PolicyFacts, "chain" | "onBehalfOf">;

/**
 * The context for partial evaluation before any request exists (`GET /v1/catalog`): the fields
 * that follow from the verified caller alone (`fromCaller`: its delegation) take their values
 * (an optional one absent when it does not apply, as a real request would have it); every field
 * the request decides (task, intent, tool, TTL, approval, DPoP, hour, lease count, local caller)
 * is unknown. One context: a definite deny in it is a deny whatever the request carries.
 */
export function partialContext(known: KnownCallerFacts): Context {
  const facts = { chain: known.chain, onBehalfOf: known.onBehalfOf } as PolicyFacts;
  const out: Context = {};
  for (const [name, field] of FIELDS) {
    if (!fieldApplies(field, undefined)) continue;
    if (!("fromCaller" in field && field.fromCaller)) {
      out[name] = unknownValue(name);
      continue;
    }
    const value = field.from(facts);
    if (value !== undefined) out[name] = value as CedarValueJson;
  }
  return out;
}
