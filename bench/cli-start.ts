/**
 * CLI start time: wall time of whole `leasehold` runs, as a shell or an agent pays it, against
 * `node -e 0` (the floor: starting Node itself). Runs the built CLI (`npm run build` first).
 *
 *   --help          the program and every command's registration, nothing else
 *   agent assert    an identity JWT from a key file (what a shell agent runs before each request)
 *   leases list     a client command: LEASEHOLD_ADDR + LEASEHOLD_ADMIN_TOKEN_FILE, one GET to a
 *                   local HTTP server that answers `{"leases":[]}` (the request costs well under
 *                   a millisecond; the run is the CLI's start)
 *
 * Each round runs every command once, in turn, so load on the machine hits all alike; the
 * figure is the median of the rounds. Goal: each command under 300 ms.
 *
 * `npx tsx bench/cli-start.ts [--quick]`
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { percentile, printTable, quick, type Row, writeResults } from "./stats.js";

const RUNS = quick ? 5 : 20;
const CLI = resolve("dist/cli/leasehold.mjs"); // the bin (scripts/bundle.mjs)

/** Wall time of one run of `node ARGS`, milliseconds; the run must succeed. */
function timeRun(args: readonly string[], env: NodeJS.ProcessEnv, cwd: string): Promise<number> {
  return new Promise((done, fail) => {
    const t = process.hrtime.bigint();
    const child = spawn(process.execPath, args, { env, cwd, stdio: ["ignore", "ignore", "pipe"] });
    let err = "";
    child.stderr.on("data", (d: Buffer) => {
      err += d.toString();
    });
    child.once("exit", (code) => {
      const ms = Number(process.hrtime.bigint() - t) / 1e6;
      if (code === 0) done(ms);
      else fail(new Error(`node ${args.join(" ")} exited ${code}: ${err.slice(0, 400)}`));
    });
  });
}

const median = (xs: readonly number[]): number =>
  percentile(
    [...xs].sort((a, b) => a - b),
    50,
  );

async function main(): Promise<void> {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run 'npm run build' first`);
  const dir = await mkdtemp(join(tmpdir(), "lh-bench-cli-"));
  const server = createServer((_req, res) => {
    res.setHeader("content-type", "application/json");
    res.end('{"leases":[]}');
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  try {
    const keygen = spawnSync(
      process.execPath,
      [CLI, "--json", "agent", "keygen", "--id", "spiffe://example.org/agent/bench", "--out", dir],
      { encoding: "utf8" },
    );
    if (keygen.status !== 0) throw new Error(`agent keygen failed: ${keygen.stderr}`);
    const { keyFile } = JSON.parse(keygen.stdout) as { keyFile: string };
    const tokenFile = join(dir, "admin.token");
    await writeFile(tokenFile, "bench-admin-token-0123456789abcdef\n", { mode: 0o600 });
    const { port } = server.address() as AddressInfo;
    // No leasehold.yaml in the working directory, none named: what the environment says only.
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      LEASEHOLD_ADDR: `http://127.0.0.1:${port}`,
      LEASEHOLD_ADMIN_TOKEN_FILE: tokenFile,
    };
    const commands: Array<{ figure: string; args: string[] }> = [
      { figure: "node -e 0 (floor)", args: ["-e", "0"] },
      { figure: "leasehold --help", args: [CLI, "--help"] },
      { figure: "leasehold agent assert", args: [CLI, "agent", "assert", "--key", keyFile] },
      { figure: "leasehold leases list", args: [CLI, "leases", "list"] },
    ];
    const samples = commands.map(() => [] as number[]);
    for (const [i, c] of commands.entries()) samples[i]?.push(await timeRun(c.args, env, dir));
    for (const s of samples) s.length = 0; // the first round warmed the file cache only
    for (let round = 0; round < RUNS; round++) {
      for (const [i, c] of commands.entries()) samples[i]?.push(await timeRun(c.args, env, dir));
    }
    const floor = median(samples[0] ?? []);
    const rows: Row[] = commands.slice(1).map((c, i) => ({
      figure: c.figure,
      product: median(samples[i + 1] ?? []),
      floor,
      unit: "ms (median)",
      better: "lower",
      goal: "< 300 ms",
    }));
    printTable(`CLI start, median of ${RUNS} runs each (floor: node -e 0)`, rows);
    const over = rows.filter((r) => r.product >= 300);
    process.stdout.write(
      over.length === 0
        ? "every command under 300 ms\n"
        : `over 300 ms: ${over.map((r) => r.figure).join(", ")}\n`,
    );
    const file = writeResults(quick ? "cli-start-quick" : "cli-start", { runs: RUNS, rows });
    process.stdout.write(`results: ${file}\n`);
  } finally {
    await new Promise<void>((r) => server.close(() => r()));
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
