import type { Duplex } from "node:stream";
import type { TokenProof } from "../../leases/index.js";
import { HandshakeRefusal } from "../handshake-refusal.js";
import type { SessionContext } from "../session-context.js";
import type { SocketReader } from "../socket-reader.js";
import { MSG, SQLSTATE } from "./constants.js";
import { cstring, readMessage, violation } from "./packets.js";
import { ScramMalformed, ScramServer } from "./scram-server.js";
import {
  authenticationCleartextPassword,
  authenticationSasl,
  authenticationSaslStep,
} from "./server-messages.js";

/** The server's FATAL for a SCRAM message it cannot parse. */
function malformedScram(): HandshakeRefusal {
  return new HandshakeRefusal(SQLSTATE.protocolViolation, "malformed SCRAM message", "08P01 malformed SCRAM");
}

/**
 * The client's proof that it holds the lease token: SCRAM-SHA-256 against the verifier stored at
 * checkout, so the token never crosses the wire; a cleartext password (the token) only over TLS,
 * for a lease with no verifier. Without TLS and without a verifier, the SCRAM exchange runs on a
 * made-up verifier and fails, as PostgreSQL does for an unknown role.
 */
export async function clientProof(o: {
  ctx: SessionContext;
  reader: SocketReader;
  /** The client's stream (TLS over the accepted socket when the client asked for it). */
  client: Duplex;
  tls: boolean;
  user: string;
}): Promise<string | TokenProof> {
  const { ctx, reader, client, user } = o;
  const verifier = await ctx.leases.tokenVerifier(user, ctx.resource).catch(() => {
    throw new HandshakeRefusal(
      SQLSTATE.connectionFailure,
      "the sidecar cannot check the lease token now",
      "08006 verifier unavailable",
    );
  });
  const refused = () =>
    new HandshakeRefusal(
      SQLSTATE.invalidPassword,
      `password authentication failed for user "${user.slice(0, 64)}"`,
      "28P01 scram proof",
    );
  if (verifier === undefined && o.tls) {
    client.write(authenticationCleartextPassword());
    const pm = await readMessage(reader, ctx.maxMessageBytes);
    if (pm.type !== MSG.password) throw violation(`expected password response, got message type ${pm.type}`);
    return cstring(pm.body, 0).value;
  }
  const scram = new ScramServer(verifier);
  client.write(authenticationSasl());
  const initial = await readMessage(reader, ctx.maxMessageBytes);
  if (initial.type !== MSG.password)
    throw violation(`expected SASL response, got message type ${initial.type}`);
  const mechanism = cstring(initial.body, 0);
  if (mechanism.value !== "SCRAM-SHA-256") {
    throw new HandshakeRefusal(
      SQLSTATE.protocolViolation,
      "client selected an invalid SASL authentication mechanism",
      "08P01 sasl mechanism",
    );
  }
  const len = initial.body.length >= mechanism.next + 4 ? initial.body.readInt32BE(mechanism.next) : -1;
  const data = initial.body.subarray(mechanism.next + 4);
  if (len < 0 || len !== data.length) throw malformedScram();
  try {
    client.write(authenticationSaslStep("continue", scram.first(data.toString("utf8"))));
    const response = await readMessage(reader, ctx.maxMessageBytes);
    if (response.type !== MSG.password)
      throw violation(`expected SASL response, got message type ${response.type}`);
    const serverFinal = scram.final(response.body.toString("utf8"));
    if (serverFinal === undefined) throw refused();
    client.write(authenticationSaslStep("final", serverFinal));
  } catch (err) {
    if (err instanceof ScramMalformed) throw malformedScram();
    throw err;
  }
  return { kind: "scram", leaseId: user, resource: ctx.resource, kid: verifier?.kid };
}
