import { constants, createHash, generateKeyPair, publicEncrypt, webcrypto } from "node:crypto";

/** The plugin the listener asks clients to use: the token travels over TLS or RSA-encrypted. */
export const CACHING_SHA2 = "caching_sha2_password";
export const NATIVE = "mysql_native_password";
export const CLEAR = "mysql_clear_password";

/** caching_sha2_password's AuthMoreData bytes. */
export const SHA2 = { requestPublicKey: 0x02, fastAuthOk: 0x03, fullAuth: 0x04 } as const;

/**
 * The RSA key size of the listener's key pair. A lease token (an EdDSA JWT) is 500-700 bytes;
 * RSA-OAEP (SHA-1) carries at most size/8 - 42 bytes in the one block clients send, so 6144 bits
 * (726 bytes). Clients whose token is longer must use TLS.
 */
export const RSA_BITS = 6144;

function sha1(...parts: Buffer[]): Buffer {
  const h = createHash("sha1");
  for (const p of parts) h.update(p);
  return h.digest();
}

function sha256(...parts: Buffer[]): Buffer {
  const h = createHash("sha256");
  for (const p of parts) h.update(p);
  return h.digest();
}

function xor(a: Buffer, b: Buffer): Buffer {
  const out = Buffer.alloc(a.length);
  for (let i = 0; i < a.length; i++) out[i] = (a[i] ?? 0) ^ (b[i] ?? 0);
  return out;
}

/** `data` XORed with `nonce` repeated (what caching_sha2_password encrypts). */
export function xorRotating(data: Buffer, nonce: Buffer): Buffer {
  const out = Buffer.alloc(data.length);
  for (let i = 0; i < data.length; i++) out[i] = (data[i] ?? 0) ^ (nonce[i % nonce.length] ?? 0);
  return out;
}

/** mysql_native_password's answer to `nonce`: SHA1(pw) XOR SHA1(nonce + SHA1(SHA1(pw))). */
export function nativeScramble(password: Buffer, nonce: Buffer): Buffer {
  if (password.length === 0) return Buffer.alloc(0);
  const s1 = sha1(password);
  return xor(s1, sha1(nonce, sha1(s1)));
}

/** caching_sha2_password's fast answer: SHA256(pw) XOR SHA256(SHA256(SHA256(pw)) + nonce). */
export function sha2Scramble(password: Buffer, nonce: Buffer): Buffer {
  if (password.length === 0) return Buffer.alloc(0);
  const s1 = sha256(password);
  return xor(s1, sha256(sha256(s1), nonce));
}

/** The password as a client encrypts it with the server's public key (NUL-terminated, XOR nonce, RSA-OAEP). */
export function rsaEncryptPassword(password: Buffer, nonce: Buffer, publicKeyPem: string): Buffer {
  return publicEncrypt(
    { key: publicKeyPem, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha1" },
    xorRotating(Buffer.concat([password, Buffer.from([0])]), nonce),
  );
}

/**
 * Undoes {@link rsaEncryptPassword}; rejects if the block does not decrypt. WebCrypto runs the
 * private-key operation (about 17 ms for a 6144-bit key) off the event loop, so a login without
 * TLS does not stall the sessions already spliced.
 */
export async function rsaDecryptPassword(
  block: Buffer,
  nonce: Buffer,
  key: webcrypto.CryptoKey,
): Promise<Buffer> {
  const plain = Buffer.from(await webcrypto.subtle.decrypt({ name: "RSA-OAEP" }, key, block));
  const out = xorRotating(plain, nonce);
  return out.at(-1) === 0 ? out.subarray(0, -1) : out;
}

/** The listener's RSA key pair: the private key stays in memory; the public one is sent as PEM. */
export interface ListenerRsaKey {
  /** RSA-OAEP with SHA-1, as caching_sha2_password clients encrypt; usable only to decrypt. */
  readonly privateKey: webcrypto.CryptoKey;
  readonly publicPem: Buffer;
}

let shared: Promise<ListenerRsaKey> | undefined;

/**
 * The process's RSA key pair for caching_sha2_password over plain TCP, made on first use (a
 * {@link RSA_BITS}-bit key takes seconds to make, so it is made once per process, not per listener).
 */
export function listenerRsaKey(): Promise<ListenerRsaKey> {
  shared ??= new Promise<ListenerRsaKey>((resolve, reject) => {
    generateKeyPair("rsa", { modulusLength: RSA_BITS }, (err, publicKey, privateKey) => {
      if (err) {
        reject(err);
        return;
      }
      webcrypto.subtle
        .importKey(
          "pkcs8",
          privateKey.export({ type: "pkcs8", format: "der" }),
          { name: "RSA-OAEP", hash: "SHA-1" },
          false,
          ["decrypt"],
        )
        .then(
          (key) =>
            resolve({
              privateKey: key,
              publicPem: Buffer.from(publicKey.export({ type: "spki", format: "pem" }) as string, "latin1"),
            }),
          reject,
        );
    });
  }).catch((err: unknown) => {
    shared = undefined;
    throw err;
  });
  return shared;
}
