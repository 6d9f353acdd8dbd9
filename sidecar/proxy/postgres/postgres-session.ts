import type { Socket } from "node:net";
import type { LeaseRecord } from "../../leases/index.js";
import type { Duplex } from "node:stream";
import { type SecureContext, TLSSocket } from "node:tls";
import { checkLeaseToken, connectionCaller, proxyRequestId } from "../check-token.js";
import { HandshakeRefusal } from "../handshake-refusal.js";
import type { Handshaking } from "../handshake-slots.js";
import type { SessionContext } from "../session-context.js";
import { digestOf, recordDenial } from "../decision-record.js";
import { SessionRecord } from "../session-record.js";
import { sessionLimiter } from "../session-limits.js";
import { PeerClosedError, SocketReader } from "../socket-reader.js";
import { type Splice, splice } from "../splice.js";
import type { StoredRegistration } from "../../resources/types.js";
import type { AuditStatements, ProxySession } from "../types.js";
import { loginToBackend } from "./backend-login.js";
import type { BackendCancelKey, CancelKeys } from "./cancel-keys.js";
import { forwardCancel } from "./cancel-forward.js";
import { MSG, SQLSTATE } from "./constants.js";
import { FrameTap, type TappedMessage } from "./frame-tap.js";
import { readStartup } from "./startup-params.js";
import {
  type FirstPacket,
  readFirstPacket,
  StartupDropped,
  unsupportedProtocol,
  violation,
} from "./packets.js";
import { clientProof } from "./client-auth.js";
import { authenticationOk, backendKeyData, errorResponse } from "./server-messages.js";
import { StatementAuditor } from "./statement-audit.js";
import { pgStatementCounter } from "./statement-counter.js";
import { type SessionStatementPolicy, SessionSyntax, sessionGuard } from "./session-guard.js";
import type { GuardRefusal, StatementGuard } from "./statement-guard.js";
import { loadPostgresGrammar } from "./statement-kind.js";
import { pgTargetOf } from "./target.js";

export interface PostgresContext extends SessionContext {
  readonly cancelKeys: CancelKeys;
  /** TLS offered on SSLRequest; undefined answers 'N'. */
  readonly secureContext: SecureContext | undefined;
  readonly auditStatements: AuditStatements;
  /** For registrations with `proxy.statementPolicy`: the engine (absent: refuse all) and what unparseable input gets. */
  readonly statementPolicy?: SessionStatementPolicy | undefined;
}

/** The server's FATAL for bytes that came after an SSLRequest or GSSENCRequest, before its answer. */
function unencryptedAfter(kind: "ssl" | "gssenc"): HandshakeRefusal {
  const message = `received unencrypted data after ${kind === "ssl" ? "SSL" : "GSSAPI encryption"} request`;
  return new HandshakeRefusal(SQLSTATE.protocolViolation, message, `08P01 ${message}`);
}

/**
 * One client connection to a PostgreSQL listener: TLS if asked, the startup packet, proof of the
 * lease token of the lease named as user (SCRAM-SHA-256; the token itself only over TLS), the login to
 * the real server as the leased account, then a splice of both directions.
 */
export class PostgresSession implements ProxySession, Handshaking {
  private client: Duplex;
  private backend: Duplex | undefined;
  private spliced: Splice | undefined;
  /** How the server reads SQL in this session (ParameterStatus), for statement policy. */
  private readonly syntax = new SessionSyntax();
  private readonly downTap = new FrameTap(new Set([MSG.parameterStatus]), (m) => this.syntax.observe(m.body));
  /** While a chunk from the server is counted: its bytes that end the message in progress. */
  private downTail: Buffer | undefined;
  private readonly abort = new AbortController();
  private readonly record: SessionRecord;
  private leaseKey: string | undefined;
  private clientKey: { pid: number; secret: number } | undefined;
  private backendKey: BackendCancelKey | undefined;
  private ended = false;
  private finished = false;
  private audited = true;
  /** Until the password message arrives, the proxy waits on the client: an idle handshake. */
  private waitingOnClient = true;

  constructor(
    private readonly raw: Socket,
    private readonly ctx: PostgresContext,
  ) {
    this.client = raw;
    raw.setNoDelay(true);
    raw.on("error", () => undefined);
    this.record = new SessionRecord({
      audit: ctx.audit,
      log: ctx.log,
      resource: ctx.resource,
      protocol: "postgres",
      client: `${raw.remoteAddress ?? "?"}:${raw.remotePort ?? 0}`,
      requestId: proxyRequestId(),
    });
    this.watchClose(raw);
  }

  /** Runs the session to the splice; never rejects. */
  async run(): Promise<void> {
    this.ctx.live.add(this);
    if (!this.ctx.handshakes.enter(this)) {
      this.evict("too many connections are logging in");
      return;
    }
    // The server ends a startup that outlasts authentication_timeout without a word
    // (StartupPacketTimeoutHandler: _exit(1)); a wait on the sidecar itself is said.
    const timer = setTimeout(
      () =>
        this.refuse(
          this.waitingOnClient
            ? new StartupDropped("the startup did not complete in time")
            : violation("the startup did not complete in time"),
        ),
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

  private watchClose(sock: Duplex): void {
    sock.once("close", () => this.finish());
  }

  private async handshake(): Promise<void> {
    const highWater = this.ctx.maxMessageBytes + 64 * 1024;
    let reader = new SocketReader(this.client, highWater);
    let first: FirstPacket;
    // As ProcessStartupPacket: one SSLRequest and one GSSENCRequest at most; a second is an
    // unknown protocol version, and bytes sent before the answer are a violation.
    let sslDone = false;
    let gssDone = false;
    for (;;) {
      first = await readFirstPacket(reader);
      if (first.kind === "ssl" || first.kind === "gssenc") {
        if (first.kind === "ssl" ? sslDone : gssDone) throw unsupportedProtocol(first.code);
        const tls = first.kind === "ssl" && this.ctx.secureContext !== undefined;
        if (!tls) {
          this.client.write("N");
          if (reader.length > 0) throw unencryptedAfter(first.kind);
          if (first.kind === "ssl") sslDone = true;
          else gssDone = true;
          continue;
        }
        // Bytes sent before our answer would be taken as if they came over TLS (CVE-2021-23214).
        if (reader.length > 0) throw unencryptedAfter(first.kind);
        reader.detach({ pause: false });
        this.raw.write("S");
        const secure = new TLSSocket(this.raw, { isServer: true, secureContext: this.ctx.secureContext });
        secure.on("error", () => undefined);
        this.client = secure;
        this.watchClose(secure);
        reader = new SocketReader(secure, highWater);
        sslDone = true;
        gssDone = true;
        continue;
      }
      break;
    }
    if (first.kind === "cancel") {
      this.audited = false;
      const key = this.ctx.cancelKeys.lookup(first.pid, first.secret, this.ctx.resource);
      this.ended = true;
      this.client.end();
      if (key) await forwardCancel(key, this.ctx.handshakeTimeoutMs);
      return;
    }
    if (first.kind !== "startup") throw violation("unexpected packet");
    const startup = readStartup(first);
    if (startup.negotiate) this.client.write(startup.negotiate);
    const { params, user } = startup;
    this.claim(user);
    const presented = await clientProof({
      ctx: this.ctx,
      reader,
      client: this.client,
      tls: this.client !== this.raw,
      user,
    });
    this.waitingOnClient = false;
    const check = await checkLeaseToken(this.ctx, presented, user, {
      requestId: this.record.requestId,
      client: this.record.client,
      // The accepted TCP socket, also when the client speaks TLS over it.
      caller: connectionCaller(this.ctx, this.raw),
    });
    if (!check.ok) {
      throw check.kind === "refused"
        ? new HandshakeRefusal(
            SQLSTATE.invalidPassword,
            `password authentication failed for user "${user.slice(0, 64)}"`,
            `28P01 ${check.code}`,
          )
        : new HandshakeRefusal(
            SQLSTATE.connectionFailure,
            "the sidecar cannot check the lease token now",
            `08006 ${check.code}`,
          );
    }
    const cred = check.credential;
    this.record.lease = cred.lease;
    if (this.ended) return;
    this.admit(cred.lease.id);
    const reg = this.ctx.registration();
    const target = reg ? pgTargetOf(reg.connection) : null;
    if (!reg || !target) {
      throw new HandshakeRefusal(
        SQLSTATE.connectionFailure,
        "the resource has no usable connection",
        "08006 no connection",
      );
    }
    const database = this.pinnedDatabase(params.get("database"), user, reg, target.database);
    const login = await loginToBackend({
      target,
      username: cred.username,
      password: cred.password,
      database,
      params: startup.passOn,
      maxMessageBytes: this.ctx.maxMessageBytes,
      signal: this.abort.signal,
    });
    this.backend = login.socket;
    login.socket.on("error", () => undefined);
    if (this.ctx.registration()?.proxy?.statementPolicy === true) {
      // The grammar loads once per process; until it has, no statement could be judged.
      await loadPostgresGrammar().catch(() => {
        throw new HandshakeRefusal(
          SQLSTATE.connectionFailure,
          "the proxy cannot apply the resource's statement policy now",
          "08006 statement policy unavailable",
        );
      });
    }
    if (this.ended) {
      login.socket.destroy();
      return;
    }
    this.startSplice(reader.detach({ pause: true }), login, target);
  }

  private startSplice(
    clientRest: Buffer,
    login: Awaited<ReturnType<typeof loginToBackend>>,
    target: NonNullable<ReturnType<typeof pgTargetOf>>,
  ): void {
    const backend = login.socket;
    const frames = [authenticationOk(), ...login.frames.slice(0, -1)];
    for (const f of login.frames) if (f[0] === MSG.parameterStatus) this.syntax.observe(f.subarray(5));
    if (login.key) {
      this.backendKey = { ...login.key, target };
      this.clientKey = this.ctx.cancelKeys.issue(this.backendKey, this.ctx.resource);
      frames.push(backendKeyData(this.clientKey.pid, this.clientKey.secret));
    }
    frames.push(...login.frames.slice(-1), login.rest);
    this.downTap.push(login.rest);
    const lease = this.record.lease;
    const mode = this.ctx.auditStatements;
    const auditor =
      mode !== "none" && lease
        ? new StatementAuditor({
            mode,
            audit: this.ctx.audit,
            lease,
            client: this.record.client,
            requestId: this.record.requestId,
            onFailure: () => this.terminate("the audit log cannot be written"),
          })
        : undefined;
    const guard = this.statementGuard(lease, auditor?.onMessage);
    const upTap = auditor && !guard ? new FrameTap(StatementAuditor.types, auditor.onMessage) : undefined;
    const limiter = sessionLimiter({
      ctx: this.ctx,
      record: this.record,
      tool: "postgres",
      end: (why) => this.terminate(why, SQLSTATE.configurationLimitExceeded),
      refusal: (why) => new HandshakeRefusal(SQLSTATE.configurationLimitExceeded, why, `53400 ${why}`),
      count: pgStatementCounter(),
    });
    const up = (c: Buffer) => {
      upTap?.push(c);
      limiter?.sent(c);
    };
    this.ctx.handshakes.leave(this);
    this.client.write(Buffer.concat(frames));
    if (clientRest.length > 0) {
      up(clientRest);
      for (const out of guard ? guard.push(clientRest) : [clientRest]) backend.write(out);
    }
    if (this.ended) return;
    this.record.bytesIn += clientRest.length;
    this.record.bytesOut += login.rest.length;
    const downTap = this.downTap;
    this.spliced = splice(this.client, backend, {
      onUp: up,
      onDown: (c) => {
        if (limiter) {
          // A session ended for its byte cap first finishes the server's message in progress
          // (when it ends in this chunk), so the client can read the FATAL that follows.
          const end = downTap.endOfCurrent(c);
          this.downTail = end > 0 ? c.subarray(0, end) : undefined;
          limiter.returned(c.length);
          this.downTail = undefined;
        }
        downTap.push(c);
      },
      rewriteUp: guard ? (c) => guard.push(c) : undefined,
    });
    auditor?.attach(this.spliced.up);
    limiter?.attach(this.spliced);
  }

  /** The guard on the client's statements, when the registration needs one (session-guard.ts). */
  private statementGuard(
    lease: LeaseRecord | undefined,
    onStatement: ((m: TappedMessage, text: string | undefined) => void) | undefined,
  ): StatementGuard | undefined {
    return sessionGuard({
      reg: this.ctx.registration(),
      lease,
      resource: this.ctx.resource,
      statementPolicy: this.ctx.statementPolicy,
      syntax: this.syntax,
      onRefused: (text, refusal) => this.auditRefusal(text, refusal),
      onStatement,
      onUnjudgeable: (why) => this.terminate(`the proxy could not follow the client's messages (${why})`),
    });
  }

  /** The record of a refused statement: a `decision` on the lease, with a digest, never the text. */
  private auditRefusal(text: string, refusal: GuardRefusal): void {
    recordDenial({
      ctx: this.ctx,
      record: this.record,
      tool: "postgres",
      scope: refusal.scope,
      reason: refusal.reason,
      digest: digestOf(text),
      policies: refusal.policies,
      message:
        refusal.scope === "statement"
          ? "refused a statement by policy through the proxy"
          : "refused a password change through the proxy",
      onFailure: (why) => this.terminate(why),
    });
  }

  /**
   * The database the session opens: the client's `database`, or the registration's when it
   * names none or the user name (the server's default, here the lease id). It must be the
   * registration's or one of `proxy.databases`; any other is refused as the server refuses a
   * role without CONNECT on a database, 42501 "permission denied for database" (postinit.c),
   * whether or not it exists.
   */
  private pinnedDatabase(
    asked: string | undefined,
    user: string,
    reg: StoredRegistration,
    own: string,
  ): string {
    const database = !asked || asked === user ? own : asked;
    this.record.database = database.slice(0, 63);
    const allowed = [own, ...(reg.proxy?.databases ?? []).filter((d) => d !== own)];
    if (!allowed.includes(database)) {
      throw new HandshakeRefusal(
        SQLSTATE.insufficientPrivilege,
        `permission denied for database "${database.slice(0, 63)}"`,
        "42501 not a database of the resource (connection.database, proxy.databases)",
        undefined,
        `A lease of this resource may open only: ${allowed.join(", ")}.`,
      );
    }
    return database;
  }

  /** Counts the session against its lease's cap; a lease at its cap gets 53300, naming the setting. */
  private admit(leaseId: string): void {
    const max = this.ctx.maxConnectionsPerLease;
    if (!this.ctx.registry.admit(leaseId, this, max)) {
      throw new HandshakeRefusal(
        SQLSTATE.tooManyConnections,
        `too many connections for lease ${leaseId.slice(0, 64)}: at most ${max} at a time (proxy.maxConnectionsPerLease)`,
        "53300 too many connections for the lease",
      );
    }
  }

  get evictable(): boolean {
    return this.waitingOnClient && !this.ended;
  }

  /** Closes a connection still logging in at once, to make room for another (no linger). */
  evict(why: string): void {
    this.refuse(new HandshakeRefusal(SQLSTATE.tooManyConnections, why, `53300 ${why}`));
    this.client.destroy();
  }

  /** Registers the session under the lease id it claims, before the token is checked, so no end is missed. */
  private claim(leaseId: string): void {
    this.leaseKey = leaseId;
    this.record.claimedLeaseId = leaseId;
    this.ctx.registry.add(leaseId, this);
  }

  private refuse(err: unknown): void {
    if (this.ended) return;
    this.ended = true;
    this.ctx.handshakes.leave(this);
    this.ctx.registry.release(this);
    this.abort.abort();
    this.backend?.destroy();
    if (err instanceof PeerClosedError || err instanceof StartupDropped) {
      this.record.refusal =
        err instanceof StartupDropped ? `08P01 ${err.message}` : "client closed during startup";
      this.client.destroy();
      return;
    }
    const r =
      err instanceof HandshakeRefusal
        ? err
        : new HandshakeRefusal(
            SQLSTATE.connectionFailure,
            "internal error in the proxy",
            "08006 internal error",
          );
    if (!(err instanceof HandshakeRefusal)) {
      this.ctx.log.error(
        { err: { message: (err as Error).message }, resource: this.ctx.resource },
        "proxy session failed",
      );
    }
    this.record.refusal = r.reason;
    const frame =
      r.raw ?? errorResponse({ severity: "FATAL", code: r.code, message: r.message, detail: r.detail });
    this.client.end(frame);
    setTimeout(() => this.client.destroy(), 1000).unref();
  }

  /** Closes the session now; a client between two messages is told why (FATAL 57P01, or `code`). */
  terminate(why: string, code: string = SQLSTATE.adminShutdown): void {
    if (!this.spliced) {
      this.refuse(
        new HandshakeRefusal(SQLSTATE.adminShutdown, `terminating connection because ${why}`, `57P01 ${why}`),
      );
      return;
    }
    if (this.ended) return;
    this.ended = true;
    this.record.ending = why;
    this.spliced.stopDown();
    const tail = this.downTail;
    if (this.downTap.atBoundary || tail) {
      if (tail) this.client.write(tail);
      this.client.end(
        errorResponse({
          severity: "FATAL",
          code,
          message: `terminating connection because ${why}`,
        }),
      );
      setTimeout(() => this.client.destroy(), 1000).unref();
    } else {
      this.client.destroy();
    }
    this.backend?.destroy();
    // A server notices a closed connection only when it next reads or writes: a statement
    // still running (pg_sleep, a long scan) would go on as the account after the lease ended.
    if (this.backendKey) void forwardCancel(this.backendKey, this.ctx.handshakeTimeoutMs);
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.ended = true;
    this.abort.abort();
    this.backend?.destroy();
    this.ctx.live.delete(this);
    this.ctx.handshakes.leave(this);
    if (this.leaseKey !== undefined) this.ctx.registry.remove(this.leaseKey, this);
    this.ctx.registry.release(this);
    if (this.clientKey) this.ctx.cancelKeys.revoke(this.clientKey.pid, this.clientKey.secret);
    if (this.spliced) {
      this.record.bytesIn += this.spliced.up.bytes;
      this.record.bytesOut += this.spliced.down.bytes;
    }
    if (this.audited) this.record.finish();
  }
}
