import { describe, expect, it } from "vitest";
import { createLogger } from "../sidecar/logger.js";
import { prettyLine } from "../sidecar/logger-pretty.js";

/** A destination that keeps what pino writes. */
function capture() {
  const lines: string[] = [];
  return { lines, dest: { write: (s: string) => void lines.push(s) } };
}

const SECRETS = {
  password: "pw-4f9c2e-secret",
  token: "tok-8d1a77-secret",
  current: "cur-1b2c3d-secret",
  authorization: "Bearer auth-6e5f-secret",
};

function logSecrets(log: ReturnType<typeof createLogger>): void {
  log.info(
    {
      resource: "orders-db",
      password: SECRETS.password,
      token: SECRETS.token,
      account: { password: SECRETS.password, name: "app_1" },
      current: SECRETS.current,
      req: { headers: { authorization: SECRETS.authorization } },
    },
    "rotated",
  );
}

describe("the logger", () => {
  it("pretty mode: level, time, message, key=value pairs; no secret of a redacted key", () => {
    const c = capture();
    const log = createLogger("info", c.dest, { pretty: true, color: false });
    logSecrets(log);
    const out = c.lines.join("");
    expect(out).toMatch(/^\d\d:\d\d:\d\d\.\d{3} INFO {2}rotated resource=orders-db password=\[redacted\] /);
    expect(out).toContain("token=");
    for (const s of Object.values(SECRETS)) expect(out).not.toContain(s);
    expect(out).not.toContain("secret");
    expect(out.trim().startsWith("{")).toBe(false);
  });

  it("JSON mode redacts the same keys", () => {
    const c = capture();
    const log = createLogger("info", c.dest);
    logSecrets(log);
    const rec = JSON.parse(c.lines.join("")) as Record<string, unknown>;
    expect(rec.msg).toBe("rotated");
    expect(rec.password).toBe("[redacted]");
    expect(JSON.stringify(rec)).not.toContain("secret");
  });

  it("colours the level only when asked, shows an error's stack beneath, escapes control characters", () => {
    const c = capture();
    createLogger("info", c.dest, { pretty: true, color: true }).warn({ note: "a\x1b]52;x" }, "slow");
    expect(c.lines.join("")).toContain("\x1b[33mWARN \x1b[0m slow");
    expect(c.lines.join("")).not.toContain("\x1b]52");
    const e = capture();
    createLogger("info", e.dest, { pretty: true, color: false }).error({ err: new Error("boom") }, "failed");
    const [first, second] = e.lines.join("").split("\n");
    expect(first).toMatch(/ERROR failed$/);
    expect(second).toMatch(/^ {4}Error: boom$/);
  });

  it("passes a line that is not a JSON object on unchanged", () => {
    expect(prettyLine("not json", { color: false })).toBe("not json");
  });
});
