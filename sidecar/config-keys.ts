import { closeMatch } from "./util/close-match.js";

/* Where an unknown key of leasehold.yaml is looked up among the schema's known ones. */

/** The parts of a zod schema's definition the key lookup below reads. */
interface SchemaDef {
  readonly type: string;
  readonly innerType?: unknown;
  readonly in?: unknown;
  readonly getter?: () => unknown;
  readonly options?: readonly unknown[];
  readonly shape?: Readonly<Record<string, unknown>>;
  readonly element?: unknown;
  readonly valueType?: unknown;
}

/** The objects, arrays and records `schema` may be, through defaults, optionals, pipes and unions. */
function shapesOf(schema: unknown): SchemaDef[] {
  const def = (schema as { _zod?: { def?: SchemaDef } })._zod?.def;
  if (def === undefined) return [];
  if (def.innerType !== undefined) return shapesOf(def.innerType);
  if (def.type === "pipe") return shapesOf(def.in);
  if (def.type === "lazy" && def.getter) return shapesOf(def.getter());
  if (def.type === "union") return (def.options ?? []).flatMap(shapesOf);
  return ["object", "array", "record"].includes(def.type) ? [def] : [];
}

/** The keys `schema` knows for the object at `path` (every branch of a union's). */
function knownKeysAt(schema: unknown, path: readonly PropertyKey[]): string[] {
  let here = shapesOf(schema);
  for (const step of path) {
    here = here.flatMap((d) => {
      if (d.type === "object" && typeof step === "string" && d.shape && Object.hasOwn(d.shape, step))
        return shapesOf(d.shape[step]);
      if (d.type === "array" && typeof step === "number") return shapesOf(d.element);
      if (d.type === "record") return shapesOf(d.valueType);
      return [];
    });
  }
  return [...new Set(here.flatMap((d) => (d.type === "object" ? Object.keys(d.shape ?? {}) : [])))];
}

/** The known key an unknown one of `schema` (leasehold.yaml's) is close to: `listen.hots` → `host`. */
export function closeKeyIn(schema: unknown) {
  return (path: readonly PropertyKey[], key: string): string | undefined =>
    closeMatch(key, knownKeysAt(schema, path));
}
