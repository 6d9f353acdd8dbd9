import type { RawRequest } from "./request.js";

/**
 * Rebuilds a request from the bytes llhttp refused (VAULT-API.md §8.1): Node's HTTP
 * parser knows no `LIST` verb (nor other custom ones), so such requests only reach
 * `clientError`. Returns `undefined` when the bytes are not a complete request head.
 */
export function parseRawPacket(packet: Buffer): RawRequest | undefined {
  // latin1 maps bytes 1:1 to characters, so string offsets are byte offsets.
  const text = packet.toString("latin1");
  const headEnd = text.indexOf("\r\n\r\n");
  if (headEnd === -1) return undefined;
  const [requestLine = "", ...headerLines] = text.slice(0, headEnd).split("\r\n");
  const [method, url, version, ...rest] = requestLine.split(" ");
  if (!method || !url || !version?.startsWith("HTTP/1.") || rest.length > 0) return undefined;
  if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(method)) return undefined;
  const headers: Record<string, string> = {};
  for (const line of headerLines) {
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
  }
  const length = Number.parseInt(headers["content-length"] ?? "0", 10);
  const bodyStart = headEnd + 4;
  const body = packet.subarray(bodyStart, bodyStart + (Number.isFinite(length) && length > 0 ? length : 0));
  return { method, url, headers, body };
}
