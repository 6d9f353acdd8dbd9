import { once } from "node:events";
import { request } from "node:http";
import type { AddressInfo } from "node:net";
import Fastify, { type FastifyReply, type FastifyRequest } from "fastify";
import { afterEach, describe, expect, it } from "vitest";
import { requestMeta, trackAbort } from "../../sidecar/http/index.js";

/** An app whose one route hands its request to `onRequest` and answers when `answer` resolves. */
async function appWith(handle: (req: FastifyRequest, reply: FastifyReply) => Promise<unknown>) {
  const app = Fastify();
  app.addHook("onRequest", (req, reply, done) => {
    trackAbort(req, reply);
    done();
  });
  app.get("/work", handle);
  await app.listen({ host: "127.0.0.1", port: 0 });
  apps.push(app);
  return (app.server.address() as AddressInfo).port;
}

const apps: ReturnType<typeof Fastify>[] = [];
afterEach(async () => {
  await Promise.all(apps.splice(0).map((a) => a.close()));
});

/** Sends GET /work and destroys the connection once `gone` is called. */
function callAndLeave(port: number) {
  const req = request({ host: "127.0.0.1", port, path: "/work" });
  req.on("error", () => undefined);
  req.end();
  return { leave: () => req.destroy() };
}

describe("requestMeta(req).signal", () => {
  it("aborts when the client goes away before its answer, read before or only after it went", async () => {
    for (const readAfter of [false, true]) {
      let arrived!: () => void;
      const inHandler = new Promise<void>((r) => {
        arrived = r;
      });
      const seen = new Promise<boolean>((resolve) => {
        void appWith(async (req, reply) => {
          const early = readAfter ? undefined : requestMeta(req).signal;
          arrived();
          if (early) await once(early, "abort");
          else await once(reply.raw, "close");
          resolve((early ?? requestMeta(req).signal)?.aborted === true);
          return {};
        }).then((port) => {
          const call = callAndLeave(port);
          void inHandler.then(call.leave);
        });
      });
      expect(await seen).toBe(true);
    }
  });

  it("does not abort for a request answered in full, read during or after the answer", async () => {
    let during: AbortSignal | undefined;
    let after: Promise<AbortSignal | undefined> | undefined;
    const port = await appWith(async (req, reply) => {
      during = requestMeta(req).signal;
      after = once(reply.raw, "close").then(() => requestMeta(req).signal);
      return { ok: true };
    });
    const res = await fetch(`http://127.0.0.1:${port}/work`);
    expect(await res.json()).toEqual({ ok: true });
    expect(during?.aborted).toBe(false);
    const late = await after;
    expect(late).toBeDefined();
    expect(late?.aborted).toBe(false);
    expect(during?.aborted).toBe(false);
  });
});
