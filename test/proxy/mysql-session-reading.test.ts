import { describe, expect, it } from "vitest";
import { textReader } from "../../sidecar/proxy/mysql/session-reading.js";

const utf8 = { sqlMode: "STRICT_TRANS_TABLES,NO_ENGINE_SUBSTITUTION", charset: "utf8mb4" };

describe("textReader: a statement's text as the session's server reads it", () => {
  it("reads valid UTF-8 in a UTF-8 session, whatever the charset's spelling", () => {
    for (const charset of ["utf8mb4", "UTF8MB3", "utf8"]) {
      const read = textReader({ ...utf8, charset });
      expect(read(Buffer.from("SELECT 'café' AS n", "utf8"))).toEqual({ text: "SELECT 'café' AS n" });
      expect(read(Buffer.from("SELECT 'a\\'b'", "utf8"))).toEqual({ text: "SELECT 'a\\'b'" });
    }
  });

  it("refuses bytes that are not UTF-8 in a UTF-8 session", () => {
    const read = textReader(utf8);
    expect(read(Buffer.from([0x53, 0x45, 0xff, 0x4c]))).toEqual({
      unreadable: "text that is not valid UTF-8",
    });
  });

  it("reads ASCII in a single-byte session and refuses any byte over 0x7f", () => {
    for (const charset of ["latin1", "ascii", "binary"]) {
      const read = textReader({ ...utf8, charset });
      expect(read(Buffer.from("SELECT 1", "latin1"))).toEqual({ text: "SELECT 1" });
      expect(read(Buffer.from("SELECT 'caf\xe9'", "latin1"))).toEqual({
        unreadable: `non-ASCII text in a ${charset} session`,
      });
    }
  });

  it("refuses every statement of a session in another character set (a multibyte one can end in a backslash)", () => {
    const read = textReader({ ...utf8, charset: "sjis" });
    expect(read(Buffer.from("SELECT 1"))).toEqual({ unreadable: "the session's character set (sjis)" });
  });

  it("refuses every statement of a session whose sql_mode is another dialect", () => {
    const read = textReader({ sqlMode: "PIPES_AS_CONCAT,ORACLE", charset: "utf8mb4" });
    expect(read(Buffer.from("SELECT 1"))).toEqual({
      unreadable: "the session's sql_mode (PIPES_AS_CONCAT,ORACLE)",
    });
  });

  it("under NO_BACKSLASH_ESCAPES or ANSI_QUOTES refuses text with a backslash, and reads the rest", () => {
    for (const sqlMode of ["NO_BACKSLASH_ESCAPES", "STRICT_ALL_TABLES,ansi_quotes"]) {
      const read = textReader({ sqlMode, charset: "utf8mb4" });
      expect(read(Buffer.from("SELECT 'a\\' OR 1=1 -- '"))).toEqual({
        unreadable: "a backslash under sql_mode NO_BACKSLASH_ESCAPES or ANSI_QUOTES",
      });
      expect(read(Buffer.from("SELECT 'a' AS n"))).toEqual({ text: "SELECT 'a' AS n" });
    }
    // Without either mode a backslash is an escape the grammar reads as the server does.
    expect(textReader(utf8)(Buffer.from("SELECT 'a\\'"))).toEqual({ text: "SELECT 'a\\'" });
  });
});
