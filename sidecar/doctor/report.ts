import type { DoctorCheck } from "./types.js";

/** The report as text: one line per check, its fix indented under each problem, then a summary. */
export function formatReport(checks: readonly DoctorCheck[]): string {
  const lines: string[] = [];
  for (const c of checks) {
    lines.push(`${c.status.padEnd(4)} ${c.check}: ${c.detail}`);
    if (c.fix && c.status !== "ok") lines.push(`     fix: ${c.fix}`);
  }
  const failed = checks.filter((c) => c.status === "FAIL").length;
  const warned = checks.filter((c) => c.status === "warn").length;
  lines.push(
    failed === 0 && warned === 0
      ? `all ${checks.length} checks ok`
      : `${failed} failed, ${warned} warning${warned === 1 ? "" : "s"}, ${checks.length - failed - warned} ok`,
  );
  return lines.join("\n");
}

/** True when no check failed (warnings do not fail the run). */
export function passed(checks: readonly DoctorCheck[]): boolean {
  return checks.every((c) => c.status !== "FAIL");
}
