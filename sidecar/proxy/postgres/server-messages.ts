import { MSG } from "./constants.js";

function typed(type: number, body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(5 + body.length);
  out[0] = type;
  out.writeInt32BE(4 + body.length, 1);
  body.copy(out, 5);
  return out;
}

function int32s(...values: number[]): Buffer {
  const b = Buffer.allocUnsafe(4 * values.length);
  for (const [i, v] of values.entries()) b.writeInt32BE(v, 4 * i);
  return b;
}

function cstrings(values: readonly string[]): Buffer {
  return Buffer.concat(values.map((v) => Buffer.from(`${v}\0`, "utf8")));
}

/** AuthenticationCleartextPassword: the client answers with a PasswordMessage. */
export function authenticationCleartextPassword(): Buffer {
  return typed(MSG.auth, int32s(3));
}

export function authenticationOk(): Buffer {
  return typed(MSG.auth, int32s(0));
}

/** BackendKeyData with the key the client will quote in a CancelRequest. */
export function backendKeyData(pid: number, secret: number): Buffer {
  return typed(MSG.backendKeyData, int32s(pid, secret));
}

/** NegotiateProtocolVersion: we speak 3.0 and none of the `_pq_` options asked for. */
export function negotiateProtocolVersion(newestMinor: number, unrecognized: readonly string[]): Buffer {
  return typed(
    MSG.negotiateProtocol,
    Buffer.concat([int32s(newestMinor, unrecognized.length), cstrings(unrecognized)]),
  );
}

export interface ErrorFields {
  readonly severity: "FATAL" | "ERROR";
  readonly code: string;
  readonly message: string;
  readonly detail?: string | undefined;
  readonly hint?: string | undefined;
}

/** ErrorResponse, with both the localized (S) and the non-localized (V) severity. */
export function errorResponse(f: ErrorFields): Buffer {
  const parts = [`S${f.severity}`, `V${f.severity}`, `C${f.code}`, `M${f.message}`];
  if (f.detail !== undefined) parts.push(`D${f.detail}`);
  if (f.hint !== undefined) parts.push(`H${f.hint}`);
  return typed(MSG.error, Buffer.concat([cstrings(parts), Buffer.from([0])]));
}

/** AuthenticationSASL offering SCRAM-SHA-256 only (no channel binding: no `-PLUS`). */
export function authenticationSasl(): Buffer {
  return typed(MSG.auth, Buffer.concat([int32s(10), cstrings(["SCRAM-SHA-256"]), Buffer.from([0])]));
}

/** AuthenticationSASLContinue (server-first-message) or AuthenticationSASLFinal (server-final-message). */
export function authenticationSaslStep(step: "continue" | "final", data: string): Buffer {
  return typed(MSG.auth, Buffer.concat([int32s(step === "continue" ? 11 : 12), Buffer.from(data, "utf8")]));
}
