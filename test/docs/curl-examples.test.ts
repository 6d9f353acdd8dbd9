import { execFile } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { repoRoot } from "../../scripts/gen-docs.js";
import { type InProcessSidecar, startInProcessSidecar } from "../deploy/in-process-sidecar.js";
import { useVault, type VaultHandle } from "../support/vault.js";
import { waitFor } from "../support/wait-for.js";

const root = repoRoot();
const run = promisify(execFile);

/** One curl command of a document's code blocks, continuation lines joined as the shell joins them. */
interface CurlExample {
  readonly doc: string;
  readonly line: number;
  readonly command: string;
}

/** Every `curl …` of the code blocks of README.md and docs/*.md, in document order. */
function curlExamples(): CurlExample[] {
  const docs = [
    "README.md",
    ...readdirSync(join(root, "docs"))
      .filter((f) => f.endsWith(".md"))
      .map((f) => `docs/${f}`),
  ];
  const out: CurlExample[] = [];
  for (const doc of docs) {
    const lines = readFileSync(join(root, doc), "utf8").split("\n");
    let inCode = false;
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i] ?? "";
      if (line.trimStart().startsWith("```")) inCode = !inCode;
      if (!inCode || !line.trimStart().startsWith("curl ")) continue;
      const parts = [line];
      while ((parts.at(-1) ?? "").trimEnd().endsWith("\\") && i + 1 < lines.length)
        parts.push(lines[++i] ?? "");
      out.push({ doc, line: i + 2 - parts.length, command: parts.join("\n") });
    }
  }
  return out;
}

/**
 * Examples that need more than a sidecar with one resource and the demo's policy (a delegation
 * set up between an operator and an agent); each names the test that runs its request.
 */
const ELSEWHERE: Readonly<Record<string, string>> = {
  "/v1/token-exchange": "test/e2e/attack-delegation.test.ts and test/docs/openapi.test.ts",
  "x-leasehold-delegation": "test/e2e/attack-delegation.test.ts",
};

/** The README's and docs' curl examples work as printed against a running sidecar (issue 18). */
describe("the docs' curl examples", () => {
  let vault: VaultHandle;
  let lh: InProcessSidecar;
  let base = "";
  const env: Record<string, string> = {};

  beforeAll(async () => {
    vault = await useVault();
    lh = await startInProcessSidecar({ vault });
    base = await lh.listen();
    const put = await lh.sidecar.app.inject({
      method: "PUT",
      url: `/v1/resources/${lh.resource}`,
      headers: { authorization: `Bearer ${lh.sidecar.adminToken}`, "content-type": "application/json" },
      payload: JSON.stringify(lh.registration),
    });
    expect(put.statusCode, put.body).toBe(201);
  });
  afterAll(async () => {
    await lh?.close();
    await vault?.close();
  });

  /** Waits until the resource's account is free (after its import rotation, or a check-in's). */
  const accountFree = () =>
    waitFor("the resource's account available", async () => {
      const res = await lh.sidecar.app.inject({
        method: "GET",
        url: `/v1/resources/${lh.resource}`,
        headers: { authorization: `Bearer ${lh.sidecar.adminToken}` },
      });
      const accounts = (res.json() as { accounts?: Array<{ state: string }> }).accounts ?? [];
      return accounts.length > 0 && accounts.every((a) => a.state === "available");
    });

  /** Runs one example as printed (the port and the resource's name aside); curl fails on a non-2xx answer. */
  const runExample = async (ex: CurlExample): Promise<string> => {
    const port = new URL(base).port;
    const command = ex.command
      .replaceAll("localhost:7733", `localhost:${port}`)
      .replaceAll("orders-db", lh.resource);
    const script = `set -o pipefail; curl() { command curl --fail-with-body "$@"; }\n${command}`;
    const res: { code?: number; stdout?: string; stderr?: string } = await run("bash", ["-c", script], {
      env: { ...process.env, ...env },
    }).catch((err: { code?: number; stdout?: string; stderr?: string }) => err);
    expect(res.code ?? 0, `${ex.doc}:${ex.line} ${ex.command}\n${res.stdout ?? ""}${res.stderr ?? ""}`).toBe(
      0,
    );
    return res.stdout ?? "";
  };

  it("finds the examples (the README's check-in among them)", () => {
    const all = curlExamples();
    expect(all.length).toBeGreaterThan(5);
    expect(all.some((e) => e.doc === "README.md" && e.command.includes("-X DELETE"))).toBe(true);
  });

  it("each answers 2xx in document order, the lease of a checkout used by the examples after it", async () => {
    const ran: string[] = [];
    for (const ex of curlExamples()) {
      const elsewhere = Object.keys(ELSEWHERE).find((k) => ex.command.includes(k));
      if (elsewhere) continue;
      if (ex.command.includes("/v1/checkout")) await accountFree();
      // Identity JWTs are one-time: a fresh one per example, as an agent mints them.
      env.JWT = await lh.identity("a");
      env.JWT2 = await lh.identity("a");
      const out = await runExample(ex);
      if (ex.command.includes("/v1/checkout")) {
        const body = JSON.parse(out) as { token: string; lease: { id: string } };
        env.TOKEN = body.token;
        env.LEASE = body.lease.id;
      }
      ran.push(`${ex.doc}:${ex.line}`);
    }
    expect(ran.length).toBeGreaterThan(5);
  });
});
