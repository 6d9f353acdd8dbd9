import { LeaseholdError } from "../errors.js";
import type { KvEntry, SecretStore } from "../secrets/index.js";
import type { CallResult } from "./metrics.js";

/** Receives the duration (seconds) and result of each Vault call. */
export type VaultCallObserver = (op: string, seconds: number, result: CallResult) => void;

function resultOf(err: unknown): CallResult {
  return err instanceof LeaseholdError && err.code === "conflict" ? "conflict" : "error";
}

/**
 * Wraps a SecretStore so every call is timed and its outcome counted; behaviour is unchanged
 * (results and errors pass through).
 */
export function instrumentSecretStore(store: SecretStore, observe: VaultCallObserver): SecretStore {
  const timed = async <T>(op: string, call: () => Promise<T>): Promise<T> => {
    const started = process.hrtime.bigint();
    const seconds = () => Number(process.hrtime.bigint() - started) / 1e9;
    try {
      const out = await call();
      observe(op, seconds(), "ok");
      return out;
    } catch (err) {
      observe(op, seconds(), resultOf(err));
      throw err;
    }
  };
  return {
    read: <T>(path: readonly string[]): Promise<KvEntry<T> | null> =>
      timed("read", () => store.read<T>(path)),
    write: <T extends object>(path: readonly string[], data: T, cas?: number) =>
      timed("write", () => store.write(path, data, cas)),
    list: (path) => timed("list", () => store.list(path)),
    remove: (path) => timed("remove", () => store.remove(path)),
    ready: async () => {
      const started = process.hrtime.bigint();
      const ok = await store.ready();
      observe("ready", Number(process.hrtime.bigint() - started) / 1e9, ok ? "ok" : "error");
      return ok;
    },
    health: async () => {
      const started = process.hrtime.bigint();
      const h = await store.health();
      observe("ready", Number(process.hrtime.bigint() - started) / 1e9, h.ok ? "ok" : "error");
      return h;
    },
    close: () => store.close(),
  };
}
