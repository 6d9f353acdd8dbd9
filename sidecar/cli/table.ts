import { escapeText } from "../util/escape.js";

/**
 * Rows as left-aligned columns two spaces apart, without trailing blanks; "" for no rows. Every
 * cell is shown with its non-printable characters escaped (`\x1b`), so data cannot drive the terminal.
 */
export function table(rows: string[][]): string {
  if (rows.length === 0) return "";
  const shown = rows.map((r) => r.map((c) => escapeText(c)));
  const widths = (shown[0] ?? []).map((_, i) => Math.max(...shown.map((r) => (r[i] ?? "").length)));
  return shown
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i] ?? 0))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}
