import {
  type ListenerRsaKey,
  CACHING_SHA2,
  CLEAR,
  RSA_BITS,
  rsaDecryptPassword,
  SHA2,
} from "./auth-plugins.js";
import { accessDenied, withoutNul } from "./handshake-terms.js";
import type { HandshakeResponse, Packet } from "./packets.js";

export interface ClientTokenInput {
  readonly response: HandshakeResponse;
  /** The nonce of the listener's greeting. */
  readonly nonce: Buffer;
  /** The client speaks TLS to the listener. */
  readonly tls: boolean;
  readonly send: (payload: Buffer) => void;
  readonly read: () => Promise<Packet>;
  readonly rsaKey: () => Promise<ListenerRsaKey>;
}

/**
 * The lease token, by the plugin the client answered with: caching_sha2_password always goes
 * to full authentication (the token in the clear over TLS, else RSA-encrypted with the
 * listener's key); mysql_clear_password over TLS only; any other plugin is switched to
 * caching_sha2_password.
 */
export async function clientToken(o: ClientTokenInput): Promise<string> {
  const { response, nonce: n } = o;
  const user = response.user;
  if (response.authPlugin === CLEAR) {
    if (!o.tls)
      throw accessDenied(user, "mysql_clear_password without TLS", "(mysql_clear_password needs TLS)");
    return withoutNul(response.authData).toString("utf8");
  }
  if (response.authPlugin !== CACHING_SHA2) {
    o.send(
      Buffer.concat([Buffer.from([0xfe]), Buffer.from(`${CACHING_SHA2}\0`, "latin1"), n, Buffer.from([0])]),
    );
    await o.read();
  }
  o.send(Buffer.from([0x01, SHA2.fullAuth]));
  let p = await o.read();
  if (o.tls) return withoutNul(p.payload).toString("utf8");
  const key = await o.rsaKey();
  if (p.payload.length === 1 && p.payload[0] === SHA2.requestPublicKey) {
    o.send(Buffer.concat([Buffer.from([0x01]), key.publicPem]));
    p = await o.read();
  }
  if (p.payload.length !== RSA_BITS / 8)
    throw accessDenied(user, "the token was neither over TLS nor RSA-encrypted");
  try {
    return (await rsaDecryptPassword(p.payload, n, key.privateKey)).toString("utf8");
  } catch {
    throw accessDenied(user, "the RSA-encrypted token did not decrypt");
  }
}
