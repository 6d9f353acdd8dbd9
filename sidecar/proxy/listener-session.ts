import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import { type SecureContext, TLSSocket } from "node:tls";
import type { LeaseRecord, TokenProof } from "../leases/index.js";
import { checkLeaseToken, connectionCaller, proxyRequestId, type TokenCheck } from "./check-token.js";
import { type ProxyDecision, recordDenial } from "./decision-record.js";
import type { HandshakeRefusal } from "./handshake-refusal.js";
import type { Handshaking } from "./handshake-slots.js";
import type { SessionContext } from "./session-context.js";
import { type SessionLimiter, type SessionLimitsOptions, sessionLimiter } from "./session-limits.js";
import { SessionRecord } from "./session-record.js";
import { PeerClosedError } from "./socket-reader.js";
import { type Splice, type SpliceOptions, splice } from "./splice.js";
import type { StatementAuditOptions } from "./statement-trail.js";
import type { AuditStatements, ProxyProtocol, ProxySession } from "./types.js";

/** How long a client told why its connection closes has to read it before the socket is destroyed, ms. */
const LINGER_MS = 1000;

/** What a denial record says; the session, its lease and the fail-closed end are the session's. */
export type SessionDenial = Omit<ProxyDecision, "ctx" | "record" | "tool" | "onFailure">;

/**
 * The lifecycle every listener session shares, around its protocol's own handshake and framing:
 * a handshake slot and a deadline, the claim of a lease id in the session registry before its
 * token is checked (so no lease end is missed), the per-lease cap, the one session audit record,
 * and the ends: a refusal before the splice, a termination after it (the backend closed at
 * once, the client after its protocol's last word, at most LINGER_MS later), and the close of
 * either socket, which releases everything. What a protocol says at each end is its own.
 */
export abstract class ListenerSession<C extends SessionContext> implements ProxySession, Handshaking {
  /** The client's stream: the accepted socket, or TLS over it. */
  protected client: Duplex;
  protected backend: Duplex | undefined;
  protected spliced: Splice | undefined;
  /** Aborts a login to the server still under way when the session ends. */
  protected readonly abort = new AbortController();
  protected readonly record: SessionRecord;
  /** Refused, terminated or closed: nothing more is relayed or said. */
  protected ended = false;
  /** While the proxy waits on the client (nothing of its login is being checked): evictable. */
  protected waitingOnClient = true;
  /** False for a connection that is no session (a PostgreSQL CancelRequest): it leaves no record. */
  protected audited = true;
  /** What the session record says of a client that closed before logging in. */
  protected abstract readonly closedEarly: string;
  private leaseKey: string | undefined;
  private finished = false;

  constructor(
    protected readonly raw: Socket,
    protected readonly ctx: C,
    protected readonly protocol: ProxyProtocol,
  ) {
    this.client = raw;
    raw.setNoDelay(true);
    raw.on("error", () => undefined);
    this.record = new SessionRecord({
      audit: ctx.audit,
      log: ctx.log,
      resource: ctx.resource,
      protocol,
      client: `${raw.remoteAddress ?? "?"}:${raw.remotePort ?? 0}`,
      requestId: proxyRequestId(),
    });
    raw.once("close", () => this.finish());
  }

  /** The protocol's login, up to the splice; a throw refuses the connection. */
  protected abstract handshake(): Promise<void>;
  /** The refusal of a handshake past `handshakeTimeoutMs`. */
  protected abstract timedOut(): unknown;
  /** The refusal of a login over `proxy.maxConnectionsPerLease`. */
  protected abstract leaseCapRefusal(leaseId: string, max: number): HandshakeRefusal;
  /** The refusal of a handshake closed to make room (`evict`). */
  protected abstract busyRefusal(why: string): HandshakeRefusal;
  /** The refusal of a handshake terminated before its splice (the listener closed, the audit failed). */
  protected abstract terminatedRefusal(why: string): HandshakeRefusal;
  /**
   * The refusal of a login whose lease ended before its splice: what a refused token gets (each
   * protocol says); by default as `terminatedRefusal`.
   */
  protected endedLoginRefusal(why: string): HandshakeRefusal {
    return this.terminatedRefusal(why);
  }
  /**
   * The client's last frame for a refusal, having set `record.refusal`; undefined: the
   * connection is dropped without a word.
   */
  protected abstract refusalFrame(err: unknown): Buffer | undefined;
  /** Ends a spliced session, telling the client `why` where the protocol allows (see `close`). */
  protected abstract endSpliced(why: string): void;
  /** What the protocol releases of its own when the connection is gone. */
  protected released(): void {}

  /** Runs the session to the splice; never rejects. */
  async run(): Promise<void> {
    this.ctx.live.add(this);
    if (!this.ctx.handshakes.enter(this)) {
      this.evict("too many connections are logging in");
      return;
    }
    const timer = setTimeout(() => this.refuse(this.timedOut()), this.ctx.handshakeTimeoutMs);
    try {
      await this.handshake();
    } catch (err) {
      this.refuse(err);
    } finally {
      clearTimeout(timer);
    }
  }

  /** The client speaks TLS over the accepted socket. */
  protected get tls(): boolean {
    return this.client !== this.raw;
  }

  /** Hands the accepted socket to TLS; the session ends when either closes. */
  protected startTls(secureContext: SecureContext): TLSSocket {
    const tls = new TLSSocket(this.raw, { isServer: true, secureContext });
    tls.on("error", () => undefined);
    tls.once("close", () => this.finish());
    this.client = tls;
    return tls;
  }

  /** Registers the session under the lease id it claims, before the token is checked, so no end is missed. */
  protected claim(leaseId: string): void {
    this.leaseKey = leaseId;
    this.record.claimedLeaseId = leaseId;
    this.ctx.registry.add(leaseId, this);
  }

  protected unclaim(): void {
    if (this.leaseKey !== undefined) this.ctx.registry.remove(this.leaseKey, this);
    this.leaseKey = undefined;
  }

  /** Checks the token the client presented, as the HTTP API does; the proxy no longer waits on the client. */
  protected checkToken(token: string | TokenProof, leaseId: string): Promise<TokenCheck> {
    this.waitingOnClient = false;
    return checkLeaseToken(this.ctx, token, leaseId, {
      requestId: this.record.requestId,
      client: this.record.client,
      // The accepted TCP socket, also when the client speaks TLS over it.
      caller: connectionCaller(this.ctx, this.raw),
    });
  }

  /** The lease whose token was accepted becomes the record's, and counts against the lease's cap. */
  protected admit(lease: LeaseRecord): void {
    this.record.refusal = undefined;
    this.record.lease = lease;
    const max = this.ctx.maxConnectionsPerLease;
    if (!this.ctx.registry.admit(lease.id, this, max)) throw this.leaseCapRefusal(lease.id, max);
  }

  /** Takes the logged-in server connection; false (and it is closed) when the session ended meanwhile. */
  protected adoptBackend(socket: Duplex): boolean {
    this.backend = socket;
    socket.on("error", () => undefined);
    if (!this.ended) return true;
    socket.destroy();
    return false;
  }

  /** The session's `proxy.limits` limiter (session-limits.ts), undefined without limits. */
  protected limiter(o: Pick<SessionLimitsOptions, "end" | "refusal" | "count">): SessionLimiter | undefined {
    return sessionLimiter({ ctx: this.ctx, record: this.record, tool: this.protocol, ...o });
  }

  /** The statement trail's options once the lease is known (none under "none"); a failed write ends the session. */
  protected trailOptions(mode: AuditStatements): StatementAuditOptions | undefined {
    const lease = this.record.lease;
    if (mode === "none" || !lease) return undefined;
    return {
      mode,
      audit: this.ctx.audit,
      lease,
      client: this.record.client,
      requestId: this.record.requestId,
      onFailure: () => this.terminate("the audit log cannot be written"),
    };
  }

  /** A `deny` decision record on the session's lease; one that cannot be written ends the session. */
  protected deny(d: SessionDenial): void {
    recordDenial({
      ...d,
      ctx: this.ctx,
      record: this.record,
      tool: this.protocol,
      onFailure: (why) => this.terminate(why),
    });
  }

  /** Relays both ways from now on; the limiter (if any) follows the splice. */
  protected relay(backend: Duplex, opts: SpliceOptions, limiter?: SessionLimiter): Splice {
    const spliced = splice(this.client, backend, opts);
    this.spliced = spliced;
    limiter?.attach(spliced);
    return spliced;
  }

  /** The client ended the conversation before any login (or it was no session): `last` is the answer. */
  protected hangUp(last?: Buffer): void {
    this.ended = true;
    this.client.end(last);
  }

  get evictable(): boolean {
    return this.waitingOnClient && !this.ended;
  }

  /** Closes a connection still logging in at once, to make room for another (no linger). */
  evict(why: string): void {
    this.refuse(this.busyRefusal(why));
    this.client.destroy();
  }

  /** Ends a handshake: the client gets the protocol's refusal, the server connection (if any) is closed. */
  protected refuse(err: unknown): void {
    if (this.ended) return;
    this.ended = true;
    this.ctx.handshakes.leave(this);
    this.ctx.registry.release(this);
    this.abort.abort();
    this.backend?.destroy();
    if (err instanceof PeerClosedError) {
      this.record.refusal ??= this.closedEarly;
      this.client.destroy();
      return;
    }
    const frame = this.refusalFrame(err);
    if (frame === undefined) this.client.destroy();
    else this.close(frame);
  }

  /** Logs a fault no refusal of the protocol names (the client is told only of an internal error). */
  protected failed(err: unknown): void {
    this.ctx.log.error(
      { err: { message: (err as Error).message }, resource: this.ctx.resource },
      "proxy session failed",
    );
  }

  leaseEnded(why: string): void {
    if (!this.spliced) this.refuse(this.endedLoginRefusal(why));
    else this.endSpliced(why);
  }

  /** Closes the session now; `why` is told to the client where the protocol allows. */
  terminate(why: string): void {
    if (!this.spliced) {
      this.refuse(this.terminatedRefusal(why));
      return;
    }
    this.endSpliced(why);
  }

  /**
   * Ends the session as `ending`: the server connection closes at once, the client after `last`
   * (or at once without it). False when the session had ended already.
   */
  protected endAs(ending: string, last: Buffer | undefined): boolean {
    if (this.ended) return false;
    this.ended = true;
    this.record.ending = ending;
    this.spliced?.stopDown();
    this.backend?.destroy();
    if (last === undefined) this.client.destroy();
    else this.close(last);
    return true;
  }

  /** Sends the client its last frame; the socket is destroyed LINGER_MS later if it has not closed. */
  private close(last: Buffer): void {
    this.client.end(last);
    setTimeout(() => this.client.destroy(), LINGER_MS).unref();
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.ended = true;
    this.abort.abort();
    this.backend?.destroy();
    this.ctx.live.delete(this);
    this.ctx.handshakes.leave(this);
    this.unclaim();
    this.ctx.registry.release(this);
    this.released();
    if (this.spliced) {
      this.record.bytesIn += this.spliced.up.bytes;
      this.record.bytesOut += this.spliced.down.bytes;
    }
    if (this.audited) this.record.finish();
  }
}
