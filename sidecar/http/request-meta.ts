import type { FastifyReply, FastifyRequest } from "fastify";
import type { CallerAttestation, CallerAttestor } from "../attest/index.js";
import type { RequestMeta } from "../service/index.js";

const aborts = new WeakMap<FastifyRequest, AbortController>();
const attestors = new WeakMap<FastifyRequest, CallerAttestor>();

/**
 * Aborts the request's signal when its client goes away before the answer is written, so the
 * work done for it (e.g. a waiting checkout) stops.
 */
export function trackAbort(req: FastifyRequest, reply: FastifyReply): void {
  const ac = new AbortController();
  aborts.set(req, ac);
  reply.raw.once("close", () => {
    if (!reply.raw.writableFinished) ac.abort();
  });
}

/** Makes the request's caller attestable (by the connection's peer), at no cost until asked. */
export function trackCaller(req: FastifyRequest, attestor: CallerAttestor): void {
  attestors.set(req, attestor);
}

/**
 * The request id, abort signal and caller the services take. `caller` attests the process at
 * the other end of the request's connection the first time anyone asks, once per connection.
 */
export function requestMeta(req: FastifyRequest): RequestMeta {
  const attestor = attestors.get(req);
  const caller = attestor ? (): Promise<CallerAttestation> => attestor.attest(req.raw.socket) : undefined;
  return { requestId: req.id, signal: aborts.get(req)?.signal, caller };
}
