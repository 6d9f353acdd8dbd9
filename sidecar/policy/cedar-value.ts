import type { AttributeType } from "./schema.js";

/** Whether a JSON value has the Cedar type, as strict validation would accept it (a Long is a safe integer). */
export function fitsCedarType(value: unknown, type: AttributeType): boolean {
  switch (type) {
    case "String":
      return typeof value === "string";
    case "Bool":
      return typeof value === "boolean";
    case "Long":
      return Number.isSafeInteger(value);
    case "Set<String>":
      return Array.isArray(value) && value.every((v) => typeof v === "string");
  }
}
