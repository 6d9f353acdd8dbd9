import { KeyObject, webcrypto } from "node:crypto";
import { createSecureContext, type SecureContext } from "node:tls";
import type { ProxyTls } from "./types.js";

/** How long the self-signed certificate is valid from the moment it is made. */
const VALIDITY_MS = 365 * 24 * 60 * 60 * 1000;

/**
 * A fresh self-signed certificate for 127.0.0.1 / localhost (ECDSA P-256 with SHA-256, valid for
 * one year from now), made in-process with @peculiar/x509 on Node's WebCrypto. The private key
 * never leaves memory. The certificate carries what `openssl req -x509` used to give it: subject
 * CN=leasehold-proxy, a random serial, subject and authority key identifiers, basic constraints
 * (critical, CA) and subjectAltName IP:127.0.0.1, DNS:localhost.
 *
 * The X.509 library (and the reflect-metadata polyfill it requires, which adds the Reflect
 * metadata functions to the global Reflect) is imported here, on the first TLS listener's start,
 * so CLI paths that never open one do not load it.
 */
export async function selfSignedCertificate(): Promise<{ key: string; cert: string }> {
  // @peculiar/x509's dependency injection (tsyringe) needs the Reflect metadata API first.
  await import("reflect-metadata");
  const x509 = await import("@peculiar/x509");
  const crypto = webcrypto;
  const algorithm = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;
  const keys = (await crypto.subtle.generateKey(algorithm, true, [
    "sign",
    "verify",
  ])) as webcrypto.CryptoKeyPair;
  const notBefore = new Date();
  const certificate = await x509.X509CertificateGenerator.createSelfSigned(
    {
      name: "CN=leasehold-proxy",
      notBefore,
      notAfter: new Date(notBefore.getTime() + VALIDITY_MS),
      keys,
      signingAlgorithm: algorithm,
      extensions: [
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, crypto),
        await x509.AuthorityKeyIdentifierExtension.create(keys.publicKey, false, crypto),
        new x509.BasicConstraintsExtension(true, undefined, true),
        new x509.SubjectAlternativeNameExtension([
          { type: "ip", value: "127.0.0.1" },
          { type: "dns", value: "localhost" },
        ]),
      ],
    },
    crypto,
  );
  const key = KeyObject.from(keys.privateKey).export({ type: "pkcs8", format: "pem" });
  return { key: String(key), cert: certificate.toString("pem") };
}

/** The secure context for the configured TLS mode; undefined when TLS is off. */
export async function proxySecureContext(tls: ProxyTls): Promise<SecureContext | undefined> {
  if (tls === false) return undefined;
  const pems = tls === "self-signed" ? await selfSignedCertificate() : tls;
  return createSecureContext({ key: pems.key, cert: pems.cert, minVersion: "TLSv1.2" });
}
