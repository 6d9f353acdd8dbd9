import type { Credential, LeaseHandle, ToolCall } from "./types.js";

/**
 * The credential handed to a `withCredential` callback. The password lives in a private field
 * behind a getter, so `JSON.stringify`, `console.log` and spreading the object never show it.
 */
export class RevealedCredential implements Credential {
  readonly username: string;
  readonly connection: Readonly<Record<string, unknown>>;
  readonly signal: AbortSignal;
  readonly #password: string;
  readonly #lease: LeaseHandle;

  constructor(
    revealed: { username: string; password: string; connection: Record<string, unknown> },
    lease: LeaseHandle,
    signal: AbortSignal,
  ) {
    this.username = revealed.username;
    this.connection = Object.freeze({ ...revealed.connection });
    this.signal = signal;
    this.#password = revealed.password;
    this.#lease = lease;
  }

  get password(): string {
    return this.#password;
  }

  get expiresAt(): Date {
    return new Date(this.#lease.lease.expires_at);
  }

  reportToolCall(call: ToolCall): Promise<void> {
    return this.#lease.reportToolCall(call);
  }
}
