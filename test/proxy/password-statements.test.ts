import { describe, expect, it } from "vitest";
import { changesRolePassword } from "../../sidecar/proxy/postgres/password-statements.js";
import { REFUSAL_SQL, StatementGuard } from "../../sidecar/proxy/postgres/statement-guard.js";

const REFUSED = [
  "ALTER ROLE CURRENT_USER PASSWORD 'x'",
  "alter user app_1 password 'x'",
  "ALTER ROLE app ENCRYPTED PASSWORD 'x'",
  "ALTER ROLE app WITH LOGIN UNENCRYPTED PASSWORD 'x'",
  "ALTER ROLE app PASSWORD NULL",
  "CREATE ROLE other LOGIN PASSWORD 'x'",
  "create user other with password 'x'",
  "CREATE GROUP g PASSWORD 'x'",
  // What psql's \password sends.
  `ALTER USER "px_app_1" PASSWORD 'SCRAM-SHA-256$4096:c2FsdA==$a2V5:c2VydmVy'`,
  "ALTER USER px_app_1 PASSWORD 'SCRAM-SHA-256$4096:c2FsdA==$a2V5:c2VydmVy'",
  "ALTER/**/ROLE/**/CURRENT_USER/**/PASSWORD 'x'",
  "ALTER /* a /* nested */ comment */ ROLE x PASSWORD 'x'",
  "ALTER -- a comment\nROLE x -- another\n PASSWORD 'x'",
  "  \n\tAlTeR\tRoLe\n x\r\nPaSsWoRd 'x'  ",
  `ALTER ROLE "Mixed ""Case"" role" PASSWORD 'x'`,
  `ALTER ROLE U&"d\\0061t\\+000061" PASSWORD 'x'`,
  "ALTER ROLE set PASSWORD 'x'",
  "ALTER ROLE password PASSWORD 'x'",
  "SELECT 1; ALTER ROLE x PASSWORD 'y'; SELECT 2",
  "SELECT 'a'; alter role x password $$y$$",
  "BEGIN; ALTER ROLE x PASSWORD 'y'; COMMIT",
  // A backslash that ends the string only when standard_conforming_strings is off.
  "SELECT 'a\\', ' ; ALTER ROLE x PASSWORD 'p' ; --'",
  "DO $$BEGIN ALTER ROLE CURRENT_USER PASSWORD 'x'; END$$",
  "DO $body$ BEGIN EXECUTE 'ALTER ROLE ' || current_user || ' PASSWORD ' || quote_literal('x'); END $body$",
  "do language plpgsql 'begin execute ''alter user x password ''''y''''''; end'",
  "CREATE FUNCTION f() RETURNS void LANGUAGE sql AS 'ALTER ROLE x PASSWORD ''y'''",
  "CREATE OR REPLACE PROCEDURE p() LANGUAGE plpgsql AS $f$ BEGIN EXECUTE format('ALTER USER %I PASSWORD %L', current_user, 'x'); END $f$",
  // Non-ASCII bytes: a multibyte client encoding could make the server split the text otherwise.
  "SELECT 'é', '\\'; ALTER ROLE x PASSWORD 'p'; --'",
];

const ALLOWED = [
  "SELECT 'alter role x password'",
  "SELECT $$ALTER ROLE x PASSWORD 'y'$$",
  `SELECT "alter", "role", "password" FROM t`,
  "SELECT 1 -- alter role x password 'y'",
  "SELECT /* ALTER ROLE x PASSWORD 'y' */ 1",
  "SET password_encryption = 'scram-sha-256'",
  "SHOW password_encryption",
  "ALTER ROLE x SET password_encryption = 'md5'",
  "ALTER ROLE x IN DATABASE db SET password_encryption TO 'md5'",
  "ALTER ROLE x RESET ALL",
  "ALTER ROLE x CONNECTION LIMIT 3",
  "ALTER USER MAPPING FOR CURRENT_USER SERVER s OPTIONS (SET password 'x')",
  "CREATE USER MAPPING FOR app SERVER s OPTIONS (user 'u', password 'x')",
  "ALTER ROLE x; SELECT password FROM users",
  "SELECT password, role FROM users WHERE name = 'alter'",
  "DO $$BEGIN RAISE NOTICE 'hello'; END$$",
  "CREATE FUNCTION f(a int) RETURNS int LANGUAGE sql AS 'SELECT a + 1'",
  "INSERT INTO t VALUES ('ALTER ROLE x PASSWORD ''y''')",
  // An escaped quote inside an E'' string: all of it is one string constant.
  "SELECT E'a\\' ; ALTER ROLE x PASSWORD ''p''; --'",
];

describe("changesRolePassword", () => {
  it.each(REFUSED)("refuses %s", (sql) => {
    expect(changesRolePassword(sql)).toBe(true);
  });
  it.each(ALLOWED)("lets %s through", (sql) => {
    expect(changesRolePassword(sql)).toBe(false);
  });
});

function message(type: string, body: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.write(type, 0, "latin1");
  head.writeInt32BE(4 + body.length, 1);
  return Buffer.concat([head, body]);
}

const query = (sql: string) => message("Q", Buffer.from(`${sql}\0`));
const parse = (name: string, sql: string) =>
  message("P", Buffer.concat([Buffer.from(`${name}\0${sql}\0`), Buffer.from([0, 1, 0, 0, 0, 23])]));

/** Feeds `input` to a guard `step` bytes at a time; what it forwards, and what it refused. */
function through(input: Buffer, step: number): { out: Buffer; refused: string[]; passed: number } {
  const refused: string[] = [];
  let passed = 0;
  const guard = new StatementGuard({
    onRefused: (t) => refused.push(t),
    onStatement: () => {
      passed += 1;
    },
    onUnjudgeable: (why) => {
      throw new Error(why);
    },
  });
  const out: Buffer[] = [];
  for (let i = 0; i < input.length; i += step) out.push(...guard.push(input.subarray(i, i + step)));
  return { out: Buffer.concat(out), refused, passed };
}

describe("StatementGuard", () => {
  const sync = message("S", Buffer.alloc(0));
  const copyData = message("d", Buffer.from("ALTER ROLE x PASSWORD 'y'\n"));

  it.each([1, 3, 7, 4096])("passes harmless messages through unchanged, in chunks of %i bytes", (step) => {
    const input = Buffer.concat([query("select 1"), parse("s1", "select $1::int"), sync, copyData]);
    const r = through(input, step);
    expect(r.out.equals(input)).toBe(true);
    expect(r.refused).toEqual([]);
    expect(r.passed).toBe(2);
  });

  it.each([1, 5, 4096])(
    "replaces a password change by the refusal, keeping its neighbours (chunks of %i)",
    (step) => {
      const before = query("select 1");
      const after = query("select 2");
      const r = through(Buffer.concat([before, query("ALTER ROLE me PASSWORD 'x'"), after]), step);
      expect(r.out.equals(Buffer.concat([before, query(REFUSAL_SQL), after]))).toBe(true);
      expect(r.refused).toEqual(["ALTER ROLE me PASSWORD 'x'"]);
    },
  );

  it("replaces a Parse by one of the same name, with the parameter types it declared (so Bind still matches)", () => {
    const r = through(parse("pw", "ALTER USER me PASSWORD 'x'"), 2);
    const expected = message(
      "P",
      Buffer.concat([Buffer.from(`pw\0${REFUSAL_SQL}\0`), Buffer.from([0, 1, 0, 0, 0, 23])]),
    );
    expect(r.out.equals(expected)).toBe(true);
  });

  it("stops forwarding anything once a length is invalid or a statement too large to judge", () => {
    const why: string[] = [];
    const guard = new StatementGuard({
      onRefused: () => undefined,
      onUnjudgeable: (w) => why.push(w),
      maxStatementBytes: 64,
    });
    expect(guard.push(Buffer.concat([query("select 1"), query("x".repeat(100))]))).toEqual([]);
    expect(guard.push(query("select 2"))).toEqual([]);
    expect(why).toHaveLength(1);
    const bad = new StatementGuard({ onRefused: () => undefined, onUnjudgeable: (w) => why.push(w) });
    expect(bad.push(Buffer.from([0x51, 0, 0, 0, 2]))).toEqual([]);
    expect(why).toHaveLength(2);
  });
});
