import { describe, expect, it } from "vitest";
import { ConfigError, parseConfig } from "../sidecar/config.js";

const base = { vault: { auth: { method: "token", token: "${VT}" } }, identity: {} };

describe("config", () => {
  it("applies defaults, reads ${NAME} from the environment and resolves paths against the config folder", () => {
    const c = parseConfig(base, "/etc/lh", { VT: "tok" });
    expect(c.listen).toMatchObject({ host: "127.0.0.1", port: 7733 });
    expect(c.vault.auth).toEqual({ method: "token", token: "tok" });
    expect(c.tokens.signingKey).toBe("/etc/lh/state/signing.jwk");
    expect(Object.isFrozen(c.listen)).toBe(true);
  });

  it("names an unknown key", () => {
    expect(() => parseConfig({ ...base, listen: { hots: "x" } }, "/", { VT: "t" })).toThrow(/listen\.hots/);
  });

  it("names a bad value", () => {
    expect(() => parseConfig({ ...base, listen: { port: 70000 } }, "/", { VT: "t" })).toThrow(/listen\.port/);
  });

  it("names a missing environment variable", () => {
    expect(() => parseConfig(base, "/", {})).toThrow(/VT is not set/);
  });

  it("refuses a non-loopback host unless allowRemote", () => {
    expect(() => parseConfig({ ...base, listen: { host: "0.0.0.0" } }, "/", { VT: "t" })).toThrow(
      ConfigError,
    );
    expect(
      parseConfig({ ...base, listen: { host: "0.0.0.0", allowRemote: true } }, "/", { VT: "t" }).listen.host,
    ).toBe("0.0.0.0");
  });

  it("binds leases to the caller's uid by default; bindCaller and onCallerMismatch name a bad value", () => {
    const c = parseConfig(base, "/", { VT: "t" });
    expect(c.identity.bindCaller).toEqual(["uid"]);
    expect(c.identity.onCallerMismatch).toBe("refuse");
    const none = parseConfig({ ...base, identity: { bindCaller: [] } }, "/", { VT: "t" });
    expect(none.identity.bindCaller).toEqual([]);
    const bad = (identity: Record<string, unknown>) => () =>
      parseConfig({ ...base, identity }, "/", { VT: "t" });
    expect(bad({ bindCaller: ["uid", "gid"] })).toThrow(/identity\.bindCaller\.1/);
    expect(bad({ bindCaller: ["uid", "uid"] })).toThrow(/identity\.bindCaller: each part at most once/);
    expect(bad({ onCallerMismatch: "kill" })).toThrow(/identity\.onCallerMismatch/);
  });
});
