import { createHash } from "node:crypto";
import type { Duplex } from "node:stream";
import { serialize } from "pg-protocol";
import type { BackendMessage } from "pg-protocol/dist/messages.js";
import { Parser } from "pg-protocol/dist/parser.js";
import { HandshakeRefusal } from "../handshake-refusal.js";
import { PeerClosedError, SocketReader } from "../socket-reader.js";
import { MSG, SQLSTATE } from "./constants.js";
import { openBackendSocket } from "./backend-socket.js";
import { readMessage, startupMessage } from "./packets.js";
import { ScramClient } from "./scram-client.js";
import type { PgTarget } from "./target.js";

export interface BackendLoginInput {
  readonly target: PgTarget;
  readonly username: string;
  readonly password: string;
  readonly database: string;
  /** Other startup parameters the client gave (application_name, client_encoding, options…). */
  readonly params: ReadonlyArray<readonly [string, string]>;
  readonly maxMessageBytes: number;
  readonly signal: AbortSignal;
}

/** A logged-in backend connection, paused, and what it said before its first ReadyForQuery. */
export interface BackendLogin {
  readonly socket: Duplex;
  /** ParameterStatus, NoticeResponse and the ReadyForQuery frames, in order, to relay to the client. */
  readonly frames: readonly Buffer[];
  /** The backend's cancel key (absent if it sent none). */
  readonly key: { readonly pid: number; readonly secret: number } | undefined;
  /** Bytes that came after ReadyForQuery. */
  readonly rest: Buffer;
}

function prop(msg: BackendMessage, name: string): unknown {
  return (msg as unknown as Record<string, unknown>)[name];
}

function decode(frame: Buffer): BackendMessage {
  let out: BackendMessage | undefined;
  new Parser().parse(frame, (m) => {
    out = m;
  });
  if (!out)
    throw new HandshakeRefusal(SQLSTATE.connectionFailure, "the database server sent a malformed message");
  return out;
}

function failed(reason: string): HandshakeRefusal {
  return new HandshakeRefusal(
    SQLSTATE.connectionFailure,
    "the sidecar could not log in to the database server",
    `08006 ${reason}`,
  );
}

function md5Hex(s: string | Buffer): string {
  return createHash("md5").update(s).digest("hex");
}

/**
 * Connects and logs in to the real server as the leased account (SCRAM-SHA-256, MD5,
 * cleartext or trust, whichever the server asks for). An ErrorResponse from the server is
 * thrown as a HandshakeRefusal carrying that frame, to be relayed to the client as is.
 */
export async function loginToBackend(input: BackendLoginInput): Promise<BackendLogin> {
  const socket = await openBackendSocket(input.target, input.signal);
  const onAbort = () => socket.destroy();
  input.signal.addEventListener("abort", onAbort, { once: true });
  const reader = new SocketReader(socket, input.maxMessageBytes + 64 * 1024);
  try {
    socket.write(startupMessage([["user", input.username], ["database", input.database], ...input.params]));
    const frames: Buffer[] = [];
    let key: BackendLogin["key"];
    let scram: ScramClient | undefined;
    for (;;) {
      const m = await readMessage(reader, input.maxMessageBytes);
      switch (m.type) {
        case MSG.auth: {
          const msg = decode(m.frame);
          if (msg.name === "authenticationOk") break;
          if (msg.name === "authenticationCleartextPassword") {
            socket.write(serialize.password(input.password));
          } else if (msg.name === "authenticationMD5Password") {
            const salt = prop(msg, "salt") as Buffer;
            const inner = md5Hex(input.password + input.username);
            socket.write(serialize.password(`md5${md5Hex(Buffer.concat([Buffer.from(inner), salt]))}`));
          } else if (msg.name === "authenticationSASL") {
            const mechanisms = prop(msg, "mechanisms");
            if (!Array.isArray(mechanisms) || !mechanisms.includes("SCRAM-SHA-256")) {
              throw failed("the server offers no SASL mechanism the proxy supports");
            }
            scram = new ScramClient(input.password);
            socket.write(serialize.sendSASLInitialResponseMessage("SCRAM-SHA-256", scram.first()));
          } else if (msg.name === "authenticationSASLContinue" && scram) {
            socket.write(serialize.sendSCRAMClientFinalMessage(await scram.final(String(prop(msg, "data")))));
          } else if (msg.name === "authenticationSASLFinal" && scram) {
            if (!scram.verify(String(prop(msg, "data"))))
              throw failed("the server's SCRAM signature is wrong");
          } else {
            throw failed(`unsupported authentication request ${msg.name}`);
          }
          break;
        }
        case MSG.error: {
          const code = String(prop(decode(m.frame), "code") ?? "");
          throw new HandshakeRefusal(
            code,
            "the database server refused the login",
            `${code} backend refused`,
            m.frame,
          );
        }
        case MSG.backendKeyData:
          if (m.body.length >= 8) key = { pid: m.body.readInt32BE(0), secret: m.body.readInt32BE(4) };
          break;
        case MSG.parameterStatus:
        case MSG.notice:
          frames.push(m.frame);
          break;
        case MSG.negotiateProtocol:
          break;
        case MSG.readyForQuery: {
          frames.push(m.frame);
          const rest = reader.detach({ pause: true });
          input.signal.removeEventListener("abort", onAbort);
          return { socket, frames, key, rest };
        }
        default:
          throw failed(`unexpected message type ${m.type} during login`);
      }
    }
  } catch (err) {
    input.signal.removeEventListener("abort", onAbort);
    reader.detach({ pause: false });
    socket.destroy();
    if (err instanceof PeerClosedError) throw failed("the server closed the connection during login");
    // A malformed server message is the server's fault, not the client's protocol violation.
    if (err instanceof HandshakeRefusal && (err.raw || err.code !== SQLSTATE.protocolViolation)) throw err;
    throw failed((err as Error).message);
  }
}
