import * as asn1js from "asn1js";
import { LdapProtocolError } from "./ber-frame.js";

/** The LDAP result codes the listener answers with (RFC 4511 section 4.1.9). */
export const RESULT = {
  success: 0,
  operationsError: 1,
  protocolError: 2,
  authMethodNotSupported: 7,
  adminLimitExceeded: 11,
  invalidCredentials: 49,
  insufficientAccessRights: 50,
  busy: 51,
  unavailable: 52,
  unwillingToPerform: 53,
  other: 80,
} as const;

/** protocolOp tags (APPLICATION class; constructed ones carry 0x20). */
export const OP = {
  bindRequest: 0x60,
  bindResponse: 0x61,
  unbindRequest: 0x42,
  searchRequest: 0x63,
  modifyRequest: 0x66,
  addRequest: 0x68,
  delRequest: 0x4a,
  modDnRequest: 0x6c,
  compareRequest: 0x6e,
  abandonRequest: 0x50,
  extendedRequest: 0x77,
  extendedResponse: 0x78,
} as const;

/** The response tag of each request that has one, for answering a request the listener refuses. */
const RESPONSE_OF: ReadonlyMap<number, number> = new Map([
  [OP.bindRequest, 1],
  [OP.searchRequest, 5],
  [OP.modifyRequest, 7],
  [OP.addRequest, 9],
  [OP.delRequest, 11],
  [OP.modDnRequest, 13],
  [OP.compareRequest, 15],
  [OP.extendedRequest, 24],
]);

/** The request tags a client may send (RFC 4511 section 4.2 to 4.12). */
export const CLIENT_OPS: ReadonlySet<number> = new Set([
  ...RESPONSE_OF.keys(),
  OP.unbindRequest,
  OP.abandonRequest,
]);

export const STARTTLS_OID = "1.3.6.1.4.1.1466.20037";
/** RFC 3062 Password Modify: the listener owns the account's password. */
export const PASSWORD_MODIFY_OID = "1.3.6.1.4.1.4203.1.11.1";
const NOTICE_OF_DISCONNECTION_OID = "1.3.6.1.4.1.1466.20036";

const APPLICATION = 2;
const CONTEXT = 3;

export type BindAuth =
  | { readonly kind: "simple"; readonly password: Buffer }
  | { readonly kind: "sasl"; readonly mechanism: string };

export interface BindRequest {
  readonly version: number;
  readonly name: string;
  readonly auth: BindAuth;
}

/** One whole LDAPMessage, decoded by asn1js: its messageID and protocolOp. */
export interface DecodedMessage {
  readonly messageId: number;
  readonly op: asn1js.AsnType;
}

function bytes(block: asn1js.AsnType | undefined, what: string): Buffer {
  const b = block as { idBlock?: { isConstructed: boolean }; valueBlock?: { valueHexView?: Uint8Array } };
  const view = b?.valueBlock?.valueHexView;
  if (!b || b.idBlock?.isConstructed || view === undefined)
    throw new LdapProtocolError(`${what} is malformed`);
  return Buffer.from(view.buffer, view.byteOffset, view.byteLength);
}

function children(block: asn1js.AsnType): asn1js.AsnType[] {
  const v = (block as { valueBlock?: { value?: unknown } }).valueBlock?.value;
  return Array.isArray(v) ? (v as asn1js.AsnType[]) : [];
}

function isTag(block: asn1js.AsnType | undefined, tagClass: number, tagNumber: number): boolean {
  return block?.idBlock.tagClass === tagClass && block.idBlock.tagNumber === tagNumber;
}

/** The tag octet of a decoded protocolOp (as it stood on the wire), or -1 for one outside the APPLICATION class. */
export function opTag(op: asn1js.AsnType): number {
  const id = op.idBlock;
  if (id.tagClass !== APPLICATION || id.tagNumber > 30) return -1;
  return (id.isConstructed ? 0x60 : 0x40) | id.tagNumber;
}

/** Decodes one framed LDAPMessage with asn1js; throws LdapProtocolError for anything else. */
export function decodeMessage(frame: Buffer): DecodedMessage {
  // Strings are never parsed as nested BER: a password or a DN is bytes, whatever they look like.
  const parsed = asn1js.fromBER(new Uint8Array(frame.buffer, frame.byteOffset, frame.byteLength), {
    parseEmbedded: false,
  });
  if (
    parsed.offset !== frame.length ||
    parsed.result.error !== "" ||
    !(parsed.result instanceof asn1js.Sequence)
  )
    throw new LdapProtocolError("a message does not decode as an LDAPMessage");
  const [id, op] = parsed.result.valueBlock.value;
  if (!(id instanceof asn1js.Integer) || op === undefined)
    throw new LdapProtocolError("an LDAPMessage without messageID or protocolOp");
  return { messageId: id.valueBlock.valueDec, op };
}

/** Reads a BindRequest ([APPLICATION 0]): version, name and the authentication choice. */
export function readBindRequest(op: asn1js.AsnType): BindRequest {
  const [version, name, auth] = children(op);
  if (!(version instanceof asn1js.Integer)) throw new LdapProtocolError("BindRequest version is malformed");
  const dn = bytes(name, "BindRequest name").toString("utf8");
  if (isTag(auth, CONTEXT, 0) && auth)
    return {
      version: version.valueBlock.valueDec,
      name: dn,
      auth: { kind: "simple", password: bytes(auth, "simple password") },
    };
  if (isTag(auth, CONTEXT, 3) && auth) {
    const mechanism = bytes(children(auth)[0], "SASL mechanism").toString("utf8");
    return { version: version.valueBlock.valueDec, name: dn, auth: { kind: "sasl", mechanism } };
  }
  throw new LdapProtocolError("BindRequest authentication is malformed");
}

/** The entry a DelRequest ([APPLICATION 10], the DN itself) or ModifyDNRequest ([APPLICATION 12]) names. */
export function entryOf(op: asn1js.AsnType): Buffer {
  return op.idBlock.isConstructed ? bytes(children(op)[0], "ModifyDNRequest entry") : bytes(op, "DelRequest");
}

/** The requestName of an ExtendedRequest ([APPLICATION 23]). */
export function extendedRequestName(op: asn1js.AsnType): string {
  const [name] = children(op);
  if (!isTag(name, CONTEXT, 0)) throw new LdapProtocolError("ExtendedRequest requestName is malformed");
  return bytes(name, "ExtendedRequest requestName").toString("latin1");
}

/** Result code and diagnostic message of a response ([APPLICATION n] COMPONENTS OF LDAPResult). */
export function readResult(op: asn1js.AsnType): { code: number; message: string } {
  const [code, , message] = children(op);
  if (!(code instanceof asn1js.Enumerated)) throw new LdapProtocolError("LDAPResult resultCode is malformed");
  return {
    code: code.valueBlock.valueDec,
    message: message ? bytes(message, "diagnosticMessage").toString("utf8") : "",
  };
}

function octets(value: string | Buffer, tag?: number): asn1js.AsnType {
  const b = typeof value === "string" ? Buffer.from(value, "utf8") : value;
  const valueHex = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  return tag === undefined
    ? new asn1js.OctetString({ valueHex })
    : new asn1js.Primitive({ idBlock: { tagClass: CONTEXT, tagNumber: tag }, valueHex });
}

function message(messageId: number, op: asn1js.AsnType): Buffer {
  return Buffer.from(new asn1js.Sequence({ value: [new asn1js.Integer({ value: messageId }), op] }).toBER());
}

/** An LDAPResult-shaped response ([APPLICATION tag]) to message `messageId`, plus trailing fields. */
function result(
  messageId: number,
  tag: number,
  code: number,
  diagnostic: string,
  extra: asn1js.AsnType[] = [],
): Buffer {
  const op = new asn1js.Constructed({
    idBlock: { tagClass: APPLICATION, tagNumber: tag },
    value: [new asn1js.Enumerated({ value: code }), octets(""), octets(diagnostic), ...extra],
  });
  return message(messageId, op);
}

/** The response a refused request gets (its own response type), or null for unbind and abandon. */
export function refusalFor(
  opTag: number,
  messageId: number,
  code: number,
  diagnostic: string,
): Buffer | null {
  const tag = RESPONSE_OF.get(opTag);
  return tag === undefined ? null : result(messageId, tag, code, diagnostic);
}

export function bindResponse(messageId: number, code: number, diagnostic = ""): Buffer {
  return result(messageId, 1, code, diagnostic);
}

/** An ExtendedResponse; `name` is its responseName ([10]). */
export function extendedResponse(messageId: number, code: number, diagnostic: string, name?: string): Buffer {
  return result(messageId, 24, code, diagnostic, name === undefined ? [] : [octets(name, 10)]);
}

/** The unsolicited Notice of Disconnection (RFC 4511 section 4.4.1), sent before the listener closes. */
export function noticeOfDisconnection(code: number, diagnostic: string): Buffer {
  return extendedResponse(0, code, diagnostic, NOTICE_OF_DISCONNECTION_OID);
}

/** A simple BindRequest, LDAPv3. */
export function simpleBindRequest(messageId: number, dn: string, password: string): Buffer {
  const op = new asn1js.Constructed({
    idBlock: { tagClass: APPLICATION, tagNumber: 0 },
    value: [new asn1js.Integer({ value: 3 }), octets(dn), octets(Buffer.from(password, "utf8"), 0)],
  });
  return message(messageId, op);
}

/** An ExtendedRequest with no value (StartTLS). */
export function extendedRequest(messageId: number, oid: string): Buffer {
  const op = new asn1js.Constructed({
    idBlock: { tagClass: APPLICATION, tagNumber: 23 },
    value: [octets(Buffer.from(oid, "latin1"), 0)],
  });
  return message(messageId, op);
}
