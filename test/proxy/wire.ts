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

/**
 * Logs in on a raw connection that has sent its startup message, by SCRAM-SHA-256 with `password`
 * (the listener's way), and resolves with what came after the SASL exchange once `done` holds.
 */
export async function scramLogin(s: Socket, password: string, done: (b: Buffer) => boolean): Promise<Buffer> {
  const { ScramClient } = await import("../../sidecar/proxy/postgres/scram-client.js");
  const scram = new ScramClient(password);
  const frame = (body: Buffer) => {
    const head = Buffer.alloc(5);
    head[0] = 0x70;
    head.writeInt32BE(4 + body.length, 1);
    return Buffer.concat([head, body]);
  };
  const authOf = (code: number) => (b: Buffer) =>
    pgMessages(b).some((m) => m.type === "R" && m.body.readInt32BE(0) === code);
  await readUntil(s, authOf(10));
  const first = Buffer.from(scram.first());
  const len = Buffer.alloc(4);
  len.writeInt32BE(first.length);
  const cont = readUntil(s, authOf(11));
  s.write(frame(Buffer.concat([Buffer.from("SCRAM-SHA-256\0"), len, first])));
  const serverFirst =
    pgMessages(await cont)
      .find((m) => m.type === "R")
      ?.body.subarray(4)
      .toString("utf8") ?? "";
  const rest = readUntil(s, done);
  s.write(frame(Buffer.from(await scram.final(serverFirst))));
  return rest;
}
