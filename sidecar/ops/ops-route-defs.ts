import type { FastifyReply } from "fastify";
import { LeaseholdError } from "../errors.js";
import { routeDeclarer } from "../http/route.js";
import type { OpsMetrics } from "./metrics.js";
import type { StreamRouteDeps } from "./sse-route.js";
import { type UiAsset, UI_SECURITY_HEADERS } from "./ui-assets.js";

/** What the handlers of the ops routes take (registerOpsRoutes builds it). */
export interface OpsHandlerDeps {
  readonly metrics: OpsMetrics;
  /** The dashboard's files by name; empty when they are not installed. */
  readonly assets: ReadonlyMap<string, UiAsset>;
  readonly stream: StreamRouteDeps;
}

/** Declares a route whose handler takes the ops deps. */
export const opsRoute = routeDeclarer<OpsHandlerDeps>("ops");

export const metricsRoute = opsRoute({
  method: "GET",
  path: "/metrics",
  operationId: "metrics",
  tag: "operations",
  summary: "Prometheus metrics (the admin token only when ops.metricsRequireToken)",
  auth: "admin-if-configured",
  responses: { 200: { description: "Prometheus text format", contentType: "text/plain" } },
  errors: [],
  handle: async ({ reply }, d) => {
    const { contentType, body } = await d.metrics.render();
    return reply.header("content-type", contentType).send(body);
  },
});

function serve(reply: FastifyReply, assets: ReadonlyMap<string, UiAsset>, name: string | undefined) {
  const asset = name === undefined ? undefined : assets.get(name);
  if (!asset) {
    throw new LeaseholdError(
      "not_found",
      assets.size === 0
        ? "the dashboard's files are not installed with this sidecar"
        : "no such dashboard file",
    );
  }
  return reply.headers(UI_SECURITY_HEADERS).header("content-type", asset.contentType).send(asset.body);
}

export const dashboardRoute = opsRoute({
  method: "GET",
  path: "/ui",
  operationId: "dashboard",
  tag: "operations",
  summary: "The operator dashboard (it asks for the admin token)",
  auth: "none",
  responses: { 200: { description: "HTML", contentType: "text/html" } },
  errors: [],
  handle: ({ reply }, d) => serve(reply, d.assets, "index.html"),
});

export const dashboardAssetRoute = opsRoute({
  method: "GET",
  path: "/ui/:asset",
  operationId: "dashboardAsset",
  tag: "operations",
  summary: "A file of the dashboard",
  auth: "none",
  responses: { 200: { description: "the file", contentType: "application/octet-stream" } },
  errors: [],
  handle: ({ req, reply }, d) => {
    // `/ui/` is the dashboard itself; its page has no second address.
    const { asset } = req.params as { asset?: string };
    return serve(reply, d.assets, asset === "" ? "index.html" : asset === "index.html" ? undefined : asset);
  },
});
