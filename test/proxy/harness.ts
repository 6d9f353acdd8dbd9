import { expect } from "vitest";
import type { CallerAttestation } from "../../sidecar/attest/types.js";
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import type { JWK } from "jose";
import type { Adapter } from "../../adapters/adapter.js";
import { builtinAdapters } from "../../adapters/registry.js";
import { ApprovalStore } from "../../sidecar/approvals/approval-store.js";
import { AuditLog } from "../../sidecar/audit/index.js";
import { LeaseEventChannel } from "../../sidecar/events/index.js";
import {
  agentKeyFileStem,
  createIdentityVerifier,
  createLeaseTokenService,
  generateAgentKey,
  loadLeaseTokenKeys,
  mintIdentityAssertion,
} from "../../sidecar/identity/index.js";
import { LeaseStore, loadLeaseMacKey, Reaper } from "../../sidecar/leases/index.js";
import { createLogger, type Logger } from "../../sidecar/logger.js";
import { loadPolicy, type PolicyEngine } from "../../sidecar/policy/index.js";
import { type ProxyManagerOptions, ProxyManager } from "../../sidecar/proxy/index.js";
import { ResourceCatalog } from "../../sidecar/resources/catalog.js";
import type { StoredRegistration } from "../../sidecar/resources/types.js";
import { RotationEngine } from "../../sidecar/rotation/index.js";
import { VaultStore } from "../../sidecar/secrets/index.js";
import { LeaseService } from "../../sidecar/service/lease-service.js";
import { ResourceService } from "../../sidecar/service/resource-service.js";
import { dropPrefix, REDIS_URL, testPrefix } from "../support/redis.js";
import { useVault, type VaultHandle } from "../support/vault.js";

/** Agents may read any resource (the proxy tests are not about policy). */
const POLICY = `@id("proxy-tests")
permit (
  principal,
  action in [Action::"checkout", Action::"reveal", Action::"renew", Action::"tool_call"],
  resource
)
when { context.intent == "read" };
`;

/** One in-process sidecar, wired the way sidecar/wire.ts wires it (no HTTP). */
export interface ProxyNode {
  readonly leaseService: LeaseService;
  readonly resourceService: ResourceService;
  readonly catalog: ResourceCatalog;
  readonly audit: AuditLog;
  /** The node's lease-event channel (its proxy managers subscribe to it). */
  readonly events: LeaseEventChannel;
  readonly redis: Redis;
  /** The node's policy engine (the harness' policy file). */
  readonly policy: PolicyEngine;
  close(): Promise<void>;
}

export interface Checkout {
  readonly leaseId: string;
  readonly token: string;
  readonly account: string;
}

export interface ProxyHarness {
  readonly dir: string;
  readonly prefix: string;
  readonly vault: VaultHandle;
  readonly log: Logger;
  /** Every log line written by the sidecar parts and the proxy. */
  readonly logLines: string[];
  /** Every token and password the test saw, to check none leaked into logs or audit. */
  readonly secrets: string[];
  readonly node: ProxyNode;
  readonly auditFile: string;
  /**
   * With `auditStream`: whether the primary node's statement records go to the stream too
   * (`audit.stream.statements`); settable between runs.
   */
  readonly auditMirror: { statements: boolean };
  /** Another sidecar of the same cluster (same Redis prefix, same Vault prefix). */
  addNode(): Promise<ProxyNode>;
  register(reg: Record<string, unknown>): Promise<StoredRegistration>;
  /** `caller`: who checks out (issue 22); without it the checkout has no caller and binds nothing. */
  checkout(
    resource: string,
    opts?: {
      ttl?: number;
      agent?: "a" | "b";
      caller?: () => Promise<CallerAttestation>;
      /** @default "read" */
      intent?: string;
      /** When policy asks for an approval: this human approves it, and the lease is redeemed. */
      approver?: string;
    },
  ): Promise<Checkout>;
  /** A proxy manager bound to the primary node, synced with every registration. */
  manager(opts?: Partial<ProxyManagerOptions>): Promise<ProxyManager>;
  auditRecords(): Promise<Array<Record<string, unknown>>>;
  /** Fails when any of `secrets` (at least one) appears in the logs or the audit trail. */
  expectNoSecretLeaked(): Promise<void>;
  close(): Promise<void>;
}

/** The port of `resource`'s listener on `manager`; throws when it has none. */
export function listenerPort(manager: ProxyManager, resource: string): number {
  const ep = manager.endpointFor(resource);
  if (!ep) throw new Error(`no listener for ${resource}`);
  return ep.port;
}

const AGENTS = { a: "spiffe://example.org/agent/a", b: "spiffe://example.org/agent/b" } as const;

/**
 * A whole sidecar in this process against local Redis (own prefix), a Vault (own prefix) and
 * whatever targets the test starts, plus helpers to register, check out and build proxies.
 */
export async function startProxyHarness(opts: {
  name: string;
  /** Cedar policy text in place of the default (agents may check out with intent read). */
  policy?: string;
  /**
   * Mirror the primary node's audit records to the Redis stream `<prefix>audit`, as `leasehold
   * serve` does by default (statement records too with "statements", as `audit.stream.statements`).
   */
  auditStream?: boolean | "statements";
}): Promise<ProxyHarness> {
  const auditMirror = { statements: opts.auditStream === "statements" };
  const dir = await mkdtemp(join(tmpdir(), `leasehold-${opts.name}-`));
  const prefix = testPrefix(opts.name);
  const vaultPrefix = `leasehold-${opts.name}-${randomBytes(4).toString("hex")}`;
  const vault = await useVault();
  const logLines: string[] = [];
  const log = createLogger("debug", { write: (s: string) => void logLines.push(s) });
  const secrets: string[] = [];
  const trustDir = join(dir, "trust");
  for (const id of Object.values(AGENTS)) await generateAgentKey({ id, outDir: trustDir });
  const policyFile = join(dir, "policy.cedar");
  await writeFile(policyFile, opts.policy ?? POLICY);
  const adapters = new Map<string, Adapter<unknown>>(builtinAdapters);
  const auditFile = join(dir, "audit.jsonl");
  const nodes: ProxyNode[] = [];
  const managers: ProxyManager[] = [];

  const buildNode = async (n: number): Promise<ProxyNode> => {
    const redis = new Redis(REDIS_URL, {
      maxRetriesPerRequest: 1,
      enableOfflineQueue: false,
      commandTimeout: 3000,
    });
    redis.on("error", () => undefined);
    await new Promise<void>((resolve, reject) => {
      redis.once("ready", () => resolve());
      redis.once("error", reject);
    });
    const secretsStore = new VaultStore({
      address: vault.address,
      auth: { method: "token", token: vault.token },
      mount: vault.mount,
      prefix: vaultPrefix,
      timeoutMs: 5000,
      log: log.child({ module: "vault", node: n }),
    });
    const audit = await AuditLog.open(
      n === 0 ? auditFile : join(dir, `audit-${n}.jsonl`),
      `px-node-${n}`,
      undefined,
      n === 0 && opts.auditStream
        ? {
            mirror: {
              redis,
              key: `${prefix}audit`,
              get statements() {
                return auditMirror.statements;
              },
            },
          }
        : {},
    );
    const leases = new LeaseStore({ redis, prefix, macKey: await loadLeaseMacKey(secretsStore) });
    const catalog = new ResourceCatalog(secretsStore);
    const keys = await loadLeaseTokenKeys({ file: join(dir, `signing-${n}.jwk`) });
    const jwksKey = `${prefix}jwks`;
    for (const k of keys.publicJwks().keys) if (k.kid) await redis.hset(jwksKey, k.kid, JSON.stringify(k));
    const tokens = createLeaseTokenService({
      keys,
      extraKeyResolver: async (kid: string) => {
        const raw = await redis.hget(jwksKey, kid);
        return raw ? (JSON.parse(raw) as JWK) : undefined;
      },
    });
    const identity = createIdentityVerifier({
      audience: "leasehold",
      trust: [
        {
          kind: "agents",
          jwks: join(trustDir, "agents.jwks.json"),
          subjects: ["spiffe://example.org/agent/*"],
        },
      ],
      maxTokenLifetime: 3600,
      clockSkew: 30,
    });
    const policy = await loadPolicy({ file: policyFile });
    const events = new LeaseEventChannel({ redis, prefix, log });
    const rotation = new RotationEngine({
      secrets: secretsStore,
      leases,
      catalog,
      adapters,
      audit,
      events,
      redis,
      prefix,
      log: log.child({ module: "rotation", node: n }),
      maxFailures: 3,
      backoff: 1,
      maxBackoff: 5,
    });
    const leaseService = new LeaseService({
      // As wire/services.ts: the checkout names the listener and, for PostgreSQL, stores the token's SCRAM verifier.
      proxyEndpoint: (resource) =>
        managers.map((m) => m.endpointFor(resource)).find((ep) => ep !== undefined),
      leases,
      secrets: secretsStore,
      catalog,
      rotation,
      identity,
      tokens,
      policy,
      audit,
      events,
      log,
      approvals: new ApprovalStore(redis, prefix, { minApprovers: 1, maxPendingPerAgent: 5 }),
    });
    const resourceService = new ResourceService({
      secrets: secretsStore,
      leases,
      catalog,
      rotation,
      adapters,
      audit,
      log,
    });
    const reaper = new Reaper({
      leases,
      expire: (resource, leaseId) => leaseService.endLease(resource, leaseId, "expired"),
      intervalMs: 100,
      log: log.child({ module: "reaper", node: n }),
    });
    reaper.start();
    const node: ProxyNode = {
      leaseService,
      resourceService,
      catalog,
      audit,
      events,
      redis,
      policy,
      close: async () => {
        reaper.stop();
        rotation.stop();
        secretsStore.close();
        await audit.close();
        redis.disconnect();
      },
    };
    nodes.push(node);
    return node;
  };

  let node: ProxyNode;
  try {
    node = await buildNode(0);
  } catch (err) {
    await Promise.allSettled([...nodes.map((n) => n.close()), vault.close(), dropPrefix(prefix)]);
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  const harness: ProxyHarness = {
    dir,
    prefix,
    vault,
    log,
    logLines,
    secrets,
    node,
    auditFile,
    auditMirror,
    addNode: () => buildNode(nodes.length),
    register: async (reg) => {
      const out = await node.resourceService.register(reg, {
        dryRun: false,
        actor: "test",
        requestId: "req_test",
      });
      const stored = await node.catalog.get(out.resource.name);
      if (!stored) throw new Error("registration not stored");
      return stored;
    },
    checkout: async (resource, o = {}) => {
      const agent = AGENTS[o.agent ?? "a"];
      const jwt = await mintIdentityAssertion({
        keyFile: join(trustDir, `${agentKeyFileStem(agent)}.key.jwk`),
        audience: "leasehold",
      });
      const res = await node.leaseService.checkout(
        jwt,
        {
          resource,
          task: { id: "PX-1" },
          intent: { action: o.intent ?? "read", tool: "psql" },
          ttl: o.ttl ?? 120,
          wait: 20,
        },
        { requestId: `req_${randomBytes(4).toString("hex")}`, caller: o.caller },
      );
      if (!("token" in res)) {
        if (!o.approver || !("approval" in res))
          throw new Error("checkout needs an approval; the test policy should allow it");
        const meta = { requestId: `req_${randomBytes(4).toString("hex")}` };
        await node.leaseService.decideApproval(res.approval.id, true, o.approver, undefined, meta);
        const again = await mintIdentityAssertion({
          keyFile: join(trustDir, `${agentKeyFileStem(agent)}.key.jwk`),
          audience: "leasehold",
        });
        const polled = (await node.leaseService.pollApproval(again, res.approval.id, meta)).approval as {
          lease?: { id: string; account: string };
          token?: string;
        };
        if (!polled.lease || !polled.token) throw new Error("the approved checkout gave no lease");
        secrets.push(polled.token, jwt, again);
        return { leaseId: polled.lease.id, token: polled.token, account: polled.lease.account };
      }
      secrets.push(res.token, jwt);
      return { leaseId: res.lease.id, token: res.token, account: res.lease.account };
    },
    manager: async (o = {}) => {
      const m = new ProxyManager({
        leases: node.leaseService,
        events: node.events,
        redis: node.redis,
        prefix,
        audit: node.audit,
        log,
        ...o,
      });
      managers.push(m);
      const report = await m.sync(await node.catalog.load());
      if (report.failed.length > 0) throw new Error(`proxy sync failed: ${JSON.stringify(report.failed)}`);
      return m;
    },
    auditRecords: async () =>
      (await readFile(auditFile, "utf8"))
        .split("\n")
        .filter((l) => l.trim() !== "")
        .map((l) => JSON.parse(l) as Record<string, unknown>),
    expectNoSecretLeaked: async () => {
      const audit = await readFile(auditFile, "utf8");
      const logs = logLines.join("\n");
      expect(secrets.length).toBeGreaterThan(0);
      for (const s of secrets) {
        expect(audit.includes(s), "a secret in the audit trail").toBe(false);
        expect(logs.includes(s), "a secret in the logs").toBe(false);
      }
    },
    close: async () => {
      await Promise.allSettled(managers.map((m) => m.close()));
      await Promise.allSettled(nodes.map((n) => n.close()));
      await Promise.allSettled([vault.close(), dropPrefix(prefix)]);
      await rm(dir, { recursive: true, force: true });
    },
  };
  return harness;
}
