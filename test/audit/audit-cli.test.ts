import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Command } from "commander";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { AuditLog, auditFileSet, createAuditKey, loadAuditKey } from "../../sidecar/audit/index.js";
import { registerAuditCommands } from "../../sidecar/cli/commands/audit.js";

let dir: string;
let file: string;
let keyFile: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "lh-audit-cli-"));
  file = join(dir, "audit.jsonl");
  keyFile = join(dir, "audit.key");
  await createAuditKey(keyFile);
  const log = await AuditLog.open(file, "sc-cli", undefined, {
    watchIntervalMs: 0,
    maxBytes: 1000,
    hmacKey: await loadAuditKey(keyFile),
  });
  for (let i = 0; i < 8; i++) {
    await log.append({
      event: i % 2 ? "tool_call" : "checkout",
      agent: `spiffe://t/agent/${i % 2}`,
      resource: "db",
      lease_id: `lse_${i}`,
    });
  }
  await log.close();
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});
afterEach(() => {
  process.exitCode = undefined;
});

/** Runs `leasehold [--json] audit ...` through the commands as the CLI mounts them. */
async function run(args: string[], json = false): Promise<{ out: string; code: number | undefined }> {
  let out = "";
  const program = new Command().name("leasehold").option("--json").exitOverride();
  registerAuditCommands(program, {
    config: () => ({ file, hmacKeyFile: keyFile }),
    write: (s) => (out += s),
  });
  process.exitCode = undefined;
  await program.parseAsync([...(json ? ["--json"] : []), "audit", ...args], { from: "user" });
  const code = process.exitCode === undefined ? undefined : Number(process.exitCode);
  process.exitCode = undefined;
  return { out, code };
}

describe("leasehold audit", () => {
  it("verify: the configured chain across rotated files, with the hmac", async () => {
    expect((await auditFileSet(file)).length).toBeGreaterThan(1);
    const r = await run(["verify"]);
    expect(r.code).toBeUndefined();
    expect(r.out).toMatch(/^ok: 8 records in \d+ file\(s\), chain intact, hmac verified/);
    const j = await run(["verify"], true);
    expect(JSON.parse(j.out)).toMatchObject({ ok: true, chains: [{ ok: true, records: 8, hmac: true }] });
  });

  it("verify FILE...: copies in any order; a changed byte fails with file and line, exit 1", async () => {
    const set = await auditFileSet(file);
    const copyDir = await mkdtemp(join(dir, "copy-"));
    const copies: string[] = [];
    for (const f of set) {
      const c = join(copyDir, f.slice(dir.length + 1));
      await writeFile(c, await readFile(f));
      copies.push(c);
    }
    expect((await run(["verify", ...[...copies].reverse()])).code).toBeUndefined();
    const victim = copies[1] as string;
    const text = await readFile(victim, "utf8");
    await writeFile(victim, text.replace('"db"', '"dc"'));
    const bad = await run(["verify", ...copies]);
    expect(bad.code).toBe(1);
    expect(bad.out).toContain(`BROKEN at ${victim} line 1`);
    expect(bad.out).toContain("hash mismatch");
    const wrongKey = join(dir, `k-${randomBytes(2).toString("hex")}`);
    await createAuditKey(wrongKey);
    await writeFile(victim, text);
    const keyed = await run(["verify", "--key", wrongKey, ...copies]);
    expect(keyed.code).toBe(1);
    expect(keyed.out).toContain("hmac mismatch");
  });

  it("query: filters newest first, in a table or as JSON with a cursor", async () => {
    const t = await run(["query", "--agent", "spiffe://t/agent/0", "--event", "checkout", "--since", "1h"]);
    expect(t.out.split("\n")[0]).toMatch(/^TIME\s+EVENT\s+SCOPE\s+AGENT/);
    expect(t.out.match(/lse_\d/g)).toEqual(["lse_6", "lse_4", "lse_2", "lse_0"]);
    const j = JSON.parse((await run(["query", "--limit", "3"], true)).out) as {
      records: Array<{ lease_id: string }>;
      next_cursor: string;
    };
    expect(j.records.map((r) => r.lease_id)).toEqual(["lse_7", "lse_6", "lse_5"]);
    const next = JSON.parse(
      (await run(["query", "--limit", "3", "--cursor", j.next_cursor], true)).out,
    ) as typeof j;
    expect(next.records.map((r) => r.lease_id)).toEqual(["lse_4", "lse_3", "lse_2"]);
    await expect(run(["query", "--since", "last tuesday"])).rejects.toThrow(/since/);
  });

  it("keygen writes a 0600 key once; schema prints the JSON Schema", async () => {
    const out = join(dir, `new-${randomBytes(2).toString("hex")}.key`);
    await run(["keygen", "--out", out]);
    expect((await stat(out)).mode & 0o777).toBe(0o600);
    expect((await loadAuditKey(out)).length).toBeGreaterThanOrEqual(32);
    await expect(run(["keygen", "--out", out])).rejects.toThrow(/never overwritten/);
    const schema = JSON.parse((await run(["schema"])).out) as { title: string; required: string[] };
    expect(schema.title).toBe("leasehold audit record");
    expect(schema.required).toEqual(
      expect.arrayContaining(["time", "event", "sidecar", "seq", "prev", "hash"]),
    );
  });
});
