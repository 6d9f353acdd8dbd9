import { describe, expect, it } from "vitest";
import { defaultPolicyContext, loadPolicy, validatePolicyFile } from "../../sidecar/policy/index.js";

/* examples/policy/policy.cedar: valid under the strict schema, and it says what its comments say. */

const file = new URL("../../examples/policy/policy.cedar", import.meta.url).pathname;
const AGENT = "spiffe://example.org/agent/a";
const ATTESTED = { attested: true, uid: 1000, exe_sha256: "ab".repeat(32), cgroup: "/user.slice" };

describe("examples/policy/policy.cedar", () => {
  it("validates strictly against the schema", async () => {
    const v = await validatePolicyFile(file);
    expect(v.errors).toEqual([]);
    expect(v.ok).toBe(true);
    expect(v.policies).toEqual(
      expect.arrayContaining(["agents-read", "bound-resources-need-an-attested-caller"]),
    );
  });

  it("refuses unattested callers for bound resources, and only for those", async () => {
    const engine = await loadPolicy({ file });
    const ask = (caller: typeof ATTESTED | undefined, groups: string[]) =>
      engine.decide({
        principal: AGENT,
        action: "checkout",
        resource: "ledger-db",
        resourceGroups: groups,
        context: {
          ...defaultPolicyContext(),
          intent: "read",
          ttl: 300,
          ...(caller === undefined ? {} : { caller }),
        },
      });
    const refused = ask(undefined, ["caller-bound"]);
    expect(refused.decision).toBe("deny");
    expect(refused.policies).toEqual(["bound-resources-need-an-attested-caller"]);
    expect(ask(ATTESTED, ["caller-bound"]).decision).toBe("allow");
    expect(ask(undefined, []).decision).toBe("allow");
  });
});
