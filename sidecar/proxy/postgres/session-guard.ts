import type { LeaseRecord } from "../../leases/index.js";
import type { StoredRegistration } from "../../resources/types.js";
import { StatementPolicy, type StatementPolicyPort, type UnparseablePolicy } from "../statement-policy.js";
import type { TappedMessage } from "./frame-tap.js";
import {
  type GuardRefusal,
  refusalSql,
  refusePasswordChanges,
  StatementGuard,
  type StatementJudge,
} from "./statement-guard.js";
import { classifyPostgres } from "./statement-kind.js";
import { pgStatementShape } from "./statement-shape.js";

/** What a listener gives its sessions for `proxy.statementPolicy`: the engine (absent: refuse all) and `proxy.unparseable`. */
export interface SessionStatementPolicy {
  readonly policy: StatementPolicyPort | undefined;
  readonly unparseable: UnparseablePolicy;
}

/** Statement policy asked for, but no lease or engine to decide with: every statement is refused. */
const POLICY_UNAVAILABLE: GuardRefusal = {
  sql: refusalSql(
    "leasehold: statement refused by policy (no policy to decide with)",
    "ask the resource's operator",
  ),
  scope: "statement",
  reason: "42501 statement policy unavailable",
};

/** A fast-path FunctionCall under statement policy: no SQL to decide on, so refused. */
const FUNCTION_CALL_REFUSAL: GuardRefusal = {
  sql: refusalSql(
    "leasehold: statement refused by policy (a fast-path function call)",
    "call the function in a SQL statement: SELECT f(...)",
  ),
  scope: "statement",
  reason: "42501 a fast-path function call (FunctionCall message) under statement policy",
};

/**
 * How the server reads the session's SQL, as its ParameterStatus messages report it. The
 * grammar reads UTF-8 with standard_conforming_strings on; where the session differs, text
 * could mean one thing to the grammar and another to the server.
 */
export class SessionSyntax {
  private utf8 = true;
  private conforming = true;

  /** A ParameterStatus body (`name\0value\0`) from the server. */
  observe(body: Buffer): void {
    const [name, value = ""] = body.toString("utf8").split("\0");
    if (name === "client_encoding") this.utf8 = /^(utf-?8|unicode)$/i.test(value);
    else if (name === "standard_conforming_strings") this.conforming = value.toLowerCase() === "on";
  }

  /** A refusal when the server would not read `text` as the grammar does. */
  refusal(text: string): GuardRefusal | undefined {
    if (!this.utf8) return UNREADABLE;
    // Without a backslash, strings read the same either way.
    if (!this.conforming && text.includes("\\")) return UNREADABLE;
    return undefined;
  }
}

/** Statement policy in a session the grammar cannot read as the server does. */
const UNREADABLE: GuardRefusal = {
  sql: refusalSql(
    "leasehold: statement refused by policy (the session's client_encoding or standard_conforming_strings)",
    "statement policy needs client_encoding UTF8 and standard_conforming_strings on",
  ),
  scope: "statement",
  reason:
    "42501 the session reads SQL otherwise than the grammar (client_encoding, standard_conforming_strings)",
};

export interface SessionGuardOptions {
  readonly reg: StoredRegistration | undefined;
  /** The session's lease (absent: statement policy refuses everything). */
  readonly lease: LeaseRecord | undefined;
  readonly resource: string;
  readonly statementPolicy: SessionStatementPolicy | undefined;
  /** The session's reading of SQL, kept up to date by the session from the server's messages. */
  readonly syntax: SessionSyntax;
  readonly onRefused: (text: string, refusal: GuardRefusal) => void;
  readonly onStatement: ((m: TappedMessage, text: string | undefined) => void) | undefined;
  readonly onUnjudgeable: (why: string) => void;
}

/**
 * The guard on a PostgreSQL session's statements, when the registration needs one: where the
 * password is sealed (`reveal: false`) no statement that would change it reaches the server;
 * under `proxy.statementPolicy` each statement is decided by Cedar and fast-path function calls
 * are refused. Neither: undefined (messages are not held).
 */
export function sessionGuard(o: SessionGuardOptions): StatementGuard | undefined {
  const judges: StatementJudge[] = [];
  if (o.reg?.reveal === false) judges.push(refusePasswordChanges);
  const policyOn = o.reg?.proxy?.statementPolicy === true;
  if (policyOn) judges.push(policyJudge(o));
  if (judges.length === 0) return undefined;
  return new StatementGuard({
    judges,
    onRefused: o.onRefused,
    onStatement: o.onStatement,
    onUnjudgeable: o.onUnjudgeable,
    functionCalls: policyOn ? FUNCTION_CALL_REFUSAL : undefined,
  });
}

/** Cedar's verdict on each statement, as a refusal in its place when it is denied. */
function policyJudge(o: SessionGuardOptions): StatementJudge {
  const sp = o.statementPolicy;
  if (!o.lease || !sp || !o.reg) return () => POLICY_UNAVAILABLE;
  const policy = new StatementPolicy({
    policy: sp.policy,
    lease: o.lease,
    resource: o.resource,
    groups: o.reg.groups,
    unparseable: sp.unparseable,
    classify: classifyPostgres,
    shape: pgStatementShape,
  });
  return (text) => {
    const unreadable = o.syntax.refusal(text);
    if (unreadable) return unreadable;
    const v = policy.judge(text);
    return v.allowed
      ? undefined
      : {
          sql: refusalSql(v.message, v.hint),
          scope: "statement",
          reason: v.reason,
          policies: v.policies,
          params: v.params,
        };
  };
}
