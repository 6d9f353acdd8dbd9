import { canonicalJson } from "./canonical.js";
import { RESERVED, type SealContext, type SealedRecord, sealed, sealLine } from "./chain.js";
import { scrubValue } from "./scrub.js";
import type { AuditFields } from "./types.js";

/** A value of a template's variable key: what a statement record varies by. */
export type TemplateValue = string | boolean | undefined;

type Step =
  /** `"key":value` pieces of constant fields, joined by commas. */
  | { readonly kind: "fixed"; readonly text: string }
  /** A variable key: `prefix` is `"key":`. */
  | { readonly kind: "value"; readonly key: string; readonly prefix: string }
  | { readonly kind: "time" | "sidecar" | "seq" | "prev" };

/**
 * Records that share most of their fields (one listener session's statement records), sealed
 * without building and serialising the shared fields again for each one: they are scrubbed and
 * serialised once, here, and each record only adds its own values (strings or booleans) and the
 * chain's fields. `seal` gives exactly what `sealLine` gives for the same fields (the same line,
 * hash and record); a value of another type takes `sealLine` itself.
 */
export class RecordTemplate<K extends string = string> {
  private readonly steps: Step[] = [];
  /** The fixed fields as the record carries them (scrubbed, as JSON gives them back). */
  private readonly fixed: Record<string, unknown> = {};
  private sidecar = "";
  private sidecarJson = "null";

  /**
   * @param fields the fields every record shares (a variable key here is overridden by its value)
   * @param keys the keys each record gives a value for (never a chain field, `agent` nor `agent_chain`)
   */
  constructor(
    private readonly fields: AuditFields,
    private readonly keys: readonly K[],
  ) {
    for (const k of keys) {
      if (RESERVED.has(k) || k === "agent" || k === "agent_chain") {
        throw new Error(`a record template cannot vary '${k}'`);
      }
    }
    const src = fields as unknown as Record<string, unknown>;
    const variable = new Set<string>(keys);
    const pieces = new Map<string, string>();
    for (const k of Object.keys(src)) {
      const v = src[k];
      if (v === undefined || RESERVED.has(k) || variable.has(k)) continue;
      // As sealLine: scrubbed, and as a reader parses it back from the line.
      const json = JSON.stringify(scrubValue(v));
      if (json === undefined) continue;
      const value = JSON.parse(json) as unknown;
      this.fixed[k] = value;
      pieces.set(k, `${JSON.stringify(k)}:${canonicalJson(value)}`);
    }
    if (src.agent !== undefined && src.agent_chain === undefined) {
      this.fixed.agent_chain = [];
      pieces.set("agent_chain", `"agent_chain":[]`);
    }
    const chain = ["time", "sidecar", "seq", "prev"] as const;
    const all = [...pieces.keys(), ...variable, ...chain].sort();
    let run: string[] = [];
    const endRun = () => {
      if (run.length > 0) this.steps.push({ kind: "fixed", text: run.join(",") });
      run = [];
    };
    for (const k of all) {
      const piece = pieces.get(k);
      if (piece !== undefined) {
        run.push(piece);
        continue;
      }
      endRun();
      if ((chain as readonly string[]).includes(k)) this.steps.push({ kind: k as (typeof chain)[number] });
      else this.steps.push({ kind: "value", key: k, prefix: `${JSON.stringify(k)}:` });
    }
    endRun();
  }

  /**
   * The whole fields of a record with these values (for a sink that takes fields only). Each
   * value is read by its key, so `values` may compute one in a getter.
   */
  fieldsWith(values: Readonly<Record<K, TemplateValue>>): AuditFields {
    const out: Record<string, unknown> = Object.assign({}, this.fields as unknown as Record<string, unknown>);
    for (const k of this.keys) out[k] = values[k];
    return out as unknown as AuditFields;
  }

  /** `sealLine(fieldsWith(values), ctx)`, without serialising the shared fields again. */
  seal(values: Readonly<Record<K, TemplateValue>>, ctx: SealContext): SealedRecord {
    const own = values as Readonly<Record<string, TemplateValue>>;
    // Object.assign, not a spread: V8 turns a spread clone that then gets more keys into a slow
    // object (about 10 µs a record).
    const record: Record<string, unknown> = Object.assign({}, this.fixed);
    let out = "{";
    let first = true;
    for (const step of this.steps) {
      let piece: string;
      switch (step.kind) {
        case "fixed":
          piece = step.text;
          break;
        case "value": {
          const v = own[step.key];
          if (v === undefined) continue;
          if (typeof v === "string") {
            const clean = scrubValue(v) as string;
            record[step.key] = clean;
            piece = step.prefix + JSON.stringify(clean);
          } else if (typeof v === "boolean") {
            record[step.key] = v;
            piece = step.prefix + (v ? "true" : "false");
          } else return sealLine(this.fieldsWith(values), ctx);
          break;
        }
        case "time":
          piece = `"time":${JSON.stringify(ctx.time)}`;
          break;
        case "sidecar":
          if (ctx.sidecar !== this.sidecar) {
            this.sidecar = ctx.sidecar;
            this.sidecarJson = JSON.stringify(ctx.sidecar);
          }
          piece = `"sidecar":${this.sidecarJson}`;
          break;
        case "seq":
          if (!Number.isSafeInteger(ctx.seq)) return sealLine(this.fieldsWith(values), ctx);
          piece = `"seq":${ctx.seq}`;
          break;
        case "prev":
          piece = `"prev":${JSON.stringify(ctx.prev)}`;
          break;
      }
      out += first ? piece : `,${piece}`;
      first = false;
    }
    const canonical = `${out}}`;
    record.time = ctx.time;
    record.sidecar = ctx.sidecar;
    record.seq = ctx.seq;
    record.prev = ctx.prev;
    return sealed(record, canonical, ctx.hmacKey);
  }
}

/** A deferred record given as a template and its own values (`AuditSink.appendDeferred`). */
export class TemplatedFields<K extends string = string> {
  constructor(
    readonly template: RecordTemplate<K>,
    readonly values: Readonly<Record<K, TemplateValue>>,
  ) {}
}
