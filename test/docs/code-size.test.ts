import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import ts from "typescript";
import { describe, expect, it } from "vitest";
import { repoRoot } from "../../scripts/gen-docs.js";

const root = repoRoot();
const MAX_FILE_LINES = 500;
const MAX_FUNCTION_LINES = 120;

/** Every `.ts` file under `dir`, recursively. */
function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return tsFiles(path);
    return e.isFile() && e.name.endsWith(".ts") ? [path] : [];
  });
}

/** Lines as `wc -l` counts them (a last line without a newline still counts). */
function lineCount(text: string): number {
  if (text === "") return 0;
  return text.split("\n").length - (text.endsWith("\n") ? 1 : 0);
}

function isFunctionLike(node: ts.Node): node is ts.FunctionLikeDeclaration {
  return (
    ts.isFunctionDeclaration(node) ||
    ts.isMethodDeclaration(node) ||
    ts.isConstructorDeclaration(node) ||
    ts.isGetAccessorDeclaration(node) ||
    ts.isSetAccessorDeclaration(node) ||
    ts.isArrowFunction(node) ||
    ts.isFunctionExpression(node)
  );
}

function functionName(node: ts.FunctionLikeDeclaration, sf: ts.SourceFile): string {
  if (node.name) return node.name.getText(sf);
  if (ts.isConstructorDeclaration(node)) return "constructor";
  const parent = node.parent;
  if (ts.isVariableDeclaration(parent) || ts.isPropertyAssignment(parent) || ts.isPropertyDeclaration(parent))
    return parent.name.getText(sf);
  return "(anonymous)";
}

/** Each function of the file, with its length from its first line to its last. */
function functionLengths(file: string, text: string): Array<{ name: string; line: number; lines: number }> {
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const out: Array<{ name: string; line: number; lines: number }> = [];
  const visit = (node: ts.Node): void => {
    if (isFunctionLike(node)) {
      const start = sf.getLineAndCharacterOfPosition(node.getStart(sf)).line;
      const end = sf.getLineAndCharacterOfPosition(node.getEnd()).line;
      out.push({ name: functionName(node, sf), line: start + 1, lines: end - start + 1 });
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return out;
}

const files = ["sidecar", "adapters"].flatMap((d) => tsFiles(join(root, d))).sort();

describe("code size: files and functions stay small enough to read in one sitting", () => {
  it("finds the product sources", () => {
    expect(files.length).toBeGreaterThan(50);
  });

  it(`no .ts file under sidecar/ or adapters/ has more than ${MAX_FILE_LINES} lines`, () => {
    const long = files
      .map((f) => ({ file: relative(root, f), lines: lineCount(readFileSync(f, "utf8")) }))
      .filter((f) => f.lines > MAX_FILE_LINES)
      .map((f) => `${f.file}: ${f.lines} lines`);
    expect(long).toEqual([]);
  });

  it(`no function under sidecar/ or adapters/ has more than ${MAX_FUNCTION_LINES} lines`, () => {
    const long = files.flatMap((f) =>
      functionLengths(f, readFileSync(f, "utf8"))
        .filter((fn) => fn.lines > MAX_FUNCTION_LINES)
        .map((fn) => `${relative(root, f)}:${fn.line} ${fn.name}: ${fn.lines} lines`),
    );
    expect(long).toEqual([]);
  });

  it("measures a function from its first line to its last", () => {
    const body = Array.from({ length: 3 }, (_, i) => `  const a${i} = ${i};`).join("\n");
    const text = `export function f(): void {\n${body}\n}\nconst g = () => {\n  return 1;\n};\n`;
    expect(functionLengths("x.ts", text).map((fn) => [fn.name, fn.lines])).toEqual([
      ["f", 5],
      ["g", 3],
    ]);
    expect(lineCount(text)).toBe(8);
  });
});
