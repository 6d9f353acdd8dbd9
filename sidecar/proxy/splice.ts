import type { Duplex } from "node:stream";

/** One direction of a splice: bytes from `from` are written to `to`, with backpressure. */
export interface SpliceDirection {
  /** Bytes relayed so far. */
  readonly bytes: number;
  /** Stops reading `from` until every hold is released (e.g. while audit records are written). */
  hold(): void;
  release(): void;
}

export interface Splice {
  /** Client to backend. */
  readonly up: SpliceDirection;
  /** Backend to client. */
  readonly down: SpliceDirection;
  /** Resolves when both sockets have closed. */
  readonly closed: Promise<void>;
  /** Stops relaying from the backend (so the client can be told why before it is closed). */
  stopDown(): void;
}

export interface SpliceOptions {
  /** Sees every chunk from the client before it is forwarded. */
  onUp?: ((chunk: Buffer) => void) | undefined;
  /** Sees every chunk from the backend before it is forwarded. */
  onDown?: ((chunk: Buffer) => void) | undefined;
  /**
   * Replaces what is forwarded from the client: each chunk is handed over and whatever comes
   * back is written to the backend instead (possibly nothing yet, possibly held bytes later).
   */
  rewriteUp?: ((chunk: Buffer) => readonly Buffer[]) | undefined;
  /** The same for what is forwarded from the backend. */
  rewriteDown?: ((chunk: Buffer) => readonly Buffer[]) | undefined;
}

class Direction implements SpliceDirection {
  bytes = 0;
  private holds = 0;
  private blocked = false;
  private stopped = false;

  constructor(
    private readonly from: Duplex,
    to: Duplex,
    onChunk: ((chunk: Buffer) => void) | undefined,
    rewrite?: (chunk: Buffer) => readonly Buffer[],
  ) {
    from.on("data", (chunk: Buffer) => {
      if (this.stopped) return;
      this.bytes += chunk.length;
      onChunk?.(chunk);
      let ok = true;
      for (const out of rewrite ? rewrite(chunk) : [chunk]) ok = to.write(out) && ok;
      if (!ok) {
        this.blocked = true;
        from.pause();
      }
    });
    to.on("drain", () => {
      this.blocked = false;
      this.flow();
    });
    // Half-close is passed on: a client's Terminate + FIN reaches the server, and back.
    from.on("end", () => to.end());
  }

  private flow(): void {
    if (!this.blocked && this.holds === 0 && !this.stopped) this.from.resume();
  }

  hold(): void {
    this.holds += 1;
    this.from.pause();
  }

  release(): void {
    this.holds = Math.max(0, this.holds - 1);
    this.flow();
  }

  stop(): void {
    this.stopped = true;
    this.from.pause();
  }

  start(): void {
    this.from.resume();
  }
}

/**
 * Relays both directions between a client and a backend socket until either side closes or
 * fails; then both are destroyed. Sockets should be paused (or fresh) when handed over.
 */
export function splice(client: Duplex, backend: Duplex, opts: SpliceOptions = {}): Splice {
  const up = new Direction(client, backend, opts.onUp, opts.rewriteUp);
  const down = new Direction(backend, client, opts.onDown, opts.rewriteDown);
  const closed = Promise.all([
    new Promise<void>((resolve) => client.once("close", () => resolve())),
    new Promise<void>((resolve) => backend.once("close", () => resolve())),
  ]).then(() => undefined);
  const kill = () => {
    client.destroy();
    backend.destroy();
  };
  client.on("error", kill);
  backend.on("error", kill);
  // Once one side is fully closed nothing more can be relayed: close the other too.
  client.once("close", () => backend.destroy());
  backend.once("close", () => {
    if (!client.writableEnded) client.end();
    setTimeout(() => client.destroy(), 1000).unref();
  });
  up.start();
  down.start();
  return { up, down, closed, stopDown: () => down.stop() };
}
