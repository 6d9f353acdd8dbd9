/** A connection still logging in, as the listener's handshake slots see it. */
export interface Handshaking {
  /** True while the proxy waits on the client (nothing of its login is being checked yet). */
  readonly evictable: boolean;
  /** Closes the connection at once to make room; `why` is told to the client where the protocol allows. */
  evict(why: string): void;
}

/**
 * The slots of one listener for connections that have not finished logging in. Idle or slow
 * clients can hold at most `max` of them, and each only until its handshake deadline; when all
 * are taken, the oldest one still waiting on its client is closed to make room, so a flood of
 * idle connections cannot keep a real client out. Authenticated sessions hold no slot.
 */
export class HandshakeSlots {
  private readonly open = new Set<Handshaking>();

  constructor(readonly max: number) {}

  /** Takes a slot, evicting the oldest evictable handshake if needed; false when none could be freed. */
  enter(h: Handshaking): boolean {
    if (this.open.size >= this.max) {
      let oldest: Handshaking | undefined;
      for (const o of this.open) {
        if (o.evictable) {
          oldest = o;
          break;
        }
      }
      if (!oldest) return false;
      this.open.delete(oldest);
      oldest.evict("too many connections are logging in; the oldest idle one was closed");
    }
    this.open.add(h);
    return true;
  }

  /** Gives the slot back (the login finished or failed); safe to call more than once. */
  leave(h: Handshaking): void {
    this.open.delete(h);
  }

  get size(): number {
    return this.open.size;
  }
}
