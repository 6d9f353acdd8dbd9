import { describe, expect, it } from "vitest";
import { parseAllowedCallers } from "../../sidecar/identity/index.js";

const SHA = "ab".repeat(32);

describe("allowedCallers beside a key in the trust bundle", () => {
  it("reads entries naming uid, exe_sha256 and cgroup; absent means no pin", () => {
    expect(parseAllowedCallers(undefined)).toEqual({ ok: true, pins: undefined });
    expect(
      parseAllowedCallers([{ uid: 0 }, { exe_sha256: SHA, cgroup: "/system.slice/agent.service" }]),
    ).toEqual({
      ok: true,
      pins: [{ uid: 0 }, { exe_sha256: SHA, cgroup: "/system.slice/agent.service" }],
    });
  });

  it("names the problem of an unusable list", () => {
    const problem = (raw: unknown) => {
      const r = parseAllowedCallers(raw);
      return r.ok ? undefined : r.problem;
    };
    expect(problem([])).toBe("allowedCallers must be a list of 1 to 32 entries");
    expect(problem({ uid: 1 })).toBe("allowedCallers must be a list of 1 to 32 entries");
    expect(problem([{}])).toBe("allowedCallers[0] must name uid, exe_sha256 or cgroup");
    expect(problem([{ uid: -1 }])).toBe("allowedCallers[0].uid must be an integer from 0");
    expect(problem([{ uid: 1 }, { exe_sha256: SHA.toUpperCase() }])).toBe(
      "allowedCallers[1].exe_sha256 must be 64 lowercase hex digits",
    );
    expect(problem([{ cgroup: "/a\u0007" }])).toBe("allowedCallers[0].cgroup must be a cgroup path");
    expect(problem([{ pid: 1 }])).toBe('allowedCallers[0]: unknown member "pid" (uid, exe_sha256, cgroup)');
  });
});
