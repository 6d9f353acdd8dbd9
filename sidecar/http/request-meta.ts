import type { FastifyReply, FastifyRequest } from "fastify";
import type { RequestMeta } from "../service/index.js";

const aborts = new WeakMap<FastifyRequest, AbortController>();

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

/** The request id and abort signal the services take. */
export function requestMeta(req: FastifyRequest): RequestMeta {
  return { requestId: req.id, signal: aborts.get(req)?.signal };
}
