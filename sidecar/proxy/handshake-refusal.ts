/**
 * Why a connection is refused before it is spliced. `code` is the protocol's own: a SQLSTATE
 * for PostgreSQL, an error prefix (WRONGPASS, ERR, NOAUTH) for Redis. `reason` goes to the
 * audit record; `message` to the client. Neither ever holds a secret.
 */
export class HandshakeRefusal extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly reason: string = message,
    /** A message from the backend to relay verbatim instead of one of ours. */
    readonly raw?: Buffer,
    /** More for the client where its protocol has room for it (PostgreSQL's DETAIL). */
    readonly detail?: string,
  ) {
    super(message);
    this.name = "HandshakeRefusal";
  }
}
