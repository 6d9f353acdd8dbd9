import type { Duplex } from "node:stream";
import { SocketReader } from "../socket-reader.js";
import { COM, MysqlProtocolError, PayloadReader, packet, readPacket } from "./packets.js";

/** How the server reads the session's SQL text: its sql_mode and the client's character set. */
export interface SessionReading {
  readonly sqlMode: string;
  readonly charset: string;
}

const PROBE = "SELECT @@SESSION.sql_mode, @@SESSION.character_set_client";

/** Character sets in which every byte below 0x80 is the ASCII character (and none of a multibyte one is). */
const UTF8 = new Set(["utf8mb4", "utf8mb3", "utf8"]);
const SINGLE_BYTE = new Set(["latin1", "ascii", "binary"]);
/** sql_modes under which the server's grammar is another language altogether. */
const FOREIGN = /\b(ORACLE|MSSQL|DB2|POSTGRESQL|MAXDB)\b/i;

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** A statement's text as the server reads it, or why it would not read it the same. */
export type ReadResult = { text: string } | { unreadable: string };

/**
 * How one session's statements are read as the server reads them: in UTF-8 sessions the text
 * must be valid UTF-8; in latin1, ascii or binary ones, ASCII; other character sets (sjis, big5,
 * gbk: a multibyte character can end in `\\`) are refused, as are sessions whose sql_mode is
 * another dialect; under NO_BACKSLASH_ESCAPES or ANSI_QUOTES a backslash would end a string or
 * name where the grammar does not, so text with one is refused. The sql_mode and character set
 * are read once: under statement policy they stay as the session began.
 */
export function textReader(reading: SessionReading): (body: Buffer) => ReadResult {
  const charset = reading.charset.toLowerCase();
  if (FOREIGN.test(reading.sqlMode)) {
    const refusal = { unreadable: `the session's sql_mode (${reading.sqlMode.slice(0, 60)})` };
    return () => refusal;
  }
  const refusesBackslash = /NO_BACKSLASH_ESCAPES|ANSI_QUOTES/i.test(reading.sqlMode);
  const checked = (text: string): ReadResult =>
    refusesBackslash && text.includes("\\")
      ? { unreadable: "a backslash under sql_mode NO_BACKSLASH_ESCAPES or ANSI_QUOTES" }
      : { text };
  if (UTF8.has(charset)) {
    return (body) => {
      let text: string;
      try {
        text = utf8.decode(body);
      } catch {
        return { unreadable: "text that is not valid UTF-8" };
      }
      return checked(text);
    };
  }
  if (SINGLE_BYTE.has(charset)) {
    const nonAscii = { unreadable: `non-ASCII text in a ${charset} session` };
    return (body) => (body.some((b) => b >= 0x80) ? nonAscii : checked(body.toString("latin1")));
  }
  const refusal = { unreadable: `the session's character set (${charset.slice(0, 32)})` };
  return () => refusal;
}

function lenencString(r: PayloadReader): string {
  const at = r.pos;
  if (r.u8() === 0xfb) return "";
  r.pos = at;
  return r.bytes(r.lenenc()).toString("utf8");
}

/**
 * Asks the logged-in server, before the client's first command, how it reads SQL in the session
 * (one query: `SELECT @@SESSION.sql_mode, @@SESSION.character_set_client`). Leaves the socket
 * paused with nothing of the answer left unread.
 */
export async function probeSessionReading(socket: Duplex, maxBytes: number): Promise<SessionReading> {
  const reader = new SocketReader(socket, maxBytes + 64 * 1024);
  // The login left it paused.
  socket.resume();
  try {
    socket.write(packet(0, Buffer.concat([Buffer.from([COM.query]), Buffer.from(PROBE, "latin1")])));
    const head = await readPacket(reader, maxBytes);
    if (head.payload[0] === 0xff) throw new MysqlProtocolError("the server refused the session probe");
    const columns = head.payload[0] ?? 0;
    for (let i = 0; i < columns; i++) await readPacket(reader, maxBytes);
    let row = await readPacket(reader, maxBytes);
    // Without CLIENT_DEPRECATE_EOF an EOF packet ends the column definitions.
    if (row.payload[0] === 0xfe && row.payload.length < 9) row = await readPacket(reader, maxBytes);
    if (row.payload[0] === 0xff || row.payload[0] === 0xfe)
      throw new MysqlProtocolError("the session probe returned no row");
    const r = new PayloadReader(row.payload, 0);
    const reading = { sqlMode: lenencString(r), charset: lenencString(r) };
    const last = await readPacket(reader, maxBytes);
    if (last.payload[0] !== 0xfe) throw new MysqlProtocolError("the session probe returned more than a row");
    return reading;
  } finally {
    const rest = reader.detach({ pause: true });
    if (rest.length > 0) socket.unshift(rest);
  }
}
