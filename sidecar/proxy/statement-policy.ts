import { hash } from "node:crypto";
import type { LeaseRecord } from "../leases/index.js";
import { buildPolicyContext, type PolicyDecision, type PolicyRequest } from "../policy/index.js";

/** What a Redis command is, by its primary ACL category (redis/command-table.ts). */
export type RedisCommandKind =
  | "admin"
  | "dangerous"
  | "scripting"
  | "write"
  | "read"
  | "pubsub"
  | "transaction"
  | "connection"
  | "keyspace"
  | "other";

/** What a statement does, as `context.statement_kind` names it for `Action::"statement"`. */
export type StatementKind = SqlStatementKind | RedisCommandKind;

/** What a SQL statement does, by the protocol's grammar. */
export type SqlStatementKind =
  | "select"
  | "insert"
  | "update"
  | "delete"
  | "ddl"
  | "dcl"
  | "copy"
  | "call"
  | "do"
  | "transaction"
  | "set"
  | "other";

/** One statement of a message, as policy sees it. */
export interface ClassifiedStatement {
  readonly kind: StatementKind;
  /** Tables, views and sequences it names: `relname`, or `schema.relname` as written. */
  readonly tables: readonly string[];
  /** A Redis command's name (`get`, `config|set`); absent for SQL. */
  readonly command?: string | undefined;
  /** The keys a Redis command touches; absent for SQL. */
  readonly keys?: readonly string[] | undefined;
}

/** A message's statements (none for an empty query), or why the protocol's grammar refuses it. */
export type Classification =
  | {
      readonly ok: true;
      readonly statements: readonly ClassifiedStatement[];
      /** The highest parameter placeholder (`$3`: 3), 0 without any. */
      readonly params: number;
      /**
       * It would change how the server reads later SQL (PostgreSQL: `client_encoding` other than
       * UTF-8, `standard_conforming_strings` off), so the grammar would no longer read it the
       * same: always refused, whatever the policy.
       */
      readonly changesSyntax: boolean;
      /**
       * True when any text of the same shape (`StatementPolicyOptions.shape`: the same text but
       * for its literals' values) is classified the same: nothing here came from a literal's
       * value. Absent: the verdict is not kept for the shape.
       */
      readonly sameForAnyLiterals?: boolean | undefined;
    }
  | {
      readonly ok: false;
      readonly error: string;
      /**
       * The server would read the text otherwise than the grammar (MySQL: an executable comment
       * `/*! … *\/`, `--` without a space): refused whatever `proxy.unparseable` says. The
       * reason names the construct, never the text.
       */
      readonly misread?: string | undefined;
    };

/** What a statement decision needs of the policy engine (`PolicyEngine` satisfies it). */
export interface StatementPolicyPort {
  decide(req: PolicyRequest): PolicyDecision;
  /** Changes (a new array) when the policy file is reloaded: cached decisions are dropped then. */
  readonly policyIds: readonly string[];
}

/** What to do with a statement the grammar cannot parse (`proxy.unparseable`). */
export type UnparseablePolicy = "deny" | "allow";

/** A statement let through, or refused with what the client and the audit record are told. */
export type StatementVerdict =
  | { readonly allowed: true }
  | {
      readonly allowed: false;
      /** For the client: `leasehold: statement refused by policy (ddl on t)`. */
      readonly message: string;
      readonly hint: string;
      /** For the audit record. */
      readonly reason: string;
      readonly policies: readonly string[];
      /** Parameters the statement takes (its highest placeholder), for the refusal in its place. */
      readonly params: number;
    };

export interface StatementPolicyOptions {
  /** Absent: no policy engine, every statement is refused (fail closed). */
  readonly policy: StatementPolicyPort | undefined;
  readonly lease: LeaseRecord;
  readonly resource: string;
  /** The resource's policy groups (Cedar ResourceGroup). */
  readonly groups: readonly string[];
  readonly unparseable: UnparseablePolicy;
  /** The protocol's grammar. */
  readonly classify: (sql: string) => Classification;
  /**
   * What the protocol's settings that change how the server reads SQL are (for the refusal of a
   * statement that changes one). @default PostgreSQL's client_encoding and standard_conforming_strings
   */
  readonly syntaxSettings?: { readonly names: string; readonly hint: string } | undefined;
  /**
   * The text with its literals masked, when the protocol's lexer is sure how the server reads
   * it (else undefined): texts of one shape differ only in their literals' values. A verdict on
   * a classification that is `sameForAnyLiterals` is kept per shape, so a new literal in a known
   * statement is neither parsed nor decided again. Absent: verdicts are kept per text only.
   */
  readonly shape?: ((sql: string) => string | undefined) | undefined;
  /** Cached decisions per session before the cache starts over. @default 4096 */
  readonly maxCached?: number | undefined;
  readonly now?: (() => number) | undefined;
  /** What the audit reason starts with: the protocol's code for a refusal. @default "42501" */
  readonly refusalCode?: string | undefined;
}

const ALLOWED: StatementVerdict = { allowed: true };
const HOUR_MS = 3_600_000;
/** The characters a session's shape keys may hold before its caches start over (about 2 MiB). */
const MAX_SHAPE_CHARS = 1 << 20;

/** A refusal of one statement, before the message's parameter count is known. */
type Decided = { readonly allowed: true } | Omit<Extract<StatementVerdict, { allowed: false }>, "params">;

function described(s: ClassifiedStatement): string {
  // A command's keys are data: never in a message or a record.
  if (s.command !== undefined) return `${s.kind} command ${s.command}`;
  return `${s.kind} on ${s.tables.length > 0 ? s.tables.join(", ") : "no table"}`;
}

/**
 * Statement-level policy for one proxied session: each message's statements are classified by
 * the protocol's grammar and decided by Cedar as `Action::"statement"` on the lease's resource,
 * the principal the lease's agent, the context the lease's (intent, task, tool, approval,
 * caller) with `statement_kind`, `tables` and `multiple`. A message of several statements is
 * refused if any one is. Verdicts are cached for the session per statement shape (the text with
 * its literals masked, where the protocol gives one and the classification does not depend on
 * them), else per statement text (by SHA-256),
 * and Cedar's decisions per (kind, tables, multiple), since nothing else in the context changes
 * within a session but the clock: both caches start over when the policy file is reloaded and
 * when the UTC hour changes (`context.hour_utc`). Synchronous: the grammar and Cedar both are.
 */
export class StatementPolicy {
  private readonly cache = new Map<string, StatementVerdict>();
  /** Verdicts per shape, and the characters their keys hold (bounded by `max` too). */
  private readonly shapes = new Map<string, StatementVerdict>();
  private shapeChars = 0;
  private readonly decisions = new Map<string, Decided>();
  private cachedFor: readonly string[] | undefined;
  private cachedHour = -1;
  private readonly max: number;

  constructor(private readonly o: StatementPolicyOptions) {
    this.max = o.maxCached ?? 4096;
  }

  /** The verdict on one message's SQL text. */
  judge(sql: string): StatementVerdict {
    this.refresh();
    const shape = this.o.shape?.(sql);
    if (shape !== undefined) {
      const known = this.shapes.get(shape);
      if (known) return known;
    }
    const key = hash("sha256", sql, "base64");
    const hit = this.cache.get(key);
    if (hit) return hit;
    const parsed = this.o.classify(sql);
    const verdict = this.decide(parsed);
    if (shape !== undefined && parsed.ok && parsed.sameForAnyLiterals === true) {
      this.shapes.set(shape, verdict);
      this.shapeChars += shape.length;
    } else {
      this.cache.set(key, verdict);
    }
    return verdict;
  }

  /** The verdict on one statement the protocol classified itself (a Redis command); no parameters. */
  judgeClassified(statement: ClassifiedStatement): StatementVerdict {
    this.refresh();
    const decided = this.decided(statement, false);
    return decided.allowed ? ALLOWED : { ...decided, params: 0 };
  }

  /** Starts the caches over when the policy was reloaded, the UTC hour changed, or they are full. */
  private refresh(): void {
    const ids = this.o.policy?.policyIds;
    const hour = Math.floor((this.o.now?.() ?? Date.now()) / HOUR_MS);
    if (
      ids !== this.cachedFor ||
      hour !== this.cachedHour ||
      this.cache.size >= this.max ||
      this.shapes.size >= this.max ||
      this.shapeChars >= MAX_SHAPE_CHARS
    ) {
      this.cache.clear();
      this.shapes.clear();
      this.shapeChars = 0;
      this.decisions.clear();
      this.cachedFor = ids;
      this.cachedHour = hour;
    }
  }

  /** Cedar's decision on one statement, cached by everything in its context that varies. */
  private decided(statement: ClassifiedStatement, multiple: boolean): Decided {
    // JSON: a Redis key may hold any byte, NUL too, so no separator could be trusted.
    const key = JSON.stringify([
      multiple,
      statement.kind,
      statement.tables,
      statement.command,
      statement.keys,
    ]);
    let decided = this.decisions.get(key);
    if (!decided) {
      decided = this.decideOne(statement, multiple);
      if (this.decisions.size >= this.max) this.decisions.clear();
      this.decisions.set(key, decided);
    }
    return decided;
  }

  private decide(parsed: Classification): StatementVerdict {
    if (!parsed.ok && parsed.misread !== undefined) {
      return {
        allowed: false,
        message: `leasehold: statement refused by policy (${parsed.misread})`,
        hint: `the listener refuses ${parsed.misread}`,
        reason: `42501 the server would read it otherwise than the grammar: ${parsed.misread}`,
        policies: [],
        params: 0,
      };
    }
    if (!parsed.ok) {
      if (this.o.unparseable === "allow") return ALLOWED;
      return {
        allowed: false,
        message: "leasehold: statement refused by policy (the grammar cannot parse it)",
        hint: "unparseable statements are denied (proxy.unparseable: deny)",
        // Not the grammar's message: it quotes the text near the error (a literal, perhaps a secret).
        reason: "42501 unparseable statement refused (proxy.unparseable: deny)",
        policies: [],
        params: 0,
      };
    }
    if (parsed.changesSyntax) {
      return {
        allowed: false,
        message: "leasehold: statement refused by policy (it changes how the server reads SQL)",
        hint:
          this.o.syntaxSettings?.hint ??
          "under statement policy client_encoding stays UTF8 and standard_conforming_strings on",
        reason: `42501 a statement changing ${this.o.syntaxSettings?.names ?? "client_encoding or standard_conforming_strings"}`,
        policies: [],
        params: parsed.params,
      };
    }
    const multiple = parsed.statements.length > 1;
    for (const statement of parsed.statements) {
      const decided = this.decided(statement, multiple);
      if (!decided.allowed) return { ...decided, params: parsed.params };
    }
    return ALLOWED;
  }

  private decideOne(statement: ClassifiedStatement, multiple: boolean): Decided {
    const { lease } = this.o;
    const what = described(statement);
    const code = this.o.refusalCode ?? "42501";
    const noun = statement.command === undefined ? "statement" : "command";
    const refused = (reason: string, policies: readonly string[], hint: string): Decided => ({
      allowed: false,
      message: `leasehold: ${noun} refused by policy (${what}${multiple ? ", in a message of several statements" : ""})`,
      hint,
      reason: `${code} ${what}${multiple ? " (multiple)" : ""}: ${reason}`,
      policies,
    });
    if (!this.o.policy) return refused("no policy engine", [], "ask the resource's operator");
    const now = this.o.now?.() ?? Date.now();
    const caller = lease.caller?.attested ? lease.caller : undefined;
    const d = this.o.policy.decide({
      principal: lease.agent,
      action: "statement",
      resource: this.o.resource,
      principalAttrs: { ...lease.attrs },
      resourceGroups: [...this.o.groups],
      context: buildPolicyContext(
        {
          taskId: lease.task.id,
          intent: lease.intent.action,
          tool: lease.intent.tool,
          ttl: Math.max(0, Math.floor((lease.expires_at - now) / 1000)),
          now,
          activeLeases: 0,
          approved: lease.approver !== undefined,
          dpop: false,
          chain: lease.agent_chain,
          caller: caller && {
            attested: true,
            uid: caller.uid,
            exe_sha256: caller.exe_sha256,
            cgroup: caller.cgroup,
          },
          statement: {
            kind: statement.kind,
            tables: statement.tables,
            multiple,
            command: statement.command,
            keys: statement.keys,
          },
        },
        "statement",
      ),
    });
    if (d.decision === "allow") return ALLOWED;
    if (d.decision === "approval_required") {
      return refused(
        `needs a human approval (${d.policies.join(", ")})`,
        d.policies,
        "the policy allows it on a lease a human approved: check out again with an approval",
      );
    }
    return refused(
      d.reasons.join("; ") || "denied",
      d.policies,
      "the resource's statement policy does not allow it for this lease's intent",
    );
  }
}
