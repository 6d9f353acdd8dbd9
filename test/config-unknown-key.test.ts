import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { parseConfig } from "../sidecar/config.js";
import { editDistance } from "../sidecar/util/close-match.js";

/** Issue 18 item 5: an unknown key of leasehold.yaml names the key it was probably meant to be. */

const base = { vault: { auth: { method: "token", token: "${VT}" } }, identity: {} };
const ROOT = join(import.meta.dirname, "..");

function refusal(raw: Record<string, unknown>): string {
  try {
    parseConfig(raw, "/", { VT: "t" });
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error("the config was accepted");
}

describe("unknown config keys: did you mean", () => {
  it("counts a swap of two adjacent characters as one edit", () => {
    expect(editDistance("hots", "host")).toBe(1);
    expect(editDistance("tokne", "token")).toBe(1);
    expect(editDistance("ca", "abc")).toBe(3);
  });

  it("names the closest key at that place in the schema, whatever the depth", () => {
    expect(refusal({ ...base, listen: { hots: "x" } })).toBe(
      'invalid config: unknown key "listen.hots" (did you mean "listen.host"?)',
    );
    expect(refusal({ ...base, lissten: {} })).toBe(
      'invalid config: unknown key "lissten" (did you mean "listen"?)',
    );
    // through a union (vault.auth), a record (exec.commands.<name>) and a default
    expect(refusal({ ...base, vault: { auth: { method: "token", token: "t", tokne: "x" } } })).toBe(
      'invalid config: unknown key "vault.auth.tokne" (did you mean "vault.auth.token"?)',
    );
    expect(
      refusal({ ...base, exec: { commands: { a: { command: ["/bin/true"], timeoutSecond: 3 } } } }),
    ).toBe(
      'invalid config: unknown key "exec.commands.a.timeoutSecond" (did you mean "exec.commands.a.timeoutSeconds"?)',
    );
    expect(
      refusal({
        ...base,
        identity: { trust: [{ kind: "agents", jwks: "j", subjects: ["s"], algoritms: ["EdDSA"] }] },
      }),
    ).toBe(
      'invalid config: unknown key "identity.trust.0.algoritms" (did you mean "identity.trust.0.algorithms"?)',
    );
  });

  it("names none when nothing is close, and never echoes a value", () => {
    const msg = refusal({ ...base, listen: { zzzzqq: "s3cr3t-value" } });
    expect(msg).toBe('invalid config: unknown key "listen.zzzzqq"');
    expect(msg).not.toContain("s3cr3t");
  });

  it("reaches the user as the CLI's one error line", async () => {
    const dir = await mkdtemp(join(tmpdir(), "lh-config-key-"));
    try {
      const file = join(dir, "leasehold.yaml");
      await writeFile(
        file,
        "listen:\n  hots: 127.0.0.1\nvault:\n  auth: { method: token, token: t }\nidentity: {}\n",
      );
      const r = await promisify(execFile)(
        process.execPath,
        ["--import", "tsx", "sidecar/cli/main.ts", "--config", file, "keys", "rotate"],
        { cwd: ROOT },
      ).then(
        () => ({ code: 0, stderr: "" }),
        (err: { code: number; stderr: string }) => err,
      );
      expect(r.code).toBe(1);
      expect(r.stderr.trim()).toBe(
        'leasehold: invalid config: unknown key "listen.hots" (did you mean "listen.host"?)',
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
