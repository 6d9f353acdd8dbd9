import type * as asn1js from "asn1js";
import { LdapProtocolError } from "./ber-frame.js";
import { namesAccountOrAbove, type RdnValues } from "./dn-match.js";
import {
  bindResponse,
  type DecodedMessage,
  entryOf,
  extendedRequestName,
  extendedResponse,
  OP,
  opTag,
  PASSWORD_MODIFY_OID,
  RESULT,
  refusalFor,
  STARTTLS_OID,
} from "./messages.js";

/** A request the listener answers itself: the answer, and the rule that refused it (for the log). */
export interface Refusal {
  readonly reply: Buffer;
  readonly rule: string;
}

/** Attributes that hold a password (names and OIDs, lowercase): writing one is a password change. */
const PASSWORD_ATTRIBUTES = new Set([
  "userpassword",
  "2.5.4.35",
  "unicodepwd",
  "1.2.840.113556.1.4.90",
  "authpassword",
  "1.3.6.1.4.1.4203.1.3.4",
]);

const SECOND_BIND =
  "this connection is bound to its lease; a bind to any other identity is refused (open a new connection)";
const ACCOUNT_ENTRY =
  "the leased account's entry (or one above it) cannot be renamed, moved or deleted through the listener: leasehold rotates the account by its DN";
const PASSWORD_CHANGE =
  "the account's password is managed by leasehold: changing a password through the listener is refused";

function blocks(block: asn1js.AsnType | undefined): asn1js.AsnType[] {
  const v = (block as { valueBlock?: { value?: unknown } } | undefined)?.valueBlock?.value;
  return Array.isArray(v) ? (v as asn1js.AsnType[]) : [];
}

/** An AttributeDescription without its options (`userPassword;binary`), lowercase. */
function attributeType(block: asn1js.AsnType | undefined): string {
  const view = (block as { valueBlock?: { valueHexView?: Uint8Array } } | undefined)?.valueBlock
    ?.valueHexView;
  if (view === undefined) throw new LdapProtocolError("an attribute description is malformed");
  const text = Buffer.from(view).toString("utf8").toLowerCase();
  const semi = text.indexOf(";");
  return (semi < 0 ? text : text.slice(0, semi)).trim();
}

/**
 * True when a ModifyRequest's changes, or an AddRequest's attributes, write a password
 * attribute (of any entry: like the SQL listeners, the filter errs on the side of refusing).
 */
function writesPassword(op: asn1js.AsnType, tag: number): boolean {
  const [, list] = blocks(op);
  for (const item of blocks(list)) {
    // ModifyRequest: change ::= SEQUENCE { operation, modification PartialAttribute }.
    const attribute = tag === OP.modifyRequest ? blocks(item)[1] : item;
    if (PASSWORD_ATTRIBUTES.has(attributeType(blocks(attribute)[0]))) return true;
  }
  return false;
}

/**
 * What the listener does with a request of a bound session: null to relay it, else its answer.
 * Refused: any bind (the session stays the lease's account: `invalidCredentials`), StartTLS
 * (TLS is the listener's, set up before the bind: `operationsError`), and password changes,
 * the Password Modify extended operation or a modify or add that writes a password attribute
 * (`insufficientAccessRights`); and a rename, move or delete of the account's own entry or one
 * above it (`account`: its DN's RDN values, see dn-match.ts), which would leave leasehold rotating
 * a DN that no longer exists (`insufficientAccessRights`).
 */
export function sessionRefusal(m: DecodedMessage, account: RdnValues | null): Refusal | null {
  const tag = opTag(m.op);
  if ((tag === OP.modDnRequest || tag === OP.delRequest) && namesAccountOrAbove(entryOf(m.op), account)) {
    const reply = refusalFor(tag, m.messageId, RESULT.insufficientAccessRights, ACCOUNT_ENTRY);
    return reply === null
      ? null
      : {
          reply,
          rule: tag === OP.modDnRequest ? "rename of the account's entry" : "delete of the account's entry",
        };
  }
  if (tag === OP.bindRequest)
    return { reply: bindResponse(m.messageId, RESULT.invalidCredentials, SECOND_BIND), rule: "second bind" };
  if (tag === OP.extendedRequest) {
    const name = extendedRequestName(m.op);
    if (name === STARTTLS_OID)
      return {
        reply: extendedResponse(
          m.messageId,
          RESULT.operationsError,
          "StartTLS is only possible before the bind; use StartTLS or ldaps:// when connecting",
        ),
        rule: "StartTLS after bind",
      };
    if (name === PASSWORD_MODIFY_OID)
      return {
        reply: extendedResponse(m.messageId, RESULT.insufficientAccessRights, PASSWORD_CHANGE),
        rule: "password modify",
      };
    return null;
  }
  if ((tag === OP.modifyRequest || tag === OP.addRequest) && writesPassword(m.op, tag)) {
    const reply = refusalFor(tag, m.messageId, RESULT.insufficientAccessRights, PASSWORD_CHANGE);
    return reply === null
      ? null
      : { reply, rule: tag === OP.modifyRequest ? "password modify" : "password add" };
  }
  return null;
}
