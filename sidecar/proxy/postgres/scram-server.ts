import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import type { ScramVerifier } from "../../leases/index.js";

/** A SCRAM message the client got wrong (PostgreSQL answers 08P01 "malformed SCRAM message"). */
export class ScramMalformed extends Error {}

const hmac = (key: Buffer, data: string) => createHmac("sha256", key).update(data).digest();

/** printable = %x21-2B / %x2D-7E (RFC 5802): a nonce has no comma and no space. */
const PRINTABLE = /^[\x21-\x2b\x2d-\x7e]+$/;

/**
 * The server side of SCRAM-SHA-256 (RFC 5802 / 7677) as PostgreSQL runs it: the user comes from
 * the startup packet (the SCRAM `n=` is ignored), no channel binding is offered, so a client that
 * asks for it (`p=`) is refused. Built on a stored verifier: the password never reaches the server.
 * With no verifier (an unknown lease), a made-up one runs the same exchange and fails at the end,
 * so the exchange does not tell whether the lease exists.
 */
export class ScramServer {
  private readonly v: ScramVerifier;
  private readonly mock: boolean;
  private readonly serverNonce = randomBytes(18).toString("base64");
  private gs2Header = "";
  private clientFirstBare = "";
  private serverFirst = "";
  private nonce = "";

  constructor(verifier: ScramVerifier | undefined) {
    this.mock = verifier === undefined;
    this.v = verifier ?? {
      salt: randomBytes(16).toString("base64"),
      iterations: 4096,
      storedKey: randomBytes(32).toString("base64"),
      serverKey: randomBytes(32).toString("base64"),
    };
  }

  /** server-first-message for the client-first-message. @throws ScramMalformed */
  first(clientFirst: string): string {
    const flag = clientFirst[0];
    if (flag === "p") throw new ScramMalformed("channel binding is not offered");
    if ((flag !== "n" && flag !== "y") || clientFirst[1] !== ",")
      throw new ScramMalformed("malformed GS2 header");
    const authzEnd = clientFirst.indexOf(",", 2);
    if (authzEnd < 0) throw new ScramMalformed("malformed GS2 header");
    if (authzEnd !== 2) throw new ScramMalformed("authorization identities are not supported");
    this.gs2Header = clientFirst.slice(0, authzEnd + 1);
    this.clientFirstBare = clientFirst.slice(authzEnd + 1);
    const parts = this.clientFirstBare.split(",");
    if (!parts[0]?.startsWith("n=")) throw new ScramMalformed("expected the user name attribute");
    const r = parts[1];
    if (!r?.startsWith("r=") || !PRINTABLE.test(r.slice(2)))
      throw new ScramMalformed("malformed client nonce");
    // Mandatory extensions (m=) are not understood; optional ones after the nonce are ignored.
    if (parts[0].startsWith("m=")) throw new ScramMalformed("unsupported mandatory extension");
    this.nonce = r.slice(2) + this.serverNonce;
    this.serverFirst = `r=${this.nonce},s=${this.v.salt},i=${this.v.iterations}`;
    return this.serverFirst;
  }

  /**
   * The server-final-message when the client's proof holds, or undefined when it does not
   * (a wrong password). @throws ScramMalformed
   */
  final(clientFinal: string): string | undefined {
    const at = clientFinal.lastIndexOf(",p=");
    if (at < 0) throw new ScramMalformed("the client proof is missing");
    const withoutProof = clientFinal.slice(0, at);
    const proof = Buffer.from(clientFinal.slice(at + 3), "base64");
    const parts = withoutProof.split(",");
    if (parts[0] !== `c=${Buffer.from(this.gs2Header, "utf8").toString("base64")}`)
      throw new ScramMalformed("unexpected channel-binding data");
    if (parts[1] !== `r=${this.nonce}`) throw new ScramMalformed("the nonce does not match");
    const authMessage = `${this.clientFirstBare},${this.serverFirst},${withoutProof}`;
    const storedKey = Buffer.from(this.v.storedKey, "base64");
    const signature = hmac(storedKey, authMessage);
    if (proof.length !== signature.length) return undefined;
    const clientKey = Buffer.alloc(signature.length);
    for (let i = 0; i < clientKey.length; i++) clientKey[i] = (proof[i] as number) ^ (signature[i] as number);
    const ok = timingSafeEqual(createHash("sha256").update(clientKey).digest(), storedKey);
    if (!ok || this.mock) return undefined;
    return `v=${hmac(Buffer.from(this.v.serverKey, "base64"), authMessage).toString("base64")}`;
  }
}
