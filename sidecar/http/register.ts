import type { IncomingMessage, ServerResponse } from "node:http";
import type {
  FastifyBaseLogger,
  FastifyInstance,
  FastifyReply,
  FastifyRequest,
  RawServerDefault,
} from "fastify";
import { LeaseholdError } from "../errors.js";
import { parseBody } from "../service/index.js";
import type { Authenticate } from "./auth.js";
import { requestMeta } from "./request-meta.js";
import { responseSchemas } from "./serialize.js";
import type { Caller, RouteDef, RouteInput } from "./route.js";

/** The fastify app routes are registered on, whatever its logger. */
export type RouteApp<L extends FastifyBaseLogger = FastifyBaseLogger> = FastifyInstance<
  RawServerDefault,
  IncomingMessage,
  ServerResponse,
  L
>;

/**
 * The request's params, query and body parsed with the route's schemas.
 * @throws 400 invalid_request naming the field
 */
export function parseInput(
  route: RouteDef<unknown>,
  req: FastifyRequest,
): RouteInput<unknown, unknown, unknown> {
  const body = route.bodyOptional ? (req.body ?? {}) : req.body;
  return {
    params: route.params ? parseBody(route.params, req.params, "path") : undefined,
    query: route.query ? parseBody(route.query, req.query ?? {}, "query") : undefined,
    body: route.body ? parseBody(route.body, body, route.bodyName ?? "body") : undefined,
  };
}

/** The status a route answers with when it documents exactly one 2xx status. */
function onlySuccess(route: RouteDef<unknown>): number | undefined {
  const ok = Object.keys(route.responses)
    .map(Number)
    .filter((s) => s >= 200 && s < 300);
  return ok.length === 1 ? ok[0] : undefined;
}

/**
 * Registers each route on the app. Every request then goes through the same stages, in order:
 * authenticate (route.auth), parse params, query and body (route schemas), decide the
 * operator's action on route.resource, then route.handle with `deps`; a JSON answer is written
 * from the route's documented response schema (see responseSchemas).
 */
export function registerRoutes<D, L extends FastifyBaseLogger>(
  app: RouteApp<L>,
  routes: readonly RouteDef<D>[],
  deps: D,
  authenticate: Authenticate,
): void {
  for (const route of routes) {
    const status = onlySuccess(route);
    const response = responseSchemas(route);
    app.route({
      method: route.method,
      url: route.path,
      ...(response ? { schema: { response } } : {}),
      handler: async (req: FastifyRequest, reply: FastifyReply) => {
        try {
          const caller = await authenticate(route.auth, req);
          const input = parseInput(route, req);
          if (route.resource) await decideResource(route, caller, input, deps);
          if (status !== undefined) reply.status(status);
          // Written out, not `{ ...input, … }`: V8 spends microseconds adding fields to a spread copy.
          const ctx = {
            params: input.params,
            query: input.query,
            body: input.body,
            req,
            reply,
            caller,
            meta: requestMeta(req),
          };
          return await route.handle(ctx, deps);
        } catch (err) {
          challenge(route, req, reply, deps, err);
          throw err;
        }
      },
    });
  }
}

/** A route's WWW-Authenticate header on a 401 it answers. */
function challenge<D>(
  route: RouteDef<D>,
  req: FastifyRequest,
  reply: FastifyReply,
  deps: D,
  err: unknown,
): void {
  if (!route.challenge || !(err instanceof LeaseholdError) || err.status !== 401) return;
  const value = route.challenge(req, deps);
  if (value !== undefined) reply.header("www-authenticate", value);
}

async function decideResource<D>(
  route: RouteDef<D>,
  caller: Caller,
  input: RouteInput<unknown, unknown, unknown>,
  deps: D,
): Promise<void> {
  const named = route.resource?.bind(route);
  if (!named) return;
  if (caller.kind !== "operator")
    throw new Error(`${route.method} ${route.path} names a resource but not an operator`);
  await caller.require(async () => named(input, deps), route.proposedGroups?.(input));
}
