import type { SocketReader } from "../socket-reader.js";

/** Capability flags of the MySQL client/server protocol (and MariaDB's use of bit 0). */
export const CAP = {
  longPassword: 1,
  foundRows: 2,
  longFlag: 4,
  connectWithDb: 8,
  compress: 0x20,
  localFiles: 0x80,
  protocol41: 0x200,
  ssl: 0x800,
  transactions: 0x2000,
  secureConnection: 0x8000,
  multiStatements: 0x10000,
  multiResults: 0x20000,
  psMultiResults: 0x40000,
  pluginAuth: 0x80000,
  connectAttrs: 0x100000,
  pluginAuthLenenc: 0x200000,
  canHandleExpiredPasswords: 0x400000,
  sessionTrack: 0x800000,
  deprecateEof: 0x1000000,
  zstd: 0x4000000,
  queryAttributes: 0x8000000,
  multiFactorAuth: 0x10000000,
  capabilityExtension: 0x20000000,
  sslVerifyServerCert: 0x40000000,
  rememberOptions: 0x80000000,
} as const;

/** Command bytes the proxy looks at. */
export const COM = {
  sleep: 0x00,
  quit: 0x01,
  initDb: 0x02,
  query: 0x03,
  fieldList: 0x04,
  createDb: 0x05,
  dropDb: 0x06,
  statistics: 0x09,
  processKill: 0x0c,
  ping: 0x0e,
  changeUser: 0x11,
  stmtPrepare: 0x16,
  stmtExecute: 0x17,
  stmtSendLongData: 0x18,
  stmtClose: 0x19,
  stmtReset: 0x1a,
  setOption: 0x1b,
  stmtFetch: 0x1c,
  resetConnection: 0x1f,
  /** MariaDB's COM_STMT_BULK_EXECUTE. */
  stmtBulkExecute: 0xfa,
  /** MariaDB's COM_MULTI: commands packed in one; its capability is never offered. */
  multi: 0xfe,
} as const;

/** Error codes the listener answers with (MySQL's own numbers). */
export const ER = {
  conCount: 1040,
  handshake: 1043,
  accessDenied: 1045,
  unknown: 1105,
  hostBlocked: 1129,
  dbAccessDenied: 1044,
  unknownThread: 1094,
  tableAccessDenied: 1142,
  specificAccessDenied: 1227,
  notSupportedAuthMode: 1251,
  connectionKilled: 1927,
} as const;

export const MAX_PAYLOAD = 0xffffff;

/** One protocol packet: its sequence id and payload. */
export interface Packet {
  readonly seq: number;
  readonly payload: Buffer;
}

/** The packet is not what the protocol allows at this point. */
export class MysqlProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "MysqlProtocolError";
  }
}

/** Frames `payload` as one packet (payloads of the handshake are far below 16 MiB). */
export function packet(seq: number, payload: Buffer): Buffer {
  const h = Buffer.allocUnsafe(4);
  h.writeUIntLE(payload.length, 0, 3);
  h[3] = seq & 0xff;
  return Buffer.concat([h, payload]);
}

/**
 * Reads one whole packet (a payload of exactly 0xffffff bytes continues in the next one; the
 * handshake never needs that, so it is refused). Rejects with PeerClosedError when the peer goes.
 */
export async function readPacket(reader: SocketReader, maxBytes: number): Promise<Packet> {
  await reader.need(4);
  const head = reader.peek(4);
  const len = head.readUIntLE(0, 3);
  const seq = head[3] ?? 0;
  if (len >= MAX_PAYLOAD || len > maxBytes) throw new MysqlProtocolError("packet too large");
  await reader.need(4 + len);
  const all = reader.take(4 + len);
  return { seq, payload: Buffer.from(all.subarray(4)) };
}

/** A length-encoded integer's bytes. */
export function lenencInt(n: number): Buffer {
  if (n < 0xfb) return Buffer.from([n]);
  if (n < 0x10000) {
    const b = Buffer.alloc(3);
    b[0] = 0xfc;
    b.writeUInt16LE(n, 1);
    return b;
  }
  if (n < 0x1000000) {
    const b = Buffer.alloc(4);
    b[0] = 0xfd;
    b.writeUIntLE(n, 1, 3);
    return b;
  }
  const b = Buffer.alloc(9);
  b[0] = 0xfe;
  b.writeBigUInt64LE(BigInt(n), 1);
  return b;
}

/** A cursor over a payload; reading past its end throws MysqlProtocolError. */
export class PayloadReader {
  constructor(
    private readonly buf: Buffer,
    public pos = 0,
  ) {}

  get left(): number {
    return this.buf.length - this.pos;
  }

  private need(n: number): void {
    if (this.pos + n > this.buf.length) throw new MysqlProtocolError("truncated packet");
  }

  u8(): number {
    this.need(1);
    return this.buf[this.pos++] ?? 0;
  }

  u16(): number {
    this.need(2);
    const v = this.buf.readUInt16LE(this.pos);
    this.pos += 2;
    return v;
  }

  u32(): number {
    this.need(4);
    const v = this.buf.readUInt32LE(this.pos);
    this.pos += 4;
    return v;
  }

  bytes(n: number): Buffer {
    this.need(n);
    const v = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }

  /** NUL-terminated; a missing NUL ends the string at the payload's end. */
  cstring(): Buffer {
    const end = this.buf.indexOf(0, this.pos);
    const stop = end < 0 ? this.buf.length : end;
    const v = this.buf.subarray(this.pos, stop);
    this.pos = end < 0 ? stop : stop + 1;
    return v;
  }

  lenenc(): number {
    const first = this.u8();
    if (first < 0xfb) return first;
    if (first === 0xfc) return this.u16();
    if (first === 0xfd) {
      this.need(3);
      const v = this.buf.readUIntLE(this.pos, 3);
      this.pos += 3;
      return v;
    }
    if (first === 0xfe) {
      this.need(8);
      const v = this.buf.readBigUInt64LE(this.pos);
      this.pos += 8;
      if (v > BigInt(this.buf.length)) throw new MysqlProtocolError("length beyond the packet");
      return Number(v);
    }
    throw new MysqlProtocolError("bad length-encoded integer");
  }

  rest(): Buffer {
    const v = this.buf.subarray(this.pos);
    this.pos = this.buf.length;
    return v;
  }
}

/**
 * An ERR packet. `sqlState` is left out before the client has said it speaks protocol 4.1 (as
 * the server does for errors sent instead of its greeting).
 */
export function errPacket(seq: number, code: number, message: string, sqlState?: string): Buffer {
  const parts = [Buffer.from([0xff, code & 0xff, code >> 8])];
  if (sqlState !== undefined) parts.push(Buffer.from(`#${sqlState}`, "latin1"));
  parts.push(Buffer.from(message, "utf8"));
  return packet(seq, Buffer.concat(parts));
}

/** The server's greeting (Protocol::HandshakeV10), as read or as the proxy sends it. */
export interface Greeting {
  readonly serverVersion: string;
  readonly connectionId: number;
  /** The 20-byte nonce (both parts, without the trailing NUL). */
  readonly nonce: Buffer;
  readonly capabilities: number;
  readonly charset: number;
  readonly status: number;
  /** MariaDB's extended capabilities (when bit 0, "CLIENT_MYSQL", is clear). */
  readonly mariadbCapabilities: number;
  readonly authPlugin: string;
}

export function parseGreeting(payload: Buffer): Greeting {
  const r = new PayloadReader(payload);
  const version = r.u8();
  if (version === 0xff) throw new MysqlProtocolError("the server refused the connection");
  if (version !== 10) throw new MysqlProtocolError(`unsupported protocol version ${version}`);
  const serverVersion = r.cstring().toString("latin1");
  const connectionId = r.u32();
  const part1 = r.bytes(8);
  r.u8();
  let capabilities = r.u16();
  let charset = 0;
  let status = 0;
  let mariadbCapabilities = 0;
  let part2: Buffer = Buffer.alloc(0);
  let authPlugin = "mysql_native_password";
  if (r.left > 0) {
    charset = r.u8();
    status = r.u16();
    capabilities = (capabilities | (r.u16() << 16)) >>> 0;
    const dataLen = r.u8();
    const reserved = r.bytes(10);
    if ((capabilities & CAP.longPassword) === 0) mariadbCapabilities = reserved.readUInt32LE(6);
    if (capabilities & CAP.secureConnection) {
      part2 = r.bytes(Math.max(13, dataLen - 8));
      if (part2.at(-1) === 0) part2 = part2.subarray(0, -1);
    }
    if (capabilities & CAP.pluginAuth) authPlugin = r.cstring().toString("latin1");
  }
  return {
    serverVersion,
    connectionId,
    nonce: Buffer.concat([part1, part2]),
    capabilities,
    charset,
    status,
    mariadbCapabilities,
    authPlugin,
  };
}

export function greetingPayload(g: Greeting): Buffer {
  const head = Buffer.alloc(4);
  head.writeUInt32LE(g.connectionId, 0);
  const caps = Buffer.alloc(2);
  const reserved = Buffer.alloc(10);
  if ((g.capabilities & CAP.longPassword) === 0) reserved.writeUInt32LE(g.mariadbCapabilities, 6);
  const mid = Buffer.alloc(6);
  mid[0] = g.charset;
  mid.writeUInt16LE(g.status, 1);
  mid.writeUInt16LE(g.capabilities >>> 16, 3);
  mid[5] = g.nonce.length + 1;
  caps.writeUInt16LE(g.capabilities & 0xffff, 0);
  return Buffer.concat([
    Buffer.from([10]),
    Buffer.from(`${g.serverVersion}\0`, "latin1"),
    head,
    g.nonce.subarray(0, 8),
    Buffer.from([0]),
    caps,
    mid,
    reserved,
    g.nonce.subarray(8),
    Buffer.from([0]),
    Buffer.from(`${g.authPlugin}\0`, "latin1"),
  ]);
}

/** A client's HandshakeResponse41 (or an SSLRequest: `sslRequest`, nothing after the filler). */
export interface HandshakeResponse {
  readonly capabilities: number;
  readonly maxPacket: number;
  readonly charset: number;
  readonly mariadbCapabilities: number;
  readonly sslRequest: boolean;
  readonly user: string;
  readonly authData: Buffer;
  readonly database: string | undefined;
  readonly authPlugin: string | undefined;
  /** The connection attributes, as sent (length prefix excluded). */
  readonly attrs: Buffer | undefined;
}

export function parseHandshakeResponse(payload: Buffer): HandshakeResponse {
  const r = new PayloadReader(payload);
  const capabilities = r.u32();
  if ((capabilities & CAP.protocol41) === 0)
    throw new MysqlProtocolError("clients older than protocol 4.1 are not supported");
  const maxPacket = r.u32();
  const charset = r.u8();
  const filler = r.bytes(23);
  const mariadbCapabilities = (capabilities & CAP.longPassword) === 0 ? filler.readUInt32LE(19) : 0;
  const base = { capabilities, maxPacket, charset, mariadbCapabilities };
  if (r.left === 0 && capabilities & CAP.ssl) {
    return {
      ...base,
      sslRequest: true,
      user: "",
      authData: Buffer.alloc(0),
      database: undefined,
      authPlugin: undefined,
      attrs: undefined,
    };
  }
  const user = r.cstring().toString("utf8");
  let authData: Buffer;
  if (capabilities & CAP.pluginAuthLenenc) authData = r.bytes(r.lenenc());
  else if (capabilities & CAP.secureConnection) authData = r.bytes(r.u8());
  else authData = r.cstring();
  const database = capabilities & CAP.connectWithDb && r.left > 0 ? r.cstring().toString("utf8") : undefined;
  const authPlugin = capabilities & CAP.pluginAuth && r.left > 0 ? r.cstring().toString("latin1") : undefined;
  const attrs = capabilities & CAP.connectAttrs && r.left > 0 ? r.bytes(r.lenenc()) : undefined;
  return {
    ...base,
    sslRequest: false,
    user,
    authData: Buffer.from(authData),
    database: database || undefined,
    authPlugin,
    attrs: attrs ? Buffer.from(attrs) : undefined,
  };
}

/** The fixed 32-byte head of a HandshakeResponse41 (all an SSLRequest is). */
export function responseHead(r: {
  capabilities: number;
  maxPacket: number;
  charset: number;
  mariadbCapabilities: number;
}): Buffer {
  const b = Buffer.alloc(32);
  b.writeUInt32LE(r.capabilities >>> 0, 0);
  b.writeUInt32LE(r.maxPacket >>> 0, 4);
  b[8] = r.charset;
  if ((r.capabilities & CAP.longPassword) === 0) b.writeUInt32LE(r.mariadbCapabilities >>> 0, 28);
  return b;
}

export function handshakeResponsePayload(r: Omit<HandshakeResponse, "sslRequest">): Buffer {
  const parts = [responseHead(r), Buffer.from(r.user, "utf8"), Buffer.from([0])];
  if (r.capabilities & CAP.pluginAuthLenenc) parts.push(lenencInt(r.authData.length), r.authData);
  else parts.push(Buffer.from([r.authData.length]), r.authData);
  if (r.capabilities & CAP.connectWithDb) parts.push(Buffer.from(`${r.database ?? ""}\0`, "utf8"));
  if (r.capabilities & CAP.pluginAuth) parts.push(Buffer.from(`${r.authPlugin ?? ""}\0`, "latin1"));
  if (r.capabilities & CAP.connectAttrs) {
    const attrs = r.attrs ?? Buffer.alloc(0);
    parts.push(lenencInt(attrs.length), attrs);
  }
  return Buffer.concat(parts);
}
