import { describe, expect, it } from "vitest";
import { CancelKeys } from "../../sidecar/proxy/postgres/cancel-keys.js";
import { FrameTap, type TappedMessage } from "../../sidecar/proxy/postgres/frame-tap.js";
import { ScramClient } from "../../sidecar/proxy/postgres/scram-client.js";
import { statementText } from "../../sidecar/proxy/postgres/statement-audit.js";
import {
  encodeCommand,
  parseCommand,
  RespProtocolError,
  respValueEnd,
} from "../../sidecar/proxy/redis/resp.js";

function pgMsg(type: string, body: string): Buffer {
  const b = Buffer.from(body, "utf8");
  const head = Buffer.alloc(5);
  head.write(type, 0, "latin1");
  head.writeInt32BE(4 + b.length, 1);
  return Buffer.concat([head, b]);
}

describe("SCRAM-SHA-256 client", () => {
  it("produces RFC 7677's client-final-message and accepts its server signature", async () => {
    const c = new ScramClient("pencil", { nonce: "rOprNGfwEbeRWgbNEkqO", user: "user" });
    expect(c.first()).toBe("n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
    const serverFirst =
      "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
    expect(await c.final(serverFirst)).toBe(
      "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
    );
    expect(c.verify("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")).toBe(true);
    expect(c.verify("v=AAAATRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")).toBe(false);
  });

  it("refuses a server nonce that does not extend the client's", async () => {
    const c = new ScramClient("pencil", { nonce: "abc" });
    await expect(c.final("r=xyzdef,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")).rejects.toThrow(/nonce/);
  });
});

describe("FrameTap", () => {
  it("finds message boundaries and captures Query/Parse across any chunking", () => {
    const stream = Buffer.concat([
      pgMsg("Q", "select 1\0"),
      pgMsg("d", "copy data row\n"),
      pgMsg("P", "s1\0select $1::int\0\0\0"),
      pgMsg("S", ""),
    ]);
    for (const size of [1, 2, 3, 5, 7, 64, stream.length]) {
      const got: TappedMessage[] = [];
      const tap = new FrameTap(new Set([0x51, 0x50]), (m) => got.push(m));
      const boundaries: number[] = [];
      for (let i = 0; i < stream.length; i += size) {
        tap.push(stream.subarray(i, i + size));
        if (tap.atBoundary) boundaries.push(Math.min(i + size, stream.length));
      }
      expect(got.map(statementText)).toEqual(["select 1", "select $1::int"]);
      expect(tap.atBoundary).toBe(true);
      if (size === 1) expect(boundaries).toContain(pgMsg("Q", "select 1\0").length);
    }
  });

  it("says where the message in progress ends in the next chunk, however the stream was cut", () => {
    const msgs = [pgMsg("D", "row one"), pgMsg("D", "x".repeat(300)), pgMsg("C", "SELECT 2\0")];
    const stream = Buffer.concat(msgs);
    const ends: number[] = [];
    for (const m of msgs) ends.push((ends.at(-1) ?? 0) + m.length);
    for (const size of [1, 2, 3, 4, 5, 6, 9, 64, 200]) {
      const tap = new FrameTap();
      for (let i = 0; i < stream.length; i += size) {
        const chunk = stream.subarray(i, i + size);
        const end = tap.endOfCurrent(chunk);
        // The first message end after the chunk's start, when it is inside the chunk.
        const next = tap.atBoundary ? i : (ends.find((e) => e > i) ?? -1);
        const expected = next - i <= chunk.length ? next - i : -1;
        expect(end, `size ${size} at ${i}`).toBe(expected);
        tap.push(chunk);
      }
    }
  });

  it("is not at a boundary inside a message, and truncates long captures", () => {
    const tap = new FrameTap(new Set([0x51]), () => undefined);
    const msg = pgMsg("Q", `${"x".repeat(100)}\0`);
    tap.push(msg.subarray(0, 10));
    expect(tap.atBoundary).toBe(false);
    const got: TappedMessage[] = [];
    const small = new FrameTap(new Set([0x51]), (m) => got.push(m), 10);
    small.push(msg);
    expect(got[0]?.truncated).toBe(true);
    expect(got[0]?.body.length).toBe(10);
  });
});

describe("RESP", () => {
  it("parses array and inline commands, and waits for incomplete ones", () => {
    const cmd = encodeCommand(["AUTH", "lse_x", "tok en"]);
    expect(parseCommand(cmd, 1024)?.args.map(String)).toEqual(["AUTH", "lse_x", "tok en"]);
    expect(parseCommand(cmd.subarray(0, cmd.length - 1), 1024)).toBeNull();
    expect(parseCommand(Buffer.from("PING  x\r\n"), 1024)?.args.map(String)).toEqual(["PING", "x"]);
    expect(parseCommand(Buffer.from("PING"), 1024)).toBeNull();
  });

  it("refuses malformed and oversized commands", () => {
    expect(() => parseCommand(Buffer.from("*abc\r\n"), 1024)).toThrow(RespProtocolError);
    expect(() => parseCommand(Buffer.from("*1\r\n+x\r\n"), 1024)).toThrow(RespProtocolError);
    expect(() => parseCommand(Buffer.from("*1\r\n$2000\r\n"), 1024)).toThrow(/invalid bulk length/);
  });

  it("finds the end of RESP2 and RESP3 replies", () => {
    const hello = Buffer.from("%2\r\n$6\r\nserver\r\n$5\r\nredis\r\n$5\r\nproto\r\n:3\r\n+PONG\r\n");
    expect(respValueEnd(hello, 0)).toBe(hello.length - 7);
    expect(respValueEnd(hello.subarray(0, 20), 0)).toBe(-1);
    expect(respValueEnd(Buffer.from("$-1\r\n"), 0)).toBe(5);
    expect(respValueEnd(Buffer.from("|1\r\n+a\r\n:1\r\n+OK\r\n"), 0)).toBe(17);
    expect(() => respValueEnd(Buffer.from("?x\r\n"), 0)).toThrow(RespProtocolError);
  });
});

describe("CancelKeys", () => {
  const target = { host: "127.0.0.1", port: 5432, database: "postgres" };
  it("hands out the backend's pid with a secret of its own, routed by (pid, secret) and resource", () => {
    const keys = new CancelKeys();
    const backend = { pid: 4242, secret: 17, target };
    const a = keys.issue(backend, "db-a");
    const b = keys.issue(backend, "db-a");
    expect(a.pid).toBe(4242);
    expect(b.pid).toBe(4242);
    expect(a.secret).not.toBe(b.secret);
    expect(keys.lookup(a.pid, a.secret, "db-a")).toBe(backend);
    expect(keys.lookup(a.pid, a.secret ^ 1, "db-a")).toBeUndefined();
    expect(keys.lookup(a.pid, 17, "db-a")).toBeUndefined();
    expect(keys.lookup(a.pid, a.secret, "db-b")).toBeUndefined();
    keys.revoke(a.pid, a.secret);
    expect(keys.lookup(a.pid, a.secret, "db-a")).toBeUndefined();
    expect(keys.lookup(b.pid, b.secret, "db-a")).toBe(backend);
  });
});
