/** A whole message the tap was asked to capture. */
export interface TappedMessage {
  readonly type: number;
  /** The body, or its first `maxCapture` bytes when `truncated`. */
  readonly body: Buffer;
  readonly truncated: boolean;
}

/**
 * Follows message boundaries in a spliced PostgreSQL stream without changing or delaying it:
 * chunks pass through untouched while the tap notes where each typed message ends, and hands
 * over whole messages of the types it was asked to capture.
 */
export class FrameTap {
  private readonly header = Buffer.alloc(5);
  private headerHave = 0;
  private remaining = 0;
  private broken = false;
  private capture: { type: number; parts: Buffer[]; have: number; truncated: boolean } | undefined;

  constructor(
    private readonly captureTypes: ReadonlySet<number> = new Set(),
    private readonly onMessage: (m: TappedMessage) => void = () => undefined,
    private readonly maxCapture = 1024 * 1024,
  ) {}

  /** True between two messages: something of our own may be written to the stream now. */
  get atBoundary(): boolean {
    return !this.broken && this.headerHave === 0 && this.remaining === 0;
  }

  /**
   * Where in `chunk` (the next one to be pushed) the message in progress ends: 0 at a boundary,
   * -1 when it does not end within `chunk` or the stream is not followed. Changes nothing.
   */
  endOfCurrent(chunk: Buffer): number {
    if (this.broken) return -1;
    if (this.headerHave === 0) return this.remaining <= chunk.length ? this.remaining : -1;
    const need = 5 - this.headerHave;
    if (chunk.length < need) return -1;
    const len = Buffer.concat([
      this.header.subarray(1, this.headerHave),
      chunk.subarray(0, need),
    ]).readInt32BE(0);
    if (len < 4) return -1;
    const end = need + len - 4;
    return end <= chunk.length ? end : -1;
  }

  push(chunk: Buffer): void {
    let i = 0;
    while (i < chunk.length && !this.broken) {
      if (this.remaining > 0) {
        const take = Math.min(this.remaining, chunk.length - i);
        if (this.capture) this.keep(chunk.subarray(i, i + take));
        this.remaining -= take;
        i += take;
        if (this.remaining === 0) this.emit();
        continue;
      }
      let type: number;
      let len: number;
      if (this.headerHave === 0 && chunk.length - i >= 5) {
        // The usual case: the whole header is in this chunk, read it in place.
        type = chunk[i] as number;
        len = chunk.readInt32BE(i + 1);
        i += 5;
      } else {
        const take = Math.min(5 - this.headerHave, chunk.length - i);
        chunk.copy(this.header, this.headerHave, i, i + take);
        this.headerHave += take;
        i += take;
        if (this.headerHave < 5) continue;
        this.headerHave = 0;
        type = this.header[0] as number;
        len = this.header.readInt32BE(1);
      }
      if (len < 4) {
        // Not a message stream we understand: stop tracking; the server will complain.
        this.broken = true;
        return;
      }
      this.remaining = len - 4;
      if (this.captureTypes.has(type)) this.capture = { type, parts: [], have: 0, truncated: false };
      if (this.remaining === 0) this.emit();
    }
  }

  private keep(piece: Buffer): void {
    const c = this.capture;
    if (!c) return;
    const room = this.maxCapture - c.have;
    if (room <= 0) {
      c.truncated = true;
      return;
    }
    // Copied: the chunk's memory belongs to the stream once it has been written on.
    const part = Buffer.from(piece.subarray(0, room));
    if (part.length < piece.length) c.truncated = true;
    c.parts.push(part);
    c.have += part.length;
  }

  private emit(): void {
    const c = this.capture;
    this.capture = undefined;
    if (c) this.onMessage({ type: c.type, body: Buffer.concat(c.parts), truncated: c.truncated });
  }
}
