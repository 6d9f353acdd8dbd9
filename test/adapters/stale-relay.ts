import { connect, createServer, type Socket } from "node:net";

/** A TCP relay in front of a real server, that can make the connections through it die. */
export interface StaleRelay {
  readonly port: number;
  /** Connections accepted so far. */
  readonly accepted: number;
  /**
   * Makes every open connection die silently: nothing tells the client until it next sends,
   * and then the connection is reset instead of forwarded (a server restarted behind a
   * firewall, a NAT entry gone). New connections are forwarded as usual.
   */
  severOnNextSend(): void;
  /** Closes every open connection at once, both ways (the client sees it close). */
  cutAll(): void;
  close(): Promise<void>;
}

/** Starts a relay on 127.0.0.1 to `targetPort`. */
export async function startStaleRelay(targetPort: number, targetHost = "127.0.0.1"): Promise<StaleRelay> {
  const open = new Set<{ client: Socket; upstream: Socket; severed: boolean }>();
  let accepted = 0;
  const server = createServer((client) => {
    accepted++;
    const upstream = connect({ port: targetPort, host: targetHost });
    const pair = { client, upstream, severed: false };
    open.add(pair);
    const end = () => {
      client.destroy();
      upstream.destroy();
      open.delete(pair);
    };
    client.on("error", end).on("close", end);
    upstream.on("error", end).on("close", end);
    client.on("data", (chunk: Buffer) => {
      if (pair.severed) {
        client.resetAndDestroy();
        upstream.destroy();
        return;
      }
      upstream.write(chunk);
    });
    upstream.on("data", (chunk: Buffer) => {
      if (!pair.severed) client.write(chunk);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const addr = server.address();
  if (addr === null || typeof addr === "string") throw new Error("relay has no port");
  return {
    port: addr.port,
    get accepted() {
      return accepted;
    },
    severOnNextSend() {
      for (const pair of open) pair.severed = true;
    },
    cutAll() {
      for (const pair of open) {
        pair.client.destroy();
        pair.upstream.destroy();
      }
    },
    async close() {
      for (const pair of open) {
        pair.client.destroy();
        pair.upstream.destroy();
      }
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
