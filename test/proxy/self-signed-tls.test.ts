import { execFile } from "node:child_process";
import { createPrivateKey, createPublicKey, X509Certificate } from "node:crypto";
import { once } from "node:events";
import { type AddressInfo, createServer } from "node:net";
import { join } from "node:path";
import { connect, TLSSocket } from "node:tls";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { proxySecureContext, selfSignedCertificate } from "../../sidecar/proxy/self-signed-tls.js";

const ROOT = join(import.meta.dirname, "..", "..");
const DAY_MS = 24 * 60 * 60 * 1000;

describe("the proxy listeners' self-signed certificate (made in-process)", () => {
  it("is a P-256 certificate for 127.0.0.1 and localhost, valid for a year from now, matching its key", async () => {
    const before = Date.now();
    const { key, cert } = await selfSignedCertificate();
    const after = Date.now();
    const x509 = new X509Certificate(cert);
    const privateKey = createPrivateKey(key);

    expect(x509.subjectAltName).toBe("IP Address:127.0.0.1, DNS:localhost");
    expect(x509.subject).toBe("CN=leasehold-proxy");
    expect(x509.issuer).toBe(x509.subject);
    expect(x509.checkPrivateKey(privateKey)).toBe(true);
    expect(x509.verify(createPublicKey(privateKey))).toBe(true);
    expect(x509.publicKey.asymmetricKeyDetails).toEqual({ namedCurve: "prime256v1" });
    expect(x509.checkIP("127.0.0.1")).toBe("127.0.0.1");
    expect(x509.checkHost("localhost")).toBe("localhost");
    expect(x509.checkHost("example.org")).toBeUndefined();

    // X.509 times have whole seconds: notBefore is "now" rounded down, notAfter a year on.
    const from = Date.parse(x509.validFrom);
    const to = Date.parse(x509.validTo);
    expect(from).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000);
    expect(from).toBeLessThanOrEqual(after);
    expect(to - from).toBe(365 * DAY_MS);
    expect(key).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
  });

  it("each call makes a new key and a new serial", async () => {
    const [a, b] = await Promise.all([selfSignedCertificate(), selfSignedCertificate()]);
    expect(a.key).not.toBe(b.key);
    expect(new X509Certificate(a.cert).serialNumber).not.toBe(new X509Certificate(b.cert).serialNumber);
  });

  it("serves TLS that a client trusting only this certificate verifies for 127.0.0.1", async () => {
    const { key, cert } = await selfSignedCertificate();
    const secureContext = await proxySecureContext({ key, cert });
    // As the Postgres session does: a plain socket upgraded server-side with this context.
    const server = createServer((raw) => {
      const secure = new TLSSocket(raw, { isServer: true, secureContext });
      secure.on("error", () => raw.destroy());
      secure.end("hello");
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    try {
      const { port } = server.address() as AddressInfo;
      const socket = connect({ host: "127.0.0.1", port, ca: cert });
      await once(socket, "secureConnect");
      expect(socket.authorized).toBe(true);
      expect(socket.getPeerX509Certificate()?.fingerprint256).toBe(new X509Certificate(cert).fingerprint256);
      const chunks: Buffer[] = [];
      for await (const chunk of socket) chunks.push(chunk as Buffer);
      expect(Buffer.concat(chunks).toString()).toBe("hello");
    } finally {
      server.close();
    }
    expect(await proxySecureContext(false)).toBeUndefined();
  });

  it("loads the X.509 library only when a certificate is made, not when the proxy and CLI modules load", async () => {
    // reflect-metadata (which @peculiar/x509 needs) adds Reflect.getMetadata when it loads.
    const script = [
      'await import("./sidecar/proxy/index.ts");',
      'await import("./sidecar/cli/commands/serve.ts");',
      "console.log(typeof Reflect.getMetadata);",
      'const m = await import("./sidecar/proxy/self-signed-tls.ts");',
      "await m.selfSignedCertificate();",
      "console.log(typeof Reflect.getMetadata);",
    ].join("\n");
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ["--import", "tsx", "--input-type=module", "-e", script],
      { cwd: ROOT },
    );
    expect(stdout.trim().split("\n")).toEqual(["undefined", "function"]);
  }, 60_000);
});
