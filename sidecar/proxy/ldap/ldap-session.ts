import type { Socket } from "node:net";
import type { SecureContext } from "node:tls";
import { accountDn } from "../../../adapters/ldap/index.js";
import { HandshakeRefusal } from "../handshake-refusal.js";
import { ListenerSession } from "../listener-session.js";
import type { SessionContext } from "../session-context.js";
import { leaseCapMessage } from "../session-registry.js";
import { SocketReader } from "../socket-reader.js";
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
export class LdapSession extends ListenerSession<LdapContext> {
  private guard: LdapMessageGuard | undefined;
  /** The messageID of the bind being checked: a refusal answers it. */
  private bindId: number | undefined;
  private refusals = 0;
  protected override readonly closedEarly = "client closed before binding";

  constructor(raw: Socket, ctx: LdapContext) {
    super(raw, ctx, "ldap");
  }

  protected override timedOut(): HandshakeRefusal {
    return refusal(RESULT.unavailable, "the bind did not complete in time", "handshake timeout");
  }

  protected override leaseCapRefusal(_leaseId: string, max: number): HandshakeRefusal {
    return refusal(RESULT.busy, leaseCapMessage(max), "too many connections for the lease");
  }

  protected override busyRefusal(why: string): HandshakeRefusal {
    return refusal(RESULT.unavailable, why, why);
  }

  protected override terminatedRefusal(why: string): HandshakeRefusal {
    return refusal(RESULT.unavailable, `connection closed because ${why}`, why);
  }

  /** As a refused token: a bind still being checked gets invalidCredentials. */
  protected override endedLoginRefusal(why: string): HandshakeRefusal {
    return refusal(
      RESULT.invalidCredentials,
      "invalid lease id / lease token pair, or the lease has ended",
      why,
    );
  }

  protected override async handshake(): Promise<void> {
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
        this.hangUp();
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
      const check = await this.checkToken(step.password, leaseId);
      if (this.ended) return;
      if (!check.ok) {
        if (check.kind === "unavailable")
          throw refusal(RESULT.unavailable, "the sidecar cannot check the lease token now", check.code);
        this.unclaim();
        this.waitingOnClient = true;
        attempts += 1;
        this.record.refusal = `${RESULT.invalidCredentials} ${check.code}`;
        const text = "invalid lease id / lease token pair, or the lease has ended";
        if (attempts >= MAX_ATTEMPTS) throw refusal(RESULT.invalidCredentials, text, check.code);
        this.client.write(bindResponse(message.messageId, RESULT.invalidCredentials, text));
        this.bindId = undefined;
        continue;
      }
      this.admit(check.credential.lease);
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
    return new SocketReader(this.startTls(secure), this.ctx.maxMessageBytes + 64 * 1024);
  }

  /** Binds to the directory as the account, answers the client's bind, and relays from then on. */
  private async bindBackend(reader: SocketReader, account: string, password: string): Promise<void> {
    const reg = this.ctx.registration();
    const target = reg ? ldapTargetOf(reg.connection) : null;
    if (!target) throw refusal(RESULT.unavailable, "the resource has no usable connection", "no connection");
    // proxy.limits: a lease past its byte cap binds no more; requests count as they are framed.
    const limiter = this.limiter({
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
    if (!this.adoptBackend(login.socket)) return;
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
    this.relay(login.socket, { ...limiter?.taps(), rewriteUp: guard.up, rewriteDown: guard.down }, limiter);
  }

  /**
   * A request of the bound session the listener answered itself: a `decision` record (its rule,
   * never its content, which may hold a password). Past MAX_REFUSALS the session ends, so a
   * client cannot turn refusals into an unbounded stream of audit records.
   */
  private refusedRequest(rule: string): void {
    this.refusals += 1;
    // A record that cannot be written ends the session (fail closed), as every listener's denials do.
    this.deny({
      scope: "proxy_statement",
      reason: `${rule}: refused by the leasehold listener`,
      message: "the LDAP listener refused a request of the bound session",
    });
    if (this.refusals > MAX_REFUSALS)
      setImmediate(() => this.terminateWith(RESULT.unwillingToPerform, "too many refused requests"));
  }

  /**
   * The bind being checked gets a BindResponse with the refusal's result code; otherwise the
   * client gets a Notice of Disconnection.
   */
  protected override refusalFrame(err: unknown): Buffer {
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
      this.failed(err);
      code = RESULT.other;
      text = "internal error in the proxy";
      this.record.refusal = `${code} internal error`;
    }
    return this.bindId !== undefined && code !== RESULT.protocolError
      ? bindResponse(this.bindId, code, text)
      : noticeOfDisconnection(code, text);
  }

  /** Ends a relayed session: a Notice of Disconnection when the client is between two messages. */
  private terminateWith(code: number, why: string): void {
    this.endAs(why, this.guard?.atBoundary ? noticeOfDisconnection(code, why) : undefined);
  }

  protected override endSpliced(why: string): void {
    this.terminateWith(RESULT.unavailable, `connection closed because ${why}`);
  }
}

function refusal(code: number, message: string, reason: string): HandshakeRefusal {
  return new HandshakeRefusal(String(code), message, `${code} ${reason}`);
}
