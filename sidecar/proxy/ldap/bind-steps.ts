import { parseDn } from "../../../adapters/ldap/index.js";
import { LdapProtocolError } from "./ber-frame.js";
import {
  bindResponse,
  CLIENT_OPS,
  type DecodedMessage,
  extendedRequestName,
  extendedResponse,
  OP,
  opTag,
  RESULT,
  readBindRequest,
  refusalFor,
  STARTTLS_OID,
} from "./messages.js";

/** What the listener does with one client message before the session is bound. */
export type BindStep =
  | { readonly kind: "close" }
  | { readonly kind: "ignore" }
  | { readonly kind: "reply"; readonly reply: Buffer }
  /** Answer `reply` (success), then start TLS. */
  | { readonly kind: "starttls"; readonly reply: Buffer }
  /** A simple bind to check: the lease named by `dn`, the token in `password`. */
  | { readonly kind: "bind"; readonly dn: string; readonly password: string };

const HOW = "bind with DN cn=<lease id> (or the lease id alone) and the lease token as password";

/**
 * The lease id a bind DN names: the value of `cn=<lease id>`, else the DN itself (the lease id
 * alone). A DN that names anything else yields a string no lease has, and the bind is refused.
 */
export function leaseIdOfBindDn(dn: string): string {
  try {
    const rdns = parseDn(dn);
    const only = rdns.length === 1 && rdns[0]?.length === 1 ? rdns[0][0] : undefined;
    if (only && only.type.toLowerCase() === "cn") return only.value;
  } catch {
    // Not a DN: the lease id alone.
  }
  return dn;
}

/**
 * Decides a message received before the bind. StartTLS is answered and TLS started (once, when
 * offered: else `operationsError` or `protocolError` as RFC 4511 section 4.14.2 says); a simple
 * LDAPv3 bind goes on to the token check; SASL gets `authMethodNotSupported`, an anonymous or
 * unauthenticated bind `invalidCredentials`; other requests `operationsError`; unbind closes.
 */
export function firstBindStep(m: DecodedMessage, tls: { tls: boolean; offered: boolean }): BindStep {
  const tag = opTag(m.op);
  if (!CLIENT_OPS.has(tag)) throw new LdapProtocolError("a message that is not a client request");
  if (tag === OP.unbindRequest) return { kind: "close" };
  if (tag === OP.abandonRequest) return { kind: "ignore" };
  if (tag === OP.extendedRequest && extendedRequestName(m.op) === STARTTLS_OID) {
    if (tls.tls)
      return {
        kind: "reply",
        reply: extendedResponse(m.messageId, RESULT.operationsError, "TLS is already on"),
      };
    if (!tls.offered)
      return {
        kind: "reply",
        reply: extendedResponse(
          m.messageId,
          RESULT.protocolError,
          "StartTLS is not offered by this listener",
        ),
      };
    return { kind: "starttls", reply: extendedResponse(m.messageId, RESULT.success, "", STARTTLS_OID) };
  }
  if (tag !== OP.bindRequest) {
    const reply = refusalFor(tag, m.messageId, RESULT.operationsError, `bind first: ${HOW}`);
    return reply === null ? { kind: "ignore" } : { kind: "reply", reply };
  }
  const bind = readBindRequest(m.op);
  if (bind.version !== 3)
    return { kind: "reply", reply: bindResponse(m.messageId, RESULT.protocolError, "only LDAPv3 is served") };
  if (bind.auth.kind === "sasl")
    return {
      kind: "reply",
      reply: bindResponse(m.messageId, RESULT.authMethodNotSupported, `SASL is not served: ${HOW}`),
    };
  if (bind.name === "" || bind.auth.password.length === 0)
    return {
      kind: "reply",
      reply: bindResponse(m.messageId, RESULT.invalidCredentials, `anonymous binds are refused: ${HOW}`),
    };
  return { kind: "bind", dn: bind.name, password: bind.auth.password.toString("utf8") };
}
