import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { parseAllDocuments } from "yaml";
import { afterAll, describe, expect, it } from "vitest";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { type Config, parseConfig } from "../../sidecar/config.js";
import { createIdentityVerifier } from "../../sidecar/identity/index.js";
import { validatePolicyFile } from "../../sidecar/policy/index.js";
import { prepareSocketPath } from "../../sidecar/unix-socket.js";
import { repoRoot } from "../support/sidecar-process.js";

interface Mount {
  name: string;
  mountPath: string;
  readOnly?: boolean;
}
interface Container {
  name: string;
  image: string;
  args?: string[];
  restartPolicy?: string;
  env?: Array<{ name: string; value?: string; valueFrom?: unknown }>;
  volumeMounts?: Mount[];
  securityContext?: Record<string, unknown>;
  startupProbe?: { exec?: { command: string[] } };
  readinessProbe?: { exec?: { command: string[] } };
  livenessProbe?: { exec?: { command: string[] } };
}
interface Volume {
  name: string;
  emptyDir?: Record<string, unknown>;
  configMap?: { name: string; items?: Array<{ key: string; path: string }> };
  projected?: {
    sources: Array<{ serviceAccountToken?: { audience: string; expirationSeconds: number; path: string } }>;
  };
}
interface PodSpec {
  serviceAccountName: string;
  automountServiceAccountToken?: boolean;
  securityContext?: Record<string, unknown>;
  initContainers?: Container[];
  containers: Container[];
  volumes: Volume[];
}
interface K8sDoc {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  data?: Record<string, string>;
  automountServiceAccountToken?: boolean;
  spec?: { template: { spec: PodSpec } };
}

const root = repoRoot();
const dir = join(root, "examples/kubernetes");
const docs = parseAllDocuments(await readFile(join(dir, "leasehold-sidecar.yaml"), "utf8")).map((d) => {
  expect(d.errors).toEqual([]);
  return d.toJS() as K8sDoc;
});
const byKind = (kind: string) => docs.filter((d) => d.kind === kind);
const configMap = (name: string) => {
  const cm = byKind("ConfigMap").find((d) => d.metadata.name === name);
  if (!cm?.data) throw new Error(`no ConfigMap ${name}`);
  return cm.data;
};
const deployment = byKind("Deployment")[0];
const pod = deployment?.spec?.template.spec as PodSpec;
const all = [...(pod.initContainers ?? []), ...pod.containers];
const sidecar = all.find((c) => c.name === "leasehold") as Container;
const agent = pod.containers.find((c) => c.name === "agent") as Container;
const volume = (name: string) => pod.volumes.find((v) => v.name === name);
const mountIn = (c: Container, path: string) =>
  (c.volumeMounts ?? [])
    .filter((m) => path === m.mountPath || path.startsWith(`${m.mountPath}/`))
    .sort((a, b) => b.mountPath.length - a.mountPath.length)[0];
const config: Config = parseConfig(
  (parseAllDocuments(configMap("leasehold-config")["leasehold.yaml"] ?? "")[0]?.toJS() ?? {}) as unknown,
  "/etc/leasehold",
  { REDIS_PASSWORD: "example" },
);
const tmp = await mkdtemp(join(tmpdir(), "leasehold-k8s-"));
afterAll(() => rm(tmp, { recursive: true, force: true }));

describe("examples/kubernetes/leasehold-sidecar.yaml", () => {
  it("holds a ServiceAccount, the ConfigMaps and a Deployment of one pod with the agent and the sidecar", () => {
    expect(docs.map((d) => d.kind).sort()).toEqual([
      "ConfigMap",
      "ConfigMap",
      "Deployment",
      "ServiceAccount",
    ]);
    expect(new Set(docs.map((d) => d.metadata.namespace))).toEqual(new Set(["agents"]));
    expect(deployment?.apiVersion).toBe("apps/v1");
    expect(sidecar.image).toMatch(/leasehold/);
    expect(agent).toBeDefined();
    // A native sidecar: an init container that keeps running, started before the agent.
    expect(pod.initContainers?.find((c) => c.name === "leasehold")?.restartPolicy).toBe("Always");
    expect(sidecar.args).toEqual(["serve"]);
    expect(sidecar.env?.find((e) => e.name === "LEASEHOLD_CONFIG")?.value).toBe(
      "/etc/leasehold/leasehold.yaml",
    );
    const sa = byKind("ServiceAccount")[0];
    expect(pod.serviceAccountName).toBe(sa?.metadata.name);
    expect(sa?.automountServiceAccountToken).toBe(false);
    expect(pod.automountServiceAccountToken).toBe(false);
  });

  it("shares the sidecar's Unix socket through one emptyDir mounted in both containers", () => {
    const socket = config.listen.socket ?? "";
    expect(socket).toBe("/run/leasehold/sock/leasehold.sock");
    const inSidecar = mountIn(sidecar, socket);
    const inAgent = mountIn(agent, socket);
    expect(inSidecar?.name).toBeDefined();
    expect(inAgent?.name).toBe(inSidecar?.name);
    expect(inAgent?.mountPath).toBe(inSidecar?.mountPath);
    expect(volume(inSidecar?.name ?? "")?.emptyDir).toBeDefined();
    expect(configMap("reporter-agent")["agent.mjs"]).toContain(`"${socket}"`);
    // The socket's folder is made 0750 before the sidecar starts: the sidecar refuses a folder
    // others may write, and an emptyDir's root is 0777.
    const inits = pod.initContainers ?? [];
    const prep = inits.findIndex((c) => c.name === "socket-dir");
    expect(prep).toBeGreaterThanOrEqual(0);
    expect(prep).toBeLessThan(inits.findIndex((c) => c.name === "leasehold"));
    const cmd = (inits[prep] as Container & { command?: string[] }).command?.join(" ") ?? "";
    expect(cmd).toContain(`chmodSync('${dirname(socket)}',0o750)`);
    expect(mountIn(inits[prep] as Container, socket)?.name).toBe(inSidecar?.name);
    for (const probe of [sidecar.startupProbe, sidecar.readinessProbe, sidecar.livenessProbe]) {
      expect(probe?.exec?.command.join(" ")).toContain(`socketPath:'${socket}'`);
    }
  });

  it("the sidecar's own socket check refuses an emptyDir's 0777 root and accepts the 0750 folder made for it", async () => {
    const emptyDir = join(tmp, "emptydir");
    await mkdir(emptyDir);
    await chmod(emptyDir, 0o777);
    await expect(prepareSocketPath(join(emptyDir, "leasehold.sock"))).rejects.toThrow(/writable by others/);
    const folder = join(emptyDir, basename(dirname(config.listen.socket ?? "")));
    await mkdir(folder);
    await chmod(folder, 0o750);
    await expect(prepareSocketPath(join(folder, "leasehold.sock"))).resolves.toBeUndefined();
  });

  it("gives the agent a projected service-account token of the sidecar's audience, and only the agent", () => {
    const mount = (agent.volumeMounts ?? []).find((m) => volume(m.name)?.projected);
    const token = volume(mount?.name ?? "")?.projected?.sources[0]?.serviceAccountToken;
    expect(token?.audience).toBe(config.identity.audience);
    expect(token?.expirationSeconds).toBeLessThanOrEqual(config.identity.maxTokenLifetime);
    const file = `${mount?.mountPath}/${token?.path}`;
    expect(configMap("reporter-agent")["agent.mjs"]).toContain(`"${file}"`);
    expect((sidecar.volumeMounts ?? []).some((m) => m.name === mount?.name)).toBe(false);
    const trust = config.identity.trust[0];
    expect(trust?.kind).toBe("issuer");
    expect(trust && "issuer" in trust ? trust.issuer : undefined).toMatch(/^https:\/\//);
    // The cluster's JWKS is a file from a ConfigMap mounted in the sidecar.
    const jwks = mountIn(sidecar, trust?.jwks ?? "");
    const cm = volume(jwks?.name ?? "")?.configMap;
    expect(cm?.name).toBe("leasehold-cluster-jwks");
    expect(cm?.items?.[0]?.path).toBe(basename(trust?.jwks ?? ""));
  });

  it("logs the sidecar in to Vault with its own projected token (audience vault), mounted in the sidecar only", () => {
    const auth = config.vault.auth;
    expect(auth.method).toBe("jwt");
    if (auth.method !== "jwt") return;
    expect(auth.mount).toBe("kubernetes");
    const mount = mountIn(sidecar, auth.jwtFile);
    expect(mount?.mountPath).toBe(dirname(auth.jwtFile));
    const token = volume(mount?.name ?? "")?.projected?.sources[0]?.serviceAccountToken;
    expect(token?.audience).toBe("vault");
    expect(token?.path).toBe(basename(auth.jwtFile));
    expect((agent.volumeMounts ?? []).some((m) => m.name === mount?.name)).toBe(false);
  });

  it("matches Vault's role in vault-setup.sh: service account, namespace, audience and policy", async () => {
    const setup = await readFile(join(dir, "vault-setup.sh"), "utf8");
    const auth = config.vault.auth;
    expect(setup).toContain(
      `auth/${auth.method === "jwt" ? auth.mount : "?"}/role/${auth.method === "jwt" ? auth.role : "?"}`,
    );
    expect(setup).toContain(`bound_service_account_names=${pod.serviceAccountName}`);
    expect(setup).toContain(`bound_service_account_namespaces=${deployment?.metadata.namespace}`);
    expect(setup).toContain("audience=vault");
    expect(setup).toContain("deploy/vault-policy.hcl");
    const hcl = await readFile(join(root, "deploy/vault-policy.hcl"), "utf8");
    expect(hcl).toContain(`path "${config.vault.mount}/data/${config.vault.prefix}/*"`);
  });

  it("runs both containers non-root on a read-only root, the sidecar's state on a volume", () => {
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 1000, fsGroup: 1000 });
    for (const c of all) {
      expect(c.securityContext, c.name).toMatchObject({
        readOnlyRootFilesystem: true,
        allowPrivilegeEscalation: false,
        capabilities: { drop: ["ALL"] },
      });
    }
    for (const file of [config.tokens.signingKey, config.audit.file, config.admin.tokenFile]) {
      const m = mountIn(sidecar, file);
      expect(m?.readOnly, file).not.toBe(true);
      expect(volume(m?.name ?? "")?.emptyDir, file).toBeDefined();
    }
    expect(mountIn(sidecar, "/etc/leasehold/leasehold.yaml")?.readOnly).toBe(true);
    expect(volume(mountIn(sidecar, "/etc/leasehold/leasehold.yaml")?.name ?? "")?.configMap?.name).toBe(
      "leasehold-config",
    );
  });

  it("embeds a leasehold.yaml that parseConfig accepts and a policy.cedar that validates", async () => {
    expect(config.redis.url).toContain("example");
    expect(config.policy.file).toBe("/etc/leasehold/policy.cedar");
    const file = join(tmp, "policy.cedar");
    await writeFile(file, configMap("leasehold-config")["policy.cedar"] ?? "");
    const v = await validatePolicyFile(file);
    expect(v.errors).toEqual([]);
    expect(v.policies).toEqual(["reporter-reads-orders"]);
    // The subject the policy names is one the trust entry's globs admit.
    const subjects = config.identity.trust[0]?.subjects ?? [];
    const principal = /principal == Agent::"([^"]+)"/.exec(
      configMap("leasehold-config")["policy.cedar"] ?? "",
    )?.[1];
    expect(subjects).toContain(principal);
    expect(configMap("reporter-agent")["agent.mjs"]).toContain('resource: "orders-db"');
  });

  it("admits the agent's service-account token under the example's trust entry, as the policy's principal", async () => {
    const entry = config.identity.trust[0];
    if (entry?.kind !== "issuer") throw new Error("the first trust entry must be kind: issuer");
    // A stand-in for the cluster's service-account signing key, in place of the ConfigMap's JWKS.
    const { publicKey, privateKey } = await generateKeyPair("RS256");
    const jwks = join(tmp, "cluster-jwks.json");
    await writeFile(
      jwks,
      JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: "sa-1", alg: "RS256" }] }),
    );
    const verifier = createIdentityVerifier({
      audience: config.identity.audience,
      maxTokenLifetime: config.identity.maxTokenLifetime,
      clockSkew: config.identity.clockSkew,
      trust: [
        {
          ...entry,
          jwks,
          subjects: [...entry.subjects],
          algorithms: entry.algorithms && [...entry.algorithms],
        },
      ],
    });
    const now = Math.floor(Date.now() / 1000);
    const token = await new SignJWT({ "kubernetes.io": { namespace: "agents" } })
      .setProtectedHeader({ alg: "RS256", kid: "sa-1" })
      .setIssuer(entry.issuer ?? "")
      .setSubject("system:serviceaccount:agents:reporter")
      .setAudience(config.identity.audience)
      .setIssuedAt(now)
      .setExpirationTime(now + 600)
      .sign(privateKey);
    const identity = await verifier.verify(token);
    const principal = /principal == Agent::"([^"]+)"/.exec(
      configMap("leasehold-config")["policy.cedar"] ?? "",
    )?.[1];
    expect(identity.subject).toBe(principal);
  });

  it("explains itself", async () => {
    const readme = await readFile(join(dir, "README.md"), "utf8");
    for (const word of [
      "emptyDir",
      "listen.socket",
      "projected",
      "kind: issuer",
      "kubernetes auth",
      "SPIFFE",
    ]) {
      expect(readme).toContain(word);
    }
  });
});
