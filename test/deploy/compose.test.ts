import { existsSync, readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { parse as parseYaml } from "yaml";
import { describe, expect, it } from "vitest";
import { builtinAdapters } from "../../adapters/registry.js";
import { type Config, parseConfig } from "../../sidecar/config.js";
import { validatePolicyFile } from "../../sidecar/policy/index.js";
import { registrationSchema } from "../../sidecar/resources/types.js";
import { repoRoot } from "../support/sidecar-process.js";

/*
 * There is no Docker engine on these machines, so compose.yaml and the Dockerfile are checked
 * as data: every service, image, port, healthcheck, volume and start-order condition, and the
 * sidecar's mounted config through the sidecar's own parseConfig. deploy/demo-agent.mjs itself
 * runs against real services in demo-agent.test.ts.
 */

interface Service {
  image?: string;
  build?: string;
  command?: string[];
  entrypoint?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  ports?: string[];
  healthcheck?: { test: string[] };
  depends_on?: Record<string, { condition: string }>;
  read_only?: boolean;
  tmpfs?: string[];
  cap_drop?: string[];
  restart?: string;
}

const root = repoRoot();
const compose = parseYaml(await readFile(join(root, "compose.yaml"), "utf8"), { merge: true }) as {
  services: Record<string, Service>;
  volumes: Record<string, unknown>;
};
const services = compose.services;
const svc = (name: string): Service => {
  const s = services[name];
  if (!s) throw new Error(`compose.yaml has no service ${name}`);
  return s;
};

/** `source:target[:mode]` of a service's volumes. */
function mounts(s: Service): Array<{ source: string; target: string; readOnly: boolean }> {
  return (s.volumes ?? []).map((v) => {
    const [source = "", target = "", mode] = v.split(":");
    return { source, target, readOnly: mode === "ro" };
  });
}

function mountOf(s: Service, target: string) {
  return mounts(s).find((m) => m.target === target);
}

/** The file inside the container is under a mount of this service (the deepest one). */
function mountHolding(s: Service, path: string) {
  return mounts(s)
    .filter((m) => path === m.target || path.startsWith(`${m.target}/`))
    .sort((a, b) => b.target.length - a.target.length)[0];
}

const leasehold = svc("leasehold");
const configMount = mountOf(leasehold, "/etc/leasehold/leasehold.yaml");
const sidecarConfig: Config = parseConfig(
  parseYaml(await readFile(join(root, configMount?.source ?? "missing"), "utf8")),
  "/etc/leasehold",
  leasehold.environment ?? {},
);

describe("compose.yaml", () => {
  it("has the services of the story, on the images it names", () => {
    expect(Object.keys(services).sort()).toEqual(
      ["demo-agent", "leasehold", "mariadb", "postgres", "redis", "vault", "vault-init"].sort(),
    );
    expect(svc("vault").image).toMatch(/^hashicorp\/vault:\d/);
    expect(svc("vault").command).toContain("-dev");
    expect(svc("vault-init").image).toBe(svc("vault").image);
    expect(svc("redis").image).toMatch(/^redis:(7|8)/);
    expect(svc("postgres").image).toMatch(/^postgres:\d+/);
    expect(svc("postgres").environment?.POSTGRES_INITDB_ARGS).toContain("scram-sha-256");
    expect(svc("mariadb").image).toMatch(/^mariadb:\d+/);
    expect(leasehold.build).toBe(".");
    expect(svc("demo-agent").image).toBe(leasehold.image);
  });

  it("runs Redis with AOF every second and without eviction, on a volume", () => {
    const cmd = svc("redis").command ?? [];
    const flag = (name: string) => cmd[cmd.indexOf(name) + 1];
    expect(flag("--appendonly")).toBe("yes");
    expect(flag("--appendfsync")).toBe("everysec");
    expect(flag("--maxmemory-policy")).toBe("noeviction");
    expect(mountOf(svc("redis"), "/data")?.source).toBe("redis-data");
  });

  it("gives every long-running service a healthcheck, and publishes ports on 127.0.0.1 only", () => {
    for (const [name, s] of Object.entries(services)) {
      if (s.restart === "no") continue;
      expect(s.healthcheck?.test?.[0], `${name} healthcheck`).toBe("CMD");
      expect((s.healthcheck?.test ?? []).length, name).toBeGreaterThan(1);
    }
    for (const [name, s] of Object.entries(services)) {
      for (const p of s.ports ?? []) expect(p, `${name} port`).toMatch(/^127\.0\.0\.1:\d+:\d+$/);
    }
    expect(leasehold.healthcheck?.test.join(" ")).toContain(`127.0.0.1:${sidecarConfig.listen.port}/healthz`);
    expect(leasehold.ports).toContain(`127.0.0.1:${sidecarConfig.listen.port}:${sidecarConfig.listen.port}`);
  });

  it("starts in order: each dependency exists and its condition is one it can meet", () => {
    for (const [name, s] of Object.entries(services)) {
      for (const [dep, { condition }] of Object.entries(s.depends_on ?? {})) {
        const target = svc(dep);
        if (condition === "service_healthy") expect(target.healthcheck, `${name} → ${dep}`).toBeDefined();
        else if (condition === "service_completed_successfully")
          expect(target.restart, `${name} → ${dep}`).toBe("no");
        else throw new Error(`${name} → ${dep}: unexpected condition ${condition}`);
      }
    }
    expect(leasehold.depends_on).toEqual({
      vault: { condition: "service_healthy" },
      "vault-init": { condition: "service_completed_successfully" },
      redis: { condition: "service_healthy" },
      postgres: { condition: "service_healthy" },
      mariadb: { condition: "service_healthy" },
    });
    expect(svc("demo-agent").depends_on?.leasehold).toEqual({ condition: "service_healthy" });
    expect(svc("vault-init").depends_on?.vault).toEqual({ condition: "service_healthy" });
    // No cycle: a topological order exists.
    const done = new Set<string>();
    for (let round = 0; round < Object.keys(services).length; round++) {
      for (const [name, s] of Object.entries(services)) {
        if (Object.keys(s.depends_on ?? {}).every((d) => done.has(d))) done.add(name);
      }
    }
    expect(done.size).toBe(Object.keys(services).length);
  });

  it("declares every named volume and mounts only files that exist", () => {
    for (const [name, s] of Object.entries(services)) {
      for (const m of mounts(s)) {
        if (m.source.startsWith("."))
          expect(existsSync(join(root, m.source)), `${name}: ${m.source}`).toBe(true);
        else expect(compose.volumes, `${name}: volume ${m.source}`).toHaveProperty(m.source);
      }
    }
  });

  it("runs the sidecar read-only, without capabilities, with its state on a volume", () => {
    expect(leasehold.read_only).toBe(true);
    expect(leasehold.cap_drop).toEqual(["ALL"]);
    expect(mountOf(leasehold, "/var/lib/leasehold")?.source).toBe("leasehold-state");
    for (const file of [
      sidecarConfig.tokens.signingKey,
      sidecarConfig.audit.file,
      sidecarConfig.admin.tokenFile,
      ...sidecarConfig.identity.trust.map((t) => t.jwks),
    ]) {
      const m = mountHolding(leasehold, file);
      expect(m?.target, file).toBe("/var/lib/leasehold");
      expect(m?.readOnly, file).toBe(false);
    }
    expect(mountHolding(leasehold, sidecarConfig.policy.file ?? "")?.source).toBe("./deploy/policy.cedar");
  });

  it("mounts a sidecar config that the sidecar's own parseConfig accepts, naming the compose services", () => {
    expect(configMount?.readOnly).toBe(true);
    expect(new URL(sidecarConfig.redis.url).hostname).toBe("redis");
    expect(new URL(sidecarConfig.vault.address).hostname).toBe("vault");
    expect(sidecarConfig.vault.auth).toMatchObject({
      method: "approle",
      roleId: svc("vault-init").environment?.LEASEHOLD_ROLE_ID,
      secretId: svc("vault-init").environment?.LEASEHOLD_SECRET_ID,
    });
    expect(sidecarConfig.listen.allowedHosts).toContain("leasehold");
    // An unknown key would stop the sidecar: the same validation refuses one here.
    const raw = parseYaml(readFileText(configMount?.source ?? "")) as Record<string, unknown>;
    expect(() => parseConfig({ ...raw, extra: 1 }, "/etc/leasehold", leasehold.environment ?? {})).toThrow(
      /unknown key "extra"/,
    );
  });

  it("gives the demo agent the sidecar's own paths, the services' credentials and Vault's layout", () => {
    const env = svc("demo-agent").environment ?? {};
    const url = new URL(env.LEASEHOLD_URL ?? "");
    expect(url.hostname).toBe("leasehold");
    expect(Number(url.port)).toBe(sidecarConfig.listen.port);
    expect(env.LEASEHOLD_ADMIN_TOKEN_FILE).toBe(sidecarConfig.admin.tokenFile);
    expect(env.LEASEHOLD_TRUST_BUNDLE).toBe(sidecarConfig.identity.trust[0]?.jwks);
    expect(env.LEASEHOLD_AUDIT_FILE).toBe(sidecarConfig.audit.file);
    expect(mountOf(svc("demo-agent"), "/var/lib/leasehold")?.source).toBe("leasehold-state");
    expect(env.PGHOST).toBe("postgres");
    expect(env.PGPASSWORD).toBe(svc("postgres").environment?.POSTGRES_PASSWORD);
    expect(new URL(env.VAULT_ADDR ?? "").hostname).toBe("vault");
    expect(env.VAULT_TOKEN).toBe(svc("vault").environment?.VAULT_DEV_ROOT_TOKEN_ID);
    expect(env.VAULT_MOUNT).toBe(sidecarConfig.vault.mount);
    expect(env.LEASEHOLD_VAULT_PREFIX).toBe(sidecarConfig.vault.prefix);
    const script = svc("demo-agent").entrypoint?.at(-1) ?? "";
    expect(mountOf(svc("demo-agent"), script)?.source).toBe("./deploy/demo-agent.mjs");
  });

  it("grants the sidecar's AppRole the policy of its own mount and prefix", async () => {
    const hcl = await readFile(join(root, "deploy/vault-policy.hcl"), "utf8");
    const { mount, prefix } = sidecarConfig.vault;
    expect(hcl).toContain(`path "${mount}/data/${prefix}/*"`);
    expect(hcl).toContain(`path "${mount}/metadata/${prefix}/*"`);
    const init = await readFile(join(root, "deploy/vault-init.sh"), "utf8");
    expect(init).toContain("vault policy write leasehold /deploy/vault-policy.hcl");
    expect(init).toContain("token_policies=leasehold");
    expect(mountOf(svc("vault-init"), "/deploy/vault-policy.hcl")?.source).toBe("./deploy/vault-policy.hcl");
  });

  it("mounts a Cedar policy that validates and lets agents read the demo's resources", async () => {
    const file = join(root, "deploy/policy.cedar");
    const v = await validatePolicyFile(file);
    expect(v.errors).toEqual([]);
    expect(v.policies).toEqual(expect.arrayContaining(["agents-read-orders", "agents-read-inventory"]));
    const text = await readFile(file, "utf8");
    expect(text).toContain('Resource::"orders-db"');
  });

  it("ships a MariaDB registration whose admin and accounts the init script creates", async () => {
    const reg = registrationSchema.parse(
      parseYaml(await readFile(join(root, "deploy/registrations/inventory-db.yaml"), "utf8")),
    );
    const adapter = builtinAdapters.get(reg.adapter);
    const conn = adapter?.config.safeParse(reg.connection);
    expect(conn?.success).toBe(true);
    expect(reg.connection.host).toBe("mariadb");
    expect(mountOf(leasehold, "/etc/leasehold/registrations")?.source).toBe("./deploy/registrations");
    const sql = await readFile(join(root, "deploy/mariadb-init.sql"), "utf8");
    expect(sql).toContain(`'${reg.admin?.username}'@'%' IDENTIFIED BY '${reg.admin?.password}'`);
    for (const a of reg.accounts) expect(sql).toContain(`CREATE USER IF NOT EXISTS '${String(a)}'@'%'`);
    expect(mountOf(svc("mariadb"), "/docker-entrypoint-initdb.d/10-leasehold.sql")?.source).toBe(
      "./deploy/mariadb-init.sql",
    );
    const policy = await readFile(join(root, "deploy/policy.cedar"), "utf8");
    expect(policy).toContain(`Resource::"${reg.name}"`);
  });
});

describe("Dockerfile", () => {
  const text = readFileText("Dockerfile");
  const lines = text
    .replace(/\\\n/g, " ")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"));
  const stages = lines.reduce<string[][]>((acc, l) => {
    if (/^FROM\s/i.test(l)) acc.push([l]);
    else acc.at(-1)?.push(l);
    return acc;
  }, []);
  const final = stages.at(-1) ?? [];

  it("is multi-stage: a build stage compiles, the final stage copies only its output", () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    expect(stages[0]?.[0]).toMatch(/^FROM node:\S+ AS build$/);
    expect(stages[0]?.some((l) => /npx tsc -p tsconfig\.build\.json/.test(l))).toBe(true);
    expect(stages[0]?.some((l) => /node scripts\/bundle\.mjs/.test(l))).toBe(true);
    expect(final.some((l) => /^COPY --from=build \/src\/dist/.test(l))).toBe(true);
  });

  it("installs production dependencies only in the final stage", () => {
    expect(final.some((l) => /^RUN npm ci --omit=dev\b/.test(l))).toBe(true);
    expect(final.some((l) => /npm (ci|install)(?!.*--omit=dev)/.test(l))).toBe(false);
  });

  it("runs as a non-root user, with its state under a volume (read-only root friendly)", () => {
    const users = final.filter((l) => /^USER\s/.test(l));
    expect(users.length).toBeGreaterThan(0);
    expect(users.at(-1)).toMatch(/^USER (?!root\b|0\b)\S+$/);
    expect(final).toContain('VOLUME ["/var/lib/leasehold"]');
    const writes = [sidecarConfig.tokens.signingKey, sidecarConfig.audit.file, sidecarConfig.admin.tokenFile];
    for (const w of writes) expect(w.startsWith("/var/lib/leasehold/"), w).toBe(true);
    expect(final.some((l) => /chown node:node \/var\/lib\/leasehold/.test(l))).toBe(true);
  });

  it("checks health on /healthz, listens on the config's port and reads the config compose mounts", () => {
    const hc = final.find((l) => l.startsWith("HEALTHCHECK"));
    expect(hc).toContain(`http://127.0.0.1:${sidecarConfig.listen.port}/healthz`);
    expect(final).toContain(`EXPOSE ${sidecarConfig.listen.port}`);
    expect(final.join("\n")).toContain("LEASEHOLD_CONFIG=/etc/leasehold/leasehold.yaml");
    expect(final.some((l) => l.startsWith("ENTRYPOINT") && l.includes("dist/cli/leasehold.mjs"))).toBe(true);
    expect(final).toContain('CMD ["serve"]');
    for (const l of lines.filter((x) => /^COPY (?!--from)/.test(x))) {
      const sources = l.split(/\s+/).slice(1, -1);
      for (const s of sources) expect(existsSync(join(root, s)), `COPY source ${s}`).toBe(true);
    }
  });
});

/** Synchronous on purpose: describe blocks build their fixtures before the tests run. */
function readFileText(rel: string): string {
  return readFileSync(join(root, rel), "utf8");
}
