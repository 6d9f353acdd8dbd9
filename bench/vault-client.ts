/**
 * The Vault client's own CPU: node-vault on its default transport (axios, follow-redirects, the
 * configuration leasehold had before) against node-vault on leasehold's transport
 * (`sidecar/secrets/vault-transport.ts`), each doing a checkout's Vault work (a KV v2 read and a
 * check-and-set write). The Vault dev server runs in a process of its own, so this process's CPU
 * is the client's alone; blocks of the two alternate, so a busy machine weighs on both alike.
 *
 * `npx tsx bench/vault-client.ts [--quick]`
 */
import { randomBytes } from "node:crypto";
import { Agent as HttpAgent } from "node:http";
import { Agent as HttpsAgent } from "node:https";
import { loadavg } from "node:os";
import NodeVault from "node-vault";
import { vaultTransport } from "../sidecar/secrets/vault-transport.js";
import { freePort } from "../test/support/free-port.js";
import { cpuMs, startVaultDevProcess } from "./process-cpu.js";
import { printTable, quick, type Row, summarize, writeResults } from "./stats.js";

const BLOCK = quick ? 200 : 1000;
const ROUNDS = quick ? 5 : 10;

type Client = NodeVault.client;

/** A checkout's Vault work: read the account record, write it back with check-and-set. */
async function readAndCas(c: Client, path: string): Promise<void> {
  const got = await c.read(`secret/data/${path}`);
  const version = Number(got.data.metadata.version);
  await c.write(`secret/data/${path}`, { data: { ...got.data.data, n: version }, options: { cas: version } });
}

/** `n` sequential read+CAS pairs: this process's CPU per pair (µs) and the wall time of each (ms). */
async function block(c: Client, path: string, n: number): Promise<{ cpuUs: number; wall: number[] }> {
  const wall: number[] = [];
  const cpu = process.cpuUsage();
  for (let i = 0; i < n; i++) {
    const t = process.hrtime.bigint();
    await readAndCas(c, path);
    wall.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  const used = process.cpuUsage(cpu);
  return { cpuUs: (used.user + used.system) / n, wall };
}

async function main(): Promise<void> {
  const vault = await startVaultDevProcess(await freePort(), `bench-${randomBytes(6).toString("hex")}`);
  try {
    const agents = () => ({
      httpAgent: new HttpAgent({ keepAlive: true }),
      httpsAgent: new HttpsAgent({ keepAlive: true }),
    });
    const base = { endpoint: vault.address, token: vault.rootToken, noCustomHTTPVerbs: true };
    const axiosAgents = agents();
    const ownAgents = agents();
    const clients: Record<string, Client> = {
      "node-vault + axios": NodeVault({ ...base, requestOptions: { timeout: 5000, ...axiosAgents } }),
      "node-vault + leasehold transport": NodeVault({
        ...base,
        requestOptions: { timeout: 5000 },
        "request-promise": vaultTransport(ownAgents),
      }),
    };
    const paths: Record<string, string> = {};
    for (const name of Object.keys(clients)) {
      paths[name] = `bench/${randomBytes(4).toString("hex")}`;
      await clients[name]?.write(`secret/data/${paths[name]}`, { data: { state: "available" } });
      await block(clients[name] as Client, paths[name] as string, 50); // warm-up
    }
    const names = Object.keys(clients);
    const cpu: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
    const wall: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
    const vaultCpu0 = cpuMs(vault.pid);
    for (let r = 0; r < ROUNDS; r++) {
      for (const name of Object.keys(clients)) {
        const b = await block(clients[name] as Client, paths[name] as string, BLOCK);
        cpu[name]?.push(b.cpuUs);
        wall[name]?.push(...b.wall);
      }
    }
    const vaultUs = ((cpuMs(vault.pid) - vaultCpu0) * 1000) / (ROUNDS * BLOCK * 2);
    const [axiosName, ownName] = Object.keys(clients) as [string, string];
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
    const rows: Row[] = [
      {
        figure: "client CPU per read + CAS write (median of blocks)",
        product: median(cpu[ownName] ?? []),
        floor: median(cpu[axiosName] ?? []),
        unit: "µs",
        better: "lower",
      },
      {
        figure: "read + CAS write p50 (c=1)",
        product: summarize(wall[ownName] ?? []).p50,
        floor: summarize(wall[axiosName] ?? []).p50,
        unit: "ms",
        better: "lower",
      },
    ];
    printTable(
      `Vault client: leasehold transport (product) vs axios (floor); ${ROUNDS} rounds of ${BLOCK}`,
      rows,
    );
    const range = (xs: number[]) => `${Math.min(...xs).toFixed(0)}–${Math.max(...xs).toFixed(0)}`;
    process.stdout.write(
      `client CPU per pair, range over blocks: axios ${range(cpu[axiosName] ?? [])} µs, ` +
        `leasehold transport ${range(cpu[ownName] ?? [])} µs; Vault dev server ${vaultUs.toFixed(0)} µs per pair ` +
        `(both clients); load average ${loadavg()
          .map((x) => x.toFixed(1))
          .join(", ")}\n`,
    );
    const file = writeResults(quick ? "vault-client-quick" : "vault-client", { rows, cpu, vaultUs });
    process.stdout.write(`results: ${file}\n`);
    for (const a of [axiosAgents, ownAgents]) {
      a.httpAgent.destroy();
      a.httpsAgent.destroy();
    }
  } finally {
    await vault.stop();
  }
}

void main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
