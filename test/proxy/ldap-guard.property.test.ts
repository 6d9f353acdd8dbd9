import * as asn1 from "asn1js";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { frameHeader } from "../../sidecar/proxy/ldap/ber-frame.js";
import { rdnValues } from "../../sidecar/proxy/ldap/dn-match.js";
import { LdapMessageGuard } from "../../sidecar/proxy/ldap/message-guard.js";
import { decodeMessage, opTag, simpleBindRequest } from "../../sidecar/proxy/ldap/messages.js";

/** A DelRequest ([APPLICATION 10], primitive) of an entry beside the account's, `size` + 4 DN bytes. */
function del(id: number, size: number): Buffer {
  const op = new asn1.Primitive({
    idBlock: { tagClass: 2, tagNumber: 10 },
    valueHex: Buffer.from(`uid=${"a".repeat(size)}`),
  });
  return Buffer.from(new asn1.Sequence({ value: [new asn1.Integer({ value: id }), op] }).toBER());
}

/** A SearchResultEntry-shaped server message of about `size` bytes. */
function entry(id: number, size: number): Buffer {
  const op = new asn1.Constructed({
    idBlock: { tagClass: 2, tagNumber: 4 },
    value: [new asn1.OctetString({ valueHex: Buffer.alloc(size, 0x62) }), new asn1.Sequence({ value: [] })],
  });
  return Buffer.from(new asn1.Sequence({ value: [new asn1.Integer({ value: id }), op] }).toBER());
}

function split(buf: Buffer, cuts: number[]): Buffer[] {
  const at = [...new Set(cuts.map((c) => c % (buf.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let from = 0;
  for (const c of [...at, buf.length]) {
    if (c > from) out.push(buf.subarray(from, c));
    from = Math.max(from, c);
  }
  return out;
}

function frames(buf: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let at = 0;
  while (at < buf.length) {
    const h = frameHeader(buf, at, 1 << 30);
    if (!h) throw new Error("truncated");
    out.push(buf.subarray(at, at + h.totalBytes));
    at += h.totalBytes;
  }
  return out;
}

const message = fc.record({ bind: fc.boolean(), size: fc.integer({ min: 0, max: 400 }) });

describe("LdapMessageGuard, however the streams are cut", () => {
  it("relays every other request byte for byte and answers each bind, whole, between the server's messages", () => {
    fc.assert(
      fc.property(
        fc.array(message, { maxLength: 12 }),
        fc.array(fc.integer({ min: 0, max: 400 }), { maxLength: 12 }),
        fc.array(fc.nat(), { maxLength: 20 }),
        fc.array(fc.nat(), { maxLength: 20 }),
        (msgs, replySizes, upCuts, downCuts) => {
          const toServer: Buffer[] = [];
          const toClient: Buffer[] = [];
          const guard = new LdapMessageGuard({
            maxMessageBytes: 1 << 20,
            account: rdnValues("uid=agent,ou=people,dc=example,dc=org"),
            answer: (b) => toClient.push(b),
            refused: () => undefined,
            violation: (why) => {
              throw new Error(why);
            },
          });
          const client = msgs.map((m, i) =>
            m.bind ? simpleBindRequest(i + 1, "cn=x", "y") : del(i + 1, m.size),
          );
          const server = Buffer.concat(replySizes.map((s, i) => entry(i + 1, s)));
          const downChunks = split(server, downCuts);
          // Interleave: each client chunk, then one server chunk.
          const upChunks = split(Buffer.concat(client), upCuts);
          for (let i = 0; i < Math.max(upChunks.length, downChunks.length); i++) {
            const u = upChunks[i];
            if (u) toServer.push(...guard.up(u));
            const d = downChunks[i];
            if (d) toClient.push(...guard.down(d));
          }
          expect(Buffer.concat(toServer)).toEqual(Buffer.concat(client.filter((_, i) => !msgs[i]?.bind)));
          const got = frames(Buffer.concat(toClient));
          const answers = got.filter((f) => opTag(decodeMessage(f).op) === 0x61);
          const owed = msgs.filter((m) => m.bind).length;
          // Answers still owed wait for the server's current message to end.
          expect(answers.length).toBeLessThanOrEqual(owed);
          if (guard.atBoundary) expect(answers.length).toBe(owed);
          expect(Buffer.concat(got.filter((f) => opTag(decodeMessage(f).op) !== 0x61))).toEqual(server);
        },
      ),
      { numRuns: 300 },
    );
  });
});
