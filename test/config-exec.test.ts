import { describe, expect, it } from "vitest";
import { ConfigError, parseConfig } from "../sidecar/config.js";

/** The `exec:` section of leasehold.yaml: the operator's commands (issue 16, attack 1). */

const base = { vault: { auth: { method: "token", token: "t" } }, identity: {} };
const load = (exec: unknown) => parseConfig({ ...base, exec }, "/etc/lh", {});

describe("exec.commands", () => {
  it("defaults to no command; an entry gets its timeout default and is frozen", () => {
    expect(parseConfig(base, "/etc/lh", {}).exec).toEqual({ commands: {} });
    const c = load({
      commands: { "rotate-mainframe": { command: ["/opt/bin/rotate", "--prod"], user: "root" } },
    });
    expect(c.exec.commands["rotate-mainframe"]).toEqual({
      command: ["/opt/bin/rotate", "--prod"],
      timeoutSeconds: 30,
      user: "root",
    });
    expect(Object.isFrozen(c.exec.commands["rotate-mainframe"]?.command)).toBe(true);
  });

  it("refuses, naming the key: a relative program, an empty argv, a bad name, an unknown key, a bad timeout", () => {
    const cases: Array<[unknown, RegExp]> = [
      [
        { commands: { x: { command: ["rotate.sh"] } } },
        /exec\.commands\.x\.command\.0: must be an absolute path/,
      ],
      [{ commands: { x: { command: [] } } }, /exec\.commands\.x\.command: /],
      [{ commands: { "Bad/Name": { command: ["/bin/true"] } } }, /exec\.commands\.Bad\/Name: /],
      [{ commands: { x: { command: ["/bin/true"], shell: true } } }, /exec\.commands\.x\.shell/],
      [
        { commands: { x: { command: ["/bin/true"], timeoutSeconds: 601 } } },
        /exec\.commands\.x\.timeoutSeconds/,
      ],
      [{ commands: { x: { command: ["/bin/true"], user: "a:b" } } }, /exec\.commands\.x\.user: /],
      [{ command: ["/bin/sh"] }, /exec\.command/],
    ];
    for (const [exec, message] of cases) {
      expect(() => load(exec), JSON.stringify(exec)).toThrow(ConfigError);
      expect(() => load(exec), JSON.stringify(exec)).toThrow(message);
    }
  });

  it("a user that does not exist is refused when the config is loaded", () => {
    expect(() => load({ commands: { x: { command: ["/bin/true"], user: "no-such-user-lh16" } } })).toThrow(
      /^exec\.commands\.x\.user: there is no OS user "no-such-user-lh16"$/,
    );
  });
});
