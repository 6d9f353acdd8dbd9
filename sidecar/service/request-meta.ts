import type { CallerAttestation } from "../attest/types.js";

/** What a use case knows of the request that started it. */
export interface RequestMeta {
  readonly requestId: string;
  /** Aborts when the client goes away (a waiting checkout stops waiting). */
  readonly signal?: AbortSignal | undefined;
  /**
   * The local process that made the request (issue 22), resolved once per connection and only
   * when asked for. Absent where no connection exists to attest.
   */
  readonly caller?: (() => Promise<CallerAttestation>) | undefined;
}
