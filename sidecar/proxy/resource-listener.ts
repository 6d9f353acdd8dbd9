import { createServer, type Server, type Socket } from "node:net";
import type { StoredRegistration } from "../resources/types.js";
import { HandshakeSlots } from "./handshake-slots.js";
import type { ProxyProtocol, ProxySession } from "./types.js";

/**
 * The TCP listener of one resource, on loopback only, and the sessions it accepted. It sets no
 * cap on connections of its own: the handshake slots and the per-lease cap bound them, so that
 * idle connections cannot fill the listener.
 */
export class ResourceListener {
  readonly sessions = new Set<ProxySession>();
  readonly handshakes: HandshakeSlots;
  private readonly server: Server;
  private boundPort = 0;

  constructor(
    /** The registration as last synced. */
    public registration: StoredRegistration,
    readonly protocol: ProxyProtocol,
    /** The port asked for (0: any free one). */
    readonly requestedPort: number,
    accept: (socket: Socket, listener: ResourceListener) => void,
    maxHandshakes: number,
  ) {
    this.handshakes = new HandshakeSlots(maxHandshakes);
    this.server = createServer({ noDelay: true }, (socket) => accept(socket, this));
  }

  get port(): number {
    return this.boundPort;
  }

  /** Binds 127.0.0.1; rejects with the bind error (EADDRINUSE…). */
  start(host: string): Promise<number> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      this.server.once("error", onError);
      this.server.listen({ host, port: this.requestedPort, exclusive: true }, () => {
        this.server.off("error", onError);
        const addr = this.server.address();
        this.boundPort = addr !== null && typeof addr === "object" ? addr.port : 0;
        resolve(this.boundPort);
      });
    });
  }

  /** Stops accepting and terminates every open session. */
  async close(why: string): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const s of [...this.sessions]) s.terminate(why);
    await closed;
  }
}
