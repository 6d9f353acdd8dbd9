import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { AUDIT_EVENTS } from "../../sidecar/audit/index.js";

const ROOT = join(import.meta.dirname, "..", "..");

/** Runs the CLI from source with no config and no sidecar: these refusals need neither. */
async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const env = { ...process.env, LEASEHOLD_CONFIG: join(ROOT, "no-such-config.yaml") };
  return promisify(execFile)(process.execPath, ["--import", "tsx", "sidecar/cli/main.ts", ...args], {
    cwd: ROOT,
    env,
  }).then(
    (r) => ({ code: 0, ...r }),
    (err: { code: number; stdout: string; stderr: string }) => err,
  );
}

describe("CLI refusals that say what to do (issue 18)", () => {
  it("leases revoke without a target names an ID, --resource, --agent and --task, before reading any config", async () => {
    const [none, two] = await Promise.all([
      cli("leases", "revoke"),
      cli("leases", "revoke", "--agent", "spiffe://example.org/agent/a", "--task", "T-1"),
    ]);
    for (const r of [none, two]) {
      expect(r.code).toBe(1);
      for (const word of ["lease ID", "--resource", "--agent", "--task"]) expect(r.stderr).toContain(word);
      expect(r.stderr).not.toContain("config");
    }
    expect(two.stderr).toContain("only one target at a time");
  });

  it("unknown --status and --event values get a close match and the valid list", async () => {
    const [status, event] = await Promise.all([
      cli("approvals", "list", "--status", "pendng"),
      cli("audit", "query", "--event", "checkout,chekout", "--file", join(ROOT, "no-such-audit.jsonl")),
    ]);
    expect(status.code).toBe(1);
    expect(status.stderr.trim()).toBe(
      'leasehold: --status: unknown value (did you mean "pending"?); valid values: pending, approved, denied, expired, all',
    );
    expect(event.code).toBe(1);
    expect(event.stderr.trim()).toBe(
      `leasehold: --event: unknown value (did you mean "checkout"?); valid values: ${Object.keys(AUDIT_EVENTS).join(", ")}`,
    );
  });
});
