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
  /** The server's reply to `probe`, when one was sent. */
  readonly probeReply?: Buffer | undefined;
  readonly rest: Buffer;
}

/** The largest reply to a probe (`COMMAND` is some 250 KiB on Redis 7). */
const MAX_PROBE_REPLY_BYTES = 16 * 1024 * 1024;

/** The next whole reply the reader holds, waiting for more as long as it stays under `max`. */
async function nextReply(reader: SocketReader, max: number): Promise<Buffer> {
  for (;;) {
    const end = respValueEnd(reader.peek(), 0);
    if (end >= 0) return reader.take(end);
    if (reader.length > max) throw failed("reply too long");
    await reader.more();
  }
}

/**
 * Connects to the Redis server and sends `login` (AUTH or HELLO … AUTH with the real ACL
 * password). An error reply is a refusal (the client is not shown the server's words).
 */
export async function loginToRedis(input: {
  readonly target: RedisTarget;
  readonly login: Buffer;
  /** A command sent once logged in (`COMMAND`, for statement policy); its reply is returned apart. */
  readonly probe?: Buffer | undefined;
  readonly maxMessageBytes: number;
  readonly signal: AbortSignal;
}): Promise<RedisLogin> {
  const socket = await open(input.target, input.signal);
  const onAbort = () => socket.destroy();
  input.signal.addEventListener("abort", onAbort, { once: true });
  const max = input.probe ? Math.max(input.maxMessageBytes, MAX_PROBE_REPLY_BYTES) : input.maxMessageBytes;
  const reader = new SocketReader(socket, max + 64 * 1024);
  try {
    socket.write(input.login);
    const reply = await nextReply(reader, input.maxMessageBytes);
    if (reply[0] === 0x2d)
      throw failed(
        `server refused: ${reply.toString("utf8", 1, Math.min(reply.length - 2, 40)).split(" ")[0]}`,
      );
    let probeReply: Buffer | undefined;
    if (input.probe) {
      socket.write(input.probe);
      probeReply = await nextReply(reader, max);
    }
    const rest = reader.detach({ pause: true });
    input.signal.removeEventListener("abort", onAbort);
    return { socket, reply, probeReply, rest };
  } catch (err) {
    input.signal.removeEventListener("abort", onAbort);
    reader.detach({ pause: false });
    socket.destroy();
    if (err instanceof HandshakeRefusal) throw err;
    if (err instanceof PeerClosedError) throw failed("the server closed the connection during login");
    throw failed((err as Error).message);
  }
}
