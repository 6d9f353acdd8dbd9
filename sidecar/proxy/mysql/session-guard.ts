import { createHash } from "node:crypto";
import type { Logger } from "../../logger.js";
import type { AuditSink } from "../../audit/index.js";
import type { LeaseRecord } from "../../leases/index.js";
import type { StoredRegistration } from "../../resources/types.js";
import { leaseAuditFields } from "../session-record.js";
import { CommandGuard, type CommandVerdict, type MysqlStatement } from "./command-guard.js";
import { databaseDenied, refusedDatabase } from "./database-pin.js";
import { mapKill } from "./connection-ids.js";
import { COM, ER } from "./packets.js";
import { setsAccountPassword } from "./password-statements.js";
import {
  MysqlPolicyJudge,
  type MysqlRefusal,
  type MysqlStatementPolicy,
  refusalPayload,
} from "./policy-judge.js";
import type { SessionReading } from "./session-reading.js";
import type { MysqlDialect } from "./statement-kind.js";

export interface MysqlGuardOptions {
  readonly reg: StoredRegistration | undefined;
  readonly lease: LeaseRecord | undefined;
  readonly resource: string;
  readonly audit: AuditSink;
  readonly log: Logger;
  readonly client: string;
  readonly requestId: string;
  /** Under `proxy.statementPolicy`: how to decide, and how the server reads the session's SQL. */
  readonly policy:
    | {
        readonly statementPolicy: MysqlStatementPolicy | undefined;
        readonly reading: SessionReading;
        readonly dialect: MysqlDialect;
      }
    | undefined;
  readonly onForbidden: (command: number) => void;
  readonly onStatement: ((s: MysqlStatement) => void) | undefined;
  /** The backend thread a client's KILL of `id` means (a session of the same lease), or undefined. */
  readonly resolveKill?: ((id: number) => number | undefined) | undefined;
  /** A password statement of a sealed resource, or a command too long to judge: the session ends. */
  readonly onEnd: (reason: string) => void;
  /** The refusal's decision record could not be written. */
  readonly onAuditFailure: () => void;
}

/**
 * The guard on a MySQL session's commands: COM_CHANGE_USER and COM_MULTI always end it; where
 * the password is sealed (`reveal: false`) a statement that could set it ends it too; under
 * `proxy.statementPolicy` each command is decided (policy-judge.ts) and a refused one is
 * answered by the server with ERR 1142 in its place; with `proxy.databases`, COM_INIT_DB and
 * `USE` of any other database get 1044 the same way. Each refusal is a `decision` record with
 * the text's digest, never the text.
 */
export function mysqlSessionGuard(o: MysqlGuardOptions): CommandGuard {
  const record = (text: string | Buffer, scope: "proxy_statement" | "statement", r: MysqlRefusal): void => {
    if (!o.lease) return;
    o.log.warn(
      { resource: o.resource, lease_id: o.lease.id, client: o.client, scope },
      scope === "statement"
        ? "refused a statement by policy through the proxy"
        : "refused a password change through the proxy",
    );
    o.audit
      .append({
        ...leaseAuditFields(o.lease),
        event: "decision",
        scope,
        decision: "deny",
        tool: "mysql",
        target: o.client,
        request_id: o.requestId,
        digest: `sha256:${createHash("sha256").update(text).digest("hex")}`,
        reason: r.reason,
        ...(scope === "statement" ? { policies: [...r.policies] } : {}),
      })
      .catch((err: unknown) => {
        o.log.error(
          { err: { message: (err as Error).message }, resource: o.resource },
          "proxy audit write failed",
        );
        o.onAuditFailure();
      });
  };
  const judge =
    o.policy && o.reg?.proxy?.statementPolicy === true
      ? new MysqlPolicyJudge({
          reg: o.reg,
          lease: o.lease,
          resource: o.resource,
          statementPolicy: o.policy.statementPolicy,
          dialect: o.policy.dialect,
          reading: o.policy.reading,
          onRefused: (text, r) => record(text, "statement", r),
        })
      : undefined;
  const databases = o.reg?.proxy?.databases;
  const kill = (command: number, body: Buffer): CommandVerdict => {
    const resolve = o.resolveKill;
    const mapped = resolve ? mapKill(command, body, resolve) : "pass";
    if (mapped === "pass") return "pass";
    if ("payload" in mapped) return { replace: mapped.payload };
    return { replace: refusalPayload(`Unknown thread id: ${mapped.unknown}`, ER.unknownThread, "HY000") };
  };
  const policyAndKill = (command: number, body: Buffer): CommandVerdict => {
    const v = judge ? judge.judge(command, body) : "pass";
    return v === "pass" ? kill(command, body) : v;
  };
  const judgeAll =
    databases === undefined
      ? policyAndKill
      : (command: number, body: Buffer): CommandVerdict => {
          const denied = refusedDatabase(command, body, databases);
          if (denied === undefined) return policyAndKill(command, body);
          record(body, "statement", {
            reason: `${ER.dbAccessDenied} not a database of the resource (proxy.databases)`,
            policies: [],
          });
          const message = databaseDenied(o.lease?.id ?? "?", denied);
          return { replace: refusalPayload(message, ER.dbAccessDenied) };
        };
  return new CommandGuard({
    onForbidden: o.onForbidden,
    onStatement: o.onStatement,
    refuse: o.reg?.reveal === false ? setsAccountPassword : undefined,
    onRefused: (st) => {
      const reason = st.truncated
        ? "a statement over 16 MiB cannot be checked for a password change"
        : "a password change through the listener of a sealed (reveal: false) resource";
      record(st.text, "proxy_statement", { reason, policies: [] });
      o.onEnd(reason);
    },
    judge: judgeAll,
    // Without policy or a database pin, only what could be a kill is held and read.
    holds: judge || databases ? undefined : (command) => command === COM.query || command === COM.processKill,
    onOversized: () => o.onEnd("a command over 16 MiB cannot be judged by statement policy"),
  });
}
