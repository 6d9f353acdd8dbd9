import { connect } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CommandFramer } from "../../sidecar/proxy/redis/command-framer.js";
import { type CommandTable, classifyRedis, primaryKind } from "../../sidecar/proxy/redis/command-table.js";
import { ReplyRewriter } from "../../sidecar/proxy/redis/reply-rewriter.js";
import { encodeCommand, RespProtocolError, respValueEnd } from "../../sidecar/proxy/redis/resp.js";
import { tableOfReply } from "../../sidecar/proxy/redis/session-guard.js";
import { type PrivateRedis, startPrivateRedis } from "./redis-server.js";

let server: PrivateRedis;
let table: CommandTable;
let table3: CommandTable;

/** The server's reply to `login` then COMMAND, in the protocol the login picks. */
async function commandReply(login: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: "127.0.0.1", port: server.port });
    let got = Buffer.alloc(0);
    s.on("error", reject);
    s.on("data", (c: Buffer) => {
      got = Buffer.concat([got, c]);
      const first = respValueEnd(got, 0);
      if (first < 0) return;
      const second = respValueEnd(got, first);
      if (second < 0) return;
      s.destroy();
      resolve(got.subarray(first, second));
    });
    s.write(Buffer.concat([login, encodeCommand(["COMMAND"])]));
  });
}

beforeAll(async () => {
  server = await startPrivateRedis(["rc_user on >pw-rc-1234 ~* &* +@all"]);
  table = tableOfReply(await commandReply(encodeCommand(["AUTH", "rc_user", "pw-rc-1234"])));
  table3 = tableOfReply(await commandReply(encodeCommand(["HELLO", "3", "AUTH", "rc_user", "pw-rc-1234"])));
}, 60_000);

afterAll(async () => {
  await server?.stop();
});

const classify = (t: CommandTable, ...args: string[]) =>
  classifyRedis(
    t,
    args.map((a) => Buffer.from(a)),
  );

describe("the Redis command table (the server's COMMAND)", () => {
  it("gives the primary ACL category, the name and the keys, in RESP2 and RESP3 alike", () => {
    for (const t of [table, table3]) {
      expect(classify(t, "GET", "k")).toEqual({ ok: true, kind: "read", command: "get", keys: ["k"] });
      expect(classify(t, "set", "k", "v")).toMatchObject({ kind: "write", keys: ["k"] });
      expect(classify(t, "MSET", "a", "1", "b", "2")).toMatchObject({ kind: "write", keys: ["a", "b"] });
      expect(classify(t, "FLUSHALL")).toMatchObject({ kind: "dangerous", keys: [] });
      expect(classify(t, "KEYS", "*")).toMatchObject({ kind: "dangerous" });
      expect(classify(t, "CONFIG", "set", "x", "y")).toMatchObject({ kind: "admin", command: "config|set" });
      expect(classify(t, "EVAL", "s", "2", "k1", "k2", "argv")).toMatchObject({
        kind: "scripting",
        keys: ["k1", "k2"],
      });
      expect(classify(t, "ZUNIONSTORE", "d", "2", "a", "b", "WEIGHTS", "1", "2")).toMatchObject({
        keys: ["d", "a", "b"],
      });
      expect(classify(t, "XREAD", "COUNT", "2", "streams", "s1", "s2", "0", "0")).toMatchObject({
        kind: "read",
        keys: ["s1", "s2"],
      });
      expect(classify(t, "MULTI")).toMatchObject({ kind: "transaction" });
      expect(classify(t, "PUBLISH", "ch", "m")).toMatchObject({ kind: "pubsub", keys: [] });
      expect(classify(t, "PING")).toMatchObject({ kind: "connection" });
    }
  });

  it("cannot judge what the server's own specs cannot tell: unknown, bad numkeys, non-UTF-8 keys", () => {
    expect(classify(table, "NOSUCH")).toEqual({ ok: false, error: "unknown command" });
    expect(classify(table, "CONFIG", "nosuch")).toEqual({ ok: false, error: "unknown subcommand" });
    expect(classify(table, "EVAL", "s", "x", "k")).toMatchObject({ ok: false });
    expect(classifyRedis(table, [Buffer.from("GET"), Buffer.from([0x61, 0xff])])).toMatchObject({
      ok: false,
    });
    // A command failing the arity check is never run: no keys to read.
    expect(classify(table, "GET")).toMatchObject({ ok: true, kind: "read", keys: [] });
  });

  it("ranks categories admin, dangerous, scripting, write, read, … other", () => {
    expect(primaryKind(["keyspace", "read", "slow", "dangerous"])).toBe("dangerous");
    expect(primaryKind(["write", "slow", "scripting"])).toBe("scripting");
    expect(primaryKind(["slow"])).toBe("other");
  });
});

describe("CommandFramer", () => {
  it("gives the same commands whatever the chunking", () => {
    const stream = Buffer.concat([
      encodeCommand(["SET", "k", "v\r\nwith crlf"]),
      Buffer.from("PING\r\n\r\nGET  k\n"),
      Buffer.from("*0\r\n"),
      encodeCommand(["MGET", "a", "", "c"]),
    ]);
    const want = [["SET", "k", "v\r\nwith crlf"], ["PING"], ["GET", "k"], ["MGET", "a", "", "c"]];
    for (let size = 1; size <= stream.length; size++) {
      const f = new CommandFramer(1024);
      const got: string[][] = [];
      for (let i = 0; i < stream.length; i += size)
        for (const c of f.push(stream.subarray(i, i + size))) got.push(c.map((a) => a.toString()));
      expect(got).toEqual(want);
    }
  });

  it("only counts, keeping nothing and capping nothing, with keep false", () => {
    const f = new CommandFramer(0, false);
    const big = encodeCommand(["SET", "k", "v".repeat(5000)]);
    const counts = [big.subarray(0, 100), big.subarray(100), Buffer.from("PING\r\nPING\r\n")].map(
      (c) => f.push(c).length,
    );
    expect(counts).toEqual([0, 1, 2]);
  });

  it("refuses a command over the cap before buffering it, and what is not RESP", () => {
    expect(() => new CommandFramer(1024).push(Buffer.from("*2\r\n$3\r\nGET\r\n$5000\r\n"))).toThrow(
      RespProtocolError,
    );
    expect(() => new CommandFramer(1024).push(Buffer.from("*1\r\n:3\r\n"))).toThrow(/expected '\$'/);
  });
});

describe("ReplyRewriter", () => {
  it("replaces only top-level errors it recognises, whatever the chunking", () => {
    const stream = Buffer.from(
      "+OK\r\n$11\r\n-ERR marker\r\n*2\r\n-ERR marker\r\n:1\r\n-ERR marker\r\n%1\r\n+k\r\n-ERR other\r\n-ERR other\r\n",
    );
    const want =
      "+OK\r\n$11\r\n-ERR marker\r\n*2\r\n-ERR marker\r\n:1\r\n-NOPERM x\r\n%1\r\n+k\r\n-ERR other\r\n-ERR other\r\n";
    for (let size = 1; size <= stream.length; size++) {
      const r = new ReplyRewriter((line) =>
        line === "ERR marker" ? Buffer.from("-NOPERM x\r\n") : undefined,
      );
      const out: Buffer[] = [];
      for (let i = 0; i < stream.length; i += size) out.push(...r.push(stream.subarray(i, i + size)));
      expect(Buffer.concat(out).toString()).toBe(want);
    }
  });
});
