import { readFile } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import { escapeText } from "../../sidecar/util/text.js";

/**
 * The dashboard (a browser module, no build step) shows data as text only, escaped by the same
 * rule as the CLI: its own `show` is taken from app.js and run here against hostile input.
 */

const APP = new URL("../../sidecar/ops/ui/app.js", import.meta.url);

async function dashboardShow(): Promise<(s: string) => string> {
  const src = await readFile(APP, "utf8");
  const re = /const NON_PRINTABLE = (.*);\n/.exec(src)?.[1];
  const start = src.indexOf("function show(s)");
  const end = src.indexOf("\n}\n", start);
  if (!re || start < 0 || end < 0) throw new Error("app.js has no show() and NON_PRINTABLE");
  const factory = new Function(`const NON_PRINTABLE = ${re};\n${src.slice(start, end + 2)}\nreturn show;`);
  return factory() as (s: string) => string;
}

describe("dashboard escaping", () => {
  it("escapes exactly as the CLI does", async () => {
    const show = await dashboardShow();
    for (const s of [
      "T-1\u001b[1A\u001b[2K\u001b]52;c;ZXZpbA==\u0007",
      "x\u202eyz\u2066\u2069",
      "nul\u0000 c1\u009b tag\u{e0041}",
      "plain 注文 😀",
    ])
      expect(show(s)).toBe(escapeText(s));
  });

  it("never parses data as HTML", async () => {
    const src = await readFile(APP, "utf8");
    expect(src).not.toMatch(/innerHTML|outerHTML|insertAdjacentHTML|document\.write/);
    expect(src).toContain("node.textContent = show(v)");
  });
});
