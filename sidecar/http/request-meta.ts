import type { FastifyReply, FastifyRequest } from "fastify";
import type { CallerAttestation, CallerAttestor } from "../attest/index.js";
import type { RequestMeta } from "../service/index.js";

/*
 * What a request carries for its meta, set on the request itself in onRequest: a property of a
 * symbol costs a shape transition every request takes alike, where a WeakMap entry per request
 * (and an AbortController and a listener each) was paid on every request, read or not (issue 19).
 */
const REPLY = Symbol("leasehold.reply");
const ABORT = Symbol("leasehold.abort");
const ATTESTOR = Symbol("leasehold.attestor");

interface Tracked {
  [REPLY]?: FastifyReply;
  [ABORT]?: AbortController;
  [ATTESTOR]?: CallerAttestor;
}

/**
 * Aborts the request's signal when its client goes away before the answer is written, so the
 * work done for it (e.g. a waiting checkout) stops. The signal is made when first read.
 */
export function trackAbort(req: FastifyRequest, reply: FastifyReply): void {
  (req as Tracked)[REPLY] = reply;
}

/** Makes the request's caller attestable (by the connection's peer), at no cost until asked. */
export function trackCaller(req: FastifyRequest, attestor: CallerAttestor): void {
  (req as Tracked)[ATTESTOR] = attestor;
}

/**
 * The request's abort signal, made on first use: aborted at once when the response closed
 * unfinished before (its `close` event has passed), else when it does.
 */
function abortSignal(req: FastifyRequest): AbortSignal | undefined {
  const t = req as Tracked;
  const made = t[ABORT];
  if (made) return made.signal;
  const raw = t[REPLY]?.raw;
  if (!raw) return undefined;
  const ac = new AbortController();
  t[ABORT] = ac;
  // `destroyed` is set as `close` is emitted (and when the response is destroyed).
  if (raw.destroyed) {
    if (!raw.writableFinished) ac.abort();
  } else {
    raw.once("close", () => {
      if (!raw.writableFinished) ac.abort();
    });
  }
  return ac.signal;
}

/** RequestMeta of an HTTP request; `signal` a getter of the class, not one made per request. */
class HttpRequestMeta implements RequestMeta {
  readonly requestId: string;
  readonly caller: (() => Promise<CallerAttestation>) | undefined;
  readonly #req: FastifyRequest;

  constructor(req: FastifyRequest) {
    this.#req = req;
    this.requestId = req.id;
    const attestor = (req as Tracked)[ATTESTOR];
    this.caller = attestor ? (): Promise<CallerAttestation> => attestor.attest(req.raw.socket) : undefined;
  }

  get signal(): AbortSignal | undefined {
    return abortSignal(this.#req);
  }
}

/**
 * The request id, abort signal and caller the services take. `caller` attests the process at
 * the other end of the request's connection the first time anyone asks, once per connection.
 */
export function requestMeta(req: FastifyRequest): RequestMeta {
  return new HttpRequestMeta(req);
}
