import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import { type SecureContext, TLSSocket } from "node:tls";
import { accountDn } from "../../../adapters/ldap/index.js";
import { checkLeaseToken, connectionCaller, proxyRequestId } from "../check-token.js";
import { HandshakeRefusal } from "../handshake-refusal.js";
import type { Handshaking } from "../handshake-slots.js";
import type { SessionContext } from "../session-context.js";
import { leaseAuditFields, SessionRecord } from "../session-record.js";
import { sessionLimiter } from "../session-limits.js";
import { leaseCapMessage } from "../session-registry.js";
import { PeerClosedError, SocketReader } from "../socket-reader.js";
import { type Splice, splice } from "../splice.js";
import type { ProxySession } from "../types.js";
import { loginToLdap } from "./backend-login.js";
import { LdapProtocolError, readFrame } from "./ber-frame.js";
import { type BindStep, firstBindStep, leaseIdOfBindDn } from "./bind-steps.js";
import { rdnValues } from "./dn-match.js";
import { LdapMessageGuard } from "./message-guard.js";
import { bindResponse, decodeMessage, noticeOfDisconnection, OP, RESULT } from "./messages.js";
import { ldapTargetOf } from "./target.js";

export interface LdapContext extends SessionContext {
  /** TLS for clients (StartTLS, or ldaps: a TLS ClientHello as the first bytes); undefined: none. */
  readonly secureContext: SecureContext | undefined;
}

/** Failed binds before the connection is closed. */
const MAX_ATTEMPTS = 3;
/** Requests a bound session may have refused (each one audited) before it is closed. */
const MAX_REFUSALS = 32;
/** The first byte of a TLS handshake record: an ldaps:// client. */
const TLS_HANDSHAKE = 0x16;

/**
 * One client connection to an LDAP listener. Before the bind the listener answers everything
 * itself: StartTLS (or TLS from the first byte, for ldaps://), a simple bind with DN
 * `cn=<lease id>` (or the lease id alone) and the lease token as password, checked like the HTTP
 * API checks it; other requests get `operationsError`. Then it binds to the directory as the
 * account's DN with its real password and relays LDAPv3 messages both ways through
 * {@link LdapMessageGuard}, which refuses another bind, a late StartTLS and password changes.
 */
export class LdapSession implements ProxySession, Handshaking {
  private client: Duplex;
  private backend: Duplex | undefined;
  private spliced: Splice | undefined;
  private guard: LdapMessageGuard | undefined;
  private readonly abort = new AbortController();
  private readonly record: SessionRecord;
  private tls = false;
  private leaseKey: string | undefined;
  /** The messageID of the bind being checked: a refusal answers it. */
  private bindId: number | undefined;
  private ended = false;
  private finished = false;
  private checking = false;
  private refusals = 0;

  constructor(
    private readonly raw: Socket,
    private readonly ctx: LdapContext,
  ) {
    this.client = raw;
    raw.setNoDelay(true);
    raw.on("error", () => undefined);
    this.record = new SessionRecord({
      audit: ctx.audit,
      log: ctx.log,
      resource: ctx.resource,
      protocol: "ldap",
      client: `${raw.remoteAddress ?? "?"}:${raw.remotePort ?? 0}`,
      requestId: proxyRequestId(),
    });
    raw.once("close", () => this.finish());
  }

  /** Runs the session to the splice; never rejects. */
  async run(): Promise<void> {
    this.ctx.live.add(this);
    if (!this.ctx.handshakes.enter(this)) {
      this.evict("too many connections are logging in");
      return;
    }
    const timer = setTimeout(
      () =>
        this.refuse(refusal(RESULT.unavailable, "the bind did not complete in time", "handshake timeout")),
      this.ctx.handshakeTimeoutMs,
    );
    try {
      await this.handshake();
    } catch (err) {
      this.refuse(err);
    } finally {
      clearTimeout(timer);
    }
  }

  private async handshake(): Promise<void> {
    const max = this.ctx.maxMessageBytes;
    let reader = new SocketReader(this.raw, max + 64 * 1024);
    await reader.need(1);
    if (reader.peek(1)[0] === TLS_HANDSHAKE) reader = this.upgrade(reader, true);
    let attempts = 0;
    for (;;) {
      const message = decodeMessage(await readFrame(reader, max));
      const step: BindStep = firstBindStep(message, {
        tls: this.tls,
        offered: this.ctx.secureContext !== undefined,
      });
      if (step.kind === "close") {
        this.ended = true;
        this.client.end();
        return;
      }
      if (step.kind === "ignore") continue;
      if (step.kind === "reply") {
        this.client.write(step.reply);
        continue;
      }
      if (step.kind === "starttls") {
        if (reader.length > 0) throw new LdapProtocolError("bytes after the StartTLS request, before TLS");
        this.client.write(step.reply);
        reader = this.upgrade(reader, false);
        continue;
      }
      this.bindId = message.messageId;
      const leaseId = leaseIdOfBindDn(step.dn);
      this.claim(leaseId);
      this.checking = true;
      const check = await checkLeaseToken(this.ctx, step.password, leaseId, {
        requestId: this.record.requestId,
        client: this.record.client,
        caller: connectionCaller(this.ctx, this.raw),
      });
      if (this.ended) return;
      if (!check.ok) {
        if (check.kind === "unavailable")
          throw refusal(RESULT.unavailable, "the sidecar cannot check the lease token now", check.code);
        this.unclaim();
        this.checking = false;
        attempts += 1;
        this.record.refusal = `${RESULT.invalidCredentials} ${check.code}`;
        const text = "invalid lease id / lease token pair, or the lease has ended";
        if (attempts >= MAX_ATTEMPTS) throw refusal(RESULT.invalidCredentials, text, check.code);
        this.client.write(bindResponse(message.messageId, RESULT.invalidCredentials, text));
        this.bindId = undefined;
        continue;
      }
      this.record.refusal = undefined;
      this.record.lease = check.credential.lease;
      this.admit(check.credential.lease.id);
      await this.bindBackend(reader, check.credential.username, check.credential.password);
      return;
    }
  }

  /** Hands the raw socket to TLS (StartTLS answered, or an ldaps:// ClientHello already buffered). */
  private upgrade(reader: SocketReader, hello: boolean): SocketReader {
    const secure = this.ctx.secureContext;
    if (this.tls || !secure) throw new LdapProtocolError("TLS is not offered by this listener");
    const buffered = reader.detach({ pause: true });
    if (hello && buffered.length > 0) this.raw.unshift(buffered);
    const tls = new TLSSocket(this.raw, { isServer: true, secureContext: secure });
    tls.on("error", () => undefined);
    this.client = tls;
    this.tls = true;
    return new SocketReader(tls, this.ctx.maxMessageBytes + 64 * 1024);
  }

  /** Binds to the directory as the account, answers the client's bind, and relays from then on. */
  private async bindBackend(reader: SocketReader, account: string, password: string): Promise<void> {
    const reg = this.ctx.registration();
    const target = reg ? ldapTargetOf(reg.connection) : null;
    if (!target) throw refusal(RESULT.unavailable, "the resource has no usable connection", "no connection");
    // proxy.limits: a lease past its byte cap binds no more; requests count as they are framed.
    const limiter = sessionLimiter({
      ctx: this.ctx,
      record: this.record,
      tool: "ldap",
      end: (why) => this.terminateWith(RESULT.adminLimitExceeded, why),
      refusal: (why) => refusal(RESULT.adminLimitExceeded, why, why),
      // Requests are counted as the message guard frames them (its `request` callback), not per chunk.
      count: () => 0,
    });
    const dn = accountDn(target.accountDn, account);
    const login = await loginToLdap({
      target,
      dn,
      password,
      maxMessageBytes: this.ctx.maxMessageBytes,
      signal: this.abort.signal,
    });
    this.backend = login.socket;
    login.socket.on("error", () => undefined);
    if (this.ended) {
      login.socket.destroy();
      return;
    }
    this.ctx.handshakes.leave(this);
    const pipelined = reader.detach({ pause: true });
    const guard = new LdapMessageGuard({
      maxMessageBytes: this.ctx.maxMessageBytes,
      account: rdnValues(dn),
      answer: (reply) => this.client.write(reply),
      refused: (rule) => this.refusedRequest(rule),
      violation: (why) => this.terminateWith(RESULT.protocolError, why),
      request: limiter
        ? (tag) => {
            if (tag !== OP.unbindRequest && tag !== OP.abandonRequest) limiter.statements(1);
          }
        : undefined,
    });
    this.guard = guard;
    // The bind is answered before anything the server sends; the server's first bytes follow it.
    this.client.write(bindResponse(this.bindId ?? 0, RESULT.success));
    this.bindId = undefined;
    limiter?.returned(login.rest.length);
    if (this.ended) return;
    for (const out of guard.down(login.rest)) this.client.write(out);
    for (const out of guard.up(pipelined)) login.socket.write(out);
    this.record.bytesIn += pipelined.length;
    this.record.bytesOut += login.rest.length;
    this.spliced = splice(this.client, login.socket, {
      ...limiter?.taps(),
      rewriteUp: guard.up,
      rewriteDown: guard.down,
    });
    limiter?.attach(this.spliced);
  }

  /**
   * A request of the bound session the listener answered itself: a `decision` record (its rule,
   * never its content, which may hold a password). Past MAX_REFUSALS the session ends, so a
   * client cannot turn refusals into an unbounded stream of audit records.
   */
  private refusedRequest(rule: string): void {
    this.refusals += 1;
    const lease = this.record.lease;
    if (lease) {
      this.ctx.audit
        .append({
          ...leaseAuditFields(lease),
          event: "decision",
          scope: "proxy_statement",
          decision: "deny",
          tool: "ldap",
          target: this.record.client,
          request_id: this.record.requestId,
          reason: `${rule}: refused by the leasehold listener`,
        })
        .catch((err: unknown) =>
          this.ctx.log.error(
            { err: { message: (err as Error).message }, resource: this.ctx.resource },
            "proxy audit write failed",
          ),
        );
    }
    if (this.refusals > MAX_REFUSALS)
      setImmediate(() => this.terminateWith(RESULT.unwillingToPerform, "too many refused requests"));
  }

  private claim(leaseId: string): void {
    this.leaseKey = leaseId;
    this.record.claimedLeaseId = leaseId;
    this.ctx.registry.add(leaseId, this);
  }

  private admit(leaseId: string): void {
    const max = this.ctx.maxConnectionsPerLease;
    if (!this.ctx.registry.admit(leaseId, this, max)) {
      throw refusal(RESULT.busy, leaseCapMessage(max), "too many connections for the lease");
    }
  }

  private unclaim(): void {
    if (this.leaseKey !== undefined) this.ctx.registry.remove(this.leaseKey, this);
    this.leaseKey = undefined;
  }

  get evictable(): boolean {
    return !this.checking && !this.ended;
  }

  /** Closes a connection still logging in at once, to make room for another. */
  evict(why: string): void {
    this.refuse(refusal(RESULT.unavailable, why, why));
    this.raw.destroy();
  }

  /**
   * Ends a handshake: the bind being checked gets a BindResponse with the refusal's result code;
   * otherwise the client gets a Notice of Disconnection. Then the connection is closed.
   */
  private refuse(err: unknown): void {
    if (this.ended) return;
    this.ended = true;
    this.ctx.handshakes.leave(this);
    this.ctx.registry.release(this);
    this.abort.abort();
    this.backend?.destroy();
    if (err instanceof PeerClosedError) {
      this.record.refusal ??= "client closed before binding";
      this.raw.destroy();
      return;
    }
    let code: number;
    let text: string;
    if (err instanceof LdapProtocolError) {
      code = RESULT.protocolError;
      text = err.message;
      this.record.refusal = `${code} protocol error: ${err.message}`;
    } else if (err instanceof HandshakeRefusal) {
      code = Number(err.code);
      text = err.message;
      this.record.refusal = err.reason;
    } else {
      this.ctx.log.error(
        { err: { message: (err as Error).message }, resource: this.ctx.resource },
        "proxy session failed",
      );
      code = RESULT.other;
      text = "internal error in the proxy";
      this.record.refusal = `${code} internal error`;
    }
    const reply =
      this.bindId !== undefined && code !== RESULT.protocolError
        ? bindResponse(this.bindId, code, text)
        : noticeOfDisconnection(code, text);
    this.client.end(reply);
    setTimeout(() => this.raw.destroy(), 1000).unref();
  }

  /** Ends a relayed session: a Notice of Disconnection when the client is between two messages. */
  private terminateWith(code: number, why: string): void {
    if (this.ended) return;
    this.ended = true;
    this.record.ending = why;
    this.spliced?.stopDown();
    this.backend?.destroy();
    if (this.guard?.atBoundary) {
      this.client.end(noticeOfDisconnection(code, why));
      setTimeout(() => this.raw.destroy(), 1000).unref();
    } else this.raw.destroy();
  }

  /** Closes the session now; the client is told why where LDAP allows (a Notice of Disconnection). */
  terminate(why: string): void {
    if (!this.spliced) {
      this.refuse(refusal(RESULT.unavailable, `connection closed because ${why}`, why));
      return;
    }
    this.terminateWith(RESULT.unavailable, `connection closed because ${why}`);
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
    if (this.spliced) {
      this.record.bytesIn += this.spliced.up.bytes;
      this.record.bytesOut += this.spliced.down.bytes;
    }
    this.record.finish();
  }
}

function refusal(code: number, message: string, reason: string): HandshakeRefusal {
  return new HandshakeRefusal(String(code), message, `${code} ${reason}`);
}
