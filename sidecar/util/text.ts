import { z } from "zod";

// The escaping half lives in escape.ts (no zod), so the CLI can load it cheaply.
export { escapeLines, escapeText, jsonSafe } from "./escape.js";

/*
 * "Text is text": what the API accepts as an identifier or free text, and how anything shown on
 * a terminal or a page is made harmless when it was stored before that rule (or comes from a
 * sidecar of an older version).
 */

/**
 * What the API refuses in any identifier or free-text field: C0 and C1 control characters (tab
 * and newline included), the bidirectional marks, embeddings, overrides and isolates that make
 * text read differently from what it is (U+061C, U+200E/F, U+202A-U+202E, U+2066-U+2069), the
 * line and paragraph separators U+2028/U+2029, and lone surrogates.
 */
const REFUSED = /[\p{Cc}\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029\p{Cs}]/u;

export const PLAIN_TEXT_RULE = "must not contain control characters or bidirectional overrides";

/** True when `s` holds a character the API refuses in identifiers and free text. */
export function hasRefusedChars(s: string): boolean {
  return REFUSED.test(s);
}

/**
 * A zod string of at most `max` characters (at least `min`, default 0) that refuses control
 * characters and bidi overrides: a 400 naming the field, never echoing the value.
 */
export function plainText(max: number, min = 0) {
  return z
    .string()
    .min(min)
    .max(max)
    .refine((s) => !hasRefusedChars(s), PLAIN_TEXT_RULE);
}
