import { readFile, stat } from "node:fs/promises";
import { dirname } from "node:path";
import {
  type CryptoKey,
  calculateJwkThumbprint,
  exportJWK,
  generateKeyPair,
  importJWK,
  type JWK,
} from "jose";
import {
  assertOwnerOnly,
  ensurePrivateDir,
  fileSignature,
  replaceFile,
  writeNewFile,
} from "./secure-file.js";
import type { LeaseTokenKeysOptions } from "./types.js";

/** Default time a replaced key keeps verifying: far longer than any lease may last. */
export const DEFAULT_KEY_RETENTION_SECONDS = 7 * 24 * 3600;
/** Hard cap on stored keys, so frequent rotation cannot grow the file without bound. */
const MAX_KEYS = 20;

/** One stored key. The file holds `{ current: kid, keys: StoredKey[] }`. */
interface StoredKey {
  kty: "OKP";
  crv: "Ed25519";
  x: string;
  d: string;
  kid: string;
  alg: "EdDSA";
  use: "sig";
  /** Seconds since the epoch. */
  created_at: number;
  /** Seconds since the epoch at which another key became current. */
  retired_at?: number;
}

interface KeyState {
  current: string;
  keys: StoredKey[];
}

/**
 * The lease-token signing keys of this sidecar, kept in one 0600 JSON file.
 * The newest key signs; replaced keys keep verifying for the retention period
 * (default 7 days) and are pruned at the next rotation after that. The file is
 * re-read when another process (`leasehold keys rotate`) changes it.
 */
export class LeaseTokenKeys {
  readonly file: string;
  readonly #retention: number;
  readonly #now: () => number;
  #state: KeyState;
  #signature: string;
  readonly #imported = new Map<string, Promise<CryptoKey>>();

  private constructor(opts: LeaseTokenKeysOptions, state: KeyState, signature: string) {
    this.file = opts.file;
    this.#retention = opts.retentionSeconds ?? DEFAULT_KEY_RETENTION_SECONDS;
    this.#now = opts.now ?? Date.now;
    this.#state = state;
    this.#signature = signature;
  }

  /**
   * Loads the key file, creating it (0600, parent folder 0700) with a fresh Ed25519 key if absent.
   * @throws Error when the file is accessible by group or others, or is not a valid key file.
   */
  static async load(opts: LeaseTokenKeysOptions): Promise<LeaseTokenKeys> {
    const now = opts.now ?? Date.now;
    if (!(await exists(opts.file))) {
      await ensurePrivateDir(dirname(opts.file));
      const fresh = await newStoredKey(now);
      try {
        await writeNewFile(opts.file, serialize({ current: fresh.kid, keys: [fresh] }), 0o600);
      } catch (err) {
        // Another process created it first: use theirs.
        if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      }
    }
    const { state, signature } = await readState(opts.file);
    return new LeaseTokenKeys(opts, state, signature);
  }

  /** The kid new tokens are signed with. */
  get currentKid(): string {
    return this.#state.current;
  }

  /** All kids that still verify, newest first. */
  kids(): string[] {
    return [...this.#state.keys].sort((a, b) => b.created_at - a.created_at).map((k) => k.kid);
  }

  /** The current private key, for signing. */
  async signingKey(): Promise<{ kid: string; key: CryptoKey }> {
    const kid = this.#state.current;
    const stored = this.#state.keys.find((k) => k.kid === kid);
    if (stored === undefined) throw new Error(`signing key file ${this.file} names a missing current key`);
    return { kid, key: await this.#import(`private:${kid}`, stored) };
  }

  /** The public key for `kid`, or `undefined` when this sidecar does not hold it. */
  async verificationKey(kid: string): Promise<CryptoKey | undefined> {
    const stored = this.#state.keys.find((k) => k.kid === kid);
    if (stored === undefined) return undefined;
    return this.#import(`public:${kid}`, publicOf(stored));
  }

  /** The public keys, for `/.well-known/jwks.json` and for other sidecars of the cluster. */
  publicJwks(): { keys: JWK[] } {
    return { keys: this.#state.keys.map(publicOf) };
  }

  /**
   * Adds a new current key; the replaced one keeps verifying. Keys retired
   * longer than the retention period are pruned.
   * @returns the new kid
   */
  async rotate(): Promise<string> {
    await this.refresh();
    const nowSeconds = Math.floor(this.#now() / 1000);
    const fresh = await newStoredKey(this.#now);
    const keys = this.#state.keys.map((k) =>
      k.kid === this.#state.current && k.retired_at === undefined ? { ...k, retired_at: nowSeconds } : k,
    );
    const kept = keys
      .filter((k) => k.retired_at === undefined || nowSeconds - k.retired_at <= this.#retention)
      .sort((a, b) => b.created_at - a.created_at)
      .slice(0, MAX_KEYS - 1);
    const next: KeyState = { current: fresh.kid, keys: [fresh, ...kept] };
    await replaceFile(this.file, serialize(next), 0o600);
    this.#state = next;
    this.#signature = fileSignature(this.file);
    return fresh.kid;
  }

  /**
   * Re-reads the file if it changed since it was last read.
   * @returns true when new keys were loaded
   * @throws Error when the changed file is accessible by group or others, or invalid
   */
  async refresh(): Promise<boolean> {
    let signature: string;
    try {
      signature = fileSignature(this.file);
    } catch (err) {
      // A deleted file keeps the keys in memory: tokens already issued must keep verifying.
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
      throw err;
    }
    if (signature === this.#signature) return false;
    const loaded = await readState(this.file);
    this.#state = loaded.state;
    this.#signature = loaded.signature;
    return true;
  }

  #import(cacheKey: string, jwk: JWK): Promise<CryptoKey> {
    let key = this.#imported.get(cacheKey);
    if (key === undefined) {
      key = importJWK(jwk, "EdDSA") as Promise<CryptoKey>;
      this.#imported.set(cacheKey, key);
    }
    return key;
  }
}

/** Loads (or creates) the lease-token signing keys; see {@link LeaseTokenKeys.load}. */
export function loadLeaseTokenKeys(opts: LeaseTokenKeysOptions): Promise<LeaseTokenKeys> {
  return LeaseTokenKeys.load(opts);
}

async function newStoredKey(now: () => number): Promise<StoredKey> {
  const { privateKey } = await generateKeyPair("EdDSA", { crv: "Ed25519", extractable: true });
  const jwk = await exportJWK(privateKey);
  if (typeof jwk.x !== "string" || typeof jwk.d !== "string") throw new Error("Ed25519 key export failed");
  const kid = await calculateJwkThumbprint({ kty: "OKP", crv: "Ed25519", x: jwk.x });
  return {
    kty: "OKP",
    crv: "Ed25519",
    x: jwk.x,
    d: jwk.d,
    kid,
    alg: "EdDSA",
    use: "sig",
    created_at: Math.floor(now() / 1000),
  };
}

function publicOf(k: StoredKey): JWK {
  return { kty: k.kty, crv: k.crv, x: k.x, kid: k.kid, alg: k.alg, use: k.use };
}

function serialize(state: KeyState): string {
  return `${JSON.stringify(state, null, 2)}\n`;
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw err;
  }
}

async function readState(path: string): Promise<{ state: KeyState; signature: string }> {
  await assertOwnerOnly(path, "lease token signing key file");
  const signature = fileSignature(path);
  const text = await readFile(path, "utf8");
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new Error(`lease token signing key file ${path} is not valid JSON`);
  }
  return { state: parseState(doc, path), signature };
}

function parseState(doc: unknown, path: string): KeyState {
  const bad = (why: string) => new Error(`lease token signing key file ${path} is invalid: ${why}`);
  if (typeof doc !== "object" || doc === null) throw bad("not a JSON object");
  const { current, keys } = doc as { current?: unknown; keys?: unknown };
  if (typeof current !== "string") throw bad('"current" must be a kid');
  if (!Array.isArray(keys) || keys.length === 0) throw bad('"keys" must be a non-empty array');
  const seen = new Set<string>();
  const parsed = keys.map((raw, i): StoredKey => {
    const k = (raw ?? {}) as Record<string, unknown>;
    const str = (name: string): string => {
      const v = k[name];
      if (typeof v !== "string" || v.length === 0) throw bad(`keys[${i}].${name} must be a string`);
      return v;
    };
    if (k.kty !== "OKP" || k.crv !== "Ed25519") throw bad(`keys[${i}] must be an Ed25519 key`);
    const kid = str("kid");
    if (seen.has(kid)) throw bad(`duplicate kid ${kid}`);
    seen.add(kid);
    const createdAt = typeof k.created_at === "number" ? k.created_at : 0;
    const stored: StoredKey = {
      kty: "OKP",
      crv: "Ed25519",
      x: str("x"),
      d: str("d"),
      kid,
      alg: "EdDSA",
      use: "sig",
      created_at: createdAt,
    };
    if (typeof k.retired_at === "number") stored.retired_at = k.retired_at;
    return stored;
  });
  if (!seen.has(current)) throw bad(`current kid ${current} is not among the keys`);
  return { current, keys: parsed };
}
