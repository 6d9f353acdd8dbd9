import { createHash, createHmac, pbkdf2, randomBytes, timingSafeEqual } from "node:crypto";

const hmac = (key: Buffer, data: string) => createHmac("sha256", key).update(data).digest();

function attrs(msg: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of msg.split(",")) {
    const eq = part.indexOf("=");
    if (eq === 1) out.set(part.slice(0, 1), part.slice(2));
  }
  return out;
}

/**
 * The client side of SCRAM-SHA-256 (RFC 5802 / 7677) without channel binding, as PostgreSQL
 * expects it: the user name comes from the startup packet, so the SCRAM user is "*".
 */
export class ScramClient {
  private readonly nonce: string;
  private readonly firstBare: string;
  private serverSignature: Buffer | undefined;

  /** `opts` are for tests against the RFC's vectors; PostgreSQL takes the defaults. */
  constructor(
    private readonly password: string,
    opts: { nonce?: string; user?: string } = {},
  ) {
    this.nonce = opts.nonce ?? randomBytes(18).toString("base64");
    this.firstBare = `n=${opts.user ?? "*"},r=${this.nonce}`;
  }

  /** client-first-message, for SASLInitialResponse. */
  first(): string {
    return `n,,${this.firstBare}`;
  }

  /**
   * client-final-message for the server-first-message.
   * @throws Error when the server's message is malformed or its nonce does not extend ours.
   */
  async final(serverFirst: string): Promise<string> {
    const a = attrs(serverFirst);
    const nonce = a.get("r");
    const salt = a.get("s");
    const iterations = Number(a.get("i"));
    if (!nonce?.startsWith(this.nonce) || nonce.length === this.nonce.length)
      throw new Error("SCRAM: server nonce is invalid");
    if (!salt || !Number.isInteger(iterations) || iterations < 1)
      throw new Error("SCRAM: server-first-message is malformed");
    const salted = await new Promise<Buffer>((resolve, reject) =>
      pbkdf2(this.password, Buffer.from(salt, "base64"), iterations, 32, "sha256", (err, key) =>
        err ? reject(err) : resolve(key),
      ),
    );
    const withoutProof = `c=biws,r=${nonce}`;
    const authMessage = `${this.firstBare},${serverFirst},${withoutProof}`;
    const clientKey = hmac(salted, "Client Key");
    const storedKey = createHash("sha256").update(clientKey).digest();
    const signature = hmac(storedKey, authMessage);
    const proof = Buffer.alloc(clientKey.length);
    for (let i = 0; i < proof.length; i++) proof[i] = (clientKey[i] as number) ^ (signature[i] as number);
    this.serverSignature = hmac(hmac(salted, "Server Key"), authMessage);
    return `${withoutProof},p=${proof.toString("base64")}`;
  }

  /** True when the server-final-message proves the server knows the password too. */
  verify(serverFinal: string): boolean {
    const v = attrs(serverFinal).get("v");
    if (!v || !this.serverSignature) return false;
    const got = Buffer.from(v, "base64");
    return got.length === this.serverSignature.length && timingSafeEqual(got, this.serverSignature);
  }
}
