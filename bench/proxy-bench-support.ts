import { spawn } from "node:child_process";
import { readdir, readFile, writeFile } from "node:fs/promises";
import { Session } from "node:inspector/promises";
import { connect, createServer, type Server } from "node:net";

/** Runs a benchmark tool; rejects with its stderr when it exits non-zero. */
export function tool(file: string, args: readonly string[], env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, [...args], {
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/tmp", LANG: "C", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    child.stdout.on("data", (c: Buffer) => {
      out += c.toString();
    });
    child.stderr.on("data", (c: Buffer) => {
      err += c.toString();
    });
    child.once("close", (code) =>
      code === 0
        ? resolve(`${out}\n${err}`)
        : reject(new Error(`${file} exited ${code}: ${err.slice(-500)}`)),
    );
  });
}

/** The value at quantile `q` (0..1) of `xs`. */
export function quantile(xs: readonly number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] as number;
}

export function fmt(n: number, digits = 1): string {
  return n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

/** Starts two things at once; if either fails, the other is stopped before the error is thrown. */
export async function startBoth<A, B>(
  a: Promise<A>,
  b: Promise<B>,
  stop: { a: (x: A) => Promise<unknown>; b: (x: B) => Promise<unknown> },
): Promise<[A, B]> {
  const [ra, rb] = await Promise.allSettled([a, b]);
  if (ra.status === "fulfilled" && rb.status === "fulfilled") return [ra.value, rb.value];
  if (ra.status === "fulfilled") await stop.a(ra.value);
  if (rb.status === "fulfilled") await stop.b(rb.value);
  throw ra.status === "rejected" ? ra.reason : (rb as PromiseRejectedResult).reason;
}

const TICK_US = 10_000; // CLK_TCK is 100 on Linux

async function statTicks(
  pid: number | "self",
): Promise<{ own: number; children: number; ppid: number } | undefined> {
  try {
    const s = await readFile(`/proc/${pid}/stat`, "utf8");
    // Fields after the parenthesised command name: state(3) ppid(4) … utime(14) stime(15) cutime(16) cstime(17).
    const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
    const n = (i: number) => Number(f[i - 3]);
    return { own: n(14) + n(15), children: n(16) + n(17), ppid: n(4) };
  } catch {
    return undefined;
  }
}

/**
 * CPU time (µs) of a server process tree: the main process, its live children, and the
 * children that already exited (waited for by the main process).
 */
export async function treeCpuUs(mainPid: number): Promise<number> {
  const main = await statTicks(mainPid);
  if (!main) return 0;
  let ticks = main.own + main.children;
  for (const name of await readdir("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const st = await statTicks(Number(name));
    if (st?.ppid === mainPid) ticks += st.own;
  }
  return ticks * TICK_US;
}

/** CPU time (µs) of this process's children that have exited (e.g. pgbench after a run). */
export async function exitedChildrenCpuUs(): Promise<number> {
  return ((await statTicks("self"))?.children ?? 0) * TICK_US;
}

/** Busy and total CPU time of the whole machine (µs, all cores), from /proc/stat. */
export async function machineCpuUs(): Promise<{ busy: number; total: number }> {
  const line = (await readFile("/proc/stat", "utf8")).split("\n")[0] ?? "";
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const total = v.reduce((a, b) => a + b, 0);
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  return { busy: (total - idle) * TICK_US, total: total * TICK_US };
}

/** Where the CPU went during one run: the proxy (this process), the client tool, the server, the machine. */
export interface CpuSplit {
  readonly proxyUs: number;
  /** Of proxyUs, time in the kernel (socket reads and writes, epoll). */
  readonly proxySysUs: number;
  readonly toolUs: number;
  readonly serverUs: number;
  /** Busy time of the whole machine, all processes (including other users of it). */
  readonly machineBusyUs: number;
  readonly machineTotalUs: number;
}

/** Measures the CPU split of `fn` (which runs a client tool to completion). */
export async function measureCpu<T>(serverPid: number, fn: () => Promise<T>): Promise<[T, CpuSplit]> {
  const [p0, t0, s0, m0] = [
    process.cpuUsage(),
    await exitedChildrenCpuUs(),
    await treeCpuUs(serverPid),
    await machineCpuUs(),
  ];
  const out = await fn();
  const p = process.cpuUsage(p0);
  const [t1, s1, m1] = [await exitedChildrenCpuUs(), await treeCpuUs(serverPid), await machineCpuUs()];
  return [
    out,
    {
      proxyUs: p.user + p.system,
      proxySysUs: p.system,
      toolUs: t1 - t0,
      serverUs: s1 - s0,
      machineBusyUs: m1.busy - m0.busy,
      machineTotalUs: m1.total - m0.total,
    },
  ];
}

/** One line: CPU µs per unit of work for each party, and how busy the machine was. */
export function cpuLine(c: CpuSplit, units: number, proxied: boolean): string {
  const per = (us: number) => fmt(us / units, 1);
  const parts = [
    proxied
      ? `proxy ${per(c.proxyUs)} (kernel ${per(c.proxySysUs)})`
      : `bench process idle ${per(c.proxyUs)}`,
    `client tool ${per(c.toolUs)}`,
    `server ${per(c.serverUs)}`,
    `all processes ${per(c.machineBusyUs)}`,
  ];
  return `${parts.join(", ")} µs CPU per request; machine ${fmt((100 * c.machineBusyUs) / c.machineTotalUs, 0)} % busy`;
}

/**
 * `--profile FILE`: a V8 CPU profile of this process (the listener runs in it) during `fn`,
 * written as FILE (.cpuprofile; summarise with bench/proxy-profile-summary.ts).
 */
export async function profiled<T>(file: string | undefined, fn: () => Promise<T>): Promise<T> {
  if (!file) return fn();
  const session = new Session();
  session.connect();
  await session.post("Profiler.enable");
  await session.post("Profiler.setSamplingInterval", { interval: 100 });
  await session.post("Profiler.start");
  try {
    return await fn();
  } finally {
    const { profile } = await session.post("Profiler.stop");
    await writeFile(file, JSON.stringify(profile));
    session.disconnect();
    console.log(`  CPU profile of the proxied runs: ${file}`);
  }
}

/** The value of `--name VALUE`, or undefined. */
export function stringArg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

/** `--name N`: a positive number, else `fallback`. */
export function numberArg(name: string, fallback: number): number {
  const v = Number(stringArg(name) ?? fallback);
  return Number.isFinite(v) && v > 0 ? v : fallback;
}

/** `--quick`: shorter runs (npm run bench -- --quick). */
export const quick = process.argv.includes("--quick");

/**
 * The least any Node relay can do: `socket.pipe` both ways to 127.0.0.1:`backendPort`, no
 * handshake, no accounting. Runs in this process, next to the listener, for a fair comparison.
 */
export function bareNodeRelay(backendPort: number): Promise<{ server: Server; port: number }> {
  const server = createServer({ noDelay: true }, (c) => {
    const b = connect({ host: "127.0.0.1", port: backendPort, noDelay: true });
    c.pipe(b).pipe(c);
    const kill = () => {
      c.destroy();
      b.destroy();
    };
    c.on("error", kill).on("close", kill);
    b.on("error", kill).on("close", kill);
  });
  return new Promise((resolve) =>
    server.listen({ host: "127.0.0.1", port: 0 }, () => {
      const a = server.address();
      resolve({ server, port: typeof a === "object" && a ? a.port : 0 });
    }),
  );
}

/** The mean of the CPU splits of several runs. */
export function meanCpu(cs: readonly CpuSplit[]): CpuSplit {
  const avg = (f: (c: CpuSplit) => number) => cs.reduce((a, c) => a + f(c), 0) / cs.length;
  return {
    proxyUs: avg((c) => c.proxyUs),
    proxySysUs: avg((c) => c.proxySysUs),
    toolUs: avg((c) => c.toolUs),
    serverUs: avg((c) => c.serverUs),
    machineBusyUs: avg((c) => c.machineBusyUs),
    machineTotalUs: avg((c) => c.machineTotalUs),
  };
}
