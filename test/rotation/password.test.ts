import { describe, expect, it } from "vitest";
import { generatePassword } from "../../sidecar/rotation/index.js";

describe("generatePassword", () => {
  const constraints = { minLength: 8, maxLength: 64, forbidden: "'\\" };

  it("respects length, classes, exclusions and the target's forbidden characters", () => {
    for (let i = 0; i < 200; i++) {
      const p = generatePassword({ length: 24, exclude: "xyz" }, constraints);
      expect(p).toHaveLength(24);
      expect(p).toMatch(/[a-z]/);
      expect(p).toMatch(/[A-Z]/);
      expect(p).toMatch(/[0-9]/);
      expect(p).not.toMatch(/[xyz'\\]/);
    }
  });

  it("caps the length at the target's maximum and never repeats", () => {
    const seen = new Set<string>();
    for (let i = 0; i < 500; i++) seen.add(generatePassword({ length: 128, exclude: "" }, constraints));
    expect(seen.size).toBe(500);
    expect([...seen][0]).toHaveLength(64);
  });
});
