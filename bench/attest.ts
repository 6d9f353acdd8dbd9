/**
 * Cost of attesting the caller of a new connection (issue 22), server side, against a floor:
 *
 *   tcp, known process     attest() of a new loopback TCP connection from a process that
 *                          connected before (its pid is tried first)   vs one sock_diag lookup
 *   tcp, new process       the first connection of a freshly started bash (the /proc scan)
 *                                                                      vs one sock_diag lookup
 *   unix                   attest() of a new Unix-socket connection    vs one getsockopt(SO_PEERCRED)
 *   kept-alive request     attest() again on a connection already attested vs an awaited resolved promise
 *
 * The floors are the one kernel query no attestor can skip for that transport: finding the
 * peer's socket by its four-tuple (sock_diag, a hash lookup), or reading the Unix socket's peer
 * credentials. Everything above it is the walk to the pid and the reads of /proc/<pid>. One
 * read of /proc/net/tcp (what a lookup without netlink pays) is printed beside them. The
 * executable's digest is cached after the first connection of each binary; that first hash
 * (about 100 MB for node) is printed on its own.
 *
 * `npx tsx bench/attest.ts [--quick]`
 */
import { type ChildProcessByStdio, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable, Writable } from "node:stream";
import { ProcCallerAttestor } from "../sidecar/attest/index.js";
import { peerCred } from "../sidecar/attest/peer-cred.js";
import { diagLookup } from "../sidecar/attest/sock-diag.js";
import { type Latency, printTable, quick, type Row, summarize, writeResults } from "./stats.js";

const N = quick ? 200 : 2000;
const N_NEW_PROCESS = quick ? 10 : 50;

/** A child that opens one new connection to the target per line on stdin, closing the previous one. */
const DIALER = `
const net = require("node:net");
const [kind, a, b] = process.argv.slice(1);
let prev;
const dial = () => {
  prev?.destroy();
  prev = kind === "unix" ? net.connect(a) : net.connect(Number(b), a);
  prev.on("connect", () => process.stdout.write("c\\n"));
};
dial();
require("node:readline").createInterface({ input: process.stdin }).on("line", dial);
process.stdin.on("end", () => process.exit(0));
`;

function listen(server: Server, where: { host: string; port: 0 } | { path: string }): Promise<void> {
  return new Promise((resolve) => server.listen(where, () => resolve()));
}

function nextConnection(server: Server): Promise<Socket> {
  return new Promise((resolve) => server.once("connection", resolve));
}

function dialer(args: string[]): ChildProcessByStdio<Writable, Readable, null> {
  return spawn(process.execPath, ["-e", DIALER, ...args], { stdio: ["pipe", "pipe", "inherit"] });
}

function ms(t: bigint): number {
  return Number(process.hrtime.bigint() - t) / 1e6;
}

/** New connections from one long-lived child: per connection, the floor then attest(), both timed. */
async function perConnection(
  server: Server,
  args: string[],
  floor: (sock: Socket) => unknown,
  attestor: ProcCallerAttestor,
): Promise<{ product: Latency; floor: Latency; keptAlive: Latency; keptAliveFloor: Latency; cpu: Latency }> {
  const child = dialer(args);
  const p: number[] = [];
  const f: number[] = [];
  const k: number[] = [];
  const kf: number[] = [];
  const c: number[] = [];
  let first = nextConnection(server);
  for (let i = 0; i < N + 20; i++) {
    const sock = await first;
    sock.on("error", () => undefined);
    let t = process.hrtime.bigint();
    floor(sock);
    const floorMs = ms(t);
    t = process.hrtime.bigint();
    const cpu = process.cpuUsage();
    const a = await attestor.attest(sock);
    const productMs = ms(t);
    const cpuMs = cpuMsSince(cpu);
    if (!a.attested) throw new Error(`not attested: ${a.reason}`);
    t = process.hrtime.bigint();
    await Promise.resolve();
    const kfMs = ms(t);
    t = process.hrtime.bigint();
    await attestor.attest(sock);
    const kMs = ms(t);
    if (i >= 20) {
      c.push(cpuMs);
      p.push(productMs);
      f.push(floorMs);
      k.push(kMs);
      kf.push(kfMs);
    }
    first = nextConnection(server);
    child.stdin.write("\n");
  }
  child.stdin.end();
  return {
    product: summarize(p),
    floor: summarize(f),
    keptAlive: summarize(k),
    keptAliveFloor: summarize(kf),
    cpu: summarize(c),
  };
}

/** The one kernel query that finds a TCP peer's socket (its uid and inode, no pid). */
function diagFloor(sock: Socket): void {
  const peer = { address: sock.remoteAddress as string, port: sock.remotePort as number };
  if (!diagLookup(peer, { address: sock.localAddress as string, port: sock.localPort as number })) {
    throw new Error("sock_diag did not find the peer");
  }
}

/**
 * The first connection of a new process each time (its pid is not among those seen): a bash
 * that opens `/dev/tcp` and waits, a light process like the `psql` an agent starts.
 */
async function perNewProcess(server: Server, port: number, attestor: ProcCallerAttestor) {
  const p: number[] = [];
  const f: number[] = [];
  const c: number[] = [];
  for (let i = 0; i < N_NEW_PROCESS + 1; i++) {
    const accepted = nextConnection(server);
    const child = spawn("bash", ["-c", `exec 3<>/dev/tcp/127.0.0.1/${port}; read -r _`], {
      stdio: ["pipe", "ignore", "inherit"],
    });
    const sock = await accepted;
    sock.on("error", () => undefined);
    let t = process.hrtime.bigint();
    diagFloor(sock);
    const floorMs = ms(t);
    t = process.hrtime.bigint();
    const cpu = process.cpuUsage();
    const a = await attestor.attest(sock);
    const productMs = ms(t);
    const cpuMs = cpuMsSince(cpu);
    if (!a.attested || a.pid !== child.pid) throw new Error("attested the wrong process");
    // The first one hashes bash.
    if (i > 0) {
      c.push(cpuMs);
      p.push(productMs);
      f.push(floorMs);
    }
    const gone = new Promise((r) => child.once("exit", r));
    child.stdin.end("\n");
    await gone;
  }
  return { product: summarize(p), floor: summarize(f), cpu: summarize(c) };
}

/** CPU time this process spent since `start` (user + system), ms: less swayed by other processes than wall time. */
function cpuMsSince(start: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(start);
  return (d.user + d.system) / 1000;
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "lh-bench-attest-"));
  const tcp = createServer();
  const unix = createServer();
  try {
    await listen(tcp, { host: "127.0.0.1", port: 0 });
    const port = (tcp.address() as { port: number }).port;
    const path = join(dir, "bench.sock");
    await listen(unix, { path });
    const attestor = new ProcCallerAttestor();

    // The first connection of a binary pays for hashing it once.
    const warm = nextConnection(tcp);
    const w = dialer(["tcp", "127.0.0.1", String(port)]);
    const firstSock = await warm;
    const t = process.hrtime.bigint();
    await attestor.attest(firstSock);
    const coldHashMs = ms(t);
    w.stdin.end();

    const tcpRun = await perConnection(tcp, ["tcp", "127.0.0.1", String(port)], diagFloor, attestor);
    const procRead: number[] = [];
    for (let i = 0; i < N / 10; i++) {
      const t0 = process.hrtime.bigint();
      readFileSync("/proc/net/tcp", "latin1");
      procRead.push(ms(t0));
    }
    const procNetTcp = summarize(procRead);
    const fdOf = (s: Socket) => (s as unknown as { _handle: { fd: number } })._handle.fd;
    const unixRun = await perConnection(unix, ["unix", path], (s) => peerCred(fdOf(s)), attestor);
    const fresh = await perNewProcess(tcp, port, attestor);

    const rows: Row[] = [
      row("tcp, known process, p50", tcpRun.product.p50, tcpRun.floor.p50, "< 1 ms"),
      row("tcp, known process, p99", tcpRun.product.p99, tcpRun.floor.p99),
      row("tcp, first conn. of a new bash, p50", fresh.product.p50, fresh.floor.p50, "< 1 ms"),
      row("tcp, first conn. of a new bash, p99", fresh.product.p99, fresh.floor.p99),
      row("unix, p50", unixRun.product.p50, unixRun.floor.p50, "< 1 ms"),
      row("unix, p99", unixRun.product.p99, unixRun.floor.p99),
      row("kept-alive request (tcp), p50", tcpRun.keptAlive.p50, tcpRun.keptAliveFloor.p50, "~0"),
      row("kept-alive request (unix), p50", unixRun.keptAlive.p50, unixRun.keptAliveFloor.p50, "~0"),
    ];
    printTable(
      `Caller attestation per new connection (${N} connections each, ${N_NEW_PROCESS} new processes; floors: one sock_diag lookup, one getsockopt(SO_PEERCRED), an awaited resolved promise)`,
      rows,
    );
    process.stdout.write(
      `CPU time per attestation, p50: tcp known process ${tcpRun.cpu.p50.toFixed(3)} ms, tcp new bash ${fresh.cpu.p50.toFixed(3)} ms, unix ${unixRun.cpu.p50.toFixed(3)} ms\n`,
    );
    process.stdout.write(
      `one read of /proc/net/tcp (the lookup without netlink): p50 ${procNetTcp.p50.toFixed(3)} ms, p99 ${procNetTcp.p99.toFixed(3)} ms\n`,
    );
    process.stdout.write(
      `first connection of a binary (hashes ${process.execPath}): ${coldHashMs.toFixed(0)} ms\n`,
    );
    process.stdout.write(
      `results: ${writeResults(quick ? "attest-quick" : "attest", { quick, coldHashMs, procNetTcp, tcp: tcpRun, unix: unixRun, newProcess: fresh })}\n`,
    );
  } finally {
    await new Promise((r) => tcp.close(r));
    await new Promise((r) => unix.close(r));
    await rm(dir, { recursive: true, force: true });
  }
}

function row(figure: string, product: number, floor: number, goal?: string): Row {
  return { figure, product, floor, unit: "ms", better: "lower", goal };
}

void main();
