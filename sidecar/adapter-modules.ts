import { pathToFileURL } from "node:url";
import type { Adapter } from "../adapters/adapter.js";

/** Loads DBAs' own adapter modules and checks each against the contract, naming what is missing. */
export async function loadAdapterModules(
  files: readonly string[],
  known: ReadonlyMap<string, Adapter<unknown>>,
): Promise<Adapter<unknown>[]> {
  const out: Adapter<unknown>[] = [];
  const ids = new Set(known.keys());
  for (const file of files) {
    const mod = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
    const candidates = Object.values(mod).filter(
      (v): v is Record<string, unknown> => v !== null && typeof v === "object" && "id" in v && "verify" in v,
    );
    if (candidates.length === 0)
      throw new Error(`adapter module ${file}: exports no object with "id" and "verify"`);
    for (const c of candidates) {
      const missing: string[] = [];
      if (typeof c.id !== "string" || c.id === "") missing.push("id (a non-empty string)");
      if (typeof c.verify !== "function") missing.push("verify()");
      if (typeof c.rotate !== "function") missing.push("rotate()");
      if (typeof c.checkAccountName !== "function") missing.push("checkAccountName()");
      const cfg = c.config as { safeParse?: unknown } | undefined;
      if (!cfg || typeof cfg.safeParse !== "function") missing.push("config (a zod schema)");
      const cons = c.constraints as { minLength?: unknown } | undefined;
      if (!cons || typeof cons.minLength !== "number") missing.push("constraints");
      if (missing.length) throw new Error(`adapter module ${file}: missing ${missing.join(", ")}`);
      if (ids.has(c.id as string))
        throw new Error(`adapter module ${file}: adapter id "${String(c.id)}" is already taken`);
      ids.add(c.id as string);
      out.push(c as unknown as Adapter<unknown>);
    }
  }
  return out;
}
