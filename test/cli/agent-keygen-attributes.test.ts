import { describe, expect, it } from "vitest";
import { keygenAttributes } from "../../sidecar/cli/commands/agent-attributes.js";

describe("agent keygen --attribute name=value", () => {
  it("types values by the policy schema: sets collect, booleans are true or false", () => {
    expect(
      keygenAttributes(["team=billing", "groups=dba", "groups=payments", "operator=true", "name=a=b"]),
    ).toEqual({ team: "billing", groups: ["dba", "payments"], operator: true, name: "a=b" });
    expect(keygenAttributes([])).toEqual({});
  });

  it("refuses reserved names, names policy never sees, malformed options and mistyped values", () => {
    for (const [options, message] of [
      [["trust_kind=issuer"], "not an agent attribute policy sees"],
      [["iss=https://spire.example.org"], "not an agent attribute policy sees"],
      [["tema=billing"], "not an agent attribute policy sees"],
      [["team"], "expected name=value"],
      [["=billing"], "expected name=value"],
      [["operator=yes"], "true or false"],
      [["team=a", "team=b"], "given twice"],
    ] as const) {
      expect(() => keygenAttributes(options), options.join(" ")).toThrow(message);
    }
  });
});
