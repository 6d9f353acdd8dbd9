import { HandshakeRefusal } from "../handshake-refusal.js";
import { SQLSTATE } from "./constants.js";
import type { FirstPacket } from "./packets.js";
import { negotiateProtocolVersion } from "./server-messages.js";

/** Startup parameters the listener answers itself; the rest go to the backend. */
const OWN_PARAMS = new Set(["user", "database", "replication"]);
const FALSE_WORDS = new Set(["false", "off", "no", "0"]);

/** What a startup message asks, as the listener takes it. */
export interface Startup {
  readonly params: ReadonlyMap<string, string>;
  /** The lease id the client logs in as. */
  readonly user: string;
  /** The parameters passed on to the backend's own startup. */
  readonly passOn: ReadonlyArray<readonly [string, string]>;
  /** A NegotiateProtocolVersion to send first (a newer minor version, or `_pq_.` options). */
  readonly negotiate?: Buffer | undefined;
}

/**
 * Reads a startup message as PostgreSQL does: a user is required (28000), replication
 * connections are refused (0A000), and a newer minor version or `_pq_.` options are answered
 * with NegotiateProtocolVersion. @throws HandshakeRefusal
 */
export function readStartup(first: Extract<FirstPacket, { kind: "startup" }>): Startup {
  const params = new Map(first.params);
  const unknownOptions = first.params.map(([k]) => k).filter((k) => k.startsWith("_pq_."));
  const negotiate =
    first.minor > 0 || unknownOptions.length > 0 ? negotiateProtocolVersion(0, unknownOptions) : undefined;
  const user = params.get("user");
  if (!user) {
    throw new HandshakeRefusal(
      SQLSTATE.invalidAuthorization,
      "no PostgreSQL user name specified in startup packet",
      "28000 no user",
    );
  }
  const replication = params.get("replication");
  if (replication !== undefined && !FALSE_WORDS.has(replication.toLowerCase())) {
    throw new HandshakeRefusal(
      SQLSTATE.featureNotSupported,
      "replication connections are not supported through the proxy",
      "0A000 replication",
    );
  }
  const passOn = first.params.filter(([k]) => !OWN_PARAMS.has(k) && !k.startsWith("_pq_."));
  return { params, user, passOn, negotiate };
}
