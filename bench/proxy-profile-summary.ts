/**
 * Sums self time per function from a V8 .cpuprofile (as written by `node --cpu-prof` or by the
 * proxy benches' `--profile FILE`), and groups it by area (proxy code, node:net/stream
 * internals, GC, idle, …).
 *
 *   npx tsx bench/proxy-profile-summary.ts FILE.cpuprofile [--top 40]
 */
import { readFile } from "node:fs/promises";

interface ProfileNode {
  readonly id: number;
  readonly callFrame: {
    readonly functionName: string;
    readonly url: string;
    readonly lineNumber: number;
  };
}

interface Profile {
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
  readonly startTime: number;
  readonly endTime: number;
}

function area(url: string, name: string): string {
  if (name === "(idle)") return "idle";
  if (name === "(garbage collector)") return "gc";
  if (name === "(program)") return "program (native, outside JS)";
  if (url.includes("/sidecar/proxy/")) return "sidecar/proxy";
  if (url.includes("/sidecar/")) return "sidecar (other)";
  if (url.startsWith("node:net") || url.startsWith("node:internal/stream_base")) return "node:net";
  if (url.startsWith("node:internal/streams") || url.startsWith("node:stream")) return "node:streams";
  if (url.startsWith("node:internal/tls") || url.startsWith("node:tls")) return "node:tls";
  if (url.startsWith("node:")) return "node (other)";
  if (url.includes("node_modules"))
    return `deps: ${/node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1] ?? "?"}`;
  if (url === "") return "native/builtin";
  return "other";
}

const file = process.argv[2];
if (!file) throw new Error("usage: proxy-profile-summary.ts FILE.cpuprofile [--top N]");
const topIdx = process.argv.indexOf("--top");
const top = topIdx > 0 ? Number(process.argv[topIdx + 1]) : 40;
const p = JSON.parse(await readFile(file, "utf8")) as Profile;
const byId = new Map(p.nodes.map((n) => [n.id, n]));
const self = new Map<string, number>();
const areas = new Map<string, number>();
let total = 0;
for (let i = 0; i < p.samples.length; i++) {
  const n = byId.get(p.samples[i] as number);
  const dt = p.timeDeltas[i] ?? 0;
  if (!n) continue;
  const f = n.callFrame;
  const short = f.url.replace(/^.*\/(sidecar|node_modules)\//, "$1/");
  const key = `${f.functionName || "(anonymous)"}  ${short}${f.url ? `:${f.lineNumber + 1}` : ""}`;
  self.set(key, (self.get(key) ?? 0) + dt);
  const a = area(f.url, f.functionName);
  areas.set(a, (areas.get(a) ?? 0) + dt);
  total += dt;
}
const busy = total - (areas.get("idle") ?? 0);
const pct = (us: number) => `${((100 * us) / busy).toFixed(1).padStart(5)} %`;
console.log(`profile: ${(total / 1e6).toFixed(2)} s sampled, ${(busy / 1e6).toFixed(2)} s busy (not idle)`);
console.log("\nself time by area (% of busy):");
for (const [a, us] of [...areas].sort((x, y) => y[1] - x[1])) {
  if (a !== "idle") console.log(`  ${pct(us)}  ${(us / 1000).toFixed(0).padStart(7)} ms  ${a}`);
}
console.log(`\ntop ${top} functions by self time (% of busy):`);
for (const [k, us] of [...self].sort((x, y) => y[1] - x[1]).slice(0, top)) {
  if (k.startsWith("(idle)")) continue;
  console.log(`  ${pct(us)}  ${(us / 1000).toFixed(0).padStart(7)} ms  ${k}`);
}
