import { execFileSync, spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client } from "ldapts";
import { freePort } from "./free-port.js";
import { type GuardedProcess, guardProcess, releaseProcess } from "./process-guard.js";
import { waitFor } from "./wait-for.js";

/** A private OpenLDAP server for tests: its own folder, database and port. */
export interface TestSlapd {
  /** `ldap://127.0.0.1:PORT` (StartTLS available when started with `tls: true`). */
  readonly url: string;
  readonly port: number;
  /** `ldaps://127.0.0.1:PORT2` when started with `tls: true`. */
  readonly ldapsUrl: string | undefined;
  /** PEM of the test CA that signed the server's certificate (SAN IP:127.0.0.1, DNS:localhost), with `tls: true`. */
  readonly caPem: string | undefined;
  /** `dc=example,dc=org` */
  readonly baseDn: string;
  /** `ou=people,dc=example,dc=org`, where `addUser` puts entries. */
  readonly peopleDn: string;
  /** An ldap adapter `accountDn` for `addUser`'s entries: `uid={account},ou=people,dc=example,dc=org`. */
  readonly accountDnTemplate: string;
  /** The rootdn and its password (rootpw): bypasses every ACL. */
  readonly admin: { readonly dn: string; readonly password: string };
  /**
   * A least-privilege admin DN holding only the grant docs/adapters.md documents:
   * `write` on `userPassword` (and nothing else) of every entry.
   */
  readonly rotator: { readonly dn: string; readonly password: string };
  /** The DN of `addUser(uid)`, every non-alphanumeric character hex-escaped (independent of the adapter's escaping). */
  userDn(uid: string): string;
  /** Adds an inetOrgPerson `uid=<uid>` under peopleDn with an {SSHA} userPassword. */
  addUser(uid: string, password: string): Promise<void>;
  /** Deletes that entry; no error if it is gone. */
  deleteUser(uid: string): Promise<void>;
  /** The stored userPassword values of that entry (as the rootdn sees them), e.g. to check hashing. */
  userPasswordValues(uid: string): Promise<string[]>;
  /** Stops the server and removes its folder. Safe to call twice. */
  stop(): Promise<void>;
}

const SLAPD = "/usr/sbin/slapd";
const SCHEMA_DIR = "/etc/ldap/schema";
const MODULE_DIR = "/usr/lib/ldap";
const BASE_DN = "dc=example,dc=org";
const PEOPLE_DN = `ou=people,${BASE_DN}`;
const ROOT_DN = `cn=root,${BASE_DN}`;
const ROTATOR_DN = `cn=leasehold,${BASE_DN}`;

type Running = GuardedProcess;

/** `{SSHA}` as slappasswd makes it: computed here, independently of the adapter. */
function ssha(password: string): string {
  const salt = randomBytes(4);
  const digest = createHash("sha1").update(Buffer.from(password, "utf8")).update(salt).digest();
  return `{SSHA}${Buffer.concat([digest, salt]).toString("base64")}`;
}

/** RFC 4514 value escaping in its most conservative form: every byte that is not [A-Za-z0-9] as \XX. */
function hexEscapeValue(value: string): string {
  return [...Buffer.from(value, "utf8")]
    .map((b) =>
      /[A-Za-z0-9]/.test(String.fromCharCode(b))
        ? String.fromCharCode(b)
        : `\\${b.toString(16).padStart(2, "0")}`,
    )
    .join("");
}

export interface SlapdOptions {
  /** Serve StartTLS and ldaps:// with a certificate from a throwaway CA (needs `openssl`). @default false */
  tls?: boolean;
  /** Attributes every entry may write in itself (e.g. `description`, for modify tests). @default none */
  selfWritable?: readonly string[];
  /**
   * Entries under peopleDn may be deleted and renamed by any bound user (write on their `entry`
   * and `uid`, the naming attribute, and on peopleDn's `children`: slapd checks a rename's rights
   * on the new entry, where `self` no longer matches), so a delete or rename that reaches the
   * server succeeds. @default false
   */
  selfRemovable?: boolean;
}

/** True when the `openssl` command is there (for `tls: true`). */
export function hasOpenssl(): boolean {
  try {
    execFileSync("openssl", ["version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/** A CA and a server certificate for 127.0.0.1 / localhost, made with openssl in `dir`. */
function makeCertificates(dir: string): { ca: string; cert: string; key: string } {
  const file = (name: string) => join(dir, name);
  const run = (args: string[]) =>
    execFileSync("openssl", args, { cwd: dir, stdio: "ignore", timeout: 30_000 });
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  run([
    "req",
    "-x509",
    ...ec,
    "-keyout",
    file("ca.key"),
    "-out",
    file("ca.crt"),
    "-subj",
    "/CN=leasehold test CA",
    "-days",
    "2",
  ]);
  run(["req", ...ec, "-keyout", file("server.key"), "-out", file("server.csr"), "-subj", "/CN=localhost"]);
  writeFileSync(file("san.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
  run([
    "x509",
    "-req",
    "-in",
    file("server.csr"),
    "-CA",
    file("ca.crt"),
    "-CAkey",
    file("ca.key"),
    "-CAcreateserial",
    "-out",
    file("server.crt"),
    "-days",
    "2",
    "-extfile",
    file("san.ext"),
  ]);
  return { ca: file("ca.crt"), cert: file("server.crt"), key: file("server.key") };
}

function slapdConf(
  dir: string,
  rootPassword: string,
  tls: { ca: string; cert: string; key: string } | undefined,
  selfWritable: readonly string[] = [],
  selfRemovable = false,
): string {
  const tlsLines =
    tls === undefined
      ? ""
      : `TLSCACertificateFile ${tls.ca}\nTLSCertificateFile ${tls.cert}\nTLSCertificateKeyFile ${tls.key}\n`;
  const removable = `access to dn.base="${PEOPLE_DN}" attrs=children
  by users write
  by * none
access to dn.one="${PEOPLE_DN}" attrs=entry,uid
  by users write
  by * none
`;
  // slapd.conf values are double-quoted; the ones here are generated paths and hashes only.
  return `${tlsLines}include ${SCHEMA_DIR}/core.schema
include ${SCHEMA_DIR}/cosine.schema
include ${SCHEMA_DIR}/inetorgperson.schema
pidfile ${join(dir, "slapd.pid")}
argsfile ${join(dir, "slapd.args")}
modulepath ${MODULE_DIR}
moduleload back_mdb
database mdb
maxsize 67108864
suffix "${BASE_DN}"
rootdn "${ROOT_DN}"
rootpw ${ssha(rootPassword)}
directory ${join(dir, "db")}
# The grant docs/adapters.md documents: accounts change their own password, the
# leasehold DN may write userPassword and nothing else, anonymous may only bind.
access to attrs=userPassword
  by self write
  by dn.exact="${ROTATOR_DN}" write
  by anonymous auth
  by * none
${selfWritable.map((a) => `access to attrs=${a}\n  by self write\n  by * none\n`).join("")}${selfRemovable ? removable : ""}access to *
  by self read
  by * none
`;
}

/**
 * Starts Debian's slapd with a generated slapd.conf (mdb backend) in a temp folder on a
 * free port of 127.0.0.1, adds the base entries, and resolves once it answers binds.
 * The server is stopped by `stop()`, by a process `exit` hook, and by a detached
 * watchdog should this process die without either.
 *
 * @throws Error naming `apt-get install slapd ldap-utils` when slapd is missing.
 */
export async function startSlapd(opts: SlapdOptions = {}): Promise<TestSlapd> {
  if (!existsSync(SLAPD) || !existsSync(join(SCHEMA_DIR, "inetorgperson.schema"))) {
    throw new Error(`OpenLDAP server not found (${SLAPD}): apt-get install slapd ldap-utils`);
  }
  const rootPassword = randomBytes(18).toString("base64url");
  const rotatorPassword = randomBytes(18).toString("base64url");
  const dir = await mkdtemp(join(tmpdir(), "leasehold-slapd-"));
  await mkdir(join(dir, "db"));
  const certs = opts.tls === true ? makeCertificates(dir) : undefined;
  await writeFile(
    join(dir, "slapd.conf"),
    slapdConf(dir, rootPassword, certs, opts.selfWritable, opts.selfRemovable),
    {
      mode: 0o600,
    },
  );

  let state: Running | undefined;
  try {
    const { port, ldapsPort, proc } = await startOnFreePort(dir, rootPassword, certs !== undefined);
    state = proc;
    const url = `ldap://127.0.0.1:${port}`;
    await asRoot(url, rootPassword, async (c) => {
      await c.add(BASE_DN, { objectClass: ["dcObject", "organization"], o: "example", dc: "example" });
      await c.add(PEOPLE_DN, { objectClass: "organizationalUnit", ou: "people" });
      await c.add(ROTATOR_DN, {
        objectClass: "person",
        cn: "leasehold",
        sn: "leasehold",
        userPassword: ssha(rotatorPassword),
      });
    });

    const userDn = (uid: string) => `uid=${hexEscapeValue(uid)},${PEOPLE_DN}`;
    let stopped: Promise<void> | undefined;
    const server = state;
    return {
      url,
      port,
      ldapsUrl: ldapsPort === undefined ? undefined : `ldaps://127.0.0.1:${ldapsPort}`,
      caPem: certs === undefined ? undefined : readFileSync(certs.ca, "utf8"),
      baseDn: BASE_DN,
      peopleDn: PEOPLE_DN,
      accountDnTemplate: `uid={account},${PEOPLE_DN}`,
      admin: { dn: ROOT_DN, password: rootPassword },
      rotator: { dn: ROTATOR_DN, password: rotatorPassword },
      userDn,
      addUser: (uid, password) =>
        asRoot(url, rootPassword, (c) =>
          c.add(userDn(uid), {
            objectClass: "inetOrgPerson",
            uid,
            cn: uid,
            sn: uid,
            userPassword: ssha(password),
          }),
        ),
      deleteUser: (uid) =>
        asRoot(url, rootPassword, async (c) => {
          await c.del(userDn(uid)).catch((err: unknown) => {
            if (!(err instanceof Error && "code" in err && err.code === 32)) throw err;
          });
        }),
      userPasswordValues: (uid) =>
        asRoot(url, rootPassword, async (c) => {
          const { searchEntries } = await c.search(userDn(uid), {
            scope: "base",
            attributes: ["userPassword"],
          });
          const raw = searchEntries[0]?.userPassword;
          const values = raw === undefined ? [] : Array.isArray(raw) ? raw : [raw];
          return values.map((v) => (Buffer.isBuffer(v) ? v.toString("utf8") : v));
        }),
      stop() {
        stopped ??= stopServer(server);
        return stopped;
      },
    };
  } catch (err) {
    if (state !== undefined) await stopServer(state);
    else await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

async function asRoot<T>(url: string, password: string, work: (c: Client) => Promise<T>): Promise<T> {
  const c = new Client({ url, timeout: 10_000, connectTimeout: 5_000 });
  try {
    await c.bind(ROOT_DN, password);
    return await work(c);
  } finally {
    await c.unbind().catch(() => undefined);
  }
}

async function startOnFreePort(
  dir: string,
  rootPassword: string,
  ldaps: boolean,
): Promise<{ port: number; ldapsPort: number | undefined; proc: Running }> {
  let lastError = "";
  for (let attempt = 1; attempt <= 3; attempt++) {
    const port = await freePort();
    const ldapsPort = ldaps ? await freePort() : undefined;
    const urls = [
      `ldap://127.0.0.1:${port}/`,
      ...(ldapsPort === undefined ? [] : [`ldaps://127.0.0.1:${ldapsPort}/`]),
    ];
    const child = spawn(SLAPD, ["-f", join(dir, "slapd.conf"), "-h", urls.join(" "), "-d", "0"], {
      stdio: ["ignore", "ignore", "pipe"],
      cwd: dir,
    });
    let stderr = "";
    child.stderr?.on("data", (chunk: Buffer) => {
      stderr = (stderr + chunk.toString("utf8")).slice(-4000);
    });
    const proc = guardProcess(child, dir, "slapd");
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    if (await waitReady(`ldap://127.0.0.1:${port}`, rootPassword, exited)) return { port, ldapsPort, proc };
    // slapd exits with status 1 and no message (at -d 0) when the port was taken meanwhile.
    lastError = `slapd exited (status ${String(await exited)}) before answering: ${stderr.trim()}`;
    releaseProcess(proc);
  }
  throw new Error(lastError);
}

/** Polls a root bind until it works (true) or slapd exits (false). */
async function waitReady(
  url: string,
  rootPassword: string,
  exited: Promise<number | null>,
): Promise<boolean> {
  let gone = false;
  void exited.then(() => {
    gone = true;
  });
  const ready = await waitFor(`slapd on ${url} to accept a root bind`, async () => {
    if (gone) return "exited" as const;
    const c = new Client({ url, timeout: 10_000, connectTimeout: 10_000 });
    try {
      await c.bind(ROOT_DN, rootPassword);
      return true;
    } finally {
      await c.unbind().catch(() => undefined);
    }
  });
  return ready === true;
}

async function stopServer(proc: Running): Promise<void> {
  const { child } = proc;
  if (child.exitCode === null && child.signalCode === null) {
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
    await exited;
    clearTimeout(timer);
  }
  releaseProcess(proc);
  await rm(proc.dir, { recursive: true, force: true });
}

/** Whether `addUser`'s `uid` binds to `slapd` with `password`: false for invalidCredentials (49). */
export async function ldapLogin(
  slapd: Pick<TestSlapd, "url" | "userDn">,
  uid: string,
  password: string,
): Promise<boolean> {
  const client = new Client({ url: slapd.url });
  try {
    await client.bind(slapd.userDn(uid), password);
    return true;
  } catch (err) {
    if ((err as { code?: number }).code === 49) return false;
    throw err;
  } finally {
    await client.unbind().catch(() => undefined);
  }
}
