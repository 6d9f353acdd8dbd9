import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { opsConfigSchema } from "../../sidecar/config.js";

describe("the ops: config section", () => {
  it("has safe defaults: a one-minute expiry notice and no webhook", () => {
    const c = opsConfigSchema.parse(undefined);
    expect(c).toMatchObject({
      expiringSoonSeconds: 60,
      heartbeatMs: 15000,
      metricsRequireToken: false,
      webhook: null,
    });
  });

  it("takes a webhook with the alert events by default", () => {
    const c = opsConfigSchema.parse({
      webhook: { url: "https://pager.example.org/hook", secret: "0123456789abcdef" },
    });
    expect(c.webhook?.events).toEqual(["rotation_failed", "quarantined", "expiring_soon", "caller_mismatch"]);
  });

  it("takes a Standard Webhooks secret (whsec_ and base64 of 24+ bytes) and names the rule a bad one breaks", () => {
    const url = "https://pager.example.org/hook";
    const good = `whsec_${randomBytes(32).toString("base64")}`;
    expect(opsConfigSchema.parse({ webhook: { url, secret: good } }).webhook?.secret).toBe(good);
    const short = opsConfigSchema.safeParse({
      webhook: { url, secret: `whsec_${randomBytes(16).toString("base64")}` },
    });
    expect(short.error?.issues.map((i) => [i.path.join("."), i.message])).toEqual([
      ["webhook.secret", "a whsec_ secret must hold at least 24 bytes"],
    ]);
    const bad = opsConfigSchema.safeParse({ webhook: { url, secret: "whsec_not*base64*at*all!!" } });
    expect(bad.error?.issues[0]?.message).toMatch(/^after whsec_ must come base64/);
  });

  it("refuses a non-http webhook, a short secret, an unknown event and unknown keys", () => {
    const bad = [
      { webhook: { url: "file:///etc/passwd", secret: "0123456789abcdef" } },
      { webhook: { url: "https://x.example/", secret: "short" } },
      { webhook: { url: "https://x.example/", secret: "0123456789abcdef", events: ["everything"] } },
      { expiringSoonSeconds: 0 },
      { dashboard: true },
    ];
    for (const b of bad) expect(opsConfigSchema.safeParse(b).success, JSON.stringify(b)).toBe(false);
  });
});
