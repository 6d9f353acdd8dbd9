import { connectBackendTcp } from "../backend-tcp.js";
import { isIP, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import { connect as tlsConnect } from "node:tls";
import { serialize } from "pg-protocol";
import { HandshakeRefusal } from "../handshake-refusal.js";
import { SocketReader } from "../socket-reader.js";
import { SQLSTATE } from "./constants.js";
import type { PgTarget } from "./target.js";

function unreachable(what: string): HandshakeRefusal {
  return new HandshakeRefusal(
    SQLSTATE.connectionFailure,
    "the sidecar could not reach the database server",
    `08006 ${what}`,
  );
}

function tcp(target: PgTarget, signal: AbortSignal): Promise<Socket> {
  return connectBackendTcp(target, signal, unreachable);
}

/**
 * Opens a connection to the database server, negotiating TLS first when the registration
 * asks for it (`ssl`). Aborting `signal` destroys the socket.
 */
export async function openBackendSocket(target: PgTarget, signal: AbortSignal): Promise<Duplex> {
  const sock = await tcp(target, signal);
  if (target.ssl === undefined || target.ssl === false) return sock;
  const reader = new SocketReader(sock, 1024);
  sock.write(serialize.requestSsl());
  try {
    await reader.need(1);
  } catch {
    throw unreachable("closed during SSLRequest");
  }
  const answer = reader.take(1)[0];
  // Bytes after the 'S' would be read as if they came over TLS (CVE-2021-23222): refuse.
  if (reader.detach({ pause: false }).length > 0) throw unreachable("unexpected bytes after the SSL answer");
  if (answer !== 0x53) {
    sock.destroy();
    throw unreachable("the server does not support TLS but the registration requires it");
  }
  const opts = typeof target.ssl === "object" ? target.ssl : {};
  const secure = tlsConnect({
    socket: sock,
    servername: isIP(target.host) ? undefined : target.host,
    rejectUnauthorized: opts.rejectUnauthorized ?? true,
    ...(opts.ca === undefined ? {} : { ca: opts.ca }),
  });
  await new Promise<void>((resolve, reject) => {
    const onAbort = () => secure.destroy(new Error("aborted"));
    signal.addEventListener("abort", onAbort, { once: true });
    secure.once("secureConnect", () => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    });
    secure.once("error", (err) => {
      signal.removeEventListener("abort", onAbort);
      reject(unreachable(`tls: ${err.message}`));
    });
  });
  return secure;
}
