import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createSecureContext, type SecureContext } from "node:tls";
import type { ProxyTls } from "./types.js";

function run(file: string, args: readonly string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(file, [...args], { timeout: 20_000 }, (err, _stdout, stderr) => {
      if (err) reject(new Error(`${file} failed: ${stderr.trim().split("\n").at(-1) ?? err.message}`));
      else resolve();
    });
  });
}

/**
 * A fresh self-signed certificate for 127.0.0.1 / localhost (P-256, one year), made with the
 * `openssl` command. The key lives only in memory; its temporary folder is removed at once.
 * @throws Error when `openssl` is missing or fails.
 */
export async function selfSignedCertificate(): Promise<{ key: string; cert: string }> {
  const dir = await mkdtemp(join(tmpdir(), "leasehold-proxy-tls-"));
  try {
    const key = join(dir, "key.pem");
    const cert = join(dir, "cert.pem");
    await run("openssl", [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      key,
      "-out",
      cert,
      "-days",
      "365",
      "-subj",
      "/CN=leasehold-proxy",
      "-addext",
      "subjectAltName=IP:127.0.0.1,DNS:localhost",
    ]);
    return { key: await readFile(key, "utf8"), cert: await readFile(cert, "utf8") };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The secure context for the configured TLS mode; undefined when TLS is off. */
export async function proxySecureContext(tls: ProxyTls): Promise<SecureContext | undefined> {
  if (tls === false) return undefined;
  const pems = tls === "self-signed" ? await selfSignedCertificate() : tls;
  return createSecureContext({ key: pems.key, cert: pems.cert, minVersion: "TLSv1.2" });
}
