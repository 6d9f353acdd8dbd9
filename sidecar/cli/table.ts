/** Rows as left-aligned columns two spaces apart, without trailing blanks; "" for no rows. */
export function table(rows: string[][]): string {
  if (rows.length === 0) return "";
  const widths = (rows[0] ?? []).map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  return rows
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i] ?? 0))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}
