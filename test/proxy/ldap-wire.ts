import * as asn1 from "asn1js";
import { frameHeader } from "../../sidecar/proxy/ldap/ber-frame.js";
import { decodeMessage, opTag, readResult } from "../../sidecar/proxy/ldap/messages.js";

/** One LDAPMessage a listener sent: messageID, protocolOp tag, result code (-1 for an entry) and message. */
export interface Reply {
  readonly id: number;
  readonly tag: number;
  readonly code: number;
  readonly message: string;
}

/** Each whole LDAPMessage in `buf`, in order. */
export function replies(buf: Buffer): Reply[] {
  const out: Reply[] = [];
  let at = 0;
  while (at < buf.length) {
    const f = frameHeader(buf, at, 1 << 20);
    if (!f || at + f.totalBytes > buf.length) break;
    const m = decodeMessage(buf.subarray(at, at + f.totalBytes));
    const tag = opTag(m.op);
    out.push({ id: m.messageId, tag, ...(tag === 0x64 ? { code: -1, message: "" } : readResult(m.op)) });
    at += f.totalBytes;
  }
  return out;
}

/** For readUntil: true once `n` whole messages are in. */
export function count(n: number): (b: Buffer) => boolean {
  return (b) => replies(b).length >= n;
}

/** A SearchRequest for `dn` itself (scope base, filter `(objectClass=*)`, all attributes). */
export function baseSearch(id: number, dn: string): Buffer {
  const op = new asn1.Constructed({
    idBlock: { tagClass: 2, tagNumber: 3 },
    value: [
      new asn1.OctetString({ valueHex: Buffer.from(dn) }),
      new asn1.Enumerated({ value: 0 }),
      new asn1.Enumerated({ value: 0 }),
      new asn1.Integer({ value: 0 }),
      new asn1.Integer({ value: 0 }),
      new asn1.Boolean({ value: false }),
      new asn1.Primitive({ idBlock: { tagClass: 3, tagNumber: 7 }, valueHex: Buffer.from("objectClass") }),
      new asn1.Sequence({ value: [] }),
    ],
  });
  return Buffer.from(new asn1.Sequence({ value: [new asn1.Integer({ value: id }), op] }).toBER());
}
