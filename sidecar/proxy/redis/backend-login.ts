import { isIP, connect as tcpConnect } from "node:net";
import type { Duplex } from "node:stream";
import { connect as tlsConnect } from "node:tls";
import { HandshakeRefusal } from "../handshake-refusal.js";
import { PeerClosedError, SocketReader } from "../socket-reader.js";
import { respValueEnd } from "./resp.js";
import type { RedisTarget } from "./target.js";

function failed(reason: string): HandshakeRefusal {
  return new HandshakeRefusal("ERR", "the sidecar could not log in to the Redis server", `ERR ${reason}`);
}

function open(target: RedisTarget, signal: AbortSignal): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    const opts = typeof target.tls === "object" ? target.tls : {};
    const sock = target.tls
      ? tlsConnect({
          host: target.host,
          port: target.port,
          servername: opts.servername ?? (isIP(target.host) ? undefined : target.host),
          rejectUnauthorized: opts.rejectUnauthorized ?? true,
          ...(opts.ca === undefined ? {} : { ca: opts.ca }),
        })
      : tcpConnect({ host: target.host, port: target.port });
    const onAbort = () => sock.destroy(new Error("aborted"));
    signal.addEventListener("abort", onAbort, { once: true });
    sock.once(target.tls ? "secureConnect" : "connect", () => {
      signal.removeEventListener("abort", onAbort);
      sock.setNoDelay(true);
      sock.setKeepAlive(true, 30_000);
      resolve(sock);
    });
    sock.once("error", (err: NodeJS.ErrnoException) => {
      signal.removeEventListener("abort", onAbort);
      reject(failed(`connect: ${err.code ?? err.message}`));
    });
  });
}

/** A logged-in Redis connection (paused), the server's reply to the login command, and any bytes after it. */
export interface RedisLogin {
  readonly socket: Duplex;
  readonly reply: Buffer;
  readonly rest: Buffer;
}

/**
 * Connects to the Redis server and sends `login` (AUTH or HELLO … AUTH with the real ACL
 * password). An error reply is a refusal (the client is not shown the server's words).
 */
export async function loginToRedis(input: {
  readonly target: RedisTarget;
  readonly login: Buffer;
  readonly maxMessageBytes: number;
  readonly signal: AbortSignal;
}): Promise<RedisLogin> {
  const socket = await open(input.target, input.signal);
  const onAbort = () => socket.destroy();
  input.signal.addEventListener("abort", onAbort, { once: true });
  const reader = new SocketReader(socket, input.maxMessageBytes + 64 * 1024);
  try {
    socket.write(input.login);
    let end = -1;
    for (;;) {
      end = respValueEnd(reader.peek(), 0);
      if (end >= 0) break;
      if (reader.length > input.maxMessageBytes) throw failed("reply too long");
      await reader.more();
    }
    const reply = reader.take(end);
    if (reply[0] === 0x2d)
      throw failed(
        `server refused: ${reply.toString("utf8", 1, Math.min(reply.length - 2, 40)).split(" ")[0]}`,
      );
    const rest = reader.detach({ pause: true });
    input.signal.removeEventListener("abort", onAbort);
    return { socket, reply, rest };
  } catch (err) {
    input.signal.removeEventListener("abort", onAbort);
    reader.detach({ pause: false });
    socket.destroy();
    if (err instanceof HandshakeRefusal) throw err;
    if (err instanceof PeerClosedError) throw failed("the server closed the connection during login");
    throw failed((err as Error).message);
  }
}
