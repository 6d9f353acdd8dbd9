import { spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { chmodSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { createServer, type Server, type Socket, connect } from "node:net";
import { networkInterfaces, release, tmpdir } from "node:os";
import { join } from "node:path";
import Fastify from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CallerAttestation, ProcCallerAttestor } from "../../sidecar/attest/index.js";
import { kernelHasPeerPidfd } from "../../sidecar/attest/peer-cred.js";
import { requestMeta, trackCaller } from "../../sidecar/http/index.js";
import { waitFor } from "../support/wait-for.js";
import { type Connector, connectFromChild, type Target } from "./connector.js";

/** Field 22 of /proc/<pid>/stat, counted from the last ")" (comm may hold spaces). */
function startTimeOf(pid: number): string {
  const text = readFileSync(`/proc/${pid}/stat`, "latin1");
  return text.slice(text.lastIndexOf(")") + 2).split(" ")[19] as string;
}

function listen(server: Server, where: { host: string; port: 0 } | { path: string }): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(where, () => resolve());
  });
}

function portOf(server: Server): number {
  const a = server.address();
  if (a === null || typeof a !== "object") throw new Error("not listening on TCP");
  return a.port;
}

/** The server's side of the next connection. */
function nextConnection(server: Server): Promise<Socket> {
  return new Promise((resolve) => server.once("connection", resolve));
}

function attested(a: CallerAttestation) {
  if (!a.attested) throw new Error(`not attested: ${a.reason}`);
  return a;
}

const linux = process.platform === "linux";
const dir = mkdtempSync(join(tmpdir(), "lh-attest-"));
const servers: Server[] = [];
const children: Connector[] = [];
let ownSha = "";

async function tcpServer(host: string): Promise<Server> {
  const s = createServer((sock) => sock.on("error", () => undefined));
  servers.push(s);
  await listen(s, { host, port: 0 });
  return s;
}

async function unixServer(name: string): Promise<{ server: Server; path: string }> {
  const path = join(dir, name);
  const s = createServer((sock) => sock.on("error", () => undefined));
  servers.push(s);
  await listen(s, { path });
  chmodSync(path, 0o777);
  return { server: s, path };
}

/** Starts a connector child and answers the attestation of its connection, as the server sees it. */
async function attestChild(server: Server, target: Target, attestor: ProcCallerAttestor, runAs?: string) {
  const accepted = nextConnection(server);
  const child = await connectFromChild(target, runAs);
  children.push(child);
  return { child, result: await attestor.attest(await accepted) };
}

beforeAll(() => {
  ownSha = createHash("sha256").update(readFileSync(process.execPath)).digest("hex");
  // Other users reach the sockets of this test's own directory.
  chmodSync(dir, 0o711);
});

afterAll(async () => {
  await Promise.all(children.map((c) => c.stop()));
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  rmSync(dir, { recursive: true, force: true });
});

describe.runIf(linux)("ProcCallerAttestor on Linux", () => {
  const attestor = new ProcCallerAttestor();

  it("attests a loopback TCP connection from this process to this process, sha of its executable included", async () => {
    const server = await tcpServer("127.0.0.1");
    const accepted = nextConnection(server);
    const client = connect(portOf(server), "127.0.0.1");
    const sock = await accepted;
    const a = attested(await attestor.attest(sock));
    expect(a).toMatchObject({
      transport: "tcp",
      pid: process.pid,
      uid: process.geteuid?.(),
      gid: process.getegid?.(),
      start_time: startTimeOf(process.pid),
      exe: process.execPath,
      exe_sha256: ownSha,
    });
    expect(a.cgroup).toBe(/^0::(.*)$/m.exec(readFileSync("/proc/self/cgroup", "utf8"))?.[1]);
    // Cached per connection: the same answer object, no new lookup.
    expect(await attestor.attest(sock)).toBe(await attestor.attest(sock));
    client.destroy();
  });

  it("attests a TCP connection from a child process to the child's pid", async () => {
    const server = await tcpServer("127.0.0.1");
    const { child, result } = await attestChild(
      server,
      { kind: "tcp", host: "127.0.0.1", port: portOf(server) },
      attestor,
    );
    const a = attested(result);
    expect(a.pid).toBe(child.pid);
    expect(a.pid).not.toBe(process.pid);
    expect(a.start_time).toBe(startTimeOf(child.pid));
    expect(a.exe_sha256).toBe(ownSha);
    await child.stop();
  });

  it("attests each of many connections one process opens at once to it, and a child's among them to the child", async () => {
    // Its own attestor: this process is the recent pid whose socket descriptors it remembers.
    const own = new ProcCallerAttestor();
    const server = await tcpServer("127.0.0.1");
    const accepted: Socket[] = [];
    server.on("connection", (s) => accepted.push(s));
    const clients: Socket[] = [];
    const openClients = async (n: number) => {
      const want = accepted.length + n;
      for (let i = 0; i < n; i++) clients.push(connect(portOf(server), "127.0.0.1"));
      await waitFor(`${n} more connections accepted`, () => accepted.length >= want);
      return accepted.slice(want - n);
    };
    try {
      const first = await openClients(8);
      for (const sock of first) expect(attested(await own.attest(sock)).pid).toBe(process.pid);
      // A child's connection is not this process's, whatever this process's descriptors say.
      const { child, result } = await attestChild(
        server,
        { kind: "tcp", host: "127.0.0.1", port: portOf(server) },
        own,
      );
      expect(attested(result).pid).toBe(child.pid);
      await child.stop();
      // Descriptors closed and handed out again to new connections.
      for (const c of clients.splice(0, 4)) c.destroy();
      const again = await openClients(4);
      for (const sock of again) expect(attested(await own.attest(sock)).pid).toBe(process.pid);
    } finally {
      for (const c of clients) c.destroy();
      for (const s of accepted) s.destroy();
    }
  });

  it("attests over IPv6 loopback, and an IPv4 client of a dual-stack listener (::ffff:127.0.0.1)", async () => {
    const v6 = await tcpServer("::1");
    const one = await attestChild(v6, { kind: "tcp", host: "::1", port: portOf(v6) }, attestor);
    expect(attested(one.result).pid).toBe(one.child.pid);
    await one.child.stop();

    const dual = await tcpServer("::");
    const accepted = nextConnection(dual);
    const child = await connectFromChild({ kind: "tcp", host: "127.0.0.1", port: portOf(dual) });
    children.push(child);
    const sock = await accepted;
    expect(sock.remoteAddress).toBe("::ffff:127.0.0.1");
    expect(attested(await attestor.attest(sock)).pid).toBe(child.pid);
    await child.stop();
  });

  it("finds the same peers through /proc/net/tcp and tcp6 when sock_diag is not used", async () => {
    const procOnly = new ProcCallerAttestor({ sockDiag: false });
    for (const [listenOn, connectTo] of [
      ["127.0.0.1", "127.0.0.1"],
      ["::1", "::1"],
      ["::", "127.0.0.1"],
    ] as const) {
      const server = await tcpServer(listenOn);
      const { child, result } = await attestChild(
        server,
        { kind: "tcp", host: connectTo, port: portOf(server) },
        procOnly,
      );
      expect(attested(result).pid, `${connectTo} to ${listenOn}`).toBe(child.pid);
      await child.stop();
    }
  });

  it("attests a Unix-socket connection from a child by SO_PEERCRED", async () => {
    const { server, path } = await unixServer("own.sock");
    const { child, result } = await attestChild(server, { kind: "unix", path }, attestor);
    expect(attested(result)).toMatchObject({
      transport: "unix",
      pid: child.pid,
      uid: process.geteuid?.(),
      start_time: startTimeOf(child.pid),
      exe_sha256: ownSha,
    });
    await child.stop();
  });

  it.skipIf(!kernelHasPeerPidfd(release()))(
    "a Unix-socket peer that exited before the first ask is unattested: its pid may name another process (SO_PEERPIDFD)",
    async () => {
      const { server, path } = await unixServer("gone.sock");
      const accepted = nextConnection(server);
      // The connecting process hands its socket to a `sleep` it starts, prints the sleep's pid
      // and exits: the connection stays open, held by a process that did not make it.
      const script = `const s = require("node:net").connect(process.argv[1]);
s.on("connect", () => {
  const h = require("node:child_process").spawn("sleep", ["600"], { stdio: ["ignore", "ignore", "ignore", s], detached: true });
  h.unref();
  process.stdout.write(String(h.pid));
  process.exit(0);
});`;
      const r = spawnSync(process.execPath, ["-e", script, path], { encoding: "utf8" });
      const holder = Number(r.stdout.trim());
      expect(holder, r.stderr).toBeGreaterThan(0);
      try {
        const sock = await accepted;
        const result = await attestor.attest(sock);
        expect(result).toMatchObject({ attested: false, transport: "unix" });
        expect((result as { reason: string }).reason).toContain("has exited");
      } finally {
        process.kill(holder, "SIGKILL");
      }
    },
  );

  it("answers unattested for a closed connection", async () => {
    const server = await tcpServer("127.0.0.1");
    const accepted = nextConnection(server);
    const client = connect(portOf(server), "127.0.0.1");
    const sock = await accepted;
    const closed = new Promise((r) => sock.once("close", r));
    client.destroy();
    sock.destroy();
    await closed;
    expect(await attestor.attest(sock)).toMatchObject({ attested: false, transport: "tcp" });
  });

  const external = Object.values(networkInterfaces())
    .flat()
    .find((i) => i && !i.internal && i.family === "IPv4")?.address;

  it.runIf(external)(
    "answers unattested for a peer that is not on loopback (this host's own other address)",
    async () => {
      const server = await tcpServer(external as string);
      const accepted = nextConnection(server);
      const client = connect(portOf(server), external as string);
      expect(await attestor.attest(await accepted)).toMatchObject({
        attested: false,
        transport: "tcp",
        reason: expect.stringContaining("not on loopback"),
      });
      client.destroy();
    },
  );

  it("answers unattested on a host that is not Linux", async () => {
    const server = await tcpServer("127.0.0.1");
    const accepted = nextConnection(server);
    const client = connect(portOf(server), "127.0.0.1");
    const a = await new ProcCallerAttestor({ platform: "darwin" }).attest(await accepted);
    expect(a).toMatchObject({ attested: false, transport: "tcp", reason: expect.stringContaining("Linux") });
    client.destroy();
  });
});

const root = process.geteuid?.() === 0;

describe.runIf(linux)("ProcCallerAttestor: a caller of another OS user", () => {
  const attestor = new ProcCallerAttestor();
  const user = `lh_attest_${randomBytes(4).toString("hex")}`;
  let uid = -1;

  beforeAll(() => {
    if (!root) return;
    const made = spawnSync("useradd", ["--system", "--no-create-home", user], { encoding: "utf8" });
    if (made.status !== 0) throw new Error(`useradd ${user}: ${made.stderr}`);
    uid = Number(spawnSync("id", ["-u", user], { encoding: "utf8" }).stdout.trim());
  });

  afterAll(async () => {
    if (!root) return;
    await Promise.all(children.map((c) => c.stop()));
    spawnSync("userdel", [user]);
  });

  it.skipIf(!root)(
    "gives the other user's uid over TCP and over the Unix socket (needs root: useradd, runuser)",
    async () => {
      expect(uid).toBeGreaterThan(0);
      const server = await tcpServer("127.0.0.1");
      const tcp = await attestChild(
        server,
        { kind: "tcp", host: "127.0.0.1", port: portOf(server) },
        attestor,
        user,
      );
      expect(attested(tcp.result)).toMatchObject({ uid, transport: "tcp", pid: tcp.child.pid });
      await tcp.child.stop();

      const { server: us, path } = await unixServer("other.sock");
      const unix = await attestChild(us, { kind: "unix", path }, attestor, user);
      expect(attested(unix.result)).toMatchObject({ uid, transport: "unix", pid: unix.child.pid });
      await unix.child.stop();
    },
  );

  it.runIf(!root)("is skipped: creating an OS user needs root", () => {
    process.stderr.write("attest.test.ts: not root, the other-user attestation test is skipped\n");
  });
});

describe("RequestMeta.caller on the HTTP API", () => {
  it("is unattested with transport inject for fastify inject(), and attested over a real connection", async () => {
    const attestor = new ProcCallerAttestor();
    const app = Fastify();
    app.addHook("onRequest", async (req) => trackCaller(req, attestor));
    app.get("/who", async (req) => (await requestMeta(req).caller?.()) ?? null);
    try {
      const injected = await app.inject({ method: "GET", url: "/who" });
      expect(injected.json()).toMatchObject({ attested: false, transport: "inject" });
      if (!linux) return;
      const address = await app.listen({ host: "127.0.0.1", port: 0 });
      const res = await fetch(`${address}/who`);
      expect(await res.json()).toMatchObject({ attested: true, transport: "tcp", pid: process.pid });
    } finally {
      await app.close();
    }
  });

  it.runIf(linux)("is attested over the sidecar's Unix socket, per connection", async () => {
    const attestor = new ProcCallerAttestor();
    const app = Fastify();
    app.addHook("onRequest", async (req) => trackCaller(req, attestor));
    app.get("/who", async (req) => (await requestMeta(req).caller?.()) ?? null);
    const socketPath = join(dir, "http.sock");
    try {
      await app.listen({ path: socketPath });
      const body = await new Promise<string>((resolve, reject) => {
        const req = httpRequest({ socketPath, path: "/who", headers: { host: "localhost" } }, (res) => {
          let text = "";
          res.on("data", (c) => {
            text += String(c);
          });
          res.on("end", () => resolve(text));
        });
        req.on("error", reject);
        req.end();
      });
      expect(JSON.parse(body)).toMatchObject({
        attested: true,
        transport: "unix",
        pid: process.pid,
        uid: process.geteuid?.(),
      });
    } finally {
      await app.close();
    }
  });
});
