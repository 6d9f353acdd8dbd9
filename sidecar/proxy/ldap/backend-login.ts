import type { Duplex } from "node:stream";
import { connect as tlsConnect, type TLSSocket } from "node:tls";
import { connectBackendTcp } from "../backend-tcp.js";
import { HandshakeRefusal } from "../handshake-refusal.js";
import { PeerClosedError, SocketReader } from "../socket-reader.js";
import { LdapProtocolError, readFrame } from "./ber-frame.js";
import {
  decodeMessage,
  extendedRequest,
  OP,
  opTag,
  RESULT,
  readResult,
  STARTTLS_OID,
  simpleBindRequest,
} from "./messages.js";
import type { LdapProxyTarget } from "./target.js";

/** The messageIDs of the listener's own requests on a new backend connection (the client's follow). */
const STARTTLS_ID = 1;
const BIND_ID = 2;

function failed(reason: string): HandshakeRefusal {
  return new HandshakeRefusal(
    String(RESULT.unavailable),
    "the sidecar could not log in to the LDAP server",
    `${RESULT.unavailable} ${reason}`,
  );
}

/** TLS over `socket` (or a new connection), resolved once the server's certificate checked out. */
function startTls(target: LdapProxyTarget, signal: AbortSignal, socket?: Duplex): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({
      ...target.tlsOptions,
      ...(socket === undefined ? { host: target.host, port: target.port } : { socket, host: target.host }),
    });
    const onAbort = () => s.destroy(new Error("aborted"));
    signal.addEventListener("abort", onAbort, { once: true });
    s.once("secureConnect", () => {
      signal.removeEventListener("abort", onAbort);
      s.setNoDelay(true);
      if (socket === undefined) s.setKeepAlive(true, 30_000);
      resolve(s);
    });
    s.once("error", (err: NodeJS.ErrnoException) => {
      signal.removeEventListener("abort", onAbort);
      s.destroy();
      reject(failed(`tls: ${err.code ?? err.message}`));
    });
  });
}

/** Sends one request and reads the response to it: its protocolOp tag, result code and message. */
async function exchange(
  socket: Duplex,
  reader: SocketReader,
  request: Buffer,
  maxBytes: number,
): Promise<{ tag: number; code: number; message: string; id: number }> {
  socket.write(request);
  const reply = decodeMessage(await readFrame(reader, maxBytes));
  return { tag: opTag(reply.op), id: reply.messageId, ...readResult(reply.op) };
}

/** A bound backend connection (paused) and any bytes the server sent after the BindResponse. */
export interface LdapLogin {
  readonly socket: Duplex;
  readonly rest: Buffer;
}

/**
 * Connects to the directory (ldaps://, or ldap:// upgraded by StartTLS when the registration
 * says so, before anything else is sent) and binds as `dn` with the account's real password.
 * A refused bind or any fault is a HandshakeRefusal (`unavailable`); the server's words are kept
 * for the audit record only.
 */
export async function loginToLdap(input: {
  readonly target: LdapProxyTarget;
  readonly dn: string;
  readonly password: string;
  readonly maxMessageBytes: number;
  readonly signal: AbortSignal;
}): Promise<LdapLogin> {
  const { target, signal } = input;
  let socket: Duplex =
    target.tls === "implicit"
      ? await startTls(target, signal)
      : await connectBackendTcp(target, signal, failed);
  const onAbort = () => socket.destroy();
  signal.addEventListener("abort", onAbort, { once: true });
  let reader = new SocketReader(socket, input.maxMessageBytes + 64 * 1024);
  try {
    if (target.tls === "starttls") {
      const r = await exchange(
        socket,
        reader,
        extendedRequest(STARTTLS_ID, STARTTLS_OID),
        input.maxMessageBytes,
      );
      if (r.tag !== OP.extendedResponse || r.id !== STARTTLS_ID || r.code !== RESULT.success)
        throw failed(`StartTLS refused (result ${r.code})`);
      if (reader.detach({ pause: true }).length > 0) throw failed("bytes after the StartTLS response");
      signal.removeEventListener("abort", onAbort);
      socket = await startTls(target, signal, socket);
      signal.addEventListener("abort", onAbort, { once: true });
      reader = new SocketReader(socket, input.maxMessageBytes + 64 * 1024);
    }
    const bind = simpleBindRequest(BIND_ID, input.dn, input.password);
    const r = await exchange(socket, reader, bind, input.maxMessageBytes);
    if (r.tag !== OP.bindResponse || r.id !== BIND_ID) throw failed("the server did not answer the bind");
    if (r.code !== RESULT.success) throw failed(`bind refused (result ${r.code})`);
    const rest = reader.detach({ pause: true });
    signal.removeEventListener("abort", onAbort);
    return { socket, rest };
  } catch (err) {
    signal.removeEventListener("abort", onAbort);
    reader.detach({ pause: false });
    socket.destroy();
    if (err instanceof HandshakeRefusal) throw err;
    if (err instanceof PeerClosedError) throw failed("the server closed the connection during login");
    if (err instanceof LdapProtocolError) throw failed(`the server's answer: ${err.message}`);
    throw failed((err as Error).message);
  }
}
