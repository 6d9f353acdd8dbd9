/**
 * The edit distance of two strings (optimal string alignment: insertions, deletions,
 * substitutions and swaps of two adjacent characters each count one, so `hots` is one edit from
 * `host`), computed over UTF-16 code units with two rows of memory.
 */
export function editDistance(a: string, b: string): number {
  if (a === b) return 0;
  if (a.length === 0) return b.length;
  if (b.length === 0) return a.length;
  let before: number[] = [];
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min((row[j] ?? 0) + 1, (next[j - 1] ?? 0) + 1, (row[j - 1] ?? 0) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        d = Math.min(d, (before[j - 2] ?? 0) + 1);
      next[j] = d;
    }
    before = row;
    row = next;
  }
  return row[b.length] ?? 0;
}

/**
 * The candidate closest to `input` (case-insensitive), when it is close enough to be a typo: at
 * most a third of the longer string's length apart (at least one edit). Undefined otherwise, or
 * when `input` is one of the candidates.
 */
export function closeMatch(input: string, candidates: readonly string[]): string | undefined {
  const wanted = input.toLowerCase();
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const c of candidates) {
    const d = editDistance(wanted, c.toLowerCase());
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  if (best === undefined || best === input) return undefined;
  const limit = Math.max(1, Math.floor(Math.max(wanted.length, best.length) / 3));
  return bestDistance <= limit ? best : undefined;
}

/**
 * Why a value is not among `valid`: "did you mean" a close match, then every valid value. Never
 * echoes the input (it may be anything).
 */
export function notOneOfMessage(input: unknown, valid: readonly string[]): string {
  const near = typeof input === "string" ? closeMatch(input, valid) : undefined;
  const hint = near === undefined ? "" : ` (did you mean "${near}"?)`;
  return `unknown value${hint}; valid values: ${valid.join(", ")}`;
}

/** {@link notOneOfMessage} for one field: `event: unknown value (did you mean "reveal"?); valid values: …`. */
export function unknownValueMessage(field: string, input: string, valid: readonly string[]): string {
  return `${field}: ${notOneOfMessage(input, valid)}`;
}
