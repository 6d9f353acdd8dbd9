import { createServer, type Socket } from "node:net";

/** Runs `fn` with the port of a TCP server on 127.0.0.1 that accepts connections and never answers. */
export async function withSilentServer(fn: (port: number) => Promise<void>): Promise<void> {
  const sockets = new Set<Socket>();
  const silent = createServer((s) => sockets.add(s));
  await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
  const address = silent.address();
  const port = typeof address === "object" && address !== null ? address.port : 0;
  try {
    await fn(port);
  } finally {
    for (const s of sockets) s.destroy();
    await new Promise((resolve) => silent.close(resolve));
  }
}
