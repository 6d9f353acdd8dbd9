import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { repoRoot } from "../../scripts/gen-docs.js";

const root = repoRoot();

/** A test (or check) a document cites: the file, and the title it quotes. */
interface Citation {
  readonly doc: string;
  readonly file: string;
  readonly title: string;
}

/**
 * Finds `[…](../test/x.test.ts): "title", "title"` and `` `test/x.test.ts`, "title" `` in a
 * document: every quoted string after a file reference, up to the next file reference or the
 * end of the table cell, is a title cited from that file.
 */
function citations(doc: string): Citation[] {
  // Titles wrap across lines in prose: one space for each line break and its indent.
  const text = readFileSync(join(root, doc), "utf8").replace(/\s*\n\s*/g, " ");
  const ref = /(?:\]\(\.\.\/|`)((?:test|sidecar)\/[\w./-]+\.ts)(?:\)|`)/g;
  const refs = [...text.matchAll(ref)];
  const out: Citation[] = [];
  refs.forEach((m, i) => {
    const start = (m.index ?? 0) + m[0].length;
    // A citation ends at the next reference, at the end of a table cell, before a code block,
    // or (in prose, "(`file`, "title")") at its closing parenthesis.
    const stops = [text.indexOf(" |", start), text.indexOf("```", start)];
    if (m[0].startsWith("`")) stops.push(text.indexOf('")', start) + 1);
    const end = Math.min(refs[i + 1]?.index ?? text.length, ...stops.filter((x) => x > 0));
    for (const q of text.slice(start, end).matchAll(/"([^"\n]{12,})"/g)) {
      out.push({ doc, file: m[1] ?? "", title: q[1] ?? "" });
    }
  });
  return out;
}

describe("tests cited by the docs", () => {
  for (const doc of ["docs/security.md", "docs/operations.md"]) {
    it(`${doc}: every cited file exists and holds the test titles quoted from it`, () => {
      const cited = citations(doc);
      expect(cited.length).toBeGreaterThan(doc.includes("security") ? 60 : 8);
      const missing = cited.filter((c) => {
        const path = join(root, c.file);
        if (!existsSync(path)) return true;
        const source = readFileSync(path, "utf8");
        // "…" in a quote abbreviates the title: each part must be in it, in order.
        let at = 0;
        for (const part of c.title.split("…").map((p) => p.trim())) {
          const found = source.indexOf(part, at);
          if (found < 0) return true;
          at = found + part.length;
        }
        return false;
      });
      expect(missing.map((c) => `${c.file}: "${c.title}"`)).toEqual([]);
    });
  }

  it("every test file linked from security.md exists", () => {
    const text = readFileSync(join(root, "docs/security.md"), "utf8");
    const links = [...text.matchAll(/\]\(\.\.\/([^)#]+)\)/g)].map((m) => m[1] ?? "");
    expect(links.length).toBeGreaterThan(20);
    expect(links.filter((l) => !existsSync(join(root, l)))).toEqual([]);
  });
});
