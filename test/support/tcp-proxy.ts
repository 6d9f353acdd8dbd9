import { createServer, type Socket, connect } from "node:net";

export interface TcpProxy {
  readonly port: number;
  /** While on, new connections are closed at once and open ones are cut. */
  setDrop(on: boolean): void;
  close(): Promise<void>;
}

/** A TCP relay on 127.0.0.1 that a test can cut, to make a target unreachable on demand. */
export async function startTcpProxy(targetPort: number, targetHost = "127.0.0.1"): Promise<TcpProxy> {
  let drop = false;
  const open = new Set<Socket>();
  const server = createServer((client) => {
    if (drop) {
      client.destroy();
      return;
    }
    const upstream = connect({ port: targetPort, host: targetHost });
    open.add(client);
    open.add(upstream);
    const end = () => {
      client.destroy();
      upstream.destroy();
      open.delete(client);
      open.delete(upstream);
    };
    client.on("error", end).on("close", end);
    upstream.on("error", end).on("close", end);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const addr = server.address();
  if (addr === null || typeof addr === "string") throw new Error("proxy has no port");
  return {
    port: addr.port,
    setDrop: (on) => {
      drop = on;
      if (on) for (const s of open) s.destroy();
    },
    close: async () => {
      for (const s of open) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
