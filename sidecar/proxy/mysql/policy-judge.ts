import type { LeaseRecord } from "../../leases/index.js";
import type { StoredRegistration } from "../../resources/types.js";
import {
  type Classification,
  StatementPolicy,
  type StatementPolicyPort,
  type StatementKind,
  type UnparseablePolicy,
} from "../statement-policy.js";
import type { CommandVerdict } from "./command-guard.js";
import { COM, ER } from "./packets.js";
import { type ReadResult, type SessionReading, textReader } from "./session-reading.js";
import { type MysqlDialect, mysqlClassifier } from "./statement-kind.js";
import { shapeReader } from "./statement-shape.js";

/** What a listener gives its sessions for `proxy.statementPolicy`. */
export interface MysqlStatementPolicy {
  /** Absent: every statement is refused. */
  readonly policy: StatementPolicyPort | undefined;
  readonly unparseable: UnparseablePolicy;
}

/** A refused command, for its `decision` record (never its text). */
export interface MysqlRefusal {
  readonly reason: string;
  readonly policies: readonly string[];
}

/**
 * What a refused command becomes: a COM_QUERY the server answers with ERR 1142 (SQLSTATE 42000)
 * where the command stood in the stream, so whatever the client pipelined stays in order and the
 * session goes on. The message is printable ASCII without quotes or backslashes, at most 128
 * characters (SIGNAL's MESSAGE_TEXT).
 */
export function refusalPayload(
  message: string,
  errno: number = ER.tableAccessDenied,
  sqlState = "42000",
): Buffer {
  const text = message.replace(/[^\x20-\x7e]|['\\]/g, "?").slice(0, 128);
  const sql = `SIGNAL SQLSTATE '${sqlState}' SET MYSQL_ERRNO = ${errno}, MESSAGE_TEXT = '${text}'`;
  return Buffer.concat([Buffer.from([COM.query]), Buffer.from(sql, "latin1")]);
}

/** Commands that pass as they are: no SQL, no data, nothing of another statement. */
const HARMLESS: ReadonlySet<number> = new Set([
  COM.quit,
  COM.ping,
  COM.statistics,
  COM.setOption,
  COM.resetConnection,
]);

/** Commands naming a prepared statement by id (0xffffffff: MariaDB's "the last one prepared"). */
const BY_ID: ReadonlySet<number> = new Set([
  COM.stmtExecute,
  COM.stmtSendLongData,
  COM.stmtClose,
  COM.stmtReset,
  COM.stmtFetch,
  COM.stmtBulkExecute,
]);
/** Of those, the ones the server does not answer. */
const UNANSWERED: ReadonlySet<number> = new Set([COM.stmtSendLongData, COM.stmtClose, COM.quit]);

/** Commands other than SQL, as policy sees them (`name\0argument`). */
const COMMAND_KINDS: Readonly<Record<string, StatementKind>> = {
  init_db: "set",
  field_list: "other",
  create_db: "ddl",
  drop_db: "ddl",
};
const COMMAND_NAMES: Readonly<Record<number, string>> = {
  [COM.initDb]: "init_db",
  [COM.fieldList]: "field_list",
  [COM.createDb]: "create_db",
  [COM.dropDb]: "drop_db",
  [COM.processKill]: "process_kill",
};

/** A command that is not SQL: its kind, and COM_FIELD_LIST's table. */
function classifyCommand(text: string): Classification {
  const [name = "", arg = ""] = text.split("\0");
  const kind = COMMAND_KINDS[name] ?? "other";
  const tables = name === "field_list" && arg ? [arg] : [];
  return { ok: true, statements: [{ kind, tables }], params: 0, changesSyntax: false };
}

export interface MysqlPolicyJudgeOptions {
  readonly reg: StoredRegistration;
  readonly lease: LeaseRecord | undefined;
  readonly resource: string;
  readonly statementPolicy: MysqlStatementPolicy | undefined;
  readonly dialect: MysqlDialect;
  readonly reading: SessionReading;
  /** A command was refused; `text` is for a digest only. */
  readonly onRefused: (text: string, refusal: MysqlRefusal) => void;
}

/**
 * Statement policy for one MySQL session (`proxy.statementPolicy`): each COM_QUERY and
 * COM_STMT_PREPARE is read as the server would read it (session-reading.ts, statement-kind.ts)
 * and decided by Cedar as `Action::"statement"`; the commands that are not SQL but act on data
 * or the schema (COM_INIT_DB, COM_FIELD_LIST, COM_CREATE_DB, COM_DROP_DB, COM_PROCESS_KILL, and
 * any the listener does not know) are decided as their kind. A refused prepare never reaches
 * the server, so no statement id exists for it; MariaDB's "last prepared" id after a refused
 * prepare is refused too.
 */
export class MysqlPolicyJudge {
  private readonly statements: StatementPolicy | undefined;
  private readonly commands: StatementPolicy | undefined;
  private lastPrepareRefused = false;
  private readonly read: (body: Buffer) => ReadResult;

  constructor(private readonly o: MysqlPolicyJudgeOptions) {
    this.read = textReader(o.reading);
    const sp = o.statementPolicy;
    if (!o.lease || !sp) return;
    const base = {
      policy: sp.policy,
      lease: o.lease,
      resource: o.resource,
      groups: o.reg.groups,
      unparseable: sp.unparseable,
      syntaxSettings: {
        names: "sql_mode or the client's character set",
        hint: "under statement policy sql_mode and the client character set stay as the session began",
      },
    };
    const sqlMode = o.reading.sqlMode;
    const shapeOf = shapeReader(sqlMode);
    this.statements = new StatementPolicy({
      ...base,
      classify: mysqlClassifier(o.dialect, sqlMode),
      // A verdict is kept per shape once the classifier read the message by its checked shape
      // (`sameForAnyLiterals`): the next text of that shape is neither read nor decided again.
      shape: (sql) => shapeOf(sql)?.key,
    });
    this.commands = new StatementPolicy({ ...base, classify: classifyCommand });
  }

  /** The verdict on one whole command packet's payload after its command byte. */
  judge = (command: number, body: Buffer): CommandVerdict => {
    if (HARMLESS.has(command)) return "pass";
    if (BY_ID.has(command)) {
      if (!this.lastPrepareRefused || body.length < 4 || body.readUInt32LE(0) !== 0xffffffff) return "pass";
      const text = `stmt_by_last_id\0${command}`;
      return this.refuse(text, command, "leasehold: statement refused by policy (its prepare was refused)", {
        reason: "42501 a command on the last prepared statement, whose prepare was refused",
        policies: [],
      });
    }
    if (command === COM.query || command === COM.stmtPrepare) return this.judgeSql(command, body);
    const name = COMMAND_NAMES[command] ?? `command_${command}`;
    const arg = command === COM.processKill ? "" : body.toString("utf8").split("\0")[0];
    return this.decide(`${name}\0${arg}`, command, this.commands);
  };

  private judgeSql(command: number, body: Buffer): CommandVerdict {
    const read = this.read(body);
    if ("unreadable" in read) {
      const text = body.toString("latin1");
      return this.refuse(
        text,
        command,
        "leasehold: statement refused by policy (the session reads SQL otherwise than the grammar)",
        {
          reason: `42501 the server would read it otherwise than the grammar: ${read.unreadable}`,
          policies: [],
        },
      );
    }
    return this.decide(read.text, command, this.statements);
  }

  private decide(text: string, command: number, policy: StatementPolicy | undefined): CommandVerdict {
    if (!policy) {
      return this.refuse(text, command, "leasehold: statement refused by policy (no policy to decide with)", {
        reason: "42501 statement policy unavailable",
        policies: [],
      });
    }
    const v = policy.judge(text);
    if (v.allowed) {
      if (command === COM.stmtPrepare) this.lastPrepareRefused = false;
      return "pass";
    }
    return this.refuse(text, command, v.message, { reason: v.reason, policies: v.policies });
  }

  private refuse(text: string, command: number, message: string, refusal: MysqlRefusal): CommandVerdict {
    if (command === COM.stmtPrepare) this.lastPrepareRefused = true;
    this.o.onRefused(text, refusal);
    return UNANSWERED.has(command) ? "drop" : { replace: refusalPayload(message) };
  }
}
