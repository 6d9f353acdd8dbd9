import type { Duplex } from "node:stream";

/** The peer went away (or the reader was detached) before the bytes a handshake needs arrived. */
export class PeerClosedError extends Error {
  constructor(message = "the peer closed the connection") {
    super(message);
    this.name = "PeerClosedError";
  }
}

/**
 * Buffers what a socket sends during a handshake, so a parser can wait for exactly the bytes
 * it needs. Past `highWater` buffered bytes the socket is paused: a flood costs no memory.
 * `detach()` hands the rest over to the splice.
 */
export class SocketReader {
  private chunks: Buffer[] = [];
  private size = 0;
  private waiter: { resolve: () => void; reject: (err: Error) => void } | undefined;
  private failure: Error | undefined;
  private paused = false;
  private attached = true;

  private readonly onData = (chunk: Buffer) => {
    this.chunks.push(chunk);
    this.size += chunk.length;
    if (this.size > this.highWater && !this.paused) {
      this.paused = true;
      this.socket.pause();
    }
    this.wake();
  };
  private readonly onEnd = () => this.fail(new PeerClosedError());
  private readonly onError = (err: Error) =>
    this.fail(new PeerClosedError(`connection error: ${err.message}`));

  constructor(
    private readonly socket: Duplex,
    private readonly highWater: number,
  ) {
    socket.on("data", this.onData);
    socket.on("end", this.onEnd);
    socket.on("close", this.onEnd);
    socket.on("error", this.onError);
  }

  /** Bytes buffered and not yet taken. */
  get length(): number {
    return this.size;
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.resolve();
  }

  private fail(err: Error): void {
    this.failure ??= err;
    const w = this.waiter;
    this.waiter = undefined;
    w?.reject(this.failure);
  }

  /** Resolves when more bytes arrive; rejects with PeerClosedError when none will. */
  more(): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.paused) {
      this.paused = false;
      this.socket.resume();
    }
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  /** Resolves once at least `n` bytes are buffered. */
  async need(n: number): Promise<void> {
    while (this.size < n) await this.more();
  }

  /** The buffered bytes (at most `n`), not consumed. */
  peek(n = this.size): Buffer {
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks)];
    const all = this.chunks[0] ?? Buffer.alloc(0);
    return n >= all.length ? all : all.subarray(0, n);
  }

  /** Removes and returns the first `n` buffered bytes (fewer if fewer are buffered). */
  take(n: number): Buffer {
    const out = this.peek(n);
    const head = this.chunks[0];
    if (head) {
      const rest = head.subarray(out.length);
      this.chunks = rest.length > 0 ? [rest] : [];
    }
    this.size -= out.length;
    if (this.paused && this.size <= this.highWater) {
      this.paused = false;
      this.socket.resume();
    }
    return out;
  }

  /**
   * Stops reading and returns what is buffered. With `pause`, the socket is left paused so
   * no byte is lost before the next reader attaches (it must call `resume()`).
   */
  detach(opts: { pause: boolean }): Buffer {
    if (this.attached) {
      this.attached = false;
      if (opts.pause) this.socket.pause();
      this.socket.off("data", this.onData);
      this.socket.off("end", this.onEnd);
      this.socket.off("close", this.onEnd);
      this.socket.off("error", this.onError);
      this.fail(new PeerClosedError("reader detached"));
    }
    const rest = this.take(this.size);
    this.chunks = [];
    return rest;
  }
}
