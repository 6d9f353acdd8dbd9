import { type HandlerContext, type LogicalResult, failure, rawResult } from "./backend.js";
import { type WrapInfo, envelope } from "./envelope.js";
import { formatTime, weakString } from "./go-format.js";
import { emptyReply, goJson } from "./http-util.js";
import type { TokenStore } from "./token-store.js";

/** Wrapping token id → the stored response body (the cubbyhole `response` entry). */
export type WrappedResponses = Record<string, string>;

/** Vault's error for an unknown, expired or already used wrapping token. */
export const INVALID_WRAPPING_TOKEN = "wrapping token is not valid or does not exist";

/**
 * Stores `body` under a new single-use wrapping token and returns the envelope Vault
 * answers with instead: `request_id` empty, only `wrap_info` filled.
 */
export function wrapResponse(
  body: Record<string, unknown>,
  ttl: number,
  creationPath: string,
  tokens: TokenStore,
  store: WrappedResponses,
  now: number,
  wrappedAccessor: string | undefined,
): Record<string, unknown> {
  const entry = tokens.create(
    {
      policies: ["response-wrapping"],
      meta: null,
      displayName: "",
      numUses: 1,
      ttl,
      renewable: false,
      explicitMaxTtl: 0,
      period: 0,
      orphan: true,
      path: "sys/wrapping/wrap",
      parent: null,
      entityId: "",
    },
    now,
  );
  store[entry.id] = goJson(body);
  const wrapInfo: WrapInfo = {
    token: entry.id,
    accessor: entry.accessor,
    ttl,
    creation_time: formatTime(now),
    creation_path: creationPath,
    ...(wrappedAccessor !== undefined ? { wrapped_accessor: wrappedAccessor } : {}),
  };
  return envelope("", { data: null, warnings: [], auth: null }, undefined, wrapInfo);
}

/** True when `id` is a live wrapping token that still holds a response. */
export function isLiveWrappingToken(
  id: string,
  tokens: TokenStore,
  store: WrappedResponses,
  now: number,
): boolean {
  return Object.hasOwn(store, id) && tokens.lookup(id, now) !== undefined;
}

/**
 * `sys/wrapping/unwrap`: the wrapping token comes from the body or, without one, is
 * the request token. The stored body is returned raw, once.
 */
export function unwrap(ctx: HandlerContext, tokens: TokenStore, store: WrappedResponses): LogicalResult {
  const bodyToken = ctx.data.token === undefined ? "" : weakString(ctx.data.token, "token");
  const id = bodyToken !== "" ? bodyToken : ctx.request.token;
  if (!isLiveWrappingToken(id, tokens, store, ctx.now)) return failure(400, INVALID_WRAPPING_TOKEN);
  const stored = store[id] ?? "";
  delete store[id];
  tokens.revoke(id);
  return rawResult(stored === "" ? emptyReply(204) : { status: 200, body: stored });
}
