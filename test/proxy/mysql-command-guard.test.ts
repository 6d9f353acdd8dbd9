import { describe, expect, it } from "vitest";
import { CommandGuard, type MysqlStatement } from "../../sidecar/proxy/mysql/command-guard.js";
import { COM, packet } from "../../sidecar/proxy/mysql/packets.js";
import { setsAccountPassword } from "../../sidecar/proxy/mysql/password-statements.js";

function command(cmd: number, body: string, seq = 0): Buffer {
  return packet(seq, Buffer.concat([Buffer.from([cmd]), Buffer.from(body, "utf8")]));
}

/** Feeds `stream` cut at `cuts`; returns what was forwarded, what was refused and the statements seen. */
function feed(stream: Buffer, cuts: readonly number[], sealed = false) {
  const forbidden: number[] = [];
  const refused: MysqlStatement[] = [];
  const statements: string[] = [];
  const g = new CommandGuard({
    onForbidden: (c) => forbidden.push(c),
    onStatement: (s) => statements.push(s.text.toString()),
    refuse: sealed ? setsAccountPassword : undefined,
    onRefused: (s) => refused.push(s),
  });
  const out: Buffer[] = [];
  let from = 0;
  for (const at of [...cuts, stream.length]) {
    out.push(...g.push(stream.subarray(from, at)));
    from = at;
  }
  return { forwarded: Buffer.concat(out), forbidden, refused, statements };
}

const QUERY = command(COM.query, "SELECT 1");
const PING = command(0x0e, "");
const RESULT_ROW = packet(2, Buffer.from("a LOAD DATA row", "utf8"));

describe("CommandGuard", () => {
  const stream = Buffer.concat([QUERY, PING, command(COM.stmtPrepare, "SELECT ? FROM t"), RESULT_ROW]);

  it("forwards every byte unchanged and sees each statement, however the stream is cut", () => {
    for (let a = 0; a <= stream.length; a++) {
      for (const b of [a, Math.min(stream.length, a + 1), Math.min(stream.length, a + 7)]) {
        for (const sealed of [false, true]) {
          const r = feed(stream, [a, b], sealed);
          expect(r.forwarded.equals(stream)).toBe(true);
          expect(r.statements).toEqual(["SELECT 1", "SELECT ? FROM t"]);
        }
      }
    }
  });

  it("stops at COM_CHANGE_USER and COM_MULTI: nothing of them is forwarded, wherever the cut", () => {
    for (const forbidden of [COM.changeUser, COM.multi]) {
      const s = Buffer.concat([QUERY, command(forbidden, "root\0"), PING]);
      for (let a = 0; a <= s.length; a++) {
        const r = feed(s, [a]);
        expect(r.forbidden).toEqual([forbidden]);
        expect(r.forwarded.equals(QUERY)).toBe(true);
      }
    }
  });

  it("a 0x11 byte inside a packet that is not a command start passes", () => {
    const s = Buffer.concat([QUERY, packet(2, Buffer.from([COM.changeUser, 1, 2]))]);
    const r = feed(s, [QUERY.length + 2]);
    expect(r.forbidden).toEqual([]);
    expect(r.forwarded.equals(s)).toBe(true);
  });

  it("sealed: a password statement is refused whole, wherever the cut; what came before passes", () => {
    const bad = command(COM.query, "ALTER USER CURRENT_USER() /*!IDENTIFIED*/ BY 'x'");
    const s = Buffer.concat([QUERY, bad, PING]);
    for (let a = 0; a <= s.length; a++) {
      const r = feed(s, [a], true);
      expect(r.refused).toHaveLength(1);
      expect(r.forwarded.equals(QUERY)).toBe(true);
    }
  });
});

describe("setsAccountPassword", () => {
  it.each([
    "ALTER USER CURRENT_USER() IDENTIFIED BY 'x'",
    "alter user 'a'@'%' identified via ed25519 using PASSWORD('x')",
    "GRANT SELECT ON *.* TO a IDENTIFIED BY 'x'",
    "SET PASSWORD = PASSWORD('x')",
    "SET /* hidden */ PASSWORD FOR 'a'@'%' = 'x'",
    "SET STATEMENT max_statement_time=1 FOR SET PASSWORD = 'x'",
    "select 1; set`password`='x'",
    "/*!50000 ALTER USER a IDENTIFIED BY 'x' */",
  ])("refuses %s", (sql) => {
    expect(setsAccountPassword(sql)).toBe(true);
  });

  it.each([
    "SELECT password FROM users WHERE id = 1",
    "SELECT PASSWORD('x')",
    "ALTER USER CURRENT_USER() PASSWORD EXPIRE",
    "SET NAMES utf8mb4",
    "UPDATE users SET password_hash = 'h' WHERE id = 1",
  ])("lets %s through", (sql) => {
    expect(setsAccountPassword(sql)).toBe(false);
  });
});
