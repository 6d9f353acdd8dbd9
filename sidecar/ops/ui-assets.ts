import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export interface UiAsset {
  readonly contentType: string;
  readonly body: Buffer;
}

/** The dashboard's files: a fixed list, so no request path ever reaches the file system. */
const FILES: Record<string, string> = {
  "index.html": "text/html; charset=utf-8",
  "app.js": "text/javascript; charset=utf-8",
  "app.css": "text/css; charset=utf-8",
  "favicon.svg": "image/svg+xml",
};

/**
 * Where the dashboard's files are: next to this module (a build that copied them), else in the
 * source tree (`dist/sidecar/ops` → `sidecar/ops/ui`), which is how tsc-built runs find them.
 * From the bundled CLI (`dist/cli/`, scripts/bundle.mjs): the copy the image puts in
 * `dist/sidecar/ops/ui`, else the source tree.
 */
export function defaultUiDir(): string {
  const candidates = [
    fileURLToPath(new URL("./ui/", import.meta.url)),
    fileURLToPath(new URL("../../../sidecar/ops/ui/", import.meta.url)),
    fileURLToPath(new URL("../sidecar/ops/ui/", import.meta.url)),
    fileURLToPath(new URL("../../sidecar/ops/ui/", import.meta.url)),
  ];
  return candidates.find((d) => existsSync(join(d, "index.html"))) ?? (candidates[0] as string);
}

/** Reads every dashboard file into memory once; a missing one is an error naming it. */
export async function loadUiAssets(dir: string = defaultUiDir()): Promise<Map<string, UiAsset>> {
  const out = new Map<string, UiAsset>();
  for (const [name, contentType] of Object.entries(FILES)) {
    try {
      out.set(name, { contentType, body: await readFile(join(dir, name)) });
    } catch {
      throw new Error(`dashboard file ${join(dir, name)} is missing`);
    }
  }
  return out;
}

/**
 * Headers of every dashboard response: scripts, styles and connections from this origin only,
 * no inline script, no framing, no referrer.
 */
export const UI_SECURITY_HEADERS: Readonly<Record<string, string>> = {
  "content-security-policy":
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
    "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
  "cross-origin-opener-policy": "same-origin",
  "cross-origin-resource-policy": "same-origin",
};
