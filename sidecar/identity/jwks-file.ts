import { readFile } from "node:fs/promises";
import { LeaseholdError } from "../errors.js";
import { fileSignature } from "./secure-file.js";
import { VerificationKey } from "./verification-key.js";

interface Snapshot {
  signature: string;
  keys: readonly VerificationKey[];
}

/**
 * A JWKS file that is re-read when it changes (size, mtime or inode, checked on
 * each use), so keys added by `agent keygen` are trusted without a restart.
 * The check is one synchronous stat (`fileSignature`). A missing file holds no
 * keys. A file that stops parsing keeps the last good key set, because writers
 * that do not rename atomically are briefly half-written.
 */
export class JwksFile {
  readonly path: string;
  #snapshot: Snapshot | undefined;

  constructor(path: string) {
    this.path = path;
  }

  /**
   * The current keys.
   * @throws LeaseholdError `internal` when the file has never parsed as a JWKS.
   */
  async keys(): Promise<readonly VerificationKey[]> {
    let signature: string;
    try {
      signature = fileSignature(this.path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw new LeaseholdError("internal", "trust bundle unreadable", { detail: String(err), cause: err });
    }
    if (this.#snapshot?.signature === signature) return this.#snapshot.keys;
    try {
      const keys = parseJwks(await readFile(this.path, "utf8"));
      this.#snapshot = { signature, keys };
      return keys;
    } catch (err) {
      if (this.#snapshot !== undefined) return this.#snapshot.keys;
      throw new LeaseholdError("internal", "trust bundle unreadable", {
        detail: `${this.path}: ${String(err)}`,
        cause: err,
      });
    }
  }
}

/**
 * Parses JWKS text into verification keys, skipping members that cannot verify.
 * @throws Error when the text is not a JSON object with a `keys` array.
 */
export function parseJwks(text: string): VerificationKey[] {
  const doc: unknown = JSON.parse(text);
  if (typeof doc !== "object" || doc === null || !Array.isArray((doc as { keys?: unknown }).keys)) {
    throw new Error("not a JWKS: expected an object with a keys array");
  }
  const keys: VerificationKey[] = [];
  for (const raw of (doc as { keys: unknown[] }).keys) {
    const key = VerificationKey.from(raw);
    if (key !== undefined) keys.push(key);
  }
  return keys;
}
