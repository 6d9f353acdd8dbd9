import { createPrivateKey, sign } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "vitest";
import { LeaseholdError } from "../../sidecar/errors.js";
import type { LeaseTokenInput } from "../../sidecar/identity/index.js";

/** A fresh temp folder; remove it with `cleanup`. */
export async function tempDir(prefix: string): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), `lh-${prefix}-`));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

function b64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString("base64url");
}

/**
 * Signs any header and payload with an Ed25519 private JWK file, bypassing jose's
 * own checks, so tests can build tokens that a careful signer would refuse to make.
 */
export async function signRaw(
  keyFile: string,
  header: Record<string, unknown>,
  payload: Record<string, unknown>,
): Promise<string> {
  const jwk = JSON.parse(await readFile(keyFile, "utf8")) as Record<string, string>;
  const key = createPrivateKey({ key: { kty: "OKP", crv: "Ed25519", x: jwk.x, d: jwk.d }, format: "jwk" });
  const input = `${b64url(header)}.${b64url(payload)}`;
  return `${input}.${sign(null, Buffer.from(input), key).toString("base64url")}`;
}

/** An unsigned (`alg: none`) token. */
export function unsignedToken(header: Record<string, unknown>, payload: Record<string, unknown>): string {
  return `${b64url(header)}.${b64url(payload)}.`;
}

/** Reads the `kid` and `sub` of a private key file. */
export async function keyInfo(keyFile: string): Promise<{ kid: string; sub: string }> {
  const jwk = JSON.parse(await readFile(keyFile, "utf8")) as { kid: string; sub: string };
  return { kid: jwk.kid, sub: jwk.sub };
}

/**
 * Asserts that `promise` rejects with a LeaseholdError of `code` whose message
 * contains `message`, and that the message never repeats the token.
 */
export async function expectRefusal(
  promise: Promise<unknown>,
  token: string,
  message: string,
  code = "unauthenticated",
): Promise<void> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, `expected refusal "${message}"`).toBeInstanceOf(LeaseholdError);
  const lh = err as LeaseholdError;
  expect(lh.code).toBe(code);
  expect(lh.message).toContain(message);
  // Booleans, not toContain: a failing assertion must not print the token.
  expect(lh.message.includes(token) && token.length > 0, "message repeats the token").toBe(false);
  const signature = token.split(".")[2];
  if (signature !== undefined && signature.length >= 16) {
    expect(lh.message.includes(signature), "message repeats the signature").toBe(false);
  }
}

/** A lease token's input for tests: lease `lse_test_1` of orders-db, expiring 300 s after T0. */
export function leaseTokenInput(t0: number, overrides: Partial<LeaseTokenInput> = {}): LeaseTokenInput {
  return {
    leaseId: "lse_test_1",
    agent: "spiffe://example.org/agent/reporter",
    resource: "orders-db",
    account: "app_orders_1",
    expiresAt: t0 + 300_000,
    ...overrides,
  };
}
