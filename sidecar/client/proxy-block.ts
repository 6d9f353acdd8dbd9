/** The `proxy` block of a checkout's (or a redeemed approval's) answer, when it is one. */
export function proxyOf(v: unknown): { proxy?: { host: string; port: number; username: string } } {
  const p = v as { host?: unknown; port?: unknown; username?: unknown } | undefined;
  if (typeof p?.host !== "string" || typeof p.port !== "number" || typeof p.username !== "string") return {};
  return { proxy: { host: p.host, port: p.port, username: p.username } };
}
