import { type Agent as HttpAgent, type IncomingMessage, request as httpRequest } from "node:http";
import { type Agent as HttpsAgent, request as httpsRequest } from "node:https";
import { withoutUserinfo } from "../util/dependency-error.js";

/** What node-vault hands its `request-promise` function: the keys leasehold's calls use. */
export interface VaultHttpRequest {
  readonly method: string;
  /** `${endpoint}/v1/${path}`, query included. */
  readonly uri: string;
  readonly headers?: Readonly<Record<string, string>>;
  /** A JSON body when it is an object (node-vault's rule); anything else sends none. */
  readonly json?: unknown;
  /** Milliseconds for the whole call, a redirect included. */
  readonly timeout?: number;
}

/** What node-vault reads back: the status, the body (parsed JSON, else text, "" when empty), the path. */
export interface VaultHttpResponse {
  readonly statusCode: number;
  readonly body: unknown;
  readonly request: { readonly path: string };
}

export interface VaultTransportAgents {
  readonly httpAgent: HttpAgent;
  readonly httpsAgent: HttpsAgent;
}

/** A Vault answer bigger than this is refused (Vault's own request limit is 32 MiB). */
const MAX_BODY_BYTES = 32 * 1024 * 1024;
/** Methods that send a Content-Length even without a body (Vault reads an empty one as no data). */
const BODY_METHODS = new Set(["POST", "PUT", "PATCH"]);
/** Statuses Vault's Go client follows once; a standby answers 307 with the active node's address. */
const REDIRECTS = new Set([301, 302, 307, 308]);

/**
 * A redirect leasehold does not follow: a second one, one to another scheme, or one without a
 * usable `Location`. It carries no HTTP status, so it counts as a fault that may pass (a standby
 * during a leader election) and the call fails closed as `upstream_unavailable`.
 */
export class VaultRedirectError extends Error {
  readonly code = "ERR_VAULT_REDIRECT";
}

/**
 * node-vault's `request-promise` option: `defaults()` returns the function it calls for every
 * request. One HTTP exchange on node:http(s) with the given keep-alive agents, in place of
 * node-vault's axios stack (axios, follow-redirects, proxy-from-env).
 *
 * Redirects (VAULT-API.md §1.7: a standby answers 307 `Location: <active node><same path>`) are
 * followed as Vault's Go client does, once, with the same method, headers and body, and only to
 * the same scheme (never https → http, and never http → https either): the token goes to the
 * host the `Location` names, which over https must prove that name with a certificate the https
 * agent trusts. A second redirect, a scheme change or a bad `Location` is a {@link VaultRedirectError}.
 * Socket faults reject with Node's own error (`code` ECONNREFUSED, ECONNRESET, …); the timeout
 * with `code` ETIMEDOUT. Any status resolves: node-vault decides what is an error.
 */
export function vaultTransport(agents: VaultTransportAgents): {
  defaults(rpDefaults?: unknown): (req: VaultHttpRequest) => Promise<VaultHttpResponse>;
} {
  const send = (req: VaultHttpRequest) => exchange(req, agents);
  return { defaults: () => send };
}

async function exchange(req: VaultHttpRequest, agents: VaultTransportAgents): Promise<VaultHttpResponse> {
  const first = new URL(req.uri);
  const body =
    req.json !== null && typeof req.json === "object" ? Buffer.from(JSON.stringify(req.json)) : undefined;
  const headers: Record<string, string> = { accept: "application/json", ...req.headers };
  if (body !== undefined && !Object.keys(headers).some((h) => h.toLowerCase() === "content-type")) {
    headers["content-type"] = "application/json";
  }
  if (body !== undefined || BODY_METHODS.has(req.method))
    headers["content-length"] = String(body?.length ?? 0);
  const deadline = req.timeout ? Date.now() + req.timeout : undefined;
  const shot = (url: URL) =>
    hop({ url, method: req.method, headers, body, agents, deadline, ms: req.timeout });
  let answer = await shot(first);
  if (REDIRECTS.has(answer.status)) {
    answer = await shot(redirectTarget(first, answer));
    if (REDIRECTS.has(answer.status)) {
      throw new VaultRedirectError(`redirect not followed: a second redirect (HTTP ${answer.status})`);
    }
  }
  return { statusCode: answer.status, body: parseBody(answer.text), request: { path: first.pathname } };
}

/** Where a redirect leads, if leasehold follows it: a valid `Location` of the same scheme. */
function redirectTarget(from: URL, answer: Answer): URL {
  let to: URL;
  try {
    if (!answer.location) throw new Error("no Location");
    to = new URL(answer.location, from);
  } catch {
    throw new VaultRedirectError(`redirect not followed: HTTP ${answer.status} without a valid Location`);
  }
  if (to.protocol !== from.protocol) {
    throw new VaultRedirectError(
      `redirect not followed: HTTP ${answer.status} to ${withoutUserinfo(to.origin)} changes the scheme`,
    );
  }
  return to;
}

/** JSON when it parses (as axios did), else the text; "" for an empty body (a 204). */
function parseBody(text: string): unknown {
  if (text === "") return "";
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

interface Answer {
  readonly status: number;
  readonly location: string | undefined;
  readonly text: string;
}

interface Hop {
  readonly url: URL;
  readonly method: string;
  readonly headers: Record<string, string>;
  readonly body: Buffer | undefined;
  readonly agents: VaultTransportAgents;
  readonly deadline: number | undefined;
  readonly ms: number | undefined;
}

const codedError = (message: string, code: string) => Object.assign(new Error(message), { code });

/** One request and its whole answer, within the call's deadline. */
function hop(h: Hop): Promise<Answer> {
  return new Promise<Answer>((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    let settled = false;
    const settle = (fn: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      fn();
    };
    const fail = (err: Error) => settle(() => reject(err));
    const tls = h.url.protocol === "https:";
    const send = tls ? httpsRequest : httpRequest;
    const req = send(
      h.url,
      { method: h.method, headers: h.headers, agent: tls ? h.agents.httpsAgent : h.agents.httpAgent },
      (res: IncomingMessage) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on("data", (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_BODY_BYTES) abort(codedError("Vault's answer is too large", "ERR_VAULT_BODY"));
          else chunks.push(chunk);
        });
        res.on("error", fail);
        res.on("end", () =>
          settle(() =>
            resolve({
              status: res.statusCode ?? 0,
              location: res.headers.location,
              text: Buffer.concat(chunks).toString("utf8"),
            }),
          ),
        );
        res.on("close", () => {
          if (!res.complete) fail(codedError("connection closed mid-answer", "ECONNRESET"));
        });
      },
    );
    // Settled with this error first: whatever the destroyed socket reports next is ignored.
    const abort = (err: Error) => {
      fail(err);
      req.destroy(err);
    };
    req.on("error", fail);
    if (h.deadline !== undefined) {
      timer = setTimeout(
        () => abort(codedError(`timed out after ${h.ms} ms`, "ETIMEDOUT")),
        Math.max(0, h.deadline - Date.now()),
      );
    }
    req.end(h.body);
  });
}
