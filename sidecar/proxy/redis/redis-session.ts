import type { Socket } from "node:net";
import { digestOf } from "../decision-record.js";
import { HandshakeRefusal } from "../handshake-refusal.js";
import { ListenerSession } from "../listener-session.js";
import type { SessionContext } from "../session-context.js";
import { leaseCapMessage } from "../session-registry.js";
import { SocketReader } from "../socket-reader.js";
import { loginToRedis, type RedisLogin } from "./backend-login.js";
import { CommandFramer } from "./command-framer.js";
import type { CommandRefusal } from "./command-guard.js";
import type { CommandTable, CommandTables } from "./command-table.js";
import { encodeCommand, errorReply, parseCommand, RespProtocolError } from "./resp.js";
import { type RedisStatementPolicy, redisCommandGuard, tableOfReply } from "./session-guard.js";
import { redisTargetOf } from "./target.js";

export interface RedisContext extends SessionContext {
  /** For registrations with `proxy.statementPolicy`: the engine (absent: refuse all) and what unparseable commands get. */
  readonly statementPolicy?: RedisStatementPolicy | undefined;
  /** The backends' command tables (statement policy classifies commands by them). */
  readonly commandTables?: CommandTables | undefined;
}

/** Failed AUTH attempts before the connection is closed. */
const MAX_ATTEMPTS = 3;
const WRONGPASS = "WRONGPASS invalid lease id / lease token pair, or the lease has ended";
const NOAUTH = "NOAUTH Authentication required: AUTH <lease id> <lease token>";
const HELLO_NOAUTH =
  "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <lease id> <lease token> option can be used";

/** A login the client asked for: which lease, its token, and the HELLO form if that was used. */
interface LoginRequest {
  readonly leaseId: string;
  readonly token: string;
  readonly hello?: { readonly version: string; readonly setname?: string | undefined } | undefined;
}

type Step = { readonly reply: Buffer; readonly close?: boolean } | { readonly login: LoginRequest };

/** What `count` returns, or 0 when the stream cannot be read. */
function countOrNone(count: () => number): number {
  try {
    return count();
  } catch {
    return 0;
  }
}

function text(b: Buffer | undefined): string {
  return b === undefined ? "" : b.toString("utf8");
}

/** What to do with one command received before the client has logged in. */
function preAuth(args: readonly Buffer[]): Step | null {
  if (args.length === 0) return null;
  const name = text(args[0]).toUpperCase();
  if (name === "AUTH") {
    if (args.length === 3) return { login: { leaseId: text(args[1]), token: text(args[2]) } };
    if (args.length === 2) return { reply: errorReply(`${WRONGPASS} (use AUTH <lease id> <lease token>)`) };
    return { reply: errorReply("ERR wrong number of arguments for 'auth' command") };
  }
  if (name === "HELLO") {
    const version = args[1] === undefined ? undefined : text(args[1]);
    if (version !== undefined && version !== "2" && version !== "3") {
      return { reply: errorReply("NOPROTO unsupported protocol version") };
    }
    let auth: { leaseId: string; token: string } | undefined;
    let setname: string | undefined;
    for (let i = 2; i < args.length; i++) {
      const opt = text(args[i]).toUpperCase();
      if (opt === "AUTH" && i + 2 < args.length) {
        auth = { leaseId: text(args[i + 1]), token: text(args[i + 2]) };
        i += 2;
      } else if (opt === "SETNAME" && i + 1 < args.length) {
        setname = text(args[i + 1]);
        i += 1;
      } else {
        return { reply: errorReply(`ERR Syntax error in HELLO option '${text(args[i]).slice(0, 32)}'`) };
      }
    }
    if (!auth || version === undefined) return { reply: errorReply(HELLO_NOAUTH) };
    return { login: { ...auth, hello: { version, setname } } };
  }
  if (name === "QUIT") return { reply: Buffer.from("+OK\r\n"), close: true };
  return { reply: errorReply(NOAUTH) };
}

/**
 * One client connection to a Redis listener: commands before login are answered NOAUTH;
 * `AUTH <lease id> <lease token>` (or `HELLO 3 AUTH …`) is checked like the HTTP API checks
 * the token; then the server is logged in to with the account's real ACL password and the
 * connection is spliced.
 */
export class RedisSession extends ListenerSession<RedisContext> {
  protected override readonly closedEarly = "client closed before logging in";

  constructor(client: Socket, ctx: RedisContext) {
    super(client, ctx, "redis");
  }

  protected override timedOut(): HandshakeRefusal {
    return new HandshakeRefusal("ERR", "authentication did not complete in time", "ERR handshake timeout");
  }

  /** A lease at its cap gets an error naming the setting. */
  protected override leaseCapRefusal(_leaseId: string, max: number): HandshakeRefusal {
    return new HandshakeRefusal("ERR", leaseCapMessage(max), "ERR too many connections for the lease");
  }

  protected override busyRefusal(why: string): HandshakeRefusal {
    return new HandshakeRefusal("ERR", why, `ERR ${why}`);
  }

  protected override terminatedRefusal(why: string): HandshakeRefusal {
    return new HandshakeRefusal("ERR", `connection closed because ${why}`, `ERR ${why}`);
  }

  /** As a refused token: a client still logging in gets WRONGPASS. */
  protected override endedLoginRefusal(why: string): HandshakeRefusal {
    return new HandshakeRefusal("WRONGPASS", WRONGPASS.slice(10), `WRONGPASS ${why}`);
  }

  protected override async handshake(): Promise<void> {
    const reader = new SocketReader(this.client, this.ctx.maxMessageBytes + 64 * 1024);
    let attempts = 0;
    for (;;) {
      let cmd = parseCommand(reader.peek(), this.ctx.maxMessageBytes);
      while (!cmd) {
        if (reader.length > this.ctx.maxMessageBytes) throw new RespProtocolError("request too large");
        await reader.more();
        cmd = parseCommand(reader.peek(), this.ctx.maxMessageBytes);
      }
      reader.take(cmd.length);
      const step = preAuth(cmd.args);
      if (step === null) continue;
      if ("reply" in step) {
        if (step.close) {
          this.hangUp(step.reply);
          return;
        }
        this.client.write(step.reply);
        continue;
      }
      const login = step.login;
      this.claim(login.leaseId);
      const check = await this.checkToken(login.token, login.leaseId);
      if (this.ended) return;
      if (!check.ok) {
        if (check.kind === "unavailable") {
          throw new HandshakeRefusal(
            "ERR",
            "the sidecar cannot check the lease token now",
            `ERR ${check.code}`,
          );
        }
        this.unclaim();
        this.waitingOnClient = true;
        attempts += 1;
        this.record.refusal = `WRONGPASS ${check.code}`;
        if (attempts >= MAX_ATTEMPTS)
          throw new HandshakeRefusal("WRONGPASS", WRONGPASS.slice(10), this.record.refusal);
        this.client.write(errorReply(WRONGPASS));
        continue;
      }
      const cred = check.credential;
      this.admit(cred.lease);
      const reg = this.ctx.registration();
      const target = reg ? redisTargetOf(reg.connection) : null;
      if (!target)
        throw new HandshakeRefusal("ERR", "the resource has no usable connection", "ERR no connection");
      const hello = login.hello;
      const command = hello
        ? [
            "HELLO",
            hello.version,
            "AUTH",
            cred.username,
            cred.password,
            ...(hello.setname ? ["SETNAME", hello.setname] : []),
          ]
        : ["AUTH", cred.username, cred.password];
      const policyOn = reg?.proxy?.statementPolicy === true;
      const backendKey = `${target.host}:${target.port}`;
      const cached = policyOn ? this.ctx.commandTables?.get(backendKey) : undefined;
      const res = await loginToRedis({
        target,
        login: encodeCommand(command),
        probe: policyOn && !cached ? encodeCommand(["COMMAND"]) : undefined,
        maxMessageBytes: this.ctx.maxMessageBytes,
        signal: this.abort.signal,
      });
      if (!this.adoptBackend(res.socket)) return;
      const table = policyOn ? (cached ?? this.tableOf(res, backendKey)) : undefined;
      this.startSplice(reader.detach({ pause: true }), res, table);
      return;
    }
  }

  /** The backend's command table from the login's `COMMAND` reply; without one, policy cannot apply. */
  private tableOf(res: RedisLogin, backendKey: string): CommandTable {
    try {
      const table = tableOfReply(res.probeReply);
      this.ctx.commandTables?.set(backendKey, table);
      return table;
    } catch (err) {
      throw new HandshakeRefusal(
        "ERR",
        "the proxy cannot apply the resource's statement policy now",
        `ERR statement policy unavailable (${(err as Error).message.slice(0, 80)})`,
      );
    }
  }

  private startSplice(clientRest: Buffer, res: RedisLogin, table: CommandTable | undefined): void {
    const reg = this.ctx.registration();
    const guard =
      table && reg
        ? redisCommandGuard({
            reg,
            lease: this.record.lease,
            resource: this.ctx.resource,
            statementPolicy: this.ctx.statementPolicy,
            table,
            onRefused: (command, refusal) => this.auditRefusal(command, refusal),
            onUnjudgeable: (why) =>
              this.terminate(`the proxy could not follow the client's commands (${why})`),
          })
        : undefined;
    if (table && !guard)
      throw new HandshakeRefusal("ERR", "the resource has no usable connection", "ERR no connection");
    const counter = new CommandFramer(0, false);
    const limiter = this.limiter({
      end: (why) => this.terminate(why),
      refusal: (why) => new HandshakeRefusal("ERR", why, `ERR ${why}`),
      // Not RESP: the server answers it and closes; nothing more to count.
      count: (c) => countOrNone(() => counter.push(c).length),
    });
    this.ctx.handshakes.leave(this);
    limiter?.sent(clientRest);
    const down = guard ? guard.down(res.rest) : [res.rest];
    this.client.write(Buffer.concat([res.reply, ...down]));
    for (const out of guard ? guard.push(clientRest) : [clientRest]) res.socket.write(out);
    if (this.ended) return;
    this.record.bytesIn += clientRest.length;
    this.record.bytesOut += res.rest.length;
    this.relay(
      res.socket,
      {
        ...limiter?.taps(),
        rewriteUp: guard ? (c) => guard.push(c) : undefined,
        rewriteDown: guard ? (c) => guard.down(c) : undefined,
      },
      limiter,
    );
  }

  /** The record of a refused command: a `decision` on the lease, with a digest, never a key or a value. */
  private auditRefusal(command: Buffer, refusal: CommandRefusal): void {
    this.deny({
      scope: "statement",
      reason: refusal.reason,
      digest: digestOf(command),
      policies: refusal.policies,
      message: "refused a command by policy through the proxy",
    });
  }

  protected override refusalFrame(err: unknown): Buffer {
    let line: string;
    if (err instanceof RespProtocolError) {
      line = `ERR Protocol error: ${err.message}`;
      this.record.refusal = `ERR protocol error: ${err.message}`;
    } else if (err instanceof HandshakeRefusal) {
      line = `${err.code} ${err.message}`;
      this.record.refusal = err.reason;
    } else {
      this.failed(err);
      line = "ERR internal error in the proxy";
      this.record.refusal = "ERR internal error";
    }
    return errorReply(line);
  }

  /** RESP has no way to say why in the middle of a reply: the client is cut off. */
  protected override endSpliced(why: string): void {
    this.endAs(why, undefined);
  }
}
