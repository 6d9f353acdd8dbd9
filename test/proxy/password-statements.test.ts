import { describe, expect, it } from "vitest";
import { changesRolePassword } from "../../sidecar/proxy/postgres/password-statements.js";

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
