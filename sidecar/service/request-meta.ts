/** What a use case knows of the request that started it. */
export interface RequestMeta {
  readonly requestId: string;
  /** Aborts when the client goes away (a waiting checkout stops waiting). */
  readonly signal?: AbortSignal | undefined;
}
