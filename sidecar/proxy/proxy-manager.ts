import { MysqlConnectionIds } from "./mysql/connection-ids.js";
import { Cluster } from "ioredis";
import type { Socket } from "node:net";
import type { SecureContext } from "node:tls";
import type { StoredRegistration } from "../resources/types.js";
import { LdapSession } from "./ldap/ldap-session.js";
import { LeaseEndFollower } from "./lease-end-follower.js";
import { type ListenerRsaKey, listenerRsaKey } from "./mysql/auth-plugins.js";
import { MysqlSession } from "./mysql/mysql-session.js";
import { ServerInfo } from "./mysql/server-info.js";
import { CancelKeys } from "./postgres/cancel-keys.js";
import { PostgresSession } from "./postgres/postgres-session.js";
import { CommandTables } from "./redis/command-table.js";
import { RedisSession } from "./redis/redis-session.js";
import { ResourceListener } from "./resource-listener.js";
import { proxySecureContext } from "./self-signed-tls.js";
import type { SessionContext } from "./session-context.js";
import { LeaseLimits } from "./session-limits.js";
import { SessionRegistry } from "./session-registry.js";
import type {
  AuditStatements,
  ProxyEndpoint,
  ProxyManagerOptions,
  ProxyProtocol,
  ProxySyncReport,
} from "./types.js";

/** The one address listeners bind: agents on this host only. */
export const PROXY_HOST = "127.0.0.1";

const DEFAULT_PROTOCOLS: Readonly<Record<string, ProxyProtocol>> = {
  postgres: "postgres",
  "redis-acl": "redis",
  mysql: "mysql",
  ldap: "ldap",
};
const STREAM_BLOCK_MS = 2000;
/** The defaults of `proxy.*` in the config, for managers built without it (tests, embedders). */
const DEFAULT_HANDSHAKE_TIMEOUT_MS = 5000;
const DEFAULT_MAX_HANDSHAKES = 64;
const DEFAULT_MAX_CONNECTIONS_PER_LEASE = 16;

const STATEMENT_MODES: ReadonlySet<unknown> = new Set(["none", "digest", "text"]);
/** The listeners that can apply `proxy.statementPolicy`. */
const STATEMENT_POLICY_PROTOCOLS: ReadonlySet<ProxyProtocol> = new Set(["postgres", "mysql", "redis"]);

/** A registration's own `proxy.auditStatements`, once the registration schema carries it. */
function statementMode(reg: StoredRegistration): AuditStatements | undefined {
  const p = reg.proxy;
  if (!p || !("auditStatements" in p) || !STATEMENT_MODES.has(p.auditStatements)) return undefined;
  return p.auditStatements as AuditStatements;
}

/** How an ended lease is named to the client whose connection it closes. */
function endedBecause(reason: string): string {
  switch (reason) {
    case "revoked":
      return "the lease was revoked";
    case "expired":
      return "the lease expired";
    case "checkin":
      return "the lease was checked in";
    default:
      return "the lease ended";
  }
}

/**
 * Local protocol listeners (PostgreSQL, MySQL/MariaDB, Redis, LDAP) for the registrations that ask for one
 * (`proxy: { port }`). Agents log in with user = lease id and password = lease token; the
 * manager closes every connection of a lease the moment any sidecar of the cluster ends it.
 *
 * Starts following the cluster's lease event stream on construction; `close()` stops it.
 */
export class ProxyManager {
  private readonly listeners = new Map<string, ResourceListener>();
  private readonly registry = new SessionRegistry();
  private readonly cancelKeys = new CancelKeys();
  private readonly mysqlServers = new ServerInfo();
  private readonly commandTables = new CommandTables();
  private readonly leaseLimits = new LeaseLimits();
  private readonly mysqlIds = new MysqlConnectionIds();
  private rsaKey: Promise<ListenerRsaKey> | undefined;
  private readonly follower: LeaseEndFollower;
  private readonly protocols: Readonly<Record<string, ProxyProtocol>>;
  private secure: Promise<SecureContext | undefined> | undefined;
  private secureContext: SecureContext | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;
  private readonly unsubscribe: () => void;

  constructor(private readonly o: ProxyManagerOptions) {
    this.protocols = { ...DEFAULT_PROTOCOLS, ...o.protocols };
    this.unsubscribe = o.events.subscribe((e) => {
      if (e.type === "ended") this.endLease(e.lease.id, e.reason);
    });
    // Its own connection: XREAD BLOCK holds it. Commands queue while it (re)connects, so the
    // first read does not fail just because the connection is still being set up.
    const streamOptions = {
      commandTimeout: STREAM_BLOCK_MS + 5000,
      lazyConnect: false,
      enableOfflineQueue: true,
    };
    const redis =
      o.redis instanceof Cluster
        ? o.redis.duplicate(undefined, { enableOfflineQueue: true, redisOptions: streamOptions })
        : o.redis.duplicate(streamOptions);
    redis.on("error", (err: Error) =>
      o.log.debug({ err: { message: err.message } }, "proxy stream connection error"),
    );
    this.follower = new LeaseEndFollower({
      redis,
      stream: `${o.prefix}events`,
      blockMs: STREAM_BLOCK_MS,
      onEnded: (id, reason) => this.endLease(id, reason),
      log: o.log,
    });
    this.follower.start();
  }

  /** The protocol a registration's listener speaks, or undefined when its adapter has none. */
  protocolOf(reg: StoredRegistration): ProxyProtocol | undefined {
    return Object.hasOwn(this.protocols, reg.adapter) ? this.protocols[reg.adapter] : undefined;
  }

  /**
   * Makes the running listeners match the registrations: starts listeners for new
   * `proxy` registrations, restarts those whose port or protocol changed, stops the rest.
   * A listener that cannot start (port taken) is reported in `failed` and retried next sync.
   */
  sync(registrations: readonly StoredRegistration[]): Promise<ProxySyncReport> {
    const run = this.queue.then(() => this.doSync(registrations));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async doSync(registrations: readonly StoredRegistration[]): Promise<ProxySyncReport> {
    const started: string[] = [];
    const stopped: string[] = [];
    const failed: Array<{ resource: string; error: string }> = [];
    if (this.closed) return { started, stopped, failed };
    const wanted = new Map<string, { reg: StoredRegistration; protocol: ProxyProtocol; port: number }>();
    for (const reg of registrations) {
      if (!reg.proxy) continue;
      const protocol = this.protocolOf(reg);
      if (!protocol) {
        failed.push({ resource: reg.name, error: `adapter "${reg.adapter}" has no proxy protocol` });
        continue;
      }
      if (reg.proxy.statementPolicy === true && !STATEMENT_POLICY_PROTOCOLS.has(protocol)) {
        // Fail closed: a listener that cannot apply the policy asked for does not run.
        failed.push({
          resource: reg.name,
          error: `statement policy is not available for ${protocol} listeners`,
        });
        continue;
      }
      wanted.set(reg.name, { reg, protocol, port: reg.proxy.port });
    }
    for (const [name, l] of this.listeners) {
      const w = wanted.get(name);
      if (w && w.protocol === l.protocol && w.port === l.requestedPort) {
        l.registration = w.reg;
        wanted.delete(name);
        continue;
      }
      this.listeners.delete(name);
      await l.close(w ? "the resource's proxy was reconfigured" : "the resource's proxy was stopped");
      stopped.push(name);
    }
    for (const [name, w] of wanted) {
      if (w.protocol !== "redis") await this.loadTls();
      if (w.protocol === "mysql") await this.loadRsaKey(name);
      const l = new ResourceListener(
        w.reg,
        w.protocol,
        w.port,
        (s, l) => this.accept(s, l),
        this.o.maxHandshakes ?? DEFAULT_MAX_HANDSHAKES,
      );
      try {
        const port = await l.start(PROXY_HOST);
        this.listeners.set(name, l);
        started.push(name);
        this.o.log.info({ resource: name, protocol: w.protocol, port }, "proxy listener started");
      } catch (err) {
        const error = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
        failed.push({ resource: name, error });
        this.o.log.error({ resource: name, port: w.port, error }, "proxy listener could not start");
      }
    }
    return { started, stopped, failed };
  }

  private async loadTls(): Promise<void> {
    this.secure ??= proxySecureContext(this.o.tls ?? "self-signed").catch((err: unknown) => {
      this.o.log.warn(
        { err: { message: (err as Error).message } },
        "proxy TLS unavailable; SSLRequest will be declined",
      );
      return undefined;
    });
    this.secureContext = await this.secure;
  }

  /** The RSA key of caching_sha2_password without TLS, made before the first MySQL listener starts. */
  private async loadRsaKey(resource: string): Promise<void> {
    this.rsaKey ??= listenerRsaKey();
    await this.rsaKey.catch((err: unknown) => {
      this.rsaKey = undefined;
      this.o.log.warn(
        { err: { message: (err as Error).message }, resource },
        "proxy RSA key unavailable; MySQL clients without TLS will be refused",
      );
    });
  }

  private context(l: ResourceListener): SessionContext {
    const name = l.registration.name;
    return {
      resource: name,
      registration: () => this.listeners.get(name)?.registration,
      leases: this.o.leases,
      audit: this.o.audit,
      log: this.o.log,
      registry: this.registry,
      live: l.sessions,
      handshakes: l.handshakes,
      handshakeTimeoutMs: this.o.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS,
      maxConnectionsPerLease: this.o.maxConnectionsPerLease ?? DEFAULT_MAX_CONNECTIONS_PER_LEASE,
      maxMessageBytes: this.o.maxMessageBytes ?? 1024 * 1024,
      attestor: this.o.attestor,
      leaseLimits: this.leaseLimits,
    };
  }

  private accept(socket: Socket, l: ResourceListener): void {
    if (this.closed) {
      socket.destroy();
      return;
    }
    const ctx = this.context(l);
    if (l.protocol === "postgres") {
      void new PostgresSession(socket, {
        ...ctx,
        cancelKeys: this.cancelKeys,
        secureContext: this.secureContext,
        auditStatements: statementMode(l.registration) ?? this.o.auditStatements ?? "none",
        statementPolicy: { policy: this.o.policy, unparseable: this.o.unparseable ?? "deny" },
      }).run();
    } else if (l.protocol === "mysql") {
      void new MysqlSession(socket, {
        ...ctx,
        secureContext: this.secureContext,
        rsaKey: () => this.rsaKey ?? Promise.reject(new Error("no RSA key")),
        serverInfo: this.mysqlServers,
        connectionIds: this.mysqlIds,
        auditStatements: statementMode(l.registration) ?? this.o.auditStatements ?? "none",
        statementPolicy: { policy: this.o.policy, unparseable: this.o.unparseable ?? "deny" },
      }).run();
    } else if (l.protocol === "ldap") {
      void new LdapSession(socket, { ...ctx, secureContext: this.secureContext }).run();
    } else {
      void new RedisSession(socket, {
        ...ctx,
        statementPolicy: { policy: this.o.policy, unparseable: this.o.unparseable ?? "deny" },
        commandTables: this.commandTables,
      }).run();
    }
  }

  /** Closes every proxied connection of a lease at once; returns how many. */
  endLease(leaseId: string, reason: string): number {
    this.leaseLimits.forget(leaseId);
    const n = this.registry.endLease(leaseId, endedBecause(reason));
    if (n > 0)
      this.o.log.info(
        { lease_id: leaseId, connections: n, reason },
        "closed proxied connections of an ended lease",
      );
    return n;
  }

  /** Where agents connect for `resource`, or undefined when it has no running listener. */
  endpointFor(resource: string): ProxyEndpoint | undefined {
    const l = this.listeners.get(resource);
    return l ? { host: PROXY_HOST, port: l.port, protocol: l.protocol } : undefined;
  }

  /** Open proxied connections (of one lease, or all). */
  connections(leaseId?: string): number {
    return this.registry.count(leaseId);
  }

  /** Stops every listener, closes their connections and the stream reader. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribe();
    await this.queue;
    const all = [...this.listeners.values()];
    this.listeners.clear();
    await Promise.all([this.follower.stop(), ...all.map((l) => l.close("the sidecar is shutting down"))]);
  }
}
