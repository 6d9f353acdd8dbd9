import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { closeMatch, editDistance, notOneOfMessage } from "../../sidecar/util/close-match.js";
import { shellQuote } from "../../sidecar/util/shell-quote.js";
import { execFileSync } from "node:child_process";

describe("editDistance and closeMatch", () => {
  it("counts insertions, deletions and substitutions", () => {
    expect(editDistance("kitten", "sitting")).toBe(3);
    expect(editDistance("", "abc")).toBe(3);
    expect(editDistance("checkout", "checkout")).toBe(0);
    expect(editDistance("chekout", "checkout")).toBe(1);
  });

  it("is a metric: symmetric, zero only for equal strings, within the longer length", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 12 }), fc.string({ maxLength: 12 }), (a, b) => {
        const d = editDistance(a, b);
        expect(editDistance(b, a)).toBe(d);
        expect(d === 0).toBe(a === b);
        expect(d).toBeLessThanOrEqual(Math.max(a.length, b.length));
        expect(d).toBeGreaterThanOrEqual(Math.abs(a.length - b.length));
      }),
    );
  });

  it("suggests a close candidate only, ignoring case", () => {
    const events = ["checkout", "checkin", "reveal", "renew", "decision"];
    expect(closeMatch("chekout", events)).toBe("checkout");
    expect(closeMatch("REVEAL", events)).toBe("reveal");
    expect(closeMatch("reveal", events)).toBeUndefined();
    expect(closeMatch("zzzzzz", events)).toBeUndefined();
    expect(closeMatch("x", [])).toBeUndefined();
  });

  it("lists the valid values and never echoes the input", () => {
    expect(notOneOfMessage("actve", ["active", "ended"])).toBe(
      'unknown value (did you mean "active"?); valid values: active, ended',
    );
    expect(notOneOfMessage("<script>", ["active", "ended"])).toBe(
      "unknown value; valid values: active, ended",
    );
    expect(notOneOfMessage(42, ["active"])).toBe("unknown value; valid values: active");
  });
});

describe("shellQuote", () => {
  it("leaves safe words alone and quotes the rest", () => {
    expect(shellQuote("spiffe://example.org/agent/a")).toBe("spiffe://example.org/agent/a");
    expect(shellQuote("it's")).toBe("'it'\\''s'");
    expect(shellQuote("")).toBe("''");
  });

  it("gives a POSIX shell back exactly the word, whatever it holds", () => {
    // Every character a shell treats specially, and some it does not.
    const unit = fc.constantFrom(...Array.from("'\"\\$`!*?[]{}()<>|&;~#= \t\nаé😀x-_/:"));
    const words = fc.sample(fc.string({ unit, maxLength: 20 }), 100);
    words.push("$(touch /nonexistent/x)", "`id`", "a b", "'", "''", "\\", "*", "~", "$HOME", "!x");
    const script = `printf '%s\\0' ${words.map(shellQuote).join(" ")}`;
    const out = execFileSync("sh", ["-c", script]).toString("utf8");
    expect(out.split("\0").slice(0, -1)).toEqual(words);
  });
});
