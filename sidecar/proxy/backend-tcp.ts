import { type Socket, connect as tcpConnect } from "node:net";

/**
 * A TCP connection from a listener to its database server: no Nagle, keep-alive probes, destroyed
 * when `signal` aborts. A connect error is turned into the protocol's own refusal by `refusal`,
 * given the cause (the errno code or message).
 */
export function connectBackendTcp(
  target: { readonly host: string; readonly port: number },
  signal: AbortSignal,
  refusal: (cause: string) => Error,
): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = tcpConnect({ host: target.host, port: target.port });
    const onAbort = () => s.destroy(new Error("aborted"));
    signal.addEventListener("abort", onAbort, { once: true });
    s.once("connect", () => {
      signal.removeEventListener("abort", onAbort);
      s.setNoDelay(true);
      s.setKeepAlive(true, 30_000);
      resolve(s);
    });
    s.once("error", (err: NodeJS.ErrnoException) => {
      signal.removeEventListener("abort", onAbort);
      reject(refusal(`connect: ${err.code ?? err.message}`));
    });
  });
}
