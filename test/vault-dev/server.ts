import {
  type IncomingMessage,
  STATUS_CODES,
  type Server,
  type ServerResponse,
  createServer,
} from "node:http";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import { VaultCore } from "./core.js";
import { type HttpReply, errorReply, multierror } from "./http-util.js";
import { parseRawPacket } from "./list-verb.js";
import { MAX_REQUEST_SIZE, type RawRequest } from "./request.js";

export interface VaultDevOptions {
  /** @default "127.0.0.1" */
  host?: string;
  /** 0 = a free port. @default 0 */
  port?: number;
  /** @default "root" */
  rootToken?: string;
  /** Where KV v2 is mounted. @default "secret" */
  kvMount?: string;
  /** JSON file that keeps secrets, tokens, policies and AppRole secret IDs across restarts. */
  persistFile?: string;
  approleRoles?: Record<string, { roleId: string; secretId: string; policies: string[]; tokenTtl?: number }>;
  jwtRoles?: Record<
    string,
    {
      jwks: { keys: object[] };
      boundAudiences?: string[];
      boundSubject?: string;
      userClaim?: string;
      policies: string[];
      tokenTtl?: number;
    }
  >;
  /** Policy name → HCL-ish or JSON text, e.g. `path "x/*" { capabilities = ["read"] }`. */
  policies?: Record<string, string>;
}

export interface VaultDevServer {
  /** `http://127.0.0.1:PORT` */
  readonly address: string;
  readonly port: number;
  readonly rootToken: string;
  /** Logical paths answer 503 `Vault is sealed`; health reports sealed. */
  seal(): void;
  unseal(): void;
  /** Delays every request by `ms` before it is handled. */
  setLatency(ms: number): void;
  /** While on, the socket of every new request is destroyed without an answer. */
  setDropConnections(on: boolean): void;
  /**
   * Acts as a standby whose active node is `active` (an address like {@link address}), or as the
   * active node again (undefined): every request except `sys/health`, `sys/seal-status` and
   * `sys/leader` is answered 307 `Location: <active><same path and query>`, empty body
   * (VAULT-API.md §1.7, `respondStandby`). Health still reports this node active.
   */
  setStandby(active: string | undefined): void;
  close(): Promise<void>;
}

/**
 * Starts a Vault-compatible dev server (KV v2, token/AppRole/JWT auth, ACL policies,
 * health, response wrapping) on Node's `http` module. Resolves once it listens.
 */
export async function startVaultDev(options: VaultDevOptions = {}): Promise<VaultDevServer> {
  const rootToken = options.rootToken ?? "root";
  const core = new VaultCore({
    rootToken,
    kvMount: options.kvMount ?? "secret",
    ...(options.persistFile !== undefined ? { persistFile: options.persistFile } : {}),
    approleRoles: options.approleRoles ?? {},
    jwtRoles: options.jwtRoles ?? {},
    policies: options.policies ?? {},
  });
  const faults: { latencyMs: number; drop: boolean; activeNode?: string | undefined } = {
    latencyMs: 0,
    drop: false,
  };
  const sockets = new Set<Socket>();

  const serve = async (raw: RawRequest): Promise<HttpReply> => {
    if (faults.latencyMs > 0) await delay(faults.latencyMs);
    if (faults.activeNode !== undefined && !STANDBY_SERVED.test(raw.url)) {
      return { status: 307, body: "", headers: { Location: `${faults.activeNode}${raw.url}` } };
    }
    try {
      return await core.router.handle(raw);
    } catch {
      // A bug in a handler must not kill the server; Vault answers such faults like this.
      return errorReply(500, [multierror(["internal error"])]);
    } finally {
      core.persist();
    }
  };

  const server = createServer({ maxHeaderSize: 64 * 1024 }, (req, res) => {
    if (faults.drop) {
      req.socket.destroy();
      return;
    }
    readBody(req)
      .then(({ body, tooLarge }) =>
        serve({
          method: req.method ?? "GET",
          url: req.url ?? "/",
          headers: flattenHeaders(req),
          body,
          bodyTooLarge: tooLarge,
        }),
      )
      .then((reply) => writeReply(res, reply, req))
      .catch(() => res.destroy());
  });
  server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });
  // llhttp rejects the LIST verb before a request object exists (VAULT-API.md §8.1):
  // rebuild the request from the raw bytes and answer on the socket directly.
  server.on("clientError", (err: Error & { code?: string; rawPacket?: Buffer }, socket: Duplex) => {
    const raw =
      err.code === "HPE_INVALID_METHOD" && err.rawPacket ? parseRawPacket(err.rawPacket) : undefined;
    if (!raw || faults.drop) {
      socket.destroy();
      return;
    }
    serve(raw)
      .then((reply) => {
        if (!socket.destroyed) socket.end(serializeReply(reply, raw.headers["x-vault-namespace"]));
      })
      .catch(() => socket.destroy());
  });

  await listen(server, options.host ?? "127.0.0.1", options.port ?? 0);
  const address = server.address();
  if (address === null || typeof address === "string")
    throw new Error("vault-dev: server has no TCP address");
  const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
  let closed: Promise<void> | undefined;

  return {
    address: `http://${host}:${address.port}`,
    port: address.port,
    rootToken,
    seal: () => core.setSealed(true),
    unseal: () => core.setSealed(false),
    setLatency: (ms: number) => {
      faults.latencyMs = Math.max(0, ms);
    },
    setDropConnections: (on: boolean) => {
      faults.drop = on;
    },
    setStandby: (active: string | undefined) => {
      faults.activeNode = active?.replace(/\/+$/, "");
    },
    close: () => {
      closed ??= new Promise<void>((resolve, reject) => {
        server.close((err) => {
          core.persist();
          if (err) reject(err);
          else resolve();
        });
        for (const socket of sockets) socket.destroy();
      });
      return closed;
    },
  };
}

/** What a standby answers itself instead of redirecting (Vault's unforwarded sys handlers). */
const STANDBY_SERVED = /^\/v1\/sys\/(health|seal-status|leader)(\?|$)/;

function listen(server: Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host, port }, () => {
      server.off("error", reject);
      resolve();
    });
  });
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Reads the body, keeping at most the size limit (Vault answers 413 beyond it). */
function readBody(req: IncomingMessage): Promise<{ body: Buffer; tooLarge: boolean }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_REQUEST_SIZE) tooLarge = true;
      else chunks.push(chunk);
    });
    req.on("end", () => resolve({ body: Buffer.concat(chunks), tooLarge }));
    req.on("error", reject);
  });
}

function flattenHeaders(req: IncomingMessage): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(", ") : value;
  }
  return headers;
}

/** Every reply is JSON and must not be cached; Vault echoes X-Vault-Namespace. */
function replyHeaders(reply: HttpReply, namespace: string | undefined): Record<string, string> {
  const headers: Record<string, string> = {
    "Cache-Control": "no-store",
    "Content-Type": "application/json",
    ...reply.headers,
  };
  if (namespace !== undefined && namespace !== "") headers["X-Vault-Namespace"] = namespace;
  return headers;
}

function writeReply(res: ServerResponse, reply: HttpReply, req: IncomingMessage): void {
  if (res.destroyed) return;
  const namespace = req.headers["x-vault-namespace"];
  const headers = replyHeaders(reply, typeof namespace === "string" ? namespace : undefined);
  if (reply.status !== 204) headers["Content-Length"] = String(Buffer.byteLength(reply.body));
  res.writeHead(reply.status, headers);
  res.end(reply.status === 204 || req.method === "HEAD" ? undefined : reply.body);
}

/** A whole HTTP/1.1 response for a socket taken over in `clientError`; it closes the connection. */
function serializeReply(reply: HttpReply, namespace: string | undefined): string {
  const headers = replyHeaders(reply, namespace);
  const lines = [`HTTP/1.1 ${reply.status} ${STATUS_CODES[reply.status] ?? ""}`];
  for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`);
  lines.push(`Date: ${new Date().toUTCString()}`);
  if (reply.status !== 204) lines.push(`Content-Length: ${Buffer.byteLength(reply.body)}`);
  // The parser of this socket is poisoned, so the client must not reuse it.
  lines.push("Connection: close");
  return `${lines.join("\r\n")}\r\n\r\n${reply.status === 204 ? "" : reply.body}`;
}
