/** The value every label beyond the bound is folded into. */
export const OVERFLOW_LABEL = "_other";

/**
 * Keeps a label's value set bounded: the first `max` distinct values pass, later ones become
 * `_other`, so a flood of names (a misbehaving client, a renamed pool) cannot blow up a scrape.
 */
export class LabelGuard {
  private readonly seen = new Set<string>();

  constructor(private readonly max: number) {}

  /** The value to use as a label for `v`. */
  value(v: string | undefined): string {
    const s = v === undefined || v === "" ? "unknown" : v;
    if (this.seen.has(s)) return s;
    if (this.seen.size >= this.max) return OVERFLOW_LABEL;
    this.seen.add(s);
    return s;
  }
}
