import type { LeaseRecord } from "../../leases/index.js";
import type { StoredRegistration } from "../../resources/types.js";
import { StatementPolicy, type StatementPolicyPort, type UnparseablePolicy } from "../statement-policy.js";
import { CommandGuard, type CommandRefusal } from "./command-guard.js";
import { type CommandTable, commandTable } from "./command-table.js";
import { decodeResp } from "./resp.js";

/** What a Redis listener gives its sessions for `proxy.statementPolicy`: the engine (absent: refuse all) and `proxy.unparseable`. */
export interface RedisStatementPolicy {
  readonly policy: StatementPolicyPort | undefined;
  readonly unparseable: UnparseablePolicy;
}

/** The command table of the server's reply to `COMMAND`, or an error saying why there is none. */
export function tableOfReply(reply: Buffer | undefined): CommandTable {
  if (!reply) throw new Error("no reply to COMMAND");
  if (reply[0] === 0x2d || reply[0] === 0x21)
    throw new Error(
      `COMMAND refused: ${reply.toString("utf8", 1, Math.min(reply.length, 41)).split(/[ \r]/)[0]}`,
    );
  return commandTable(decodeResp(reply));
}

export interface RedisGuardOptions {
  readonly reg: StoredRegistration;
  readonly lease: LeaseRecord | undefined;
  readonly resource: string;
  readonly statementPolicy: RedisStatementPolicy | undefined;
  readonly table: CommandTable;
  readonly onRefused: (command: Buffer, refusal: CommandRefusal) => void;
  readonly onUnjudgeable: (why: string) => void;
}

/** The guard deciding each command of a session by Cedar (`Action::"statement"`). */
export function redisCommandGuard(o: RedisGuardOptions): CommandGuard {
  const sp = o.statementPolicy;
  const policy =
    o.lease && sp?.policy
      ? new StatementPolicy({
          policy: sp.policy,
          lease: o.lease,
          resource: o.resource,
          groups: o.reg.groups,
          unparseable: sp.unparseable,
          // Commands are classified by the guard; SQL never reaches this policy.
          classify: () => ({ ok: false, error: "not SQL" }),
          refusalCode: "NOPERM",
        })
      : undefined;
  return new CommandGuard({
    table: o.table,
    policy,
    unparseable: sp?.unparseable ?? "deny",
    onRefused: o.onRefused,
    onUnjudgeable: o.onUnjudgeable,
  });
}
