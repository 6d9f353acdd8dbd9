import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ErrorBody, StackClient } from "../support/e2e-client.js";
import { cliPath } from "../support/sidecar-process.js";
import { type Stack, startStack } from "../support/stack.js";
import { waitFor } from "../support/wait-for.js";

/*
 * `leasehold leases watch` in a real terminal (tmux): the operator selects a lease, presses r,
 * confirms with y, and the lease is revoked through the admin API; q quits and gives the
 * terminal back. `--lines` prints the snapshot of active leases first, then events.
 */

let stack: Stack;
let client: StackClient;
const tmuxSocket = `lhtest-keys-${randomBytes(4).toString("hex")}`;

function tmux(...args: string[]): string {
  return execFileSync("tmux", ["-L", tmuxSocket, ...args], {
    env: { ...process.env, LH_TEST_VAULT_TOKEN: stack.vault.token },
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
  });
}

const screen = (session: string) => tmux("capture-pane", "-p", "-t", session);

/** Waits until the pane shows what `probe` looks for; the failure shows the pane. */
function untilScreen(session: string, what: string, probe: (text: string) => boolean): Promise<string> {
  let last = "";
  return waitFor(
    () => `${what}; the screen was:\n${last}`,
    () => {
      last = screen(session);
      return probe(last) ? last : false;
    },
    { timeoutMs: 20_000 },
  );
}

async function checkout(agent: "a" | "b", task: string, ttl: number): Promise<{ id: string; token: string }> {
  const res = await client.http("POST", "/v1/checkout", {
    token: await client.assertion(agent),
    body: {
      resource: "orders-db",
      task: { id: task, description: "watch keys e2e" },
      intent: { action: "read", tool: "psql" },
      ttl,
    },
  });
  expect(res.status, JSON.stringify(res.json)).toBe(201);
  const token = res.json.token as string;
  client.secrets.push(token);
  return { id: (res.json.lease as { id: string }).id, token };
}

/** The CLI in a new tmux session of 200x50, then the exit status and the terminal's modes (the pane stays open). */
function startInTmux(session: string, args: string): void {
  const cmd = `${process.execPath} ${cliPath()} --config ${stack.configFile} ${args}`;
  const shell = `${cmd}; echo "watch-exit=$?"; stty -a; exec cat`;
  tmux("new-session", "-d", "-x", "200", "-y", "50", "-s", session, "sh", "-c", shell);
}

beforeAll(async () => {
  try {
    execFileSync("tmux", ["-V"]);
  } catch {
    throw new Error("tmux is missing: the pseudo-terminal test needs it (apt-get install tmux)");
  }
  stack = await startStack();
  client = new StackClient(stack);
  await client.adminToken();
  client.secrets.push(stack.adminPassword);
  const passwords = [randomBytes(12).toString("hex"), randomBytes(12).toString("hex")];
  client.secrets.push(...passwords);
  await stack.createRole("app_keys_1", passwords[0] as string);
  await stack.createRole("app_keys_2", passwords[1] as string);
  await client.registerPostgres("orders-db", {
    accounts: ["app_keys_1", "app_keys_2"],
    extra: { rotateWith: "admin", lease: { defaultTtl: 300, maxTtl: 600 } },
  });
}, 180_000);

afterAll(async () => {
  try {
    tmux("kill-server");
  } catch {
    // no server was started
  }
  if (stack) {
    const out = stack.sidecar.output();
    for (const s of client.secrets) expect(out.includes(s)).toBe(false);
    await stack.close();
  }
});

describe("leasehold leases watch, interactive", () => {
  it("selects a lease with j, revokes it with r then y, and q gives the terminal back", async () => {
    const first = await checkout("a", "T-KEEP", 120);
    const second = await checkout("b", "T-REVOKE", 240);
    startInTmux("keys", "leases watch");
    await untilScreen(
      "keys",
      "both lease rows, with their ids",
      (s) => s.includes(first.id) && s.includes(second.id),
    );
    // A lease's row (the status line at the bottom and the last event may name the id too).
    const rowOf = (s: string, id: string) =>
      s.split("\n").find((l) => /^[ >!] lse_/.test(l) && l.includes(id)) ?? "";
    // Soonest expiry first: T-KEEP is on top and selected; j moves down to T-REVOKE.
    expect(rowOf(screen("keys"), first.id)).toMatch(/^> /);
    tmux("send-keys", "-t", "keys", "j");
    await untilScreen("keys", "the second row selected", (s) => /^> /.test(rowOf(s, second.id)));
    expect(rowOf(screen("keys"), first.id)).not.toMatch(/^> /);

    tmux("send-keys", "-t", "keys", "r");
    const asked = await untilScreen("keys", "the confirmation prompt", (s) => s.includes("[y/N]"));
    expect(asked).toMatch(
      new RegExp(
        `revoke lease ${second.id} of orders-db/app_keys_[12] \\(agent \\S+/agent/b\\)\\? \\[y/N\\]`,
      ),
    );
    tmux("send-keys", "-t", "keys", "y");
    await untilScreen("keys", "the revoke's result", (s) => s.includes(`revoked ${second.id}`));
    await untilScreen(
      "keys",
      "the revoked lease's row to go",
      (s) => rowOf(s, second.id) === "" && s.includes(first.id),
    );

    const refused = await client.http("GET", `/v1/leases/${second.id}`, { token: second.token });
    expect(refused.status).toBe(401);
    expect((refused.json as unknown as ErrorBody).error.code).toBe("lease_revoked");
    const kept = await client.http("GET", `/v1/leases/${first.id}`, { token: first.token });
    expect(kept.status).toBe(200);

    tmux("send-keys", "-t", "keys", "q");
    // The shell prints the exit status, then stty's settings: wait for both.
    const after = await untilScreen(
      "keys",
      "the watch to exit and stty to print the terminal's settings",
      (s) => s.includes("watch-exit=") && /(^|\s)-?icanon(\s|$)/m.test(s),
    );
    expect(after).toContain("watch-exit=0");
    // The terminal is back in cooked mode with echo (raw mode shows -icanon -echo).
    expect(after).toMatch(/(^|\s)icanon(\s|$)/m);
    expect(after).toMatch(/(^|\s)echo(\s|$)/m);
    await stack.cli("leases", "revoke", first.id);
  });

  it("--lines prints the snapshot of active leases first, each with its id, then events", async () => {
    await client.waitForAccounts("orders-db", "available");
    const held = await checkout("a", "T-SNAP", 120);
    startInTmux("lines", "leases watch --lines");
    const snap = await untilScreen("lines", "the snapshot line", (s) => s.includes(held.id));
    expect(snap.split("\n")[0]).toMatch(
      new RegExp(
        `^\\S+Z active orders-db app_keys_[12] lease=${held.id} agent=\\S+/agent/a task="T-SNAP" intent=read `,
      ),
    );
    const next = await checkout("b", "T-EVENT", 60);
    const lines = await untilScreen("lines", "the issued event", (s) => s.includes(`lease=${next.id}`));
    const rows = lines.split("\n").filter((l) => l.trim() !== "");
    expect(rows[0]).toContain(`lease=${held.id}`);
    expect(rows.findIndex((l) => l.includes(`issued orders-db`))).toBeGreaterThan(0);
    tmux("kill-session", "-t", "lines");
    await stack.cli("leases", "revoke", held.id);
    await stack.cli("leases", "revoke", next.id);
  });
});
