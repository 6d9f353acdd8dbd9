import { readFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK } from "jose";
import { parseBundleAttributes } from "./bundle-attributes.js";
import { ensurePrivateDir, replaceFile, writeNewFile } from "./secure-file.js";
import { spiffeIdProblem } from "./spiffe-id.js";
import type { GeneratedAgentKey, GenerateAgentKeyOptions } from "./types.js";

/** The file-name stem for an agent's key: the SPIFFE ID without scheme, `/` turned into `_`. */
export function agentKeyFileStem(id: string): string {
  return id.replace(/^spiffe:\/\//, "").replace(/[^A-Za-z0-9._-]/g, "_");
}

/**
 * Creates an Ed25519 key for one agent. The private JWK (with `sub`, `kid`,
 * `alg`) is written 0600 to `<outDir>/<stem>.key.jwk` and never replaced; the
 * public JWK (with `sub`, `kid`, `alg`, `use`, and the `attributes` given, which policy sees as
 * the agent's) is added to the trust bundle, replacing an entry with the same `kid`. The `kid` is
 * the RFC 7638 thumbprint.
 *
 * The bundle is rewritten atomically, but two keygens racing on one bundle can
 * lose one entry; run them one at a time.
 * @throws Error for an invalid SPIFFE ID, unusable attributes, an existing key file or an unreadable bundle.
 */
export async function generateAgentKey(opts: GenerateAgentKeyOptions): Promise<GeneratedAgentKey> {
  const problem = spiffeIdProblem(opts.id);
  if (problem !== undefined) throw new Error(`agent id is not a valid SPIFFE ID: ${problem}`);
  const attrs = parseBundleAttributes(opts.attributes ?? {});
  if (!attrs.ok) throw new Error(attrs.problem);
  const outDir = resolve(opts.outDir);
  const keyFile = join(outDir, `${agentKeyFileStem(opts.id)}.key.jwk`);
  const bundleFile = resolve(opts.bundle ?? join(outDir, "agents.jwks.json"));

  const { privateKey, publicKey } = await generateKeyPair("EdDSA", { crv: "Ed25519", extractable: true });
  const pub = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(pub);
  const privateJwk = { ...(await exportJWK(privateKey)), kid, alg: "EdDSA", sub: opts.id };
  const publicJwk = {
    ...pub,
    kid,
    alg: "EdDSA",
    use: "sig",
    sub: opts.id,
    ...(Object.keys(attrs.attributes).length > 0 ? { attributes: attrs.attributes } : {}),
  };

  await ensurePrivateDir(outDir);
  try {
    await writeNewFile(keyFile, `${JSON.stringify(privateJwk, null, 2)}\n`, 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST") {
      throw new Error(`key file ${keyFile} already exists; refusing to overwrite it`);
    }
    throw err;
  }

  const keys = (await readBundle(bundleFile)).filter((k) => k.kid !== kid);
  keys.push(publicJwk);
  await ensurePrivateDir(dirname(bundleFile));
  await replaceFile(bundleFile, `${JSON.stringify({ keys }, null, 2)}\n`, 0o644);
  return { keyFile, bundleFile, kid };
}

async function readBundle(path: string): Promise<JWK[]> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
  const doc: unknown = JSON.parse(text);
  const keys = (doc as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys)) throw new Error(`trust bundle ${path} is not a JWKS (no keys array)`);
  return keys as JWK[];
}
