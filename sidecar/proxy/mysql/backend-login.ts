import { connectBackendTcp } from "../backend-tcp.js";
import { isIP, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import { connect as tlsConnect } from "node:tls";
import { HandshakeRefusal } from "../handshake-refusal.js";
import { PeerClosedError, SocketReader } from "../socket-reader.js";
import {
  CACHING_SHA2,
  CLEAR,
  NATIVE,
  nativeScramble,
  rsaEncryptPassword,
  SHA2,
  sha2Scramble,
} from "./auth-plugins.js";
import {
  CAP,
  ER,
  type Greeting,
  handshakeResponsePayload,
  MysqlProtocolError,
  packet,
  PayloadReader,
  parseGreeting,
  readPacket,
  responseHead,
} from "./packets.js";
import type { MysqlProxyTarget } from "./target.js";

/** What the client negotiated with the listener, to be negotiated the same way with the server. */
export interface ClientTerms {
  readonly capabilities: number;
  readonly mariadbCapabilities: number;
  readonly maxPacket: number;
  readonly charset: number;
  readonly database: string | undefined;
  readonly attrs: Buffer | undefined;
}

export interface MysqlLoginInput {
  readonly target: MysqlProxyTarget;
  readonly username: string;
  readonly password: string;
  readonly terms: ClientTerms;
  readonly maxMessageBytes: number;
  readonly signal: AbortSignal;
  /** Sees the server's greeting before anything is sent; throws a HandshakeRefusal to stop. */
  readonly onGreeting: (g: Greeting) => void;
}

/** A logged-in server connection (paused), its OK packet's payload, and any bytes after it. */
export interface MysqlLogin {
  readonly socket: Duplex;
  readonly greeting: Greeting;
  readonly ok: Buffer;
  readonly rest: Buffer;
}

/** Capabilities that describe the listener's own leg only, never asked of the server as the client's. */
const AUTH_CAPS = CAP.protocol41 | CAP.secureConnection | CAP.pluginAuth | CAP.pluginAuthLenenc;

export function backendFailed(reason: string): HandshakeRefusal {
  return new HandshakeRefusal(
    String(ER.unknown),
    "the sidecar could not log in to the database server",
    `${ER.unknown} ${reason}`,
  );
}

function tcp(target: MysqlProxyTarget, signal: AbortSignal): Promise<Socket> {
  return connectBackendTcp(target, signal, backendFailed);
}

function upgrade(sock: Socket, target: MysqlProxyTarget, signal: AbortSignal): Promise<Duplex> {
  const opts = typeof target.ssl === "object" ? target.ssl : {};
  const secure = tlsConnect({
    socket: sock,
    servername: isIP(target.host) ? undefined : target.host,
    rejectUnauthorized: opts.rejectUnauthorized ?? true,
    ...(opts.ca === undefined ? {} : { ca: opts.ca }),
  });
  return new Promise((resolve, reject) => {
    const onAbort = () => secure.destroy(new Error("aborted"));
    signal.addEventListener("abort", onAbort, { once: true });
    secure.once("secureConnect", () => {
      signal.removeEventListener("abort", onAbort);
      resolve(secure);
    });
    secure.once("error", (err) => {
      signal.removeEventListener("abort", onAbort);
      reject(backendFailed(`tls: ${err.message}`));
    });
  });
}

/** The server's greeting alone, from a connection closed right after (what capabilities it has). */
export async function readServerGreeting(target: MysqlProxyTarget, signal: AbortSignal): Promise<Greeting> {
  const sock = await tcp(target, signal);
  // A server that accepts and says nothing must not hold the read (and every client waiting on it).
  const onAbort = () => sock.destroy();
  signal.addEventListener("abort", onAbort, { once: true });
  const reader = new SocketReader(sock, 64 * 1024);
  try {
    const p = await readPacket(reader, 64 * 1024);
    return parseGreeting(p.payload);
  } finally {
    signal.removeEventListener("abort", onAbort);
    reader.detach({ pause: false });
    sock.destroy();
  }
}

/** The first answer for `plugin`; undefined for a plugin the proxy cannot speak. */
function firstAnswer(plugin: string, password: Buffer, nonce: Buffer, tls: boolean): Buffer | undefined {
  if (plugin === NATIVE) return nativeScramble(password, nonce);
  if (plugin === CACHING_SHA2) return sha2Scramble(password, nonce);
  // The password in the clear: only over TLS to the server.
  if (plugin === CLEAR) return tls ? Buffer.concat([password, Buffer.from([0])]) : undefined;
  return undefined;
}

/**
 * Connects to the server and logs in as the account with its real password, the way the server
 * asks (mysql_native_password, caching_sha2_password over TLS or with the server's RSA key,
 * mysql_clear_password over TLS only), with the client's capabilities, character set, database
 * and connection attributes. A refusal by the server is a HandshakeRefusal carrying its ERR.
 */
export async function loginToMysql(input: MysqlLoginInput): Promise<MysqlLogin> {
  const sock = await tcp(input.target, input.signal);
  let socket: Duplex = sock;
  const onAbort = () => socket.destroy();
  input.signal.addEventListener("abort", onAbort, { once: true });
  let reader = new SocketReader(sock, input.maxMessageBytes + 64 * 1024);
  const max = input.maxMessageBytes;
  const password = Buffer.from(input.password, "utf8");
  try {
    const first = await readPacket(reader, max);
    if (first.payload[0] === 0xff)
      throw new HandshakeRefusal(String(ER.unknown), "", "server error", first.payload);
    const greeting = parseGreeting(first.payload);
    input.onGreeting(greeting);
    const tls = input.target.ssl !== undefined && input.target.ssl !== false;
    if (tls && (greeting.capabilities & CAP.ssl) === 0)
      throw backendFailed("the server does not support TLS but the registration requires it");
    const t = input.terms;
    const serverAuth = greeting.capabilities & AUTH_CAPS;
    let capabilities =
      ((t.capabilities & ~AUTH_CAPS & ~CAP.ssl & ~CAP.connectWithDb & ~CAP.connectAttrs) |
        serverAuth |
        CAP.protocol41 |
        CAP.secureConnection) >>>
      0;
    if (tls) capabilities |= CAP.ssl;
    if (t.database !== undefined) capabilities |= CAP.connectWithDb;
    if (t.attrs !== undefined && greeting.capabilities & CAP.connectAttrs) capabilities |= CAP.connectAttrs;
    const terms = { ...t, capabilities: capabilities >>> 0 };
    let seq = 1;
    if (tls) {
      reader.detach({ pause: false });
      sock.write(packet(seq++, responseHead(terms)));
      socket = await upgrade(sock, input.target, input.signal);
      reader = new SocketReader(socket, max + 64 * 1024);
    }
    let plugin = greeting.authPlugin;
    let nonce = greeting.nonce.subarray(0, 20);
    let answer = firstAnswer(plugin, password, nonce, tls);
    if (answer === undefined) {
      // Answer as native; a server wanting another plugin switches to it.
      plugin = NATIVE;
      answer = nativeScramble(password, nonce);
    }
    socket.write(
      packet(
        seq,
        handshakeResponsePayload({
          ...terms,
          user: input.username,
          authData: answer,
          authPlugin: plugin,
        }),
      ),
    );
    for (;;) {
      const p = await readPacket(reader, max);
      seq = (p.seq + 1) & 0xff;
      const kind = p.payload[0];
      if (kind === 0x00) {
        const rest = reader.detach({ pause: true });
        input.signal.removeEventListener("abort", onAbort);
        return { socket, greeting, ok: p.payload, rest };
      }
      if (kind === 0xff)
        throw new HandshakeRefusal(String(ER.accessDenied), "", "server refused the login", p.payload);
      if (kind === 0xfe) {
        const r = new PayloadReader(p.payload, 1);
        plugin = r.cstring().toString("latin1");
        const data = r.rest();
        nonce = data.at(-1) === 0 ? data.subarray(0, -1) : data;
        const next = firstAnswer(plugin, password, nonce, tls);
        if (next === undefined)
          throw backendFailed(`the server asks for an unsupported plugin ${plugin.slice(0, 40)}`);
        socket.write(packet(seq, next));
        continue;
      }
      if (kind === 0x01 && plugin === CACHING_SHA2) {
        const what = p.payload[1];
        if (what === SHA2.fastAuthOk) continue;
        if (what === SHA2.fullAuth && tls) {
          socket.write(packet(seq, Buffer.concat([password, Buffer.from([0])])));
          continue;
        }
        if (what === SHA2.fullAuth) {
          socket.write(packet(seq, Buffer.from([SHA2.requestPublicKey])));
          continue;
        }
        // The server's public key, asked for above.
        const pem = p.payload.subarray(1).toString("latin1");
        socket.write(packet(seq, rsaEncryptPassword(password, nonce, pem)));
        continue;
      }
      throw backendFailed("unexpected packet during login");
    }
  } catch (err) {
    input.signal.removeEventListener("abort", onAbort);
    reader.detach({ pause: false });
    socket.destroy();
    if (err instanceof HandshakeRefusal) throw err;
    if (err instanceof PeerClosedError) throw backendFailed("the server closed the connection during login");
    if (err instanceof MysqlProtocolError) throw backendFailed(err.message);
    throw backendFailed((err as Error).message);
  }
}
