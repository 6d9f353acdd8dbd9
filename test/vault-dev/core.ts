import { approleFromOptions, createApproleBackend } from "./auth-approle.js";
import { type JwtRole, createJwtBackend } from "./auth-jwt.js";
import { createTokenBackend } from "./auth-token.js";
import { createKv2Backend } from "./kv2.js";
import { PolicyStore } from "./policies.js";
import { VaultRouter } from "./router.js";
import { type DevState, loadState, saveState, serializeState } from "./state.js";
import { createSysBackend } from "./sys.js";
import { TokenStore } from "./token-store.js";

/** The settings the core needs (the server options minus networking). */
export interface CoreOptions {
  readonly rootToken: string;
  readonly kvMount: string;
  readonly persistFile?: string;
  readonly approleRoles: Readonly<
    Record<string, { roleId: string; secretId: string; policies: string[]; tokenTtl?: number }>
  >;
  readonly jwtRoles: Readonly<Record<string, JwtRole>>;
  readonly policies: Readonly<Record<string, string>>;
}

/** The server minus HTTP: state, stores, mounts, router, seal flag and persistence. */
export class VaultCore {
  readonly router: VaultRouter;
  private readonly state: DevState;
  private sealed = false;
  private dirty = false;
  private lastSaved = "";

  constructor(private readonly options: CoreOptions) {
    this.state = loadState(options.persistFile);
    const onChange = (): void => {
      this.dirty = true;
    };
    const now = Date.now();
    const tokens = new TokenStore(this.state.tokens, onChange);
    tokens.ensureRoot(options.rootToken, now);
    const policies = new PolicyStore(this.state.policies, onChange);
    for (const [name, text] of Object.entries(options.policies)) policies.set(name.toLowerCase(), text);
    for (const [name, role] of Object.entries(options.approleRoles)) {
      const existing = this.state.approle[name];
      const configured = approleFromOptions(role);
      // Keep secret IDs issued at run time across restarts; the configured ones always work.
      this.state.approle[name] = existing
        ? { ...configured, secretIds: { ...existing.secretIds, ...configured.secretIds } }
        : configured;
    }
    const mount = options.kvMount.replace(/^\/+|\/+$/g, "");
    this.router = new VaultRouter({
      mounts: [
        { path: `${mount}/`, backend: createKv2Backend(this.state.kv, onChange) },
        { path: "auth/token/", backend: createTokenBackend(tokens, policies) },
        { path: "auth/approle/", backend: createApproleBackend(this.state.approle, tokens, onChange) },
        { path: "auth/jwt/", backend: createJwtBackend(options.jwtRoles, tokens) },
        { path: "sys/", backend: createSysBackend(policies, tokens, this.state.wrapped) },
      ],
      tokens,
      policies,
      wrapped: this.state.wrapped,
      now: () => Date.now(),
      status: () => ({
        sealed: this.sealed,
        clusterName: this.state.cluster.name,
        clusterId: this.state.cluster.id,
        storageType: options.persistFile ? "file" : "inmem",
        now: Date.now(),
      }),
    });
    this.dirty = true;
    this.persist();
  }

  /** True while sealed: logical paths answer 503. */
  isSealed(): boolean {
    return this.sealed;
  }

  /** The `seal()`/`unseal()` switch (no keys: a dev server unseals at will). */
  setSealed(sealed: boolean): void {
    this.sealed = sealed;
  }

  /** Writes the state file if anything changed since the last write (no-op without a file). */
  persist(): void {
    const file = this.options.persistFile;
    if (file === undefined || !this.dirty) return;
    this.dirty = false;
    const serialized = serializeState(this.state);
    if (serialized === this.lastSaved) return;
    saveState(file, serialized);
    this.lastSaved = serialized;
  }
}
