import type { Socket } from "node:net";
import type { SecureContext } from "node:tls";
import type { LeaseRecord } from "../../leases/index.js";
import type { StoredRegistration } from "../../resources/types.js";
import { digestOf } from "../decision-record.js";
import { HandshakeRefusal } from "../handshake-refusal.js";
import { ListenerSession } from "../listener-session.js";
import type { SessionContext } from "../session-context.js";
import { SocketReader } from "../socket-reader.js";
import type { AuditStatements } from "../types.js";
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
export class PostgresSession extends ListenerSession<PostgresContext> {
  /** How the server reads SQL in this session (ParameterStatus), for statement policy. */
  private readonly syntax = new SessionSyntax();
  private readonly downTap = new FrameTap(new Set([MSG.parameterStatus]), (m) => this.syntax.observe(m.body));
  /** While a chunk from the server is counted: its bytes that end the message in progress. */
  private downTail: Buffer | undefined;
  private clientKey: { pid: number; secret: number } | undefined;
  private backendKey: BackendCancelKey | undefined;
  protected override readonly closedEarly = "client closed during startup";

  constructor(raw: Socket, ctx: PostgresContext) {
    super(raw, ctx, "postgres");
  }

  /**
   * The server ends a startup that outlasts authentication_timeout without a word
   * (StartupPacketTimeoutHandler: _exit(1)); a wait on the sidecar itself is said.
   */
  protected override timedOut(): Error {
    return this.waitingOnClient
      ? new StartupDropped("the startup did not complete in time")
      : violation("the startup did not complete in time");
  }

  /** A lease at its cap gets 53300, naming the setting. */
  protected override leaseCapRefusal(leaseId: string, max: number): HandshakeRefusal {
    return new HandshakeRefusal(
      SQLSTATE.tooManyConnections,
      `too many connections for lease ${leaseId.slice(0, 64)}: at most ${max} at a time (proxy.maxConnectionsPerLease)`,
      "53300 too many connections for the lease",
    );
  }

  protected override busyRefusal(why: string): HandshakeRefusal {
    return new HandshakeRefusal(SQLSTATE.tooManyConnections, why, `53300 ${why}`);
  }

  protected override terminatedRefusal(why: string): HandshakeRefusal {
    return new HandshakeRefusal(
      SQLSTATE.adminShutdown,
      `terminating connection because ${why}`,
      `57P01 ${why}`,
    );
  }

  /** As a refused token: a client still logging in learns its password failed. */
  protected override endedLoginRefusal(why: string): HandshakeRefusal {
    const user = (this.record.claimedLeaseId ?? "").slice(0, 64);
    return new HandshakeRefusal(
      SQLSTATE.invalidPassword,
      `password authentication failed for user "${user}"`,
      `28P01 ${why}`,
    );
  }

  protected override released(): void {
    if (this.clientKey) this.ctx.cancelKeys.revoke(this.clientKey.pid, this.clientKey.secret);
  }

  protected override async handshake(): Promise<void> {
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
        reader = new SocketReader(this.startTls(this.ctx.secureContext), highWater);
        sslDone = true;
        gssDone = true;
        continue;
      }
      break;
    }
    if (first.kind === "cancel") {
      this.audited = false;
      const key = this.ctx.cancelKeys.lookup(first.pid, first.secret, this.ctx.resource);
      this.hangUp();
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
      tls: this.tls,
      user,
    });
    const check = await this.checkToken(presented, user);
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
    this.admit(cred.lease);
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
    if (!this.adoptBackend(login.socket)) return;
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
    const trail = this.trailOptions(this.ctx.auditStatements);
    const auditor = trail && new StatementAuditor(trail);
    const guard = this.statementGuard(this.record.lease, auditor?.onMessage);
    const upTap = auditor && !guard ? new FrameTap(StatementAuditor.types, auditor.onMessage) : undefined;
    const limiter = this.limiter({
      end: (why) => this.terminateWith(why, SQLSTATE.configurationLimitExceeded),
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
    const spliced = this.relay(backend, {
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
    auditor?.attach(spliced.up);
    limiter?.attach(spliced);
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
    this.deny({
      scope: refusal.scope,
      reason: refusal.reason,
      digest: digestOf(text),
      policies: refusal.policies,
      message:
        refusal.scope === "statement"
          ? "refused a statement by policy through the proxy"
          : "refused a password change through the proxy",
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

  protected override refusalFrame(err: unknown): Buffer | undefined {
    if (err instanceof StartupDropped) {
      this.record.refusal = `08P01 ${err.message}`;
      return undefined;
    }
    let r: HandshakeRefusal;
    if (err instanceof HandshakeRefusal) r = err;
    else {
      this.failed(err);
      r = new HandshakeRefusal(
        SQLSTATE.connectionFailure,
        "internal error in the proxy",
        "08006 internal error",
      );
    }
    this.record.refusal = r.reason;
    return r.raw ?? errorResponse({ severity: "FATAL", code: r.code, message: r.message, detail: r.detail });
  }

  /** A client between two messages is told why (FATAL 57P01). */
  protected override endSpliced(why: string): void {
    this.terminateWith(why, SQLSTATE.adminShutdown);
  }

  /** Ends a spliced session; a client between two messages gets FATAL `code`. */
  private terminateWith(why: string, code: string): void {
    // The server's message in progress, when this chunk ends it, goes first (see startSplice).
    const tail = this.downTail;
    const last =
      this.downTap.atBoundary || tail
        ? Buffer.concat([
            tail ?? Buffer.alloc(0),
            errorResponse({ severity: "FATAL", code, message: `terminating connection because ${why}` }),
          ])
        : undefined;
    if (!this.endAs(why, last)) return;
    // A server notices a closed connection only when it next reads or writes: a statement
    // still running (pg_sleep, a long scan) would go on as the account after the lease ended.
    if (this.backendKey) void forwardCancel(this.backendKey, this.ctx.handshakeTimeoutMs);
  }
}
