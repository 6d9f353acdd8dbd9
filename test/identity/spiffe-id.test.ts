import { describe, expect, it } from "vitest";
import { isSpiffeId, spiffeIdProblem } from "../../sidecar/identity/index.js";

describe("spiffeIdProblem", () => {
  it("accepts well-formed workload IDs", () => {
    for (const id of [
      "spiffe://example.org/agent/reporter",
      "spiffe://a-b_c.d9/x/Y.z-1_2",
      "spiffe://td/.hidden",
    ]) {
      expect(spiffeIdProblem(id)).toBeUndefined();
      expect(isSpiffeId(id)).toBe(true);
    }
  });

  it("names the rule a malformed ID breaks", () => {
    const cases: [unknown, string][] = [
      [42, "not a string"],
      ["https://example.org/a", "scheme must be spiffe://"],
      ["spiffe:///a", "invalid trust domain"],
      ["spiffe://Example.org/a", "invalid trust domain"],
      ["spiffe://user@example.org/a", "invalid trust domain"],
      ["spiffe://example.org:8080/a", "invalid trust domain"],
      ["spiffe://example.org", "missing path"],
      ["spiffe://example.org/", "empty path segment"],
      ["spiffe://example.org/a//b", "empty path segment"],
      ["spiffe://example.org/a/", "empty path segment"],
      ["spiffe://example.org/a/./b", "dot segment"],
      ["spiffe://example.org/a/..", "dot segment"],
      ["spiffe://example.org/a%2Fb", "invalid character in path"],
      ["spiffe://example.org/a?b=1", "invalid character in path"],
      ["spiffe://example.org/a#b", "invalid character in path"],
      ["spiffe://example.org/a b", "invalid character in path"],
      [`spiffe://example.org/${"a".repeat(2048)}`, "too long"],
    ];
    for (const [id, problem] of cases) expect(spiffeIdProblem(id), String(id)).toBe(problem);
  });
});
