import { readdir, stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { type FileLine, linesBackward, linesForward } from "./file-lines.js";
import type { AuditRecord } from "./types.js";

/**
 * Rotated files are named `<file>.<n>` with n counting up from 1: a higher number is newer, and
 * the live file (no suffix) is the newest of all. A file and its rotated files form one chain.
 */
const ROTATED = /^(.*)\.(\d+)$/;

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

async function exists(file: string): Promise<boolean> {
  try {
    await stat(file);
    return true;
  } catch {
    return false;
  }
}

/** The rotated files of `file` with their numbers, oldest first. */
export async function rotatedFiles(file: string): Promise<Array<{ path: string; index: number }>> {
  const dir = dirname(file);
  const re = new RegExp(`^${escapeRegExp(basename(file))}\\.(\\d+)$`);
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  const out: Array<{ path: string; index: number }> = [];
  for (const name of names) {
    const m = re.exec(name);
    if (m?.[1]) out.push({ path: join(dir, name), index: Number(m[1]) });
  }
  return out.sort((a, b) => a.index - b.index);
}

/** Every file of the chain whose live file is `file`, in chain order (oldest first, live last). */
export async function auditFileSet(file: string): Promise<string[]> {
  const rotated = (await rotatedFiles(file)).map((r) => r.path);
  return (await exists(file)) ? [...rotated, file] : rotated;
}

/** The name the live file gets when it is rotated now. */
export async function nextRotatedPath(file: string): Promise<string> {
  const last = (await rotatedFiles(file)).at(-1);
  return `${file}.${(last?.index ?? 0) + 1}`;
}

/**
 * Groups files named on a command line into chains (by live-file name) and puts each chain in
 * order, whatever order the shell globbed them in (`audit.jsonl.10` after `audit.jsonl.9`).
 */
export function groupAuditFiles(files: readonly string[]): string[][] {
  const chains = new Map<string, Array<{ path: string; index: number }>>();
  for (const f of files) {
    const m = ROTATED.exec(f);
    // `x.3` is a rotated file of `x` unless `x.3` itself was given as a live file with its own rotated files.
    const base = m?.[1] !== undefined && !files.some((o) => o.startsWith(`${f}.`)) ? m[1] : f;
    const index = base === f ? Number.POSITIVE_INFINITY : Number(m?.[2]);
    const list = chains.get(base) ?? [];
    list.push({ path: f, index });
    chains.set(base, list);
  }
  return [...chains.values()].map((l) => l.sort((a, b) => a.index - b.index).map((x) => x.path));
}

function parse(line: FileLine | undefined): AuditRecord | null {
  if (!line) return null;
  return JSON.parse(line.text) as AuditRecord;
}

/** The last complete record of a file, or null when it has none. Throws if that line is not JSON. */
export async function lastRecordOf(file: string): Promise<AuditRecord | null> {
  if (!(await exists(file))) return null;
  const it = linesBackward(file);
  try {
    return parse((await it.next()).value ?? undefined);
  } finally {
    await it.return(undefined);
  }
}

/** The first record of a file, or null when it is empty or its first line is not a record. */
export async function firstRecordOf(file: string): Promise<AuditRecord | null> {
  const it = linesForward(file);
  try {
    const first = (await it.next()).value ?? undefined;
    if (!first?.complete) return null;
    try {
      return parse(first);
    } catch {
      return null;
    }
  } finally {
    await it.return(undefined);
  }
}

/** The last record of a whole chain: the live file's, else the newest rotated file's. */
export async function lastRecordOfSet(file: string): Promise<AuditRecord | null> {
  const set = await auditFileSet(file);
  for (let i = set.length - 1; i >= 0; i--) {
    const rec = await lastRecordOf(set[i] as string);
    if (rec) return rec;
  }
  return null;
}
