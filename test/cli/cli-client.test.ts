import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApiError, SidecarClient } from "../../sidecar/cli/http-client.js";
import { parseConfig } from "../../sidecar/config.js";

/** The CLI reaches a sidecar that listens on its Unix socket only (listen.socket). */
describe("the CLI's client over the Unix socket", () => {
  let dir: string;
  let server: Server;
  const seen: { method?: string; url?: string; host?: string; auth?: string; body: string }[] = [];
  const ADMIN = "admin-token-for-the-socket-test-0123456789";

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "lh-cli-socket-"));
    await mkdir(join(dir, "state"), { mode: 0o700 });
    await writeFile(join(dir, "state", "admin.token"), `${ADMIN}\n`, { mode: 0o600 });
    server = createServer((req: IncomingMessage, res) => {
      let body = "";
      req.on("data", (d: Buffer) => {
        body += d.toString("utf8");
      });
      req.on("end", () => {
        seen.push({
          method: req.method,
          url: req.url,
          host: req.headers.host,
          auth: req.headers.authorization,
          body,
        });
        res.setHeader("content-type", "application/json");
        if (req.url?.startsWith("/v1/refused")) {
          res.statusCode = 401;
          res.end(
            JSON.stringify({
              error: {
                code: "unauthenticated",
                message: "the bearer token is not the admin token",
                request_id: "r",
              },
            }),
          );
          return;
        }
        if (req.url?.startsWith("/v1/denied")) {
          res.statusCode = 403;
          const hint = "leasehold policy check --principal a --action revoke --resource x --context '{}'";
          res.end(JSON.stringify({ error: { code: "policy_denied", message: "no", request_id: "r", hint } }));
          return;
        }
        if (req.url?.startsWith("/v1/missing")) {
          res.statusCode = 404;
          res.end(
            JSON.stringify({ error: { code: "not_found", message: "no such thing", request_id: "r" } }),
          );
          return;
        }
        res.end(JSON.stringify({ ok: true }));
      });
    });
    await new Promise<void>((resolve) => server.listen(join(dir, "leasehold.sock"), resolve));
  });

  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await rm(dir, { recursive: true, force: true });
  });

  const config = () =>
    parseConfig(
      {
        listen: { socket: "./leasehold.sock", port: 1 },
        vault: { address: "http://127.0.0.1:1", auth: { method: "token", token: "t" } },
        identity: { audience: "leasehold" },
        admin: { tokenFile: "./state/admin.token" },
      },
      dir,
    );

  it("sends requests over the socket with Host: localhost and the admin token", async () => {
    const c = await SidecarClient.fromConfig(config());
    expect(await c.request("PUT", "/v1/resources/x?dry_run=true", { name: "x" })).toEqual({ ok: true });
    const last = seen.at(-1);
    expect(last).toMatchObject({
      method: "PUT",
      url: "/v1/resources/x?dry_run=true",
      host: "localhost",
      auth: `Bearer ${ADMIN}`,
    });
    expect(JSON.parse(last?.body ?? "")).toEqual({ name: "x" });
  });

  it("turns an error answer into a one-line error naming the code", async () => {
    const c = await SidecarClient.fromConfig(config());
    const err = await c.request("GET", "/v1/missing").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).status).toBe(404);
    expect((err as ApiError).message).toBe("not_found: no such thing");
  });

  it("a refused admin token names the file the CLI read it from, never the token", async () => {
    const c = await SidecarClient.fromConfig(config());
    const err = await c.request("GET", "/v1/refused").catch((e: unknown) => e);
    expect((err as ApiError).status).toBe(401);
    const message = (err as ApiError).message;
    expect(message).toContain("unauthenticated: the bearer token is not the admin token");
    expect(message).toContain(`read from ${join(dir, "state", "admin.token")} (admin.tokenFile`);
    expect(message).toContain(`unix:${join(dir, "leasehold.sock")}`);
    expect(message).not.toContain(ADMIN);
  });

  it("shows the hint of an answer (policy_denied's policy check command)", async () => {
    const c = await SidecarClient.fromConfig(config());
    const err = await c.request("POST", "/v1/denied").catch((e: unknown) => e);
    expect((err as ApiError).message).toBe(
      "policy_denied: no (hint: leasehold policy check --principal a --action revoke --resource x --context '{}')",
    );
  });

  it("says which socket it could not reach", async () => {
    const cfg = config();
    const c = await SidecarClient.fromConfig({
      ...cfg,
      listen: { ...cfg.listen, socket: join(dir, "nobody.sock") },
    });
    const err = await c.request("GET", "/v1/resources").catch((e: unknown) => e);
    expect((err as ApiError).code).toBe("unreachable");
    expect((err as ApiError).message).toContain(`unix:${join(dir, "nobody.sock")}`);
  });
});
