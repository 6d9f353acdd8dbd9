import { connect, type Socket } from "node:net";

/** Opens a raw TCP connection to a local listener. */
export function rawConnect(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: "127.0.0.1", port });
    s.once("connect", () => resolve(s));
    s.once("error", reject);
  });
}

/** Everything the peer sends until it closes the connection. */
export function readUntilClose(s: Socket): Promise<Buffer> {
  return new Promise((resolve) => {
    const parts: Buffer[] = [];
    s.on("data", (c: Buffer) => parts.push(c));
    s.on("error", () => undefined);
    s.once("close", () => resolve(Buffer.concat(parts)));
  });
}

/** Resolves with the buffered bytes once `enough` says they suffice. */
export function readUntil(s: Socket, enough: (b: Buffer) => boolean): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const onData = (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      if (enough(buf)) {
        s.off("data", onData);
        resolve(buf);
      }
    };
    s.on("data", onData);
    s.once("close", () => reject(new Error(`closed after ${buf.length} bytes`)));
  });
}

/** A protocol 3.0 StartupMessage. */
export function pgStartup(params: Record<string, string>): Buffer {
  const body = Buffer.concat([
    ...Object.entries(params).map(([k, v]) => Buffer.from(`${k}\0${v}\0`)),
    Buffer.from([0]),
  ]);
  const head = Buffer.alloc(8);
  head.writeInt32BE(8 + body.length, 0);
  head.writeInt32BE(3 << 16, 4);
  return Buffer.concat([head, body]);
}

/** The typed PostgreSQL messages in `buf`: type letter and body. */
export function pgMessages(buf: Buffer): Array<{ type: string; body: Buffer }> {
  const out: Array<{ type: string; body: Buffer }> = [];
  let at = 0;
  while (at + 5 <= buf.length) {
    const len = buf.readInt32BE(at + 1);
    out.push({ type: String.fromCharCode(buf[at] as number), body: buf.subarray(at + 5, at + 1 + len) });
    at += 1 + len;
  }
  return out;
}

/** The fields (C, M, S…) of the first ErrorResponse in `buf`, or undefined. */
export function pgError(buf: Buffer): Record<string, string> | undefined {
  const e = pgMessages(buf).find((m) => m.type === "E");
  if (!e) return undefined;
  const out: Record<string, string> = {};
  for (const f of e.body.toString("utf8").split("\0")) if (f.length > 1) out[f[0] as string] = f.slice(1);
  return out;
}
