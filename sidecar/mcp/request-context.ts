import { AsyncLocalStorage } from "node:async_hooks";
import type { RequestMeta, VerifiedCaller } from "../service/index.js";

/**
 * What one `/mcp` request acts as: the identity its token proved (verified on this request) and
 * the request's meta (id, abort signal, the local caller at the other end of its connection).
 */
export interface McpRequestContext {
  readonly caller: VerifiedCaller;
  readonly meta: RequestMeta;
}

const current = new AsyncLocalStorage<McpRequestContext>();

/**
 * Runs `fn` (the transport handling one HTTP request) with `ctx` as the current request: the MCP
 * SDK calls a tool's handler from within that call, so the handler's backend reads it there.
 */
export function runInMcpRequest<T>(ctx: McpRequestContext, fn: () => Promise<T>): Promise<T> {
  return current.run(ctx, fn);
}

/** The `/mcp` request being handled in this async context, if any. */
export function currentMcpRequest(): McpRequestContext | undefined {
  return current.getStore();
}
