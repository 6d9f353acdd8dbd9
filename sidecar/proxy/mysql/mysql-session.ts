import type { Socket } from "node:net";
import type { SecureContext } from "node:tls";
import { HandshakeRefusal } from "../handshake-refusal.js";
import { ListenerSession } from "../listener-session.js";
import type { SessionContext } from "../session-context.js";
import { SocketReader } from "../socket-reader.js";
import type { AuditStatements } from "../types.js";
import { CACHING_SHA2, type ListenerRsaKey } from "./auth-plugins.js";
import { clientToken } from "./client-token.js";
import type { MysqlConnectionIds } from "./connection-ids.js";
import { databaseDenied } from "./database-pin.js";
import { type BackendKill, killBackend } from "./kill-backend.js";
import { type ClientTerms, loginToMysql, type MysqlLogin } from "./backend-login.js";
import { mysqlLimiter } from "./session-limits.js";
import {
  CAP,
  COM,
  ER,
  errPacket,
  type Greeting,
  greetingPayload,
  MysqlProtocolError,
  type Packet,
  packet,
  parseHandshakeResponse,
  readPacket,
} from "./packets.js";
import type { ServerInfo } from "./server-info.js";
import type { MysqlStatementPolicy } from "./policy-judge.js";
import { probeSessionReading, type SessionReading } from "./session-reading.js";
import { mysqlSessionGuard } from "./session-guard.js";
import { dialectOf } from "./statement-kind.js";
import { MysqlStatementAuditor } from "./statement-audit.js";
import { mysqlTargetOf } from "./target.js";
import {
  ALWAYS,
  accessDenied,
  badHandshake,
  checkServerTerms,
  MARIADB_COM_MULTI,
  NOT_OFFERED,
  nonce,
  SQLSTATE,
} from "./handshake-terms.js";

export interface MysqlContext extends SessionContext {
  /** TLS offered in the greeting (CLIENT_SSL); undefined: none, and tokens travel RSA-encrypted. */
  readonly secureContext: SecureContext | undefined;
  /** The RSA key pair for caching_sha2_password without TLS. */
  readonly rsaKey: () => Promise<ListenerRsaKey>;
  readonly serverInfo: ServerInfo;
  /** The connection ids given to clients, for KILL (shared by the manager's MySQL listeners). */
  readonly connectionIds?: MysqlConnectionIds | undefined;
  readonly auditStatements: AuditStatements;
  /** For registrations with `proxy.statementPolicy`: the engine (absent: refuse all) and what unparseable input gets. */
  readonly statementPolicy?: MysqlStatementPolicy | undefined;
}

let nextConnectionId = 1;

/**
 * One client connection to a MySQL listener: a greeting that asks for caching_sha2_password, a
 * full authentication in which the client sends the lease token over TLS or RSA-encrypted with
 * the listener's key (mysql_clear_password over TLS only), the login to the server as the leased
 * account with its real password, then a splice in which COM_CHANGE_USER is refused.
 */
export class MysqlSession extends ListenerSession<MysqlContext> {
  /** The connection id the client was given (its KILL names it). */
  private connectionId = 0;
  /** How to end the backend's statement when the lease ends (kill-backend.ts). */
  private backendKill: BackendKill | undefined;
  /** The sequence id of the next packet to the client during login. */
  private seq = 0;
  /** The client speaks protocol 4.1 (its errors carry a SQLSTATE). */
  private protocol41 = false;
  protected override readonly closedEarly = "client closed before logging in";

  constructor(raw: Socket, ctx: MysqlContext) {
    super(raw, ctx, "mysql");
  }

  protected override timedOut(): HandshakeRefusal {
    return badHandshake("the login did not complete in time");
  }

  /** A lease at its cap gets 1040, naming the setting. */
  protected override leaseCapRefusal(leaseId: string, max: number): HandshakeRefusal {
    return new HandshakeRefusal(
      String(ER.conCount),
      `Too many connections for lease ${leaseId.slice(0, 64)}: at most ${max} at a time (proxy.maxConnectionsPerLease)`,
      `${ER.conCount} too many connections for the lease`,
    );
  }

  protected override busyRefusal(why: string): HandshakeRefusal {
    return new HandshakeRefusal(String(ER.conCount), `Too many connections: ${why}`, `${ER.conCount} ${why}`);
  }

  protected override terminatedRefusal(why: string): HandshakeRefusal {
    return new HandshakeRefusal(
      String(ER.connectionKilled),
      `Connection was killed: ${why}`,
      `${ER.connectionKilled} ${why}`,
    );
  }

  /** As a refused token: a client still logging in learns its access is denied. */
  protected override endedLoginRefusal(why: string): HandshakeRefusal {
    return accessDenied(this.record.claimedLeaseId ?? "", why);
  }

  protected override released(): void {
    this.ctx.connectionIds?.remove(this.connectionId);
  }

  private async read(reader: SocketReader): Promise<Packet> {
    const p = await readPacket(reader, this.ctx.maxMessageBytes);
    if (p.seq !== this.seq) throw new MysqlProtocolError("packets out of order");
    this.seq = (p.seq + 1) & 0xff;
    return p;
  }

  private send(payload: Buffer): void {
    this.client.write(packet(this.seq, payload));
    this.seq = (this.seq + 1) & 0xff;
  }

  protected override async handshake(): Promise<void> {
    const reg = this.ctx.registration();
    const target = reg ? mysqlTargetOf(reg.connection) : null;
    if (!target)
      throw new HandshakeRefusal(
        String(ER.unknown),
        "the resource has no usable connection",
        `${ER.unknown} no connection`,
      );
    const terms = await this.ctx.serverInfo.terms(target, this.ctx.handshakeTimeoutMs);
    if (this.ended) return;
    const secure = this.ctx.secureContext;
    const offered = ((terms.capabilities & ~NOT_OFFERED) | ALWAYS | (secure ? CAP.ssl : 0)) >>> 0;
    const offeredExt = terms.mariadbCapabilities & ~MARIADB_COM_MULTI;
    const greeting: Greeting = {
      ...terms,
      capabilities: offered,
      mariadbCapabilities: offeredExt,
      connectionId: nextConnectionId,
      nonce: nonce(),
      authPlugin: CACHING_SHA2,
    };
    this.connectionId = greeting.connectionId;
    nextConnectionId = (nextConnectionId % 0x7fffffff) + 1;
    this.send(greetingPayload(greeting));
    const highWater = this.ctx.maxMessageBytes + 64 * 1024;
    let reader = new SocketReader(this.client, highWater);
    let response = parseHandshakeResponse((await this.read(reader)).payload);
    this.protocol41 = true;
    if (response.sslRequest) {
      if (!secure) throw badHandshake("TLS asked for but not offered");
      // Clients start TLS without waiting for an answer: what follows the request is their
      // ClientHello, handed back to the socket for the TLS layer to read first.
      const hello = reader.detach({ pause: true });
      if (hello.length > 0) this.raw.unshift(hello);
      reader = new SocketReader(this.startTls(secure), highWater);
      response = parseHandshakeResponse((await this.read(reader)).payload);
      if (response.sslRequest) throw badHandshake("a second TLS request");
    }
    if ((response.capabilities & CAP.pluginAuth) === 0)
      throw new HandshakeRefusal(
        String(ER.notSupportedAuthMode),
        "Client does not support authentication protocol requested by server; consider upgrading MySQL client",
        `${ER.notSupportedAuthMode} client without plugin authentication`,
      );
    const user = response.user;
    this.claim(user);
    const token = await clientToken({
      response,
      nonce: greeting.nonce,
      tls: this.tls,
      send: (payload) => this.send(payload),
      read: () => this.read(reader),
      rsaKey: this.ctx.rsaKey,
    });
    const check = await this.checkToken(token, user);
    if (this.ended) return;
    if (!check.ok) {
      throw check.kind === "refused"
        ? accessDenied(user, check.code)
        : new HandshakeRefusal(
            String(ER.unknown),
            "the sidecar cannot check the lease token now",
            `${ER.unknown} ${check.code}`,
          );
    }
    const cred = check.credential;
    this.admit(cred.lease);
    this.record.database = response.database?.slice(0, 64);
    this.checkDatabase(user, response.database);
    const wire = (response.capabilities & offered) >>> 0;
    const wireExt = response.mariadbCapabilities & offeredExt;
    const clientTerms: ClientTerms = {
      capabilities: wire,
      mariadbCapabilities: wireExt,
      maxPacket: response.maxPacket,
      charset: response.charset,
      database: response.database,
      attrs: response.attrs,
    };
    const login = await loginToMysql({
      target,
      username: cred.username,
      password: cred.password,
      terms: clientTerms,
      maxMessageBytes: this.ctx.maxMessageBytes,
      signal: this.abort.signal,
      onGreeting: (g) => checkServerTerms(this.ctx.serverInfo, target, g, wire, wireExt, terms),
    });
    if (!this.adoptBackend(login.socket)) return;
    this.backendKill = {
      target,
      username: cred.username,
      password: cred.password,
      threadId: login.greeting.connectionId,
    };
    this.ctx.connectionIds?.add(this.connectionId, cred.lease.id, login.greeting.connectionId);
    const reading = await this.sessionReading(login);
    if (this.ended) {
      login.socket.destroy();
      return;
    }
    this.startSplice(reader.detach({ pause: true }), login, reading);
  }

  /** The handshake's database must be one of `proxy.databases` (when set): else 1044, as the server says it. */
  private checkDatabase(user: string, database: string | undefined): void {
    const databases = this.ctx.registration()?.proxy?.databases;
    if (database && databases && !databases.includes(database)) {
      throw new HandshakeRefusal(
        String(ER.dbAccessDenied),
        databaseDenied(user, database),
        `${ER.dbAccessDenied} not a database of the resource (proxy.databases)`,
      );
    }
  }

  /** Under statement policy: how the server reads the session's SQL, asked before the client's first command. */
  private async sessionReading(login: MysqlLogin): Promise<SessionReading | undefined> {
    if (this.ctx.registration()?.proxy?.statementPolicy !== true) return undefined;
    try {
      return await probeSessionReading(login.socket, this.ctx.maxMessageBytes);
    } catch {
      throw new HandshakeRefusal(
        String(ER.unknown),
        "the proxy cannot apply the resource's statement policy now",
        `${ER.unknown} statement policy unavailable (session probe)`,
      );
    }
  }

  private startSplice(clientRest: Buffer, login: MysqlLogin, reading: SessionReading | undefined): void {
    const backend = login.socket;
    const lease = this.record.lease;
    const trail = this.trailOptions(this.ctx.auditStatements);
    const auditor = trail && new MysqlStatementAuditor(trail);
    const guard = mysqlSessionGuard({
      reg: this.ctx.registration(),
      lease,
      resource: this.ctx.resource,
      audit: this.ctx.audit,
      log: this.ctx.log,
      client: this.record.client,
      requestId: this.record.requestId,
      policy: reading && {
        statementPolicy: this.ctx.statementPolicy,
        reading,
        dialect: dialectOf(login.greeting.serverVersion),
      },
      onForbidden: (command) => this.forbidden(command),
      onStatement: auditor?.onStatement,
      onEnd: (reason) => this.refusedToEnd(reason),
      onAuditFailure: () => this.terminate("the audit log cannot be written"),
      resolveKill: (id) => (lease ? this.ctx.connectionIds?.resolve(id, lease.id) : undefined),
    });
    const limiter = mysqlLimiter({ ctx: this.ctx, record: this.record, end: (w) => this.terminate(w) });
    this.ctx.handshakes.leave(this);
    this.client.write(Buffer.concat([packet(this.seq, login.ok), login.rest]));
    this.record.bytesOut += login.rest.length;
    if (clientRest.length > 0) {
      for (const out of guard.push(clientRest)) backend.write(out);
      this.record.bytesIn += clientRest.length;
    }
    if (this.ended) {
      backend.destroy();
      return;
    }
    const spliced = this.relay(backend, { rewriteUp: (c) => guard.push(c), ...limiter?.taps() }, limiter);
    auditor?.attach(spliced.up);
  }

  /** A command that could switch accounts: the client is told so and the session ends. */
  private forbidden(command: number): void {
    const name = command === COM.changeUser ? "COM_CHANGE_USER" : "COM_MULTI";
    this.endWith(
      `${name} refused`,
      errPacket(
        1,
        ER.accessDenied,
        `Access denied: ${name} cannot switch accounts through the leasehold listener; the session is closed`,
        "28000",
      ),
    );
  }

  /**
   * A statement that could set a sealed account's password, or a command too long to judge: it
   * never reaches the server; the client gets 1227 and the session ends (a reply of ours could
   * not be placed safely among the server's if the client had pipelined).
   */
  private refusedToEnd(reason: string): void {
    this.endWith(
      "statement refused",
      errPacket(
        1,
        ER.specificAccessDenied,
        `Access denied; ${reason} is refused by the leasehold listener; the session is closed`,
        "42000",
      ),
    );
  }

  /** Ends a spliced session with one last packet of ours to the client. */
  private endWith(ending: string, last: Buffer): void {
    if (!this.endAs(ending, last)) return;
    this.ctx.log.warn(
      { resource: this.ctx.resource, lease_id: this.record.lease?.id, client: this.record.client, ending },
      "proxy session ended by the listener",
    );
  }

  protected override refusalFrame(err: unknown): Buffer {
    if (err instanceof HandshakeRefusal && err.raw) {
      // The server's own ERR, relayed with the client leg's sequence id.
      this.record.refusal = `${err.raw.readUInt16LE(1)} ${err.reason}`;
      return packet(this.seq, err.raw);
    }
    let r: HandshakeRefusal;
    if (err instanceof HandshakeRefusal) r = err;
    else if (err instanceof MysqlProtocolError) r = badHandshake(err.message);
    else {
      this.failed(err);
      r = new HandshakeRefusal(
        String(ER.unknown),
        "internal error in the proxy",
        `${ER.unknown} internal error`,
      );
    }
    this.record.refusal = r.reason;
    const code = Number(r.code);
    return errPacket(this.seq, code, r.message, this.protocol41 ? (SQLSTATE[code] ?? "HY000") : undefined);
  }

  /** The protocol has no word for it in the middle of a result: the client is cut off. */
  protected override endSpliced(why: string): void {
    if (!this.endAs(why, undefined)) return;
    // A statement still running (SELECT SLEEP, a long scan) would go on as the account after
    // the lease ended: the server notices a closed connection only when it next writes.
    if (this.backendKill) void killBackend(this.backendKill, this.ctx.handshakeTimeoutMs);
  }
}
